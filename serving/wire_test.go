package serving_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier/serving"
)

// wireReplica is a replica that answers each request with the raw answer its X-Answer header
// names, and keeps the requests it read: what the pool writes and reads on the wire.
type wireReplica struct {
	path string
	done chan struct{}

	mu   sync.Mutex
	seen []*http.Request
	body []string
}

func (f *wireReplica) Dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", f.path)
}
func (f *wireReplica) Done() <-chan struct{} { return f.done }
func (f *wireReplica) Err() error            { return nil }
func (f *wireReplica) Stop()                 {}

var wireAnswers = map[string]string{
	"plain": "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-multi: a\r\nX-Multi: b\r\nConnection: keep-alive\r\nContent-Length: 11\r\n\r\n{\"ok\": [1]}",
	// A 100 Continue before the answer (the runtime sends one to a request that expects it).
	"continue": "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nhi",
	"chunked":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
	// No length: the answer ends with the connection.
	"close": "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nX-Kind: close\r\n\r\nuntil the end",
}

func startWireReplica(t *testing.T) *wireReplica {
	t.Helper()
	dir, err := os.MkdirTemp("", "wire")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &wireReplica{path: filepath.Join(dir, "r.sock"), done: make(chan struct{})}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					b, _ := io.ReadAll(req.Body)
					f.mu.Lock()
					f.seen = append(f.seen, req)
					f.body = append(f.body, string(b))
					f.mu.Unlock()
					answer := wireAnswers[req.Header.Get("X-Answer")]
					if answer == "" {
						answer = wireAnswers["plain"]
					}
					if _, err := io.WriteString(c, answer); err != nil || strings.Contains(answer, "Connection: close") {
						return
					}
				}
			}()
		}
	}()
	return f
}

func wirePool(t *testing.T, f *wireReplica) *serving.Pool {
	t.Helper()
	pool := serving.NewPool(serving.Config{Replicas: 1, MaxConcurrent: 1, MaxWait: time.Minute, ColdStart: time.Minute, Timeout: time.Minute, Refresh: time.Minute},
		func(ctx context.Context, n int) (serving.Replica, error) { return f, nil }, nil, nil)
	t.Cleanup(func() { pool.Close(context.Background()) })
	if err := pool.WaitReady(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	return pool
}

// The request a replica reads: the client's method, path, query, headers (not the hop-by-hop
// ones, the credentials or Expect) and body, whether the pool writes it itself (a body it
// kept, a plain path) or with net/http (a path to escape, a body of unknown length).
func TestRequestOnTheWire(t *testing.T) {
	f := startWireReplica(t)
	pool := wirePool(t, f)
	for i, tc := range []struct {
		method, target, path, body string
		chunked                    bool
		want                       string // the request line's target
	}{
		{"GET", "/services/ws/svc/score?a=1&b=%5B2%5D", "/score", "", false, "/score?a=1&b=%5B2%5D"},
		{"POST", "/services/ws/svc/score", "/score", `{"data": [1]}`, false, "/score"},
		{"POST", "/services/ws/svc/score?x=%20y", "/score", `{"data": [2]}`, true, "/score?x=%20y"},
		{"POST", "/services/ws/svc/v2/models/a%20b/infer", "/v2/models/a b/infer", `{}`, false, "/v2/models/a%20b/infer"},
	} {
		req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
		if tc.chunked {
			req.ContentLength = -1
		}
		req.Header.Set("Authorization", "Bearer secret")
		req.Header.Set("Expect", "100-continue")
		req.Header.Set("Connection", "keep-alive")
		req.Header.Set("X-Atelier-Ahead", "1") // (only the pool marks a request sent ahead)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Add("X-Two", "1")
		req.Header.Add("X-Two", "2")
		rec := httptest.NewRecorder()
		if res := pool.Serve(rec, req, tc.path); res.Err != nil || rec.Code != 200 {
			t.Fatalf("%d: %+v, %d", i, res, rec.Code)
		}
		f.mu.Lock()
		got, body := f.seen[len(f.seen)-1], f.body[len(f.body)-1]
		f.mu.Unlock()
		if got.Method != tc.method || got.RequestURI != tc.want || body != tc.body {
			t.Errorf("%d: the replica read %s %s %q, want %s %s %q", i, got.Method, got.RequestURI, body, tc.method, tc.want, tc.body)
		}
		for _, h := range []string{"Authorization", "Expect", "Connection", "X-Atelier-Ahead"} {
			if v := got.Header.Get(h); v != "" {
				t.Errorf("%d: %s %q was forwarded", i, h, v)
			}
		}
		if ct, two := got.Header.Get("Content-Type"), got.Header.Values("X-Two"); ct != "application/json" || len(two) != 2 || two[1] != "2" {
			t.Errorf("%d: headers %v", i, got.Header)
		}
	}
}

// The answer a client gets: the replica's status, headers (repeated ones all; not Connection)
// and body, whether the answer is plain or chunked, after a 100 Continue, or until the
// connection closes.
func TestAnswerOnTheWire(t *testing.T) {
	f := startWireReplica(t)
	pool := wirePool(t, f)
	for _, tc := range []struct {
		answer, body string
		status       int
		header       map[string][]string
	}{
		{"plain", `{"ok": [1]}`, 200, map[string][]string{"X-Multi": {"a", "b"}, "Content-Type": {"application/json"}, "Content-Length": {"11"}}},
		{"continue", "hi", 201, map[string][]string{"Content-Length": {"2"}}},
		{"chunked", "abcde", 200, map[string][]string{"X-Kind": {"chunked"}}},
		{"close", "until the end", 500, map[string][]string{"X-Kind": {"close"}}},
		{"plain", `{"ok": [1]}`, 200, map[string][]string{"X-Multi": {"a", "b"}}}, // after a connection closed
	} {
		req := httptest.NewRequest("POST", "/score", strings.NewReader(`{}`))
		req.Header.Set("X-Answer", tc.answer)
		rec := httptest.NewRecorder()
		if res := pool.Serve(rec, req, "/score"); res.Err != nil || res.Status != tc.status {
			t.Fatalf("%s: %+v", tc.answer, res)
		}
		if rec.Code != tc.status || rec.Body.String() != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.answer, rec.Code, rec.Body.String(), tc.status, tc.body)
		}
		for k, v := range tc.header {
			if got := rec.Header().Values(k); strings.Join(got, ",") != strings.Join(v, ",") {
				t.Errorf("%s: %s: %q, want %q", tc.answer, k, got, v)
			}
		}
		for _, k := range []string{"Connection", "Transfer-Encoding", "Keep-Alive"} {
			if v := rec.Header().Get(k); v != "" {
				t.Errorf("%s: %s %q passed to the client", tc.answer, k, v)
			}
		}
	}
}
