package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/blob/blobtest"
)

// A local store writes whole blocks with direct I/O and the tail through the page cache: every
// size around the block and buffer boundaries reads back as it was written.
// /dev/shm (tmpfs, where Linux refuses O_DIRECT) covers the buffered path.
func TestFilePutSizes(t *testing.T) {
	dirs := map[string]string{"disk": t.TempDir()}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "blob-test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(shm) })
		dirs["tmpfs"] = shm
	}
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) { testFilePutSizes(t, dir) })
	}
}

func testFilePutSizes(t *testing.T, dir string) {
	s := MustOpen(t, "file://"+filepath.ToSlash(dir))
	for _, size := range []int{0, 1, 511, 4095, 4096, 4097, 1 << 20, 1<<20 + 1, 1<<20 + 4096, 3<<20 + 123} {
		content := make([]byte, size)
		for i := range content {
			content[i] = byte(i*31 + size)
		}
		for _, digest := range []string{"", blobtest.Digest(content)} {
			if digest != "" {
				if err := s.DeleteObject(context.Background(), digest); err != nil {
					t.Fatal(err)
				}
			}
			// Odd-sized reads: the buffer is filled from several.
			got, err := s.PutObject(context.Background(), &oddReader{r: bytes.NewReader(content)}, digest)
			if err != nil {
				t.Fatalf("PutObject(%d bytes, digest %q): %v", size, digest, err)
			}
			if got.Size != int64(size) || got.Digest != blobtest.Digest(content) {
				t.Fatalf("PutObject(%d bytes) = %+v", size, got)
			}
			if back := blobtest.MustRead(t, s, got.Digest); !bytes.Equal(back, content) {
				t.Fatalf("%d bytes read back differ", size)
			}
		}
	}
}

// oddReader returns at most 7,919 bytes per Read.
type oddReader struct{ r io.Reader }

func (o *oddReader) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 7919)]) }

// errAfter fails after n bytes.
type errAfter struct {
	n   int
	err error
}

func (e *errAfter) Read(p []byte) (int, error) {
	if e.n == 0 {
		return 0, e.err
	}
	k := min(len(p), e.n)
	clear(p[:k])
	e.n -= k
	return k, nil
}

// A failed put leaves nothing in a local store but the objects stored before it: no staging
// file, whether the content did not match, the reader failed or the put was canceled.
func TestFilePutFailures(t *testing.T) {
	dir := t.TempDir()
	s := MustOpen(t, "file://"+filepath.ToSlash(dir))
	kept := blobtest.MustPut(t, s, []byte("kept"), "")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	content := bytes.Repeat([]byte("x"), 2<<20+5)
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		r      io.Reader
		digest string
		code   string
	}{
		{"wrong digest", context.Background(), bytes.NewReader(content), blobtest.Digest([]byte("other")), atelier.EINVALID},
		{"reader fails", context.Background(), &errAfter{n: 3 << 20, err: errors.New("connection reset")}, "", atelier.EINTERNAL},
		{"the sender's fault", context.Background(), &errAfter{n: 1 << 20, err: atelier.Errorf(atelier.EINVALID, "upload cut short")}, "", atelier.EINVALID},
		{"canceled", canceled, bytes.NewReader(content), "", atelier.EINTERNAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.PutObject(tc.ctx, tc.r, tc.digest)
			if err == nil || atelier.ErrorCode(err) != tc.code {
				t.Fatalf("PutObject = %v, want a %s error", err, tc.code)
			}
		})
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if want := "sha256/" + kept.Digest[:2] + "/" + kept.Digest; strings.Join(files, ",") != want {
		t.Fatalf("files after failed puts: %v, want [%s]", files, want)
	}
}
