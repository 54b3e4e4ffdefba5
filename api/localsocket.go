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

	"github.com/atelier-ml/atelier"
)

// The server also listens on a Unix socket (by default <data>/atelier.sock) for clients on its
// own machine. The API is the same; what the socket adds is that a client can pass a file as an
// open descriptor (SCM_RIGHTS) instead of its bytes: the source of an upload, the destination
// of a download. The server then copies between that descriptor and the datastore itself (by
// the kernel, copy_file_range, for a files datastore), so a local transfer moves each byte
// once, as cp does, instead of through the client, a socket and the server. The descriptor
// carries the client's own rights to the file: the server reads or writes only what the
// client opened, and authorization is the request's, as over TCP.

// LocalFileHeader marks a request whose file was passed over the Unix socket, with the
// request's first bytes, instead of sent in its body.
const LocalFileHeader = "X-Atelier-Local-File"

// ListenUnix listens on the Unix socket at path (mode 0600: the server's user). A socket left
// there by a server that is gone is replaced; one a live server answers on is an error.
func ListenUnix(path string) (net.Listener, error) {
	if len(path) >= maxSocketPath {
		return nil, fmt.Errorf("the socket path %s is longer than the system allows (%d bytes)", path, maxSocketPath-1)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another server listens on %s", path)
		}
		os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return &unixListener{ln}, nil
}

type unixListener struct{ *net.UnixListener }

func (l *unixListener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		// The processes of runs are confined (package sandbox) and carry no_new_privs: where
		// only Landlock confines them, which does not govern connecting to a socket, the
		// server turns them away itself. They use TCP, as processes of other machines do.
		if peerConfined(c) {
			c.Close()
			continue
		}
		return &fdConn{UnixConn: c, peer: peerOf(c)}, nil
	}
}

// MaxPassedFiles bounds the descriptors one request passes (the kernel passes at most 253 in
// a message).
const MaxPassedFiles = 200

// fdConn is a server connection that keeps the descriptors a client passed with its request.
type fdConn struct {
	*net.UnixConn
	peer   net.Addr
	oob    [4096]byte // reads are serial: one control buffer a connection
	mu     sync.Mutex
	passed []*os.File
	// served is set once the first request has been handled: descriptors come only with a
	// connection's first request (a client passing files opens a connection for each).
	served bool
}

func (c *fdConn) RemoteAddr() net.Addr { return c.peer }

// Read reads like the connection's Read, keeping passed descriptors: at most MaxPassedFiles
// not yet taken; more are closed at once, so a client cannot pile descriptors up in the server.
func (c *fdConn) Read(b []byte) (int, error) {
	n, oobn, _, _, err := c.ReadMsgUnix(b, c.oob[:]) // MSG_CMSG_CLOEXEC: runs never inherit them
	if oobn > 0 {
		c.keep(c.oob[:oobn])
	}
	return max(n, 0), err // -1 on an error, which io.Reader does not allow
}

func (c *fdConn) keep(oob []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range passedIn(oob) {
		if c.served || len(c.passed) >= MaxPassedFiles {
			f.Close()
			continue
		}
		c.passed = append(c.passed, f)
	}
}

// hasPassed reports whether descriptors wait to be taken.
func (c *fdConn) hasPassed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.passed) > 0
}

// firstServed ends the connection's first request: what it did not take is closed, and later
// descriptors are refused, so that none can stand for another request's file.
func (c *fdConn) firstServed() {
	c.mu.Lock()
	c.served = true
	left := c.passed
	c.passed = nil
	c.mu.Unlock()
	closeAll(left)
}

// take hands the passed descriptors over to the caller, once.
func (c *fdConn) take() []*os.File {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.passed
	c.passed = nil
	return f
}

func (c *fdConn) Close() error {
	closeAll(c.take())
	return c.UnixConn.Close()
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

type fdConnKey struct{}

// AcceptPassedFiles sets srv (its Handler set) up for the descriptors passed over the Unix
// socket: its requests reach them. Descriptors come only with a connection's first request;
// a connection that passed some is closed after it, and what that request did not take is
// closed then, so that a descriptor never stands for another request's file.
func AcceptPassedFiles(srv *http.Server) {
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if fc, ok := c.(*fdConn); ok {
			return context.WithValue(ctx, fdConnKey{}, fc)
		}
		return ctx
	}
	next := srv.Handler
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fc, _ := r.Context().Value(fdConnKey{}).(*fdConn); fc != nil {
			if fc.hasPassed() {
				w.Header().Set("Connection", "close")
			}
			defer fc.firstServed()
		}
		next.ServeHTTP(w, r)
	})
}

// maxPassing is how many requests copy passed files at once (each a few at most, as clients
// send: the CLI runs 8 transfers).
const maxPassing = 16

// startPassing waits for a turn to copy passed files; release ends it.
func (s *Server) startPassing(ctx context.Context) (release func(), err error) {
	select {
	case s.passing <- struct{}{}:
		return func() { <-s.passing }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// passedFile returns the one regular file a client passed with r, checked for the access the
// request needs: readable for an upload's source, writable (and not append-only) for a
// download's destination.
func passedFile(r *http.Request, write bool) (*os.File, error) {
	files, err := passedFiles(r, 1, write, func(int) string { return r.PathValue("path") })
	if err != nil {
		return nil, err
	}
	return files[0], nil
}

// passedFiles returns the n files a client passed with r for a batch, checked as by
// passedFile; any other count is refused.
func passedFiles(r *http.Request, n int, write bool, paths func(i int) string) ([]*os.File, error) {
	files, err := takePassed(r)
	if err != nil {
		return nil, err
	}
	if len(files) != n {
		closeAll(files)
		return nil, atelier.Errorf(atelier.EINVALID, "%s: %d descriptors came with the request for %d files", LocalFileHeader, len(files), n)
	}
	for i, f := range files {
		if err := checkPassed(f, write); err != nil {
			closeAll(files)
			return nil, atelier.Errorf(atelier.EINVALID, "%s: the file passed for %s (number %d) %s", LocalFileHeader, paths(i), i+1, err)
		}
	}
	return files, nil
}

func takePassed(r *http.Request) ([]*os.File, error) {
	fc, _ := r.Context().Value(fdConnKey{}).(*fdConn)
	if fc == nil {
		return nil, atelier.Errorf(atelier.EINVALID, "%s: a file is passed only over the server's Unix socket", LocalFileHeader)
	}
	files := fc.take()
	if len(files) == 0 {
		return nil, atelier.Errorf(atelier.EINVALID, "%s: no file descriptor came with the request (they come with a connection's first request only)", LocalFileHeader)
	}
	return files, nil
}

// checkPassed says what is wrong with a passed descriptor, if anything.
func checkPassed(f *os.File, write bool) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cannot be read: %v", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("is not a regular file (%s)", fi.Mode().Type())
	}
	return checkAccess(f, write)
}

// The client's side.

type passKey struct{}

// passingConn is a client connection whose first write carries descriptors.
type passingConn struct {
	*net.UnixConn
	files []*os.File
	sent  bool
}

func (c *passingConn) Write(b []byte) (int, error) {
	if c.sent {
		return c.UnixConn.Write(b)
	}
	c.sent = true
	n, _, err := c.WriteMsgUnix(b, rightsOf(c.files), nil)
	if err == nil && n < len(b) {
		// The descriptors went with the first bytes; the rest is plain data.
		m, err := c.UnixConn.Write(b[n:])
		return n + m, err
	}
	return n, err
}

// unixTransports are a client's transports to a Unix socket: shared, pooled connections for
// the API, and one new connection per request that passes a file, so that the descriptor
// rides on that request's first bytes and on no other's.
func unixTransports(socket string) (shared, passing *http.Transport) {
	dial := func(ctx context.Context) (*net.UnixConn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", socket)
		if err != nil {
			return nil, err
		}
		return c.(*net.UnixConn), nil
	}
	shared = &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}
	passing = &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := dial(ctx)
			if err != nil {
				return nil, err
			}
			files, _ := ctx.Value(passKey{}).([]*os.File)
			if len(files) == 0 {
				return c, nil
			}
			return &passingConn{UnixConn: c, files: files}, nil
		}}
	return shared, passing
}

// passFiles sends req over a new connection of the Unix socket, passing files with it.
func (c *Client) passFiles(req *http.Request, files []*os.File, progress func(int64)) (*http.Response, error) {
	req.Header.Set(LocalFileHeader, "1")
	req = req.WithContext(context.WithValue(req.Context(), passKey{}, files))
	// The server moves the descriptors' offsets as it copies: they are the progress.
	stop := watchOffsets(files, progress)
	resp, err := c.doWith(c.passing, req)
	stop(err == nil)
	return resp, err
}

// watchOffsets reports the growth of the files' offsets to progress until stop; stop(true)
// reports what is left to their ends as done.
func watchOffsets(files []*os.File, progress func(int64)) (stop func(done bool)) {
	if progress == nil {
		return func(bool) {}
	}
	var reported int64
	var mu sync.Mutex
	report := func(to int64) {
		mu.Lock()
		defer mu.Unlock()
		if to > reported {
			progress(to - reported)
			reported = to
		}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				var sum int64
				for _, f := range files {
					if off, err := f.Seek(0, io.SeekCurrent); err == nil {
						sum += off
					}
				}
				report(sum)
			}
		}
	}()
	return func(done bool) {
		close(quit)
		wg.Wait()
		if done {
			var sum int64
			for _, f := range files {
				if fi, err := f.Stat(); err == nil {
					sum += fi.Size()
				}
			}
			report(sum)
		}
	}
}
