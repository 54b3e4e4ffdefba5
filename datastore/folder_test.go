package datastore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"gocloud.dev/blob/memblob"

	"github.com/atelier-ml/atelier"
)

// A local file that changes after a write took it (grows, shrinks, is rewritten in place) fails
// the read at its end, before the write commits.
func TestLocalFileChanged(t *testing.T) {
	for name, change := range map[string]func(path string) error{
		"grown": func(path string) error {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write([]byte("more"))
			return err
		},
		"shrunk": func(path string) error { return os.Truncate(path, 10) },
		"rewritten": func(path string) error {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("X"), 5)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			path, f := writeAndOpen(t, make([]byte, 1<<20))
			lf, err := newLocalFile(t.Context(), f, "lake", "f")
			if err != nil {
				t.Fatal(err)
			}
			if err := change(path); err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadAll(lf)
			if atelier.ErrorCode(err) != atelier.EINVALID {
				t.Errorf("reading a %s file: %v, want it refused", name, err)
			}
			// And the kernel's copy into a folder's file.
			dst, err := os.Create(filepath.Join(t.TempDir(), "dst"))
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Close()
			if _, readErr, writeErr := copyToFile(dst, lf); atelier.ErrorCode(readErr) != atelier.EINVALID || writeErr != nil {
				t.Errorf("copying a %s file: %v, %v; want it refused", name, readErr, writeErr)
			}
		})
	}
}

// pieces records the size of each write it takes, and fails once it holds failAt bytes.
type pieces struct {
	sizes  []int
	got    []byte
	failAt int
}

func (p *pieces) Write(b []byte) (int, error) {
	p.sizes = append(p.sizes, len(b))
	if p.failAt > 0 && len(p.got)+len(b) > p.failAt {
		n := p.failAt - len(p.got)
		p.got = append(p.got, b[:n]...)
		return n, errors.New("disk full")
	}
	p.got = append(p.got, b...)
	return len(b), nil
}

// Files are written in pieces of at most fileWriteSize, whole and in order, and a failed
// write reports what it wrote.
func TestFileWriterPieces(t *testing.T) {
	data := make([]byte, bufferSize+5)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var p pieces
	n, err := fileWriter{&p}.Write(data)
	if err != nil || n != len(data) || !bytes.Equal(p.got, data) {
		t.Fatalf("wrote %d of %d bytes (err %v), content intact: %v", n, len(data), err, bytes.Equal(p.got, data))
	}
	for i, s := range p.sizes {
		if s > fileWriteSize || s == 0 {
			t.Fatalf("write %d took %d bytes, more than %d or none", i, s, fileWriteSize)
		}
	}
	if want := (len(data) + fileWriteSize - 1) / fileWriteSize; len(p.sizes) != want {
		t.Errorf("%d writes, want %d", len(p.sizes), want)
	}

	failing := pieces{failAt: fileWriteSize + 10}
	n, err = fileWriter{&failing}.Write(data)
	if err == nil || n != fileWriteSize+10 {
		t.Errorf("a write failing after %d bytes: got n=%d err=%v", fileWriteSize+10, n, err)
	}
}

// A large local file written to cloud storage is hashed while it uploads: the digest comes
// back with the object's ETag (for the server to keep), not in the object's metadata.
func TestWriteHashesBeside(t *testing.T) {
	defer func(n int64) { hashBesideSize = n }(hashBesideSize)
	hashBesideSize = 100 << 10
	content := make([]byte, 300<<10)
	rand.NewChaCha8([32]byte{1}).Read(content)
	sum := sha256.Sum256(content)
	_, f := writeAndOpen(t, content)
	b := NewBucket("lake", memblob.OpenBucket(nil))
	defer b.Close()
	ctx := t.Context()
	got, err := b.Write(ctx, "data/big.bin", f, "", "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := b.b.Attributes(ctx, "data/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	if got.SHA256 != hex.EncodeToString(sum[:]) || got.ETag == "" || got.ETag != a.ETag || got.Size != int64(len(content)) {
		t.Errorf("Write = %+v, want sha256 %x and the object's ETag %q", got, sum, a.ETag)
	}
	if m := a.Metadata[sha256Key]; m != "" {
		t.Errorf("the object carries sha256 %q: it was hashed before uploading", m)
	}
	if d, err := b.Digest(ctx, "data/big.bin"); err != nil || d.SHA256 != "" || d.ETag != a.ETag {
		t.Errorf("Digest = %+v, %v; want no digest of its own and ETag %q", d, err, a.ETag)
	}

	// Smaller files are hashed first, and carry their digest.
	_, sf := writeAndOpen(t, content[:1000])
	if got, err := b.Write(ctx, "small.bin", sf, "", ""); err != nil || got.ETag != "" || got.SHA256 == "" {
		t.Errorf("Write(small) = %+v, %v; want its digest and no ETag", got, err)
	}
	if d, err := b.Digest(ctx, "small.bin"); err != nil || d.SHA256 == "" {
		t.Errorf("Digest(small) = %+v, %v; want the digest it carries", d, err)
	}
}

// A file changed while it is hashed beside its copy fails the copy's end; unchanged, the copy
// ends with its digest.
func TestHashBesideChanged(t *testing.T) {
	for _, changed := range []bool{false, true} {
		path, f := writeAndOpen(t, bytes.Repeat([]byte("x"), 1<<20))
		lf, err := newLocalFile(t.Context(), f, "lake", "f")
		if err != nil {
			t.Fatal(err)
		}
		lf.hashBeside(t.Context())
		if changed {
			if err := os.Truncate(path, 10); err != nil {
				t.Fatal(err)
			}
		}
		_, err = io.ReadAll(lf)
		want := sha256.Sum256(bytes.Repeat([]byte("x"), 1<<20))
		switch {
		case changed && atelier.ErrorCode(err) != atelier.EINVALID:
			t.Errorf("a file changed while hashed: %v, want it refused", err)
		case !changed && (err != nil || lf.sum != hex.EncodeToString(want[:])):
			t.Errorf("an unchanged file: sum %q, err %v; want %x", lf.sum, err, want)
		}
	}
}

// writeAndOpen writes content to a new file and opens it for reading until the test ends.
func writeAndOpen(t *testing.T, content []byte) (string, *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return path, f
}
