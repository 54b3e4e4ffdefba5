package datastore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"

	"github.com/atelier-ml/atelier"
)

// copyToFile copies r to f and tells a failure of the source (a client's stream, a local file
// that changed) from one of the destination (a full disk). A local file is copied by the
// kernel; anything else in reads of bufferSize (and writes of fileWriteSize).
func copyToFile(f *os.File, r io.Reader) (n int64, readErr, writeErr error) {
	if lf, ok := r.(*localFile); ok {
		if _, err := lf.f.Seek(0, io.SeekStart); err != nil {
			return 0, lf.readError(err), nil
		}
		// copy_file_range (both ends are files, so an error is the storage's), in chunks: the
		// offset it moves is the client's progress.
		for n < lf.id.size {
			if err := lf.ctx.Err(); err != nil {
				return n, err, nil
			}
			m, err := f.ReadFrom(io.LimitReader(lf.f, min(localChunk, lf.id.size-n)))
			n += m
			if err != nil {
				return n, nil, err
			}
			if m == 0 {
				return n, lf.changedError(), nil // shorter than it was
			}
		}
		return n, lf.unchanged(), nil
	}
	buf := bufs.Get().(*[bufferSize]byte)
	defer bufs.Put(buf)
	fw := fileWriter{f}
	for {
		m, err := r.Read(buf[:])
		if m > 0 {
			w, werr := fw.Write(buf[:m])
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

// ctxReader stops reading when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// localChunk is how much of a local file one copy_file_range copies.
const localChunk = 16 << 20

// localFile is a write's source that is a file of the server's machine, as a client passed it
// over the server's Unix socket. It is read from its start to its size when opened, and its
// Read fails at the end, before the write commits, when the file changed meanwhile (its size,
// modification or change time, or inode), so that a file changed during the copy stores
// nothing, as a broken stream does.
type localFile struct {
	// ctx is the request's: a copy stops between its chunks when the client has gone.
	ctx             context.Context
	f               *os.File
	id              fileID
	datastore, path string
	// started is set once Read has sought the file's start; read counts the bytes it read.
	started bool
	read    int64
	// hashing brings the sha256 computed beside the copy (see hashBeside); sum is it, once
	// the copy's last read has had it.
	hashing chan hashed
	sum     string
}

type hashed struct {
	sum string
	err error
}

func newLocalFile(ctx context.Context, f *os.File, datastore, path string) (*localFile, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "datastore %q: %s: the file to store cannot be read: %v", datastore, path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, atelier.Errorf(atelier.EINVALID, "datastore %q: %s: the file to store is not a regular file", datastore, path)
	}
	id := fileID{size: fi.Size(), mod: fi.ModTime()}
	id.ino, id.changed = inodeAndChange(fi)
	return &localFile{ctx: ctx, f: f, id: id, datastore: datastore, path: path}, nil
}

// sha256 hashes the file from its start to its size, without moving its offset.
func (l *localFile) sha256(ctx context.Context) (string, error) {
	buf := bufs.Get().(*[bufferSize]byte)
	defer bufs.Put(buf)
	h := sha256.New()
	n, err := io.CopyBuffer(h, &ctxReader{ctx, io.NewSectionReader(l.f, 0, l.id.size)}, buf[:])
	if err != nil {
		return "", l.readError(err)
	}
	if n != l.id.size {
		return "", l.changedError()
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashBeside hashes the file on another goroutine while it is read (by pread: the copy's
// offset does not move), until ctx ends; the copy's last read waits for the digest and then
// has it in sum.
func (l *localFile) hashBeside(ctx context.Context) {
	ch := make(chan hashed, 1)
	l.hashing = ch
	go func() {
		sum, err := l.sha256(ctx)
		ch <- hashed{sum, err}
	}()
}

func (l *localFile) Read(p []byte) (int, error) {
	if err := l.ctx.Err(); err != nil {
		return 0, err
	}
	if !l.started {
		l.started = true
		if _, err := l.f.Seek(0, io.SeekStart); err != nil {
			return 0, l.readError(err)
		}
	}
	left := l.id.size - l.read
	if left <= 0 {
		if l.hashing != nil {
			// The end waits for the digest, so that the check below covers both reads.
			h := <-l.hashing
			l.hashing = nil
			if h.err != nil {
				return 0, h.err
			}
			l.sum = h.sum
		}
		if err := l.unchanged(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	n, err := l.f.Read(p[:min(int64(len(p)), left)])
	l.read += int64(n)
	if err == io.EOF {
		return n, l.changedError() // shorter than it was
	}
	if err != nil {
		return n, l.readError(err)
	}
	return n, nil
}

// unchanged checks the file against what it was when opened.
func (l *localFile) unchanged() error {
	fi, err := l.f.Stat()
	if err != nil {
		return l.readError(err)
	}
	id := fileID{size: fi.Size(), mod: fi.ModTime()}
	id.ino, id.changed = inodeAndChange(fi)
	if !id.equal(l.id) {
		return l.changedError()
	}
	return nil
}

func (l *localFile) changedError() error {
	return atelier.Errorf(atelier.EINVALID, "datastore %q: %s: the file changed while it was copied; nothing was stored", l.datastore, l.path)
}

func (l *localFile) readError(err error) error {
	return atelier.Errorf(atelier.EINVALID, "datastore %q: %s: reading the file to store: %v", l.datastore, l.path, err)
}
