package api

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// LocalFile is an upload read from a local file. Over TCP its bytes are sent by the kernel
// (sendfile: no copy through the client), in chunks, so that progress is reported; and it is
// cut short before its last byte when the file changed while it was sent (its size or
// modification time differ from when it was opened): the server then sees a short body and
// stores nothing, rather than a mix of two versions.
type LocalFile struct {
	f        *os.File
	name     string
	size     int64
	modTime  time.Time
	sent     int64
	progress func(n int64)
	// byKernel counts the bytes sendfile sent (the rest went through Read).
	byKernel int64
	// err is why the upload was cut short (the file changed), for the caller's message: set
	// by the transport's goroutine, which may still be sending when the server has answered.
	mu  sync.Mutex
	err error
}

// OpenLocalFile opens path for an upload; progress, when set, is called with each number of
// bytes sent.
func OpenLocalFile(path string, progress func(n int64)) (*LocalFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if progress == nil {
		progress = func(int64) {}
	}
	return &LocalFile{f: f, name: path, size: fi.Size(), modTime: fi.ModTime(), progress: progress}, nil
}

// Size is the file's size when it was opened: what is sent.
func (l *LocalFile) Size() int64 { return l.size }

// Changed is the error that cut the upload short, if the file changed while it was sent.
func (l *LocalFile) Changed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Close closes the file.
func (l *LocalFile) Close() error { return l.f.Close() }

// Read is the upload's body where the connection cannot send the file itself (a proxy, TLS):
// the file's bytes up to its size at open, the last of them only if the file is unchanged.
func (l *LocalFile) Read(p []byte) (int, error) {
	if err := l.Changed(); err != nil {
		return 0, err
	}
	left := l.size - l.sent
	if left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), left)]
	n, err := l.f.Read(p)
	if err == io.EOF && l.sent+int64(n) < l.size {
		err = l.changed()
		n = 0
	}
	if n > 0 && l.sent+int64(n) == l.size {
		if cerr := l.changed(); cerr != nil {
			return 0, cerr
		}
	}
	l.sent += int64(n)
	l.progress(int64(n))
	return n, err
}

// changed checks the file against what it was when opened; it sets l.err when it differs.
func (l *LocalFile) changed() error {
	fi, err := l.f.Stat()
	if err == nil && fi.Size() == l.size && fi.ModTime().Equal(l.modTime) {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = fmt.Errorf("%s changed while it was uploaded", l.name)
	return l.err
}

// sendfileChunk is how much sendTo sends between two progress reports.
const sendfileChunk = 8 << 20

// sendTo sends what is left of the file to c with sendfile, keeping its last byte until the
// file is known unchanged. lr is the transport's limit on the body (its Content-Length).
func (l *LocalFile) sendTo(c *net.TCPConn, lr *io.LimitedReader) (int64, error) {
	var total int64
	for lr.N > 0 {
		if err := l.Changed(); err != nil {
			return total, err
		}
		chunk := min(lr.N, sendfileChunk)
		if chunk == lr.N {
			// The last byte goes only if the file is unchanged.
			if chunk > 1 {
				chunk--
			} else if err := l.changed(); err != nil {
				return total, err
			}
		}
		n, err := c.ReadFrom(&io.LimitedReader{R: l.f, N: chunk})
		total += n
		lr.N -= n
		l.sent += n
		l.byKernel += n
		l.progress(n)
		if err != nil {
			return total, err
		}
		if n < chunk {
			// The file is shorter than it was.
			if err := l.changed(); err != nil {
				return total, err
			}
			return total, fmt.Errorf("%s: read %d of %d bytes", l.name, l.sent, l.size)
		}
	}
	return total, nil
}

// sendfileConn is a client connection whose ReadFrom sends a LocalFile body with sendfile:
// net/http hands a request body to the connection's ReadFrom (wrapped in its Content-Length
// limit) once the headers are out.
type sendfileConn struct {
	*net.TCPConn
}

func (c sendfileConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if l, ok := lr.R.(*LocalFile); ok {
			return l.sendTo(c.TCPConn, lr)
		}
	}
	return c.TCPConn.ReadFrom(r)
}

// newTransport is the client's transport: enough idle connections for parallel transfers (the
// CLI moves 8 files at a time), and TCP connections that send LocalFile bodies by sendfile.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok && err == nil {
			return sendfileConn{tc}, nil
		}
		return c, err
	}
	return t
}
