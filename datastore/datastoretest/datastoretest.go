// Package datastoretest is the conformance suite every datastore backend must pass, and helpers
// that start real S3 (versitygw) and Azure Blob (Azurite) servers for tests.
package datastoretest

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// Sum returns the hex sha256 of b.
func Sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// MustWrite writes content to path or fails the test.
func MustWrite(tb testing.TB, b atelier.DatastoreBucket, path string, content []byte) *atelier.DatastoreFile {
	tb.Helper()
	f, err := b.Write(tb.Context(), path, bytes.NewReader(content), "", "")
	if err != nil {
		tb.Fatalf("Write(%s): %v", path, err)
	}
	return f
}

// MustRead reads path whole or fails the test.
func MustRead(tb testing.TB, b atelier.DatastoreBucket, path string) []byte {
	tb.Helper()
	_, rc, err := b.Open(tb.Context(), path)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatalf("reading %s: %v", path, err)
	}
	return data
}

// Content returns n bytes of generated content.
func Content(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// failingReader yields n bytes then fails, as a client that disconnects mid-upload.
type failingReader struct {
	r io.Reader
}

var errBroken = errors.New("the client went away")

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errBroken
	}
	return n, err
}

func wantCode(tb testing.TB, what string, err error, code string) {
	tb.Helper()
	if atelier.ErrorCode(err) != code {
		tb.Errorf("%s: %v (code %s), want code %s", what, err, atelier.ErrorCode(err), code)
	}
}

// TestBucket runs the suite against buckets made by open, one per subtest; name is the
// datastore name the buckets report in errors. Every bucket must start empty.
func TestBucket(t *testing.T, name string, open func(t *testing.T) atelier.DatastoreBucket) {
	t.Run("WriteRead", func(t *testing.T) {
		b := open(t)
		content := []byte("hello, datastore")
		f := MustWrite(t, b, "data/hello.txt", content)
		if f.Path != "data/hello.txt" || f.Size != int64(len(content)) || (f.SHA256 != "" && f.SHA256 != Sum(content)) || f.ModifiedAt.IsZero() {
			t.Errorf("Write = %+v", f)
		}
		if f.SHA256 == "" {
			// Left to Digest (a files datastore), which must then know it.
			if d, err := b.Digest(t.Context(), "data/hello.txt"); err != nil || d.SHA256 != Sum(content) {
				t.Errorf("Digest after a Write that returned no sha256 = %+v, %v; want %s", d, err, Sum(content))
			}
		}
		if sum := md5.Sum(content); f.MD5 != "" && f.MD5 != hex.EncodeToString(sum[:]) {
			t.Errorf("Write MD5 = %s, want %x", f.MD5, sum)
		}
		if got := MustRead(t, b, "data/hello.txt"); !bytes.Equal(got, content) {
			t.Errorf("read %q, want %q", got, content)
		}
		st, err := b.Stat(t.Context(), "data/hello.txt")
		if err != nil || st.Size != int64(len(content)) || (f.MD5 != "" && st.MD5 != f.MD5) {
			t.Errorf("Stat = %+v, %v; want size %d, md5 %q", st, err, len(content), f.MD5)
		}
		// Overwrite, empty content, names with spaces and non-ASCII letters.
		MustWrite(t, b, "data/hello.txt", []byte("v2"))
		if got := MustRead(t, b, "data/hello.txt"); string(got) != "v2" {
			t.Errorf("after overwrite, read %q", got)
		}
		MustWrite(t, b, "empty", nil)
		if got := MustRead(t, b, "empty"); len(got) != 0 {
			t.Errorf("empty file read %q", got)
		}
		MustWrite(t, b, "dir with space/ünïcode.txt", []byte("u"))
		if got := MustRead(t, b, "dir with space/ünïcode.txt"); string(got) != "u" {
			t.Errorf("unicode file read %q", got)
		}
	})

	// A local file (as a client passes one over the server's Unix socket) is stored whole and
	// its digest is known after, as for a stream; a wrong digest stores nothing.
	t.Run("LocalFile", func(t *testing.T) {
		b := open(t)
		content := Content(7, 9<<20+5)
		path := filepath.Join(t.TempDir(), "local.bin")
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.Seek(123, io.SeekStart) // wherever the client left it: the whole file is stored
		got, err := b.Write(t.Context(), "local.bin", f, "", "")
		if err != nil || got.Size != int64(len(content)) {
			t.Fatalf("Write of a local file = %+v, %v", got, err)
		}
		if data := MustRead(t, b, "local.bin"); !bytes.Equal(data, content) {
			t.Errorf("read back %d bytes that differ from the %d written", len(data), len(content))
		}
		if d, err := b.Digest(t.Context(), "local.bin"); err != nil || d.SHA256 != Sum(content) {
			t.Errorf("Digest after a local file's write = %+v, %v; want %s", d, err, Sum(content))
		}
		_, err = b.Write(t.Context(), "other.bin", f, Sum([]byte("other")), "")
		wantCode(t, "Write of a local file with a wrong sha256", err, atelier.EINVALID)
		_, err = b.Stat(t.Context(), "other.bin")
		wantCode(t, "Stat after a refused write", err, atelier.ENOTFOUND)
	})

	t.Run("Large", func(t *testing.T) {
		b := open(t)
		// Above S3's 5 MiB part size, so multipart uploads are exercised too.
		content := Content(1, 7<<20+13)
		f, err := b.Write(t.Context(), "big.bin", bytes.NewReader(content), Sum(content), "application/octet-stream")
		if err != nil {
			t.Fatal(err)
		}
		if f.Size != int64(len(content)) {
			t.Errorf("size %d, want %d", f.Size, len(content))
		}
		if got := MustRead(t, b, "big.bin"); !bytes.Equal(got, content) {
			t.Errorf("large content differs (%d bytes read)", len(got))
		}
	})

	// Digest is what lets a re-upload skip unchanged files where listings carry no MD5: it may
	// not know a digest, but the one it reports is always the current content's.
	t.Run("Digest", func(t *testing.T) {
		b := open(t)
		digest := func(path string) string {
			t.Helper()
			f, err := b.Digest(t.Context(), path)
			if err != nil {
				t.Fatalf("Digest(%s): %v", path, err)
			}
			if f.Path != path || f.Dir {
				t.Errorf("Digest(%s) = %+v", path, f)
			}
			return f.SHA256
		}
		// Written with its digest, in parts on S3 and in blocks on Azure: no MD5 in listings.
		v1 := Content(3, 7<<20+1)
		if _, err := b.Write(t.Context(), "model.bin", bytes.NewReader(v1), Sum(v1), ""); err != nil {
			t.Fatal(err)
		}
		if got := digest("model.bin"); got != Sum(v1) {
			t.Errorf("Digest after a write with a digest = %q, want %s", got, Sum(v1))
		}
		// Rewritten without one: unknown or the new content's, never the old one's.
		v2 := Content(4, len(v1))
		MustWrite(t, b, "model.bin", v2)
		if got := digest("model.bin"); got != "" && got != Sum(v2) {
			t.Errorf("Digest after a rewrite = %q, want the new content's %s (or none)", got, Sum(v2))
		}
		// A refused write leaves the file, and its digest, as they were.
		if _, err := b.Write(t.Context(), "model.bin", bytes.NewReader(v1), Sum(v2), ""); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Fatalf("Write with a wrong digest: %v", err)
		}
		if got := digest("model.bin"); got != "" && got != Sum(v2) {
			t.Errorf("Digest after a refused write = %q, want %s (or none)", got, Sum(v2))
		}
		small := []byte("a,b\n1,2\n")
		MustWrite(t, b, "data/small.csv", small)
		if got := digest("data/small.csv"); got != "" && got != Sum(small) {
			t.Errorf("Digest of a small file = %q, want %s (or none)", got, Sum(small))
		}
		_, err := b.Digest(t.Context(), "data/missing.csv")
		wantCode(t, "Digest of a missing file", err, atelier.ENOTFOUND)
		_, err = b.Digest(t.Context(), "../up")
		wantCode(t, "Digest(../up)", err, atelier.EINVALID)
	})

	t.Run("NothingPartial", func(t *testing.T) {
		b := open(t)
		MustWrite(t, b, "kept.txt", []byte("original"))
		// A wrong sha256: refused, the old content stays.
		_, err := b.Write(t.Context(), "kept.txt", strings.NewReader("replacement"), Sum([]byte("other")), "")
		wantCode(t, "Write with a wrong sha256", err, atelier.EINVALID)
		if got := MustRead(t, b, "kept.txt"); string(got) != "original" {
			t.Errorf("after a refused write, read %q", got)
		}
		// A new file whose upload breaks: nothing appears, not even in a listing.
		_, err = b.Write(t.Context(), "broken.bin", &failingReader{r: bytes.NewReader(Content(2, 3<<20))}, "", "")
		if err == nil {
			t.Fatalf("Write from a failing reader succeeded")
		}
		_, err = b.Stat(t.Context(), "broken.bin")
		wantCode(t, "Stat after a broken upload", err, atelier.ENOTFOUND)
		_, err = b.Write(t.Context(), "bad-sum.bin", strings.NewReader("x"), Sum([]byte("y")), "")
		wantCode(t, "Write new file with a wrong sha256", err, atelier.EINVALID)
		page, err := b.List(t.Context(), atelier.DatastoreFileQuery{Recursive: true})
		if err != nil {
			t.Fatal(err)
		}
		if paths := filePaths(page); !slices.Equal(paths, []string{"kept.txt"}) {
			t.Errorf("after failed writes the bucket lists %q, want only kept.txt", paths)
		}
	})

	t.Run("List", func(t *testing.T) {
		b := open(t)
		for _, p := range []string{"a.txt", "data/1.csv", "data/2.csv", "data/sub/3.csv", "database.txt", "z/z.txt"} {
			MustWrite(t, b, p, []byte(p))
		}
		for _, tc := range []struct {
			q    atelier.DatastoreFileQuery
			want []string
		}{
			{atelier.DatastoreFileQuery{Recursive: true}, []string{"a.txt", "data/1.csv", "data/2.csv", "data/sub/3.csv", "database.txt", "z/z.txt"}},
			{atelier.DatastoreFileQuery{}, []string{"a.txt", "data/", "database.txt", "z/"}},
			{atelier.DatastoreFileQuery{Prefix: "data/"}, []string{"data/1.csv", "data/2.csv", "data/sub/"}},
			{atelier.DatastoreFileQuery{Prefix: "data/", Recursive: true}, []string{"data/1.csv", "data/2.csv", "data/sub/3.csv"}},
			{atelier.DatastoreFileQuery{Prefix: "data"}, []string{"data/", "database.txt"}},
			{atelier.DatastoreFileQuery{Prefix: "nothing/"}, nil},
		} {
			page, err := b.List(t.Context(), tc.q)
			if err != nil {
				t.Fatalf("List(%+v): %v", tc.q, err)
			}
			if got := filePaths(page); !slices.Equal(got, tc.want) {
				t.Errorf("List(%+v) = %q, want %q", tc.q, got, tc.want)
			}
			for _, f := range page.Files {
				if !f.Dir && f.Size != int64(len(f.Path)) {
					t.Errorf("List: %s has size %d, want %d", f.Path, f.Size, len(f.Path))
				}
				if f.Dir != strings.HasSuffix(f.Path, "/") {
					t.Errorf("List: %s has dir=%v", f.Path, f.Dir)
				}
			}
		}
		// Pages of two, chained by the token.
		var all []string
		q := atelier.DatastoreFileQuery{Recursive: true, Limit: 2}
		for i := 0; ; i++ {
			page, err := b.List(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Files) > 2 {
				t.Fatalf("a page of limit 2 holds %d files", len(page.Files))
			}
			all = append(all, filePaths(page)...)
			if page.NextPageToken == "" || i > 10 {
				break
			}
			q.PageToken = page.NextPageToken
		}
		if len(all) != 6 {
			t.Errorf("paged listing = %q, want 6 files", all)
		}
		_, err := b.List(t.Context(), atelier.DatastoreFileQuery{PageToken: "!!"})
		wantCode(t, "List with a bad token", err, atelier.EINVALID)
	})

	t.Run("Delete", func(t *testing.T) {
		b := open(t)
		MustWrite(t, b, "gone.txt", []byte("x"))
		if err := b.Delete(t.Context(), "gone.txt"); err != nil {
			t.Fatal(err)
		}
		_, err := b.Stat(t.Context(), "gone.txt")
		wantCode(t, "Stat after Delete", err, atelier.ENOTFOUND)
		err = b.Delete(t.Context(), "gone.txt")
		if atelier.ErrorCode(err) != atelier.ENOTFOUND && err != nil {
			// S3 deletes are idempotent: no error is fine too.
			t.Errorf("Delete twice: %v", err)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		b := open(t)
		_, _, err := b.Open(t.Context(), "missing/file.txt")
		wantCode(t, "Open(missing)", err, atelier.ENOTFOUND)
		if msg := atelier.ErrorMessage(err); !strings.Contains(msg, name) || !strings.Contains(msg, "missing/file.txt") {
			t.Errorf("the error %q does not name the datastore %q and the path", msg, name)
		}
		for _, p := range []string{"", "/abs", "../up", "a/../b", "a//b", "a/./b", "back\\slash", "nul\x00"} {
			_, err := b.Write(t.Context(), p, strings.NewReader("x"), "", "")
			wantCode(t, fmt.Sprintf("Write(%q)", p), err, atelier.EINVALID)
			_, _, err = b.Open(t.Context(), p)
			wantCode(t, fmt.Sprintf("Open(%q)", p), err, atelier.EINVALID)
		}
		// A name over 255 bytes, which a server folder cannot hold: refused by every kind
		// alike, so that a path one datastore takes fits any other.
		long := "dir/" + strings.Repeat("n", 256)
		_, err = b.Write(t.Context(), long, strings.NewReader("x"), "", "")
		wantLimit(t, "Write", err)
		_, _, err = b.Open(t.Context(), long)
		wantLimit(t, "Open", err)
		_, err = b.Stat(t.Context(), long)
		wantLimit(t, "Stat", err)
		_, err = b.Digest(t.Context(), long)
		wantLimit(t, "Digest", err)
		wantLimit(t, "Delete", b.Delete(t.Context(), long))
		_, err = b.List(t.Context(), atelier.DatastoreFileQuery{Prefix: long + "/"})
		wantLimit(t, "List", err)
		_, err = b.Write(t.Context(), "x", strings.NewReader("x"), "not-a-digest", "")
		wantCode(t, "Write with a malformed sha256", err, atelier.EINVALID)
		_, err = b.List(t.Context(), atelier.DatastoreFileQuery{Prefix: "../"})
		wantCode(t, "List(../)", err, atelier.EINVALID)
	})
}

func filePaths(page *atelier.DatastoreFilePage) []string {
	var out []string
	for _, f := range page.Files {
		out = append(out, f.Path)
	}
	return out
}

func wantLimit(tb testing.TB, op string, err error) {
	tb.Helper()
	if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), "255 bytes per path component") {
		tb.Errorf("%s of a path with a 256-byte name: %v, want it refused with the limit", op, err)
	}
}
