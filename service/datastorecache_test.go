package service

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

// fakeBucket counts its closes; nothing else of it is used.
type fakeBucket struct {
	atelier.DatastoreBucket
	closed atomic.Int32
}

func (f *fakeBucket) Close() error { f.closed.Add(1); return nil }

func TestOpenedDatastores(t *testing.T) {
	var c openedDatastores
	t0 := time.Unix(1000, 0)
	a := &fakeBucket{}
	h1 := c.put("ws\x00a", a, t0, c.generation())
	h2 := c.get("ws\x00a", t0.Add(time.Second))
	if h2 == nil {
		t.Fatal("a datastore opened a second ago is not kept")
	}
	if c.get("ws\x00b", t0) != nil {
		t.Error("get of another datastore returned one")
	}
	// Dropped while in use: closed when the last handle is.
	c.drop("ws\x00a")
	if c.get("ws\x00a", t0) != nil {
		t.Error("a dropped datastore is still handed out")
	}
	h1.Close()
	h1.Close() // twice: released once
	if a.closed.Load() != 0 {
		t.Fatal("closed while a handle is in use")
	}
	h2.Close()
	if a.closed.Load() != 1 {
		t.Fatalf("closed %d times after its last handle, want 1", a.closed.Load())
	}

	// Past the TTL it is opened again; the old one is closed once unused.
	b := &fakeBucket{}
	c.put("ws\x00b", b, t0, c.generation()).Close()
	if c.get("ws\x00b", t0.Add(tokenCacheTTL)) != nil {
		t.Error("a datastore past its TTL is still handed out")
	}
	if b.closed.Load() != 1 {
		t.Errorf("an expired, unused datastore closed %d times, want 1", b.closed.Load())
	}

	// Opened from a record read before a drop: served to its caller, not kept, closed after.
	stale := &fakeBucket{}
	gen := c.generation()
	c.drop("ws\x00d")
	h := c.put("ws\x00d", stale, t0, gen)
	if c.get("ws\x00d", t0) != nil {
		t.Error("a datastore opened before a drop is kept")
	}
	h.Close()
	if stale.closed.Load() != 1 {
		t.Errorf("the stale datastore closed %d times after its use, want 1", stale.closed.Load())
	}

	// Concurrent users (run with -race): every handle released, every bucket opened closed
	// exactly once in the end.
	var mu sync.Mutex
	var opened []*fakeBucket
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				h := c.get("ws\x00c", t0)
				if h == nil {
					f := &fakeBucket{}
					mu.Lock()
					opened = append(opened, f)
					mu.Unlock()
					h = c.put("ws\x00c", f, t0, c.generation())
				}
				if j%50 == 0 {
					c.drop("ws\x00c")
				}
				h.Close()
			}
		}()
	}
	wg.Wait()
	c.dropAll()
	for i, b := range opened {
		if n := b.closed.Load(); n != 1 {
			t.Errorf("bucket %d of %d closed %d times, want 1", i, len(opened), n)
		}
	}
}
