package mlflow_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/server/servertest"
	"github.com/atelier-ml/atelier/service"
)

// Stack is the real server stack, wired by package server as the binary wires it (servertest),
// in a temporary data directory; the MLflow API is served at URL.
type Stack struct {
	URL     string
	Service *service.Service
	Store   atelier.Store // the service's store, for what only the store does (model references)
	Token   string
	Dir     string // the data directory
}

// MustStack starts a stack that is torn down when tb ends.
func MustStack(tb testing.TB) *Stack {
	tb.Helper()
	st := servertest.New(tb)
	return &Stack{URL: st.URL, Service: st.Service, Store: st.DB, Token: st.Token, Dir: st.Dir}
}

// Response is a raw answer.
type Response struct {
	Status int
	Body   []byte
}

// JSON decodes the body.
func (r Response) JSON(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		tb.Fatalf("body %q is not a JSON object: %v", r.Body, err)
	}
	return m
}

// Do sends a request with the admin token; body is sent as is (JSON for POST).
func (s *Stack) Do(tb testing.TB, method, path, body string) Response {
	tb.Helper()
	return s.DoAuth(tb, method, path, body, "Bearer "+s.Token)
}

// DoAuth sends a request with the given Authorization header (none when empty).
func (s *Stack) DoAuth(tb testing.TB, method, path, body, auth string) Response {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Body: b}
}

// MustOK sends a request that must succeed and returns its JSON body.
func (s *Stack) MustOK(tb testing.TB, method, path, body string) map[string]any {
	tb.Helper()
	r := s.Do(tb, method, path, body)
	if r.Status != http.StatusOK {
		tb.Fatalf("%s %s %s: status %d: %s", method, path, body, r.Status, r.Body)
	}
	return r.JSON(tb)
}

// MustError checks that resp is MLflow's error with the given status and error code.
func MustError(tb testing.TB, r Response, status int, code string) {
	tb.Helper()
	var e struct {
		ErrorCode string `json:"error_code"`
		Message   string `json:"message"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil {
		tb.Fatalf("error body %q is not {error_code, message}: %v", r.Body, err)
	}
	if r.Status != status || e.ErrorCode != code || e.Message == "" {
		tb.Fatalf("got %d %s (%q), want %d %s", r.Status, e.ErrorCode, e.Message, status, code)
	}
}

func base64Encode(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// authCtx is a context carrying the administrator, for calling the service directly.
func authCtx(tb testing.TB, s *Stack) context.Context {
	tb.Helper()
	p, err := s.Service.Authenticate(context.Background(), s.Token)
	if err != nil {
		tb.Fatal(err)
	}
	return atelier.NewContextWithPrincipal(context.Background(), p)
}
