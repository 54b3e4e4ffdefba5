package api

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

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
	if len(path) >= len(syscall.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("the socket path %s is longer than the system allows (%d bytes)", path, len(syscall.RawSockaddrUnix{}.Path)-1)
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
	c, err := l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	return &fdConn{UnixConn: c}, nil
}

// fdConn is a server connection that keeps the descriptor a client passed with its request.
type fdConn struct {
	*net.UnixConn
	mu     sync.Mutex
	passed *os.File
}

// Read reads like the connection's Read, keeping a passed descriptor. One at a time: others
// are closed at once, so a client cannot pile descriptors up in the server.
func (c *fdConn) Read(b []byte) (int, error) {
	var oob [64]byte
	n, oobn, _, _, err := c.ReadMsgUnix(b, oob[:]) // MSG_CMSG_CLOEXEC: runs never inherit them
	if oobn > 0 {
		c.keep(oob[:oobn])
	}
	return max(n, 0), err // -1 on an error, which io.Reader does not allow
}

func (c *fdConn) keep(oob []byte) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if c.passed != nil {
				syscall.Close(fd)
				continue
			}
			c.passed = os.NewFile(uintptr(fd), "passed file")
		}
	}
}

// take hands the passed descriptor over to the caller, once.
func (c *fdConn) take() *os.File {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.passed
	c.passed = nil
	return f
}

func (c *fdConn) Close() error {
	if f := c.take(); f != nil {
		f.Close()
	}
	return c.UnixConn.Close()
}

type fdConnKey struct{}

// ConnContext makes a connection's passed descriptors reachable from its requests: set it as
// the http.Server's ConnContext.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*fdConn); ok {
		return context.WithValue(ctx, fdConnKey{}, fc)
	}
	return ctx
}

// passedFile returns the regular file a client passed with r, checked for the access the
// request needs: readable for an upload's source, writable (and not append-only) for a
// download's destination.
func passedFile(r *http.Request, write bool) (*os.File, error) {
	fc, _ := r.Context().Value(fdConnKey{}).(*fdConn)
	if fc == nil {
		return nil, atelier.Errorf(atelier.EINVALID, "%s: a file is passed only over the server's Unix socket", LocalFileHeader)
	}
	f := fc.take()
	if f == nil {
		return nil, atelier.Errorf(atelier.EINVALID, "%s: no file descriptor came with the request", LocalFileHeader)
	}
	fail := func(format string, a ...any) (*os.File, error) {
		f.Close()
		return nil, atelier.Errorf(atelier.EINVALID, "%s: the passed file "+format, append([]any{LocalFileHeader}, a...)...)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail("cannot be read: %v", err)
	}
	if !fi.Mode().IsRegular() {
		return fail("is not a regular file (%s)", fi.Mode().Type())
	}
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return fail("cannot be used: %v", err)
	}
	switch mode := flags & unix.O_ACCMODE; {
	case write && mode == unix.O_RDONLY:
		return fail("is not open for writing")
	case write && flags&unix.O_APPEND != 0:
		return fail("is open for appending")
	case !write && mode == unix.O_WRONLY:
		return fail("is not open for reading")
	}
	return f, nil
}

// The client's side.

type passKey struct{}

// passingConn is a client connection whose first write carries a descriptor.
type passingConn struct {
	*net.UnixConn
	file *os.File
	sent bool
}

func (c *passingConn) Write(b []byte) (int, error) {
	if c.sent {
		return c.UnixConn.Write(b)
	}
	c.sent = true
	n, _, err := c.WriteMsgUnix(b, syscall.UnixRights(int(c.file.Fd())), nil)
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
			f, _ := ctx.Value(passKey{}).(*os.File)
			if f == nil {
				return c, nil
			}
			return &passingConn{UnixConn: c, file: f}, nil
		}}
	return shared, passing
}

// passFile sends req over a new connection of the Unix socket, passing f with it.
func (c *Client) passFile(req *http.Request, f *os.File, progress func(int64)) (*http.Response, error) {
	req.Header.Set(LocalFileHeader, "1")
	req = req.WithContext(context.WithValue(req.Context(), passKey{}, f))
	// The server moves the descriptor's offset as it copies: it is the progress.
	stop := watchOffset(f, progress)
	resp, err := c.doWith(c.passing, req)
	stop(err == nil)
	return resp, err
}

// watchOffset reports the growth of f's offset to progress until stop; stop(true) reports what
// is left to the file's end as done.
func watchOffset(f *os.File, progress func(int64)) (stop func(done bool)) {
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
				if off, err := f.Seek(0, io.SeekCurrent); err == nil {
					report(off)
				}
			}
		}
	}()
	return func(done bool) {
		close(quit)
		wg.Wait()
		if done {
			if fi, err := f.Stat(); err == nil {
				report(fi.Size())
			}
		}
	}
}
