package api

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
)

// LocalFileOffset is the offset of l's file description: a server copying a passed file moves it.
func LocalFileOffset(l *LocalFile) int64 {
	off, _ := l.f.Seek(0, io.SeekCurrent)
	return off
}

// NewRawUnixRequester returns a function that sends a request with LocalFileHeader over c's
// Unix socket, passing fds (any number, none included) with its first bytes, and returns the
// answer's status and body.
func NewRawUnixRequester(c *Client) func(ctx context.Context, method, path string, fds []*os.File, body ...string) (int, string) {
	return func(ctx context.Context, method, path string, fds []*os.File, body ...string) (int, string) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", c.socket)
		if err != nil {
			return 0, err.Error()
		}
		defer conn.Close()
		req, _ := http.NewRequestWithContext(ctx, method, "http://atelier"+path, http.NoBody)
		if len(body) > 0 {
			req, _ = http.NewRequestWithContext(ctx, method, "http://atelier"+path, strings.NewReader(body[0]))
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+c.Token)
		req.Header.Set(LocalFileHeader, "1")
		var buf bytes.Buffer
		req.Write(&buf)
		var ints []int
		for _, f := range fds {
			ints = append(ints, int(f.Fd()))
		}
		var oob []byte
		if len(ints) > 0 {
			oob = syscall.UnixRights(ints...)
		}
		if _, _, err := conn.(*net.UnixConn).WriteMsgUnix(buf.Bytes(), oob, nil); err != nil {
			return 0, err.Error()
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(answer)
	}
}
