package service

import (
	"context"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
)

// openedDatastores keeps datastores open for a few seconds (tokenCacheTTL, as for tokens and
// roles), so that a transfer of many files does not read the registry, decrypt the
// credentials and build a storage client (with its connection and buffer pools) for every
// file. A change made through this server drops the entry at once; one made through another
// server is seen within the TTL.
type openedDatastores struct {
	mu sync.Mutex
	m  map[string]*openedDatastore
	// gen counts the drops: a datastore opened from a record read before a drop is not kept.
	gen uint64
}

type openedDatastore struct {
	b      atelier.DatastoreBucket
	opened time.Time
	// users counts the handles in use; a dropped entry is closed when the last one is.
	users   int
	dropped bool
}

func datastoreKey(workspace, name string) string { return workspace + "\x00" + name }

// get returns a handle on the open datastore, or nil.
func (c *openedDatastores) get(key string, now time.Time) atelier.DatastoreBucket {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[key]
	if e == nil {
		return nil
	}
	if now.Sub(e.opened) >= tokenCacheTTL {
		c.dropLocked(key)
		return nil
	}
	e.users++
	return &datastoreHandle{DatastoreBucket: e.b, e: e, c: c}
}

// has reports whether the datastore under key is open (and so exists).
func (c *openedDatastores) has(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[key]
	return e != nil && now.Sub(e.opened) < tokenCacheTTL
}

// generation is read before the record a datastore is opened from (see put).
func (c *openedDatastores) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put keeps b open under key and returns a handle on it; b was opened from a record read at
// generation gen: if a drop happened since, b may be stale and serves only this handle.
func (c *openedDatastores) put(key string, b atelier.DatastoreBucket, now time.Time, gen uint64) atelier.DatastoreBucket {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		e := &openedDatastore{b: b, opened: now, users: 1, dropped: true}
		return &datastoreHandle{DatastoreBucket: b, e: e, c: c}
	}
	if c.m == nil {
		c.m = map[string]*openedDatastore{}
	}
	for k, e := range c.m {
		if now.Sub(e.opened) >= tokenCacheTTL {
			c.dropLocked(k)
		}
	}
	c.dropLocked(key)
	e := &openedDatastore{b: b, opened: now, users: 1}
	c.m[key] = e
	return &datastoreHandle{DatastoreBucket: b, e: e, c: c}
}

// drop forgets the datastore under key (its configuration or credentials changed).
func (c *openedDatastores) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(key)
}

// dropAll forgets every datastore (a workspace was deleted).
func (c *openedDatastores) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		c.dropLocked(k)
	}
}

func (c *openedDatastores) dropLocked(key string) {
	c.gen++
	e := c.m[key]
	if e == nil {
		return
	}
	delete(c.m, key)
	e.dropped = true
	if e.users == 0 {
		e.b.Close()
	}
}

func (c *openedDatastores) release(e *openedDatastore) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.users--
	if e.users == 0 && e.dropped {
		e.b.Close()
	}
}

// datastoreHandle is one use of an open datastore: Close releases it.
type datastoreHandle struct {
	atelier.DatastoreBucket
	e    *openedDatastore
	c    *openedDatastores
	once sync.Once
}

func (h *datastoreHandle) Close() error {
	h.once.Do(func() { h.c.release(h.e) })
	return nil
}

// openDatastore opens a datastore of the workspace for the caller, who must Close it.
func (s *Data) openDatastore(ctx context.Context, workspace, name string) (atelier.DatastoreBucket, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	if err := atelier.ValidateName("datastore", name); err != nil {
		return nil, err
	}
	key := datastoreKey(workspace, name)
	if b := s.datastores.get(key, s.now()); b != nil {
		return b, nil
	}
	gen := s.datastores.generation()
	d, err := s.findDatastore(ctx, workspace, name)
	if err != nil {
		return nil, err
	}
	// It outlives this request: a client that refreshes tokens must not stop with it.
	b, err := s.openBucket(context.WithoutCancel(ctx), d)
	if err != nil {
		return nil, err
	}
	return s.datastores.put(key, b, s.now(), gen), nil
}
