// Package blobtest is the conformance suite every blob.Store backend must pass, and helpers for
// tests and benchmarks that need large generated content.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gcblob "gocloud.dev/blob"

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
		s := open(t)
		// A put streams: what it allocates does not grow with the content. Cloud SDKs allocate
		// a fixed amount per upload (the S3 one reads its first 16 MiB whole, then keeps a pool
		// of parts), so the bound is on the growth from a 24 MiB put to a 64 MiB one.
		const small, size = 24 << 20, 64 << 20
		want := DigestOf(t, NewReader(size))
		for _, digest := range []string{"", want} {
			smallDigest := ""
			if digest != "" {
				smallDigest = DigestOf(t, NewReader(small))
				for _, d := range []string{want, smallDigest} {
					if err := s.DeleteObject(ctx, d); err != nil {
						t.Fatal(err)
					}
				}
			}
			before := heap()
			if _, err := s.PutObject(ctx, NewReader(small), smallDigest); err != nil {
				t.Fatal(err)
			}
			between := heap()
			obj, err := s.PutObject(ctx, NewReader(size), digest)
			if err != nil {
				t.Fatal(err)
			}
			after := heap()
			if obj.Digest != want || obj.Size != size {
				t.Fatalf("PutObject(digest %q) = %v, want %s of %d bytes", digest, obj, want, size)
			}
			allocSmall, alloc := between.TotalAlloc-before.TotalAlloc, after.TotalAlloc-between.TotalAlloc
			t.Logf("PutObject(digest %q) allocated %.1f MiB for %d MiB, %.1f MiB for %d MiB", digest,
				float64(allocSmall)/(1<<20), small>>20, float64(alloc)/(1<<20), size>>20)
			if !c.inMemory && int64(alloc)-int64(allocSmall) >= 8<<20 {
				t.Errorf("PutObject(digest %q) allocated %d MiB for %d MiB, %d MiB for %d MiB: content must be streamed",
					digest, allocSmall>>20, small>>20, alloc>>20, size>>20)
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

// TestNothingLeft checks, on an empty bucket the store takes over, that failed puts leave
// nothing behind on the backend: no object under a digest, no staging object; and that
// CleanStaging removes what a crash would leave.
func TestNothingLeft(t *testing.T, b *gcblob.Bucket) {
	s := blob.New(b)
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	kept := MustPut(t, s, []byte("kept"), "")
	big := int64(17<<20 + 1) // above S3's 16 MiB multipart threshold: a multipart upload is aborted too
	bigDigest := DigestOf(t, NewReader(big))
	for _, tc := range []struct {
		name   string
		r      func() io.Reader
		digest string
		ctx    func() context.Context
	}{
		{"wrong digest", func() io.Reader { return bytes.NewReader([]byte("c")) }, Digest([]byte("not c")), nil},
		{"wrong digest, large", func() io.Reader { return NewReader(big) }, Digest([]byte("other")), nil},
		{"broken stream", func() io.Reader { return &brokenReader{NewReader(big)} }, "", nil},
		{"broken stream with a digest", func() io.Reader { return &brokenReader{NewReader(big)} }, bigDigest, nil},
		{"canceled", func() io.Reader { return NewReader(big) }, "", func() context.Context {
			c, cancel := context.WithCancel(ctx)
			cancel()
			return c
		}},
	} {
		pctx := ctx
		if tc.ctx != nil {
			pctx = tc.ctx()
		}
		if _, err := s.PutObject(pctx, tc.r(), tc.digest); err == nil {
			t.Errorf("%s: the put succeeded", tc.name)
		}
	}
	want := []string{"sha256/" + kept.Digest[:2] + "/" + kept.Digest}
	if got := keys(t, b); !slices.Equal(got, want) {
		t.Fatalf("after failed puts the bucket holds %q, want %q", got, want)
	}

	// A staging object left by a crash: kept while it may belong to a put in progress.
	if err := b.WriteAll(ctx, "staging/crashed", []byte("partial"), nil); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CleanStaging(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("CleanStaging(an hour ago) = %d, %v; want 0 deleted", n, err)
	}
	if n, err := s.CleanStaging(ctx, time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Errorf("CleanStaging(now) = %d, %v; want 1 deleted", n, err)
	}
	if got := keys(t, b); !slices.Equal(got, want) {
		t.Fatalf("after CleanStaging the bucket holds %q, want %q", got, want)
	}
}

// keys lists every key of b.
func keys(t *testing.T, b *gcblob.Bucket) []string {
	t.Helper()
	var out []string
	it := b.List(nil)
	for {
		obj, err := it.Next(t.Context())
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("listing the bucket: %v", err)
		}
		out = append(out, obj.Key)
	}
}

// brokenReader fails where its source ends, as a client that disconnects before the end.
type brokenReader struct{ r io.Reader }

var errBroken = errors.New("the client went away")

func (b *brokenReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, errBroken
	}
	return n, err
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
