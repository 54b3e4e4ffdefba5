package api_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/server"
	"github.com/atelier-ml/atelier/server/servertest"
)

// Stack is a whole server as the binary wires it (package servertest): SQLite and the file
// object store in a temp directory, the service, and the API served over a real listener. No
// scheduler runs: tests that dispatch runs run one themselves.
type Stack struct {
	*servertest.Stack
	URL string // where MustDo sends requests
}

// StackOption tunes a stack before it serves.
type StackOption = servertest.Option

// WithMaxJSONBody bounds the JSON request bodies of the stack's server.
func WithMaxJSONBody(n int64) StackOption {
	return servertest.Tune(func(s *server.Server) { s.API.MaxJSONBody = n })
}

// WithLocalSocket makes the stack's server tell path as its Unix socket, as the binary does
// (MustUnixClient then listens there).
func WithLocalSocket(path string) StackOption {
	return servertest.Tune(func(s *server.Server) { s.API.LocalSocket = path })
}

// MustStack starts a server stack that is torn down when tb ends.
func MustStack(tb testing.TB, opts ...StackOption) *Stack {
	tb.Helper()
	st := servertest.New(tb, append([]StackOption{servertest.WithoutScheduler()}, opts...)...)
	return &Stack{Stack: st, URL: st.URL}
}

// MustStackLog starts a server stack whose service and API log to log.
func MustStackLog(tb testing.TB, log *slog.Logger, opts ...StackOption) *Stack {
	tb.Helper()
	return MustStack(tb, append([]StackOption{servertest.WithLog(log)}, opts...)...)
}

// MustServer starts a server stack and returns its URL, a client with the admin token, and
// the token.
func MustServer(tb testing.TB) (string, *api.Client, string) {
	tb.Helper()
	s := MustStack(tb)
	return s.URL, s.Client, s.Token
}

// Ctx returns a context that ends with the test (or after a minute, so a hang fails clearly).
func Ctx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// MustRun creates a run in the default workspace.
func MustRun(tb testing.TB, c *api.Client, create atelier.RunCreate) *atelier.Run {
	tb.Helper()
	if create.Experiment == "" && create.ParentID == "" {
		create.Experiment = "exp"
	}
	run, err := c.CreateRun(Ctx(tb), "default", create)
	if err != nil {
		tb.Fatalf("CreateRun(%+v): %v", create, err)
	}
	return run
}

// Response is a raw HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Request describes a raw HTTP request for the bad-input tests.
type Request struct {
	Method      string
	Path        string // under the server's URL, already escaped
	Body        string
	ContentType string // application/json when Body is set and this is empty
	Token       *string
	Header      map[string]string
}

// noRedirect is a client that reports redirects instead of following them, so tests see what
// the server really answered.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// MustDo sends a raw request with the admin token (unless req.Token says otherwise).
func (s *Stack) MustDo(tb testing.TB, req Request) Response {
	tb.Helper()
	var body io.Reader
	if req.Body != "" {
		body = strings.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(Ctx(tb), req.Method, s.URL+req.Path, body)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	token := s.Token
	if req.Token != nil {
		token = *req.Token
	}
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	switch {
	case req.ContentType != "":
		hr.Header.Set("Content-Type", req.ContentType)
	case req.Body != "":
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.Header {
		hr.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(hr)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading the body: %v", req.Method, req.Path, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// MustAPIError checks that resp is an error with the given status whose body is the JSON
// {"code","message"}, with a message that contains every one of want (case-insensitive).
func MustAPIError(tb testing.TB, resp Response, status int, want ...string) api.ErrorResponse {
	tb.Helper()
	var e api.ErrorResponse
	if resp.Status != status {
		tb.Errorf("status %d, want %d; body %s", resp.Status, status, resp.Body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("Content-Type %q, want application/json; body %q", ct, resp.Body)
	}
	dec := json.NewDecoder(bytes.NewReader(resp.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		tb.Errorf("error body %q is not {\"code\",\"message\"}: %v", resp.Body, err)
		return e
	}
	if e.Code == "" || e.Message == "" {
		tb.Errorf("error body %s lacks a code or a message", resp.Body)
	}
	for _, w := range want {
		if !strings.Contains(strings.ToLower(e.Message), strings.ToLower(w)) {
			tb.Errorf("message %q does not mention %q", e.Message, w)
		}
	}
	return e
}

// Sum returns the sha256 hex of b.
func Sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// MustZip builds a zip of name → content in the given order.
func MustZip(tb testing.TB, files ...[2]string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(f[0])
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := io.WriteString(w, f[1]); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// MustUnzip reads a zip into name → content.
func MustUnzip(tb testing.TB, b []byte) map[string]string {
	tb.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		tb.Fatalf("reading the zip: %v", err)
	}
	out := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			tb.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			tb.Fatal(err)
		}
		out[f.Name] = string(data)
	}
	return out
}

// MustCode checks that err is an *atelier.Error with the given code.
func MustCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := atelier.ErrorCode(err); got != code {
		tb.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func ptr[T any](v T) *T { return &v }
