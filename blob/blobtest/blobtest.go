// Package blobtest is the conformance suite every blob.Store backend must pass, and helpers for
// tests and benchmarks that need large generated content.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/blob"
)

// Option adjusts the suite to a backend.
type Option func(*config)

type config struct{ inMemory bool }

// InMemory tells the suite that the backend keeps content in RAM (memblob), so the check that a
// large put streams in bounded memory does not apply.
func InMemory() Option { return func(c *config) { c.inMemory = true } }

// TestStore runs the conformance suite against stores made by open, one per subtest.
func TestStore(t *testing.T, open func(t *testing.T) *blob.Store, opts ...Option) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	ctx := t.Context()

	t.Run("PutWithoutDigest", func(t *testing.T) {
		s := open(t)
		content := []byte("hello, atelier")
		obj := MustPut(t, s, content, "")
		if diff := cmp.Diff(atelier.Object{Digest: Digest(content), Size: int64(len(content))}, obj); diff != "" {
			t.Fatalf("PutObject (-want +got):\n%s", diff)
		}
		if got := MustRead(t, s, obj.Digest); !bytes.Equal(got, content) {
			t.Fatalf("OpenObject = %q, want %q", got, content)
		}
	})

	t.Run("PutWithDigest", func(t *testing.T) {
		s := open(t)
		content := []byte("with a digest")
		obj := MustPut(t, s, content, Digest(content))
		if diff := cmp.Diff(atelier.Object{Digest: Digest(content), Size: int64(len(content))}, obj); diff != "" {
			t.Fatalf("PutObject (-want +got):\n%s", diff)
		}
		stat, err := s.StatObject(ctx, obj.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(obj, stat); diff != "" {
			t.Fatalf("StatObject (-want +got):\n%s", diff)
		}
		if got := MustRead(t, s, obj.Digest); !bytes.Equal(got, content) {
			t.Fatalf("OpenObject = %q, want %q", got, content)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		for _, digest := range []string{"", Digest(nil)} {
			s := open(t)
			obj := MustPut(t, s, nil, digest)
			if diff := cmp.Diff(atelier.Object{Digest: Digest(nil), Size: 0}, obj); diff != "" {
				t.Fatalf("PutObject(digest %q) (-want +got):\n%s", digest, diff)
			}
			if got := MustRead(t, s, obj.Digest); len(got) != 0 {
				t.Fatalf("OpenObject = %q, want empty", got)
			}
		}
	})

	t.Run("WrongDigest", func(t *testing.T) {
		s := open(t)
		content, claimed := []byte("actual content"), Digest([]byte("other content"))
		_, err := s.PutObject(ctx, bytes.NewReader(content), claimed)
		if code := atelier.ErrorCode(err); code != atelier.EINVALID {
			t.Fatalf("PutObject with a wrong digest: code %q (%v), want %q", code, err, atelier.EINVALID)
		}
		for _, d := range []string{claimed, Digest(content)} {
			if ok, err := s.Exists(ctx, d); err != nil || ok {
				t.Errorf("Exists(%s) = %v, %v after a failed put; want false", d, ok, err)
			}
		}
	})

	t.Run("InvalidDigest", func(t *testing.T) {
		s := open(t)
		for _, d := range []string{"abc", "../../etc/passwd", Digest(nil)[:63] + "G"} {
			if _, err := s.PutObject(ctx, bytes.NewReader(nil), d); atelier.ErrorCode(err) != atelier.EINVALID {
				t.Errorf("PutObject(%q) = %v, want EINVALID", d, err)
			}
			if _, err := s.OpenObject(ctx, d); atelier.ErrorCode(err) != atelier.EINVALID {
				t.Errorf("OpenObject(%q) = %v, want EINVALID", d, err)
			}
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		d := Digest([]byte("never stored"))
		_, err := s.OpenObject(ctx, d)
		checkNotFound(t, "OpenObject", err)
		_, err = s.OpenRange(ctx, d, 1, 2)
		checkNotFound(t, "OpenRange", err)
		_, err = s.StatObject(ctx, d)
		checkNotFound(t, "StatObject", err)
		checkNotFound(t, "DeleteObject", s.DeleteObject(ctx, d))
		if ok, err := s.Exists(ctx, d); err != nil || ok {
			t.Errorf("Exists = %v, %v; want false, nil", ok, err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		s := open(t)
		obj := MustPut(t, s, []byte("garbage"), "")
		if err := s.DeleteObject(ctx, obj.Digest); err != nil {
			t.Fatal(err)
		}
		_, err := s.StatObject(ctx, obj.Digest)
		checkNotFound(t, "StatObject after DeleteObject", err)
	})

	t.Run("Dedupe", func(t *testing.T) {
		s := open(t)
		content := []byte("stored once")
		first := MustPut(t, s, content, "")
		if second := MustPut(t, s, content, ""); second != first {
			t.Fatalf("second put = %v, want %v", second, first)
		}
		// With a digest of stored content the body must not even be read.
		got, err := s.PutObject(ctx, failReader{t}, first.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if got != first {
			t.Fatalf("put of existing digest = %v, want %v", got, first)
		}
	})

	t.Run("ConcurrentSameContent", func(t *testing.T) {
		s := open(t)
		content := bytes.Repeat([]byte("concurrent "), 10000)
		var wg sync.WaitGroup
		for i := range 20 {
			digest := ""
			if i%2 == 1 {
				digest = Digest(content)
			}
			wg.Go(func() {
				obj, err := s.PutObject(ctx, bytes.NewReader(content), digest)
				if err != nil {
					t.Errorf("put %d: %v", i, err)
				} else if obj.Digest != Digest(content) || obj.Size != int64(len(content)) {
					t.Errorf("put %d = %v", i, obj)
				}
			})
		}
		wg.Wait()
		if got := MustRead(t, s, Digest(content)); !bytes.Equal(got, content) {
			t.Fatalf("after concurrent puts read %d bytes, want the %d put", len(got), len(content))
		}
	})

	t.Run("Range", func(t *testing.T) {
		s := open(t)
		content := []byte("0123456789")
		obj := MustPut(t, s, content, "")
		for _, tt := range []struct {
			offset, length int64
			want           string
		}{
			{0, -1, "0123456789"},
			{0, 3, "012"},
			{4, 3, "456"},
			{7, -1, "789"},
			{8, 100, "89"},
			{10, -1, ""},
			{3, 0, ""},
		} {
			r, err := s.OpenRange(ctx, obj.Digest, tt.offset, tt.length)
			if err != nil {
				t.Fatalf("OpenRange(%d, %d): %v", tt.offset, tt.length, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || string(got) != tt.want {
				t.Errorf("OpenRange(%d, %d) = %q, %v; want %q", tt.offset, tt.length, got, err, tt.want)
			}
		}
		if _, err := s.OpenRange(ctx, obj.Digest, -1, 2); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("OpenRange at a negative offset = %v, want EINVALID", err)
		}
	})

	t.Run("Large", func(t *testing.T) {
		if testing.Short() {
			t.Skip("64 MiB put skipped in -short mode")
		}
		const size = 64 << 20
		s := open(t)
		want := DigestOf(t, NewReader(size))
		for _, digest := range []string{"", want} {
			if digest != "" {
				if err := s.DeleteObject(ctx, want); err != nil {
					t.Fatal(err)
				}
			}
			before := heap()
			obj, err := s.PutObject(ctx, NewReader(size), digest)
			if err != nil {
				t.Fatal(err)
			}
			after := heap()
			if obj.Digest != want || obj.Size != size {
				t.Fatalf("PutObject(digest %q) = %v, want %s of %d bytes", digest, obj, want, size)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("PutObject(digest %q) of %d MiB allocated %.1f MiB", digest, size>>20, float64(alloc)/(1<<20))
			if !c.inMemory && alloc >= 32<<20 {
				t.Errorf("PutObject(digest %q) of %d MiB allocated %d MiB; content must be streamed", digest, size>>20, alloc>>20)
			}
		}
		r, err := s.OpenObject(ctx, want)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if got := DigestOf(t, r); got != want {
			t.Fatalf("read back digest %s, want %s", got, want)
		}
	})
}

func heap() (m runtime.MemStats) {
	runtime.ReadMemStats(&m)
	return m
}

func checkNotFound(t *testing.T, op string, err error) {
	t.Helper()
	if code := atelier.ErrorCode(err); code != atelier.ENOTFOUND {
		t.Errorf("%s of a missing object: code %q (%v), want %q", op, code, err, atelier.ENOTFOUND)
	}
}

// failReader fails the test when read: a put of an existing digest must not read its body.
type failReader struct{ t *testing.T }

func (r failReader) Read([]byte) (int, error) {
	r.t.Error("body read although the object already exists")
	return 0, io.ErrUnexpectedEOF
}

// Digest returns the sha256 hex digest of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// DigestOf returns the sha256 hex digest of what r yields.
func DigestOf(tb testing.TB, r io.Reader) string {
	tb.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		tb.Fatalf("hash: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// MustPut stores content, failing the test on error.
func MustPut(tb testing.TB, s *blob.Store, content []byte, digest string) atelier.Object {
	tb.Helper()
	obj, err := s.PutObject(context.Background(), bytes.NewReader(content), digest)
	if err != nil {
		tb.Fatalf("PutObject: %v", err)
	}
	return obj
}

// MustRead returns an object's whole content, failing the test on error.
func MustRead(tb testing.TB, s *blob.Store, digest string) []byte {
	tb.Helper()
	r, err := s.OpenObject(context.Background(), digest)
	if err != nil {
		tb.Fatalf("OpenObject: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("read object: %v", err)
	}
	return b
}

// NewReader returns a reader of size deterministic, incompressible-looking bytes generated on the
// fly from a small pattern, so tests and benchmarks can stream large content without holding it.
// It deliberately has no WriteTo method, so consumers see a plain stream.
func NewReader(size int64) io.Reader {
	pattern := make([]byte, 64<<10+1) // odd length so consecutive blocks are not aligned copies
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range pattern {
		pattern[i] = byte(rng.Uint32())
	}
	return &patternReader{pattern: pattern, left: size}
}

type patternReader struct {
	pattern []byte
	pos     int
	left    int64
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.pattern[r.pos:])
		n += c
		r.pos = (r.pos + c) % len(r.pattern)
	}
	r.left -= int64(n)
	return n, nil
}
