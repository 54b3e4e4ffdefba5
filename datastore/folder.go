package datastore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"gocloud.dev/blob"

	"github.com/atelier-ml/atelier"
)

// A files datastore is read and written through fileblob (its key-to-path mapping, its
// temporary files renamed into place), but the bytes go straight to and from the *os.File
// fileblob hands over, not through its portable writer and reader: so a local source is copied
// by the kernel (copy_file_range), a network stream in large reads, and a download leaves by
// sendfile. Nothing is hashed on the way unless the client asked for a check: the server
// computes a folder's digests when a client compares (see Digest), so a write need not.

// writeFolder writes r to path in a files datastore. want, when set, is checked before the
// file becomes visible.
func (b *Bucket) writeFolder(ctx context.Context, path string, r io.Reader, want string) (*atelier.DatastoreFile, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var tmp *os.File
	w, err := b.b.NewWriter(wctx, path, &blob.WriterOptions{
		// Set, so that the writer opens at once (sniffing would buffer the first 512 bytes).
		ContentType: "application/octet-stream",
		BeforeWrite: func(as func(any) bool) error {
			if !as(&tmp) {
				return errors.New("the folder's writer has no file")
			}
			return nil
		},
	})
	if err != nil {
		return nil, b.mapError("write", path, err)
	}
	// fail cancels before Close: fileblob then removes its temporary file instead of renaming
	// it into place, whatever it holds.
	fail := func(err error) (*atelier.DatastoreFile, error) {
		cancel()
		w.Close()
		return nil, err
	}
	var h hash.Hash
	src := r
	if want != "" {
		h = sha256.New()
		src = io.TeeReader(r, h)
	}
	n, readErr, writeErr := copyToFile(tmp, src)
	switch {
	case readErr != nil:
		return fail(readErr) // the client's stream failed: its error, not the storage's
	case writeErr != nil:
		return fail(b.mapError("write", path, writeErr))
	case h != nil:
		if sum := hex.EncodeToString(h.Sum(nil)); sum != want {
			return fail(atelier.Errorf(atelier.EINVALID, "datastore %q: %s: the content does not match sha256 %s (got %s); nothing was stored", b.name, path, want, sum))
		}
	}
	if err := w.Close(); err != nil {
		return nil, b.mapError("write", path, err)
	}
	f, err := b.Stat(ctx, path)
	if err != nil {
		return nil, err
	}
	if f.Size != n {
		return nil, fmt.Errorf("datastore %q: %s: wrote %d bytes, the storage holds %d", b.name, path, n, f.Size)
	}
	f.SHA256 = want
	return f, nil
}

// copyToFile copies r to f and tells a failure of the source (a client's stream) from one of
// the destination (a full disk). A regular file is copied by the kernel; anything else in
// reads of bufferSize.
func copyToFile(f *os.File, r io.Reader) (n int64, readErr, writeErr error) {
	if src, ok := r.(*os.File); ok {
		// copy_file_range, or splice: both ends are files, so an error is the storage's
		// (the source was checked to be a regular file by whoever opened it).
		n, err := f.ReadFrom(src)
		return n, nil, err
	}
	buf := bufs.Get().(*[bufferSize]byte)
	defer bufs.Put(buf)
	for {
		m, err := r.Read(buf[:])
		if m > 0 {
			w, werr := f.Write(buf[:m])
			n += int64(w)
			if werr != nil {
				return n, nil, werr
			}
		}
		if err == io.EOF {
			return n, nil, nil
		}
		if err != nil {
			return n, err, nil
		}
	}
}

// openFolder opens path of a files datastore with its *os.File exposed to io.Copy (see
// folderReader).
func (b *Bucket) openFolder(ctx context.Context, path string) (*atelier.DatastoreFile, io.ReadCloser, error) {
	var f *os.File
	r, err := b.b.NewReader(ctx, path, &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
		as(&f)
		return nil
	}})
	if err != nil {
		return nil, nil, b.mapError("read", path, err)
	}
	file := &atelier.DatastoreFile{Path: path, Size: r.Size(), ModifiedAt: r.ModTime().UTC()}
	rd := &reader{r: r, b: b, path: path}
	if f == nil {
		return file, rd, nil
	}
	return file, &folderReader{reader: rd, f: f}, nil
}

// folderReader reads a folder's file. WriteTo hands the *os.File itself to the destination,
// so that io.Copy into an HTTP response (or another file) is done by the kernel.
type folderReader struct {
	*reader
	f *os.File
}

func (r *folderReader) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, r.f) }
