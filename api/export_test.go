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

// RawRequest is a request sent by hand over c's Unix socket with LocalFileHeader, passing fds
// (any number, none included) with its first bytes.
type RawRequest struct {
	Method, Path, Body, Token string
	FDs                       []*os.File
}

// RawUnixSession sends raw requests over one connection of c's Unix socket (kept alive), and
// returns each answer's status and body.
type RawUnixSession struct {
	c    *Client
	conn *net.UnixConn
	br   *bufio.Reader
}

func NewRawUnixSession(ctx context.Context, c *Client) (*RawUnixSession, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, err
	}
	return &RawUnixSession{c: c, conn: conn.(*net.UnixConn), br: bufio.NewReader(conn)}, nil
}

func (s *RawUnixSession) Close() error { return s.conn.Close() }

func (s *RawUnixSession) Do(ctx context.Context, r RawRequest) (int, string) {
	var body io.Reader = http.NoBody
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	req, _ := http.NewRequestWithContext(ctx, r.Method, "http://atelier"+r.Path, body)
	if r.Body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	token := r.Token
	if token == "" {
		token = s.c.Token
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(LocalFileHeader, "1")
	var buf bytes.Buffer
	req.Write(&buf)
	var fds []int
	for _, f := range r.FDs {
		fds = append(fds, int(f.Fd()))
	}
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	if _, _, err := s.conn.WriteMsgUnix(buf.Bytes(), oob, nil); err != nil {
		return 0, err.Error()
	}
	resp, err := http.ReadResponse(s.br, req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer)
}

// NewRawUnixRequester returns a function that sends one raw request over a new connection.
func NewRawUnixRequester(c *Client) func(ctx context.Context, method, path string, fds []*os.File, body ...string) (int, string) {
	return func(ctx context.Context, method, path string, fds []*os.File, body ...string) (int, string) {
		s, err := NewRawUnixSession(ctx, c)
		if err != nil {
			return 0, err.Error()
		}
		defer s.Close()
		r := RawRequest{Method: method, Path: path, FDs: fds}
		if len(body) > 0 {
			r.Body = body[0]
		}
		return s.Do(ctx, r)
	}
}
