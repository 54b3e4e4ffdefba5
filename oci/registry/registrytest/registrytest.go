// Package registrytest is the conformance suite every registry.BlobStore and registry.Metadata
// implementation must pass.
package registrytest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/registry"
)

// Clock is a settable clock for stores that stamp what they write.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at a fixed time.
func NewClock() *Clock { return &Clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Digest is the sha256 digest of b.
func Digest(b []byte) registry.Digest { return registry.DigestOf("sha256", b) }

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := atelier.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

// MustPut puts content and returns what the store says of it.
func MustPut(tb testing.TB, s registry.BlobStore, content []byte, want registry.Digest) registry.BlobInfo {
	tb.Helper()
	info, err := s.Put(context.Background(), bytes.NewReader(content), want)
	if err != nil {
		tb.Fatalf("Put: %v", err)
	}
	return info
}

// MustRead reads length bytes from offset.
func MustRead(tb testing.TB, s registry.BlobStore, d registry.Digest, offset, length int64) []byte {
	tb.Helper()
	rc, err := s.Open(context.Background(), d, offset, length)
	if err != nil {
		tb.Fatalf("Open(%s): %v", d, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatalf("reading %s: %v", d, err)
	}
	return b
}

func walk(t *testing.T, s registry.BlobStore) map[registry.Digest]int64 {
	t.Helper()
	got := map[registry.Digest]int64{}
	if err := s.Walk(context.Background(), func(b registry.BlobInfo) error {
		got[b.Digest] = b.Size
		return nil
	}); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got
}

// failingReader yields some bytes, then fails as a connection cut short does.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := min(len(p), f.n)
	clear(p[:n])
	f.n -= n
	return n, nil
}

// TestBlobStore runs the suite against stores made by open, one per subtest; clock is the
// clock the store stamps content with.
func TestBlobStore(t *testing.T, open func(t *testing.T, clock *Clock) registry.BlobStore) {
	ctx := context.Background()
	content := []byte("hello, registry")

	t.Run("PutComputesTheDigest", func(t *testing.T) {
		clock := NewClock()
		s := open(t, clock)
		info := MustPut(t, s, content, "")
		want := registry.BlobInfo{Digest: Digest(content), Size: int64(len(content)), ModTime: clock.Now()}
		if diff := cmp.Diff(want, info, cmpTime); diff != "" {
			t.Fatalf("Put (-want +got):\n%s", diff)
		}
		st, err := s.Stat(ctx, info.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, st, cmpTime); diff != "" {
			t.Fatalf("Stat (-want +got):\n%s", diff)
		}
		if got := MustRead(t, s, info.Digest, 0, -1); !bytes.Equal(got, content) {
			t.Fatalf("Open = %q, want %q", got, content)
		}
	})

	t.Run("PutVerifiesSHA512", func(t *testing.T) {
		s := open(t, NewClock())
		d := registry.DigestOf("sha512", content)
		if info := MustPut(t, s, content, d); info.Digest != d {
			t.Fatalf("Put digest = %s, want %s", info.Digest, d)
		}
		if got := MustRead(t, s, d, 0, -1); !bytes.Equal(got, content) {
			t.Fatalf("Open = %q", got)
		}
	})

	t.Run("EmptyContent", func(t *testing.T) {
		s := open(t, NewClock())
		info := MustPut(t, s, nil, Digest(nil))
		if info.Size != 0 || len(MustRead(t, s, info.Digest, 0, -1)) != 0 {
			t.Fatalf("empty content: %+v", info)
		}
	})

	t.Run("MismatchStoresNothing", func(t *testing.T) {
		s := open(t, NewClock())
		_, err := s.Put(ctx, bytes.NewReader(content), Digest([]byte("something else")))
		wantCode(t, "Put with a wrong digest", err, atelier.EINVALID)
		if got := walk(t, s); len(got) != 0 {
			t.Fatalf("after a refused put the store holds %v", got)
		}
		_, err = s.Stat(ctx, Digest(content))
		wantCode(t, "Stat of the refused content", err, atelier.ENOTFOUND)
	})

	t.Run("FailedReadStoresNothing", func(t *testing.T) {
		s := open(t, NewClock())
		if _, err := s.Put(ctx, &failingReader{n: 100}, ""); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Put of a failing reader: %v, want io.ErrUnexpectedEOF in the chain", err)
		}
		if got := walk(t, s); len(got) != 0 {
			t.Fatalf("after a failed put the store holds %v", got)
		}
	})

	t.Run("OpenRange", func(t *testing.T) {
		s := open(t, NewClock())
		d := MustPut(t, s, content, "").Digest
		for _, c := range []struct {
			offset, length int64
			want           string
		}{{0, 5, "hello"}, {7, -1, "registry"}, {7, 3, "reg"}, {int64(len(content)), -1, ""}} {
			if got := string(MustRead(t, s, d, c.offset, c.length)); got != c.want {
				t.Errorf("Open(%d, %d) = %q, want %q", c.offset, c.length, got, c.want)
			}
		}
	})

	t.Run("Absent", func(t *testing.T) {
		s := open(t, NewClock())
		d := Digest([]byte("never stored"))
		_, err := s.Open(ctx, d, 0, -1)
		wantCode(t, "Open", err, atelier.ENOTFOUND)
		_, err = s.Stat(ctx, d)
		wantCode(t, "Stat", err, atelier.ENOTFOUND)
		if err := s.Delete(ctx, d); err != nil {
			t.Fatalf("Delete of absent content: %v", err)
		}
	})

	t.Run("PutAgainRefreshesModTime", func(t *testing.T) {
		clock := NewClock()
		s := open(t, clock)
		MustPut(t, s, content, "")
		clock.Add(time.Hour)
		MustPut(t, s, content, "")
		st, err := s.Stat(ctx, Digest(content))
		if err != nil {
			t.Fatal(err)
		}
		if !st.ModTime.Equal(clock.Now()) {
			t.Fatalf("ModTime = %v after putting again at %v", st.ModTime, clock.Now())
		}
	})

	t.Run("DeleteAndWalk", func(t *testing.T) {
		s := open(t, NewClock())
		a, b := []byte("a"), []byte("bb")
		MustPut(t, s, a, "")
		MustPut(t, s, b, registry.DigestOf("sha512", b))
		want := map[registry.Digest]int64{Digest(a): 1, registry.DigestOf("sha512", b): 2}
		if diff := cmp.Diff(want, walk(t, s)); diff != "" {
			t.Fatalf("Walk (-want +got):\n%s", diff)
		}
		if err := s.Delete(ctx, Digest(a)); err != nil {
			t.Fatal(err)
		}
		delete(want, Digest(a))
		if diff := cmp.Diff(want, walk(t, s)); diff != "" {
			t.Fatalf("Walk after Delete (-want +got):\n%s", diff)
		}
		_, err := s.Stat(ctx, Digest(a))
		wantCode(t, "Stat after Delete", err, atelier.ENOTFOUND)
	})

	t.Run("ConcurrentPutsOfTheSameContent", func(t *testing.T) {
		s := open(t, NewClock())
		big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if _, err := s.Put(ctx, bytes.NewReader(big), Digest(big)); err != nil {
					t.Errorf("Put: %v", err)
				}
				rc, err := s.Open(ctx, Digest(big), 0, -1)
				if err != nil {
					t.Errorf("Open: %v", err)
					return
				}
				defer rc.Close()
				if got, _ := io.ReadAll(rc); !bytes.Equal(got, big) {
					t.Errorf("read %d bytes that are not the content", len(got))
				}
			})
		}
		wg.Wait()
	})
}

var cmpTime = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

// TestMetadata runs the suite against stores made by open, one per subtest.
func TestMetadata(t *testing.T, open func(t *testing.T) registry.Metadata) {
	ctx := context.Background()
	t0 := NewClock().Now()
	config, layer := []byte(`{"architecture":"amd64"}`), []byte("layer")
	imageBody := []byte(`{"schemaVersion":2}`) // the store keeps the body; it does not parse it
	image := func() *registry.Manifest {
		return &registry.Manifest{
			Digest: Digest(imageBody), MediaType: registry.MediaTypeImageManifest, Body: imageBody,
			Blobs:        []registry.Ref{{Digest: Digest(config), Size: int64(len(config))}, {Digest: Digest(layer), Size: int64(len(layer))}},
			ArtifactType: "application/vnd.oci.image.config.v1+json",
			Annotations:  map[string]string{"k": "v"},
		}
	}
	link := func(t *testing.T, m registry.Metadata, repo string, blobs ...[]byte) {
		t.Helper()
		for _, b := range blobs {
			if err := m.LinkBlob(ctx, repo, Digest(b), int64(len(b)), t0); err != nil {
				t.Fatalf("LinkBlob: %v", err)
			}
		}
	}
	mustPut := func(t *testing.T, m registry.Metadata, repo string, man *registry.Manifest, tags ...string) {
		t.Helper()
		if err := m.PutManifest(ctx, repo, man, tags); err != nil {
			t.Fatalf("PutManifest: %v", err)
		}
	}

	t.Run("PutManifestAndRead", func(t *testing.T) {
		m := open(t)
		link(t, m, "ws/app", config, layer)
		mustPut(t, m, "ws/app", image(), "v1", "latest")
		got, err := m.Manifest(ctx, "ws/app", Digest(imageBody))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(image(), got); diff != "" {
			t.Fatalf("Manifest (-want +got):\n%s", diff)
		}
		for _, tag := range []string{"v1", "latest"} {
			if d, err := m.Tag(ctx, "ws/app", tag); err != nil || d != Digest(imageBody) {
				t.Fatalf("Tag(%s) = %s, %v", tag, d, err)
			}
		}
		_, err = m.Manifest(ctx, "ws/other", Digest(imageBody))
		wantCode(t, "Manifest in another repository", err, atelier.ENOTFOUND)
		_, err = m.Tag(ctx, "ws/app", "v2")
		wantCode(t, "an absent tag", err, atelier.ENOTFOUND)
	})

	t.Run("PutManifestChecksReferences", func(t *testing.T) {
		m := open(t)
		link(t, m, "ws/app", config) // not the layer
		err := m.PutManifest(ctx, "ws/app", image(), []string{"v1"})
		wantCode(t, "a manifest naming an unlinked blob", err, atelier.ENOTFOUND)
		if !strings.Contains(atelier.ErrorMessage(err), string(Digest(layer))) {
			t.Errorf("the refusal %q does not name the missing blob", atelier.ErrorMessage(err))
		}
		link(t, m, "ws/other", layer) // another repository's link does not count
		err = m.PutManifest(ctx, "ws/app", image(), []string{"v1"})
		wantCode(t, "a manifest naming another repository's blob", err, atelier.ENOTFOUND)

		link(t, m, "ws/app", layer)
		bad := image()
		bad.Blobs[1].Size++
		err = m.PutManifest(ctx, "ws/app", bad, []string{"v1"})
		wantCode(t, "a manifest with a wrong size", err, atelier.EINVALID)
		_, err = m.Tag(ctx, "ws/app", "v1")
		wantCode(t, "the tag of a refused manifest", err, atelier.ENOTFOUND)
		_, err = m.Manifest(ctx, "ws/app", bad.Digest)
		wantCode(t, "a refused manifest", err, atelier.ENOTFOUND)

		indexBody := []byte(`{"index":1}`)
		index := &registry.Manifest{Digest: Digest(indexBody), MediaType: registry.MediaTypeImageIndex, Body: indexBody,
			Manifests: []registry.Ref{{Digest: Digest(imageBody), Size: int64(len(imageBody))}}}
		err = m.PutManifest(ctx, "ws/app", index, nil)
		wantCode(t, "an index naming an absent manifest", err, atelier.ENOTFOUND)
		mustPut(t, m, "ws/app", image())
		mustPut(t, m, "ws/app", index, "multi")
	})

	t.Run("SubjectMayBeAbsent", func(t *testing.T) {
		m := open(t)
		link(t, m, "ws/app", config, layer)
		man := image()
		man.Subject = Digest([]byte("not pushed yet"))
		mustPut(t, m, "ws/app", man)
		refs, err := m.Referrers(ctx, "ws/app", man.Subject)
		if err != nil {
			t.Fatal(err)
		}
		want := []registry.Descriptor{{MediaType: man.MediaType, Digest: man.Digest, Size: int64(len(man.Body)),
			ArtifactType: man.ArtifactType, Annotations: man.Annotations}}
		if diff := cmp.Diff(want, refs); diff != "" {
			t.Fatalf("Referrers (-want +got):\n%s", diff)
		}
		if refs, err := m.Referrers(ctx, "ws/other", man.Subject); err != nil || len(refs) != 0 {
			t.Fatalf("Referrers in another repository = %v, %v", refs, err)
		}
	})

	t.Run("DeleteManifestAndTags", func(t *testing.T) {
		m := open(t)
		link(t, m, "ws/app", config, layer)
		mustPut(t, m, "ws/app", image(), "v1", "latest")
		indexBody := []byte(`{"index":1}`)
		index := &registry.Manifest{Digest: Digest(indexBody), MediaType: registry.MediaTypeImageIndex, Body: indexBody,
			Manifests: []registry.Ref{{Digest: Digest(imageBody), Size: int64(len(imageBody))}}}
		mustPut(t, m, "ws/app", index)

		err := m.DeleteManifest(ctx, "ws/app", Digest(imageBody))
		wantCode(t, "deleting a manifest an index lists", err, atelier.ECONFLICT)
		if err := m.DeleteTag(ctx, "ws/app", "v1"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "deleting the tag again", m.DeleteTag(ctx, "ws/app", "v1"), atelier.ENOTFOUND)
		if _, err := m.Manifest(ctx, "ws/app", Digest(imageBody)); err != nil {
			t.Fatalf("deleting a tag deleted its manifest: %v", err)
		}
		if err := m.DeleteManifest(ctx, "ws/app", index.Digest); err != nil {
			t.Fatal(err)
		}
		if err := m.DeleteManifest(ctx, "ws/app", Digest(imageBody)); err != nil {
			t.Fatal(err)
		}
		_, err = m.Tag(ctx, "ws/app", "latest")
		wantCode(t, "a tag of a deleted manifest", err, atelier.ENOTFOUND)
		wantCode(t, "deleting it again", m.DeleteManifest(ctx, "ws/app", Digest(imageBody)), atelier.ENOTFOUND)
	})

	t.Run("SameManifestInTwoRepositories", func(t *testing.T) {
		m := open(t)
		link(t, m, "ws/a", config, layer)
		link(t, m, "ws/b", config, layer)
		mustPut(t, m, "ws/a", image())
		mustPut(t, m, "ws/b", image())
		if err := m.DeleteManifest(ctx, "ws/a", Digest(imageBody)); err != nil {
			t.Fatal(err)
		}
		got, err := m.Manifest(ctx, "ws/b", Digest(imageBody))
		if err != nil || !bytes.Equal(got.Body, imageBody) {
			t.Fatalf("the other repository's copy: %v, %v", got, err)
		}
	})

	t.Run("TagsAndRepositoriesInPages", func(t *testing.T) {
		m := open(t)
		_, err := m.Tags(ctx, "ws/app", "", -1)
		wantCode(t, "Tags of an absent repository", err, atelier.ENOTFOUND)
		link(t, m, "ws/app", config, layer)
		if tags, err := m.Tags(ctx, "ws/app", "", -1); err != nil || len(tags) != 0 {
			t.Fatalf("Tags of a repository without tags = %v, %v", tags, err)
		}
		mustPut(t, m, "ws/app", image(), "b", "a", "C", "c")
		for _, c := range []struct {
			after string
			limit int
			want  []string
		}{{"", -1, []string{"C", "a", "b", "c"}}, {"", 2, []string{"C", "a"}}, {"a", 2, []string{"b", "c"}}, {"aa", -1, []string{"b", "c"}}, {"c", -1, nil}} {
			got, err := m.Tags(ctx, "ws/app", c.after, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got, cmpEmpty); diff != "" {
				t.Errorf("Tags(after %q, limit %d) (-want +got):\n%s", c.after, c.limit, diff)
			}
		}
		link(t, m, "ws/b", layer)
		link(t, m, "ws/a/deep", layer)
		if got, err := m.Repositories(ctx, "", -1); err != nil || !slices.Equal(got, []string{"ws/a/deep", "ws/app", "ws/b"}) {
			t.Fatalf("Repositories = %v, %v", got, err)
		}
		if got, err := m.Repositories(ctx, "ws/a/deep", 1); err != nil || !slices.Equal(got, []string{"ws/app"}) {
			t.Fatalf("Repositories(after ws/a/deep, 1) = %v, %v", got, err)
		}
		if err := m.UnlinkBlob(ctx, "ws/b", Digest(layer)); err != nil {
			t.Fatal(err)
		}
		if got, _ := m.Repositories(ctx, "", -1); slices.Contains(got, "ws/b") {
			t.Fatalf("an emptied repository is still listed: %v", got)
		}
	})

	t.Run("Links", func(t *testing.T) {
		m := open(t)
		_, err := m.BlobLink(ctx, "ws/app", Digest(layer))
		wantCode(t, "BlobLink of an unlinked blob", err, atelier.ENOTFOUND)
		link(t, m, "ws/app", config, layer)
		link(t, m, "ws/b", layer)
		if size, err := m.BlobLink(ctx, "ws/app", Digest(layer)); err != nil || size != int64(len(layer)) {
			t.Fatalf("BlobLink = %d, %v", size, err)
		}
		if got, err := m.BlobRepositories(ctx, Digest(layer)); err != nil || !slices.Equal(got, []string{"ws/app", "ws/b"}) {
			t.Fatalf("BlobRepositories = %v, %v", got, err)
		}
		mustPut(t, m, "ws/app", image())
		err = m.UnlinkBlob(ctx, "ws/app", Digest(layer))
		wantCode(t, "unlinking a blob a manifest uses", err, atelier.ECONFLICT)
		if err := m.UnlinkBlob(ctx, "ws/b", Digest(layer)); err != nil {
			t.Fatalf("unlinking a blob no manifest of the repository uses: %v", err)
		}
		wantCode(t, "unlinking again", m.UnlinkBlob(ctx, "ws/b", Digest(layer)), atelier.ENOTFOUND)
	})

	t.Run("Uploads", func(t *testing.T) {
		m := open(t)
		u := &registry.Upload{ID: "u1", Repo: "ws/app", Started: t0, Updated: t0}
		if err := m.CreateUpload(ctx, u); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "creating it again", m.CreateUpload(ctx, u), atelier.ECONFLICT)
		c1 := registry.Ref{Digest: Digest([]byte("ab")), Size: 2}
		got, err := m.AppendUpload(ctx, "u1", 0, c1, t0.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		want := &registry.Upload{ID: "u1", Repo: "ws/app", Chunks: []registry.Ref{c1}, Size: 2, Started: t0, Updated: t0.Add(time.Second)}
		if diff := cmp.Diff(want, got, cmpTime); diff != "" {
			t.Fatalf("AppendUpload (-want +got):\n%s", diff)
		}
		_, err = m.AppendUpload(ctx, "u1", 0, c1, t0)
		wantCode(t, "a chunk at a wrong offset", err, atelier.ECONFLICT)
		if got, err = m.Upload(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, cmpTime); diff != "" {
			t.Fatalf("Upload after a refused chunk (-want +got):\n%s", diff)
		}
		_, err = m.AppendUpload(ctx, "nope", 0, c1, t0)
		wantCode(t, "a chunk to an absent session", err, atelier.ENOTFOUND)
		if err := m.DeleteUpload(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
		_, err = m.Upload(ctx, "u1")
		wantCode(t, "a deleted session", err, atelier.ENOTFOUND)
		wantCode(t, "deleting it again", m.DeleteUpload(ctx, "u1"), atelier.ENOTFOUND)
	})

	t.Run("ConcurrentChunksAtTheSameOffset", func(t *testing.T) {
		m := open(t)
		if err := m.CreateUpload(ctx, &registry.Upload{ID: "u", Repo: "ws/app", Started: t0, Updated: t0}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for i := range 8 {
			wg.Go(func() {
				_, err := m.AppendUpload(ctx, "u", 0, registry.Ref{Digest: Digest([]byte{byte(i)}), Size: 1}, t0)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					ok++
				} else if atelier.ErrorCode(err) != atelier.ECONFLICT {
					t.Errorf("AppendUpload: %v", err)
				}
			})
		}
		wg.Wait()
		if u, err := m.Upload(ctx, "u"); err != nil || ok != 1 || u.Size != 1 || len(u.Chunks) != 1 {
			t.Fatalf("%d appends at offset 0 succeeded, the session is %+v, %v; want exactly one", ok, u, err)
		}
	})

	t.Run("ExpireUploads", func(t *testing.T) {
		m := open(t)
		for i, at := range []time.Time{t0, t0.Add(time.Hour)} {
			id := string(rune('a' + i))
			if err := m.CreateUpload(ctx, &registry.Upload{ID: id, Repo: "ws/app", Started: at, Updated: at}); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := m.ExpireUploads(ctx, t0.Add(time.Minute)); err != nil || n != 1 {
			t.Fatalf("ExpireUploads = %d, %v; want 1", n, err)
		}
		_, err := m.Upload(ctx, "a")
		wantCode(t, "the expired session", err, atelier.ENOTFOUND)
		if _, err := m.Upload(ctx, "b"); err != nil {
			t.Fatalf("the recent session: %v", err)
		}
	})

	t.Run("ReleaseBlob", func(t *testing.T) {
		m := open(t)
		cutoff := t0.Add(time.Minute)
		release := func(b []byte, before time.Time) bool {
			t.Helper()
			ok, err := m.ReleaseBlob(ctx, Digest(b), before)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !release([]byte("never linked"), cutoff) {
			t.Error("content nothing refers to was not released")
		}
		link(t, m, "ws/app", config, layer)
		mustPut(t, m, "ws/app", image())
		if release(layer, cutoff) {
			t.Error("a blob a manifest references was released")
		}
		old, fresh, held := []byte("old"), []byte("fresh"), []byte("held")
		link(t, m, "ws/app", old)
		link(t, m, "ws/b", old)
		if err := m.LinkBlob(ctx, "ws/app", Digest(fresh), 5, cutoff); err != nil {
			t.Fatal(err)
		}
		if release(fresh, cutoff) {
			t.Error("a blob linked at the cutoff was released")
		}
		if release(fresh, time.Time{}) {
			t.Error("a linked blob was released with a zero linkedBefore, which spares every link")
		}
		if err := m.CreateUpload(ctx, &registry.Upload{ID: "u", Repo: "ws/app", Started: t0, Updated: t0}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.AppendUpload(ctx, "u", 0, registry.Ref{Digest: Digest(held), Size: 4}, t0); err != nil {
			t.Fatal(err)
		}
		if release(held, cutoff) {
			t.Error("a chunk of a live upload session was released")
		}
		if !release(old, cutoff) {
			t.Fatal("an old unreferenced blob was not released")
		}
		for _, repo := range []string{"ws/app", "ws/b"} {
			_, err := m.BlobLink(ctx, repo, Digest(old))
			wantCode(t, "a link to a released blob in "+repo, err, atelier.ENOTFOUND)
		}
		if err := m.DeleteUpload(ctx, "u"); err != nil {
			t.Fatal(err)
		}
		if !release(held, cutoff) {
			t.Error("the chunk of an ended session was not released")
		}
	})
}

// cmpEmpty equates nil and empty slices.
var cmpEmpty = cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })
