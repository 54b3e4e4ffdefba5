package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier/server"
	"github.com/atelier-ml/atelier/server/servertest"
)

// A server serves REST, MLflow and its socket while it runs, pprof only on its own address,
// and stops as one: Run returns once every part stopped, the address file and socket go.
func TestRunStopsTogether(t *testing.T) {
	dir := t.TempDir()
	debug := freeAddr(t)
	srv, err := server.New(t.Context(), server.Config{DataDir: dir, Addr: "127.0.0.1:0", Socket: "auto", DebugAddr: debug})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.AdminToken == "" {
		t.Error("a new server made no administrator token")
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	if got := get(t, srv.URL+"/api/v1/health"); got != http.StatusOK {
		t.Errorf("GET /api/v1/health = %d", got)
	}
	if got := get(t, srv.URL+"/api/2.0/mlflow/experiments/search"); got != http.StatusUnauthorized {
		t.Errorf("MLflow without a token = %d, want 401 from the MLflow door", got)
	}
	if got := get(t, srv.URL+"/debug/pprof/"); got != http.StatusNotFound && got != http.StatusUnauthorized {
		t.Errorf("pprof on the front doors' listener = %d", got)
	}
	if got := waitGet(t, "http://"+debug+"/debug/pprof/"); got != http.StatusOK {
		t.Errorf("pprof on --debug-addr = %d", got)
	}
	if b, err := os.ReadFile(filepath.Join(dir, server.URLFile)); err != nil || strings.TrimSpace(string(b)) != srv.URL {
		t.Errorf("server-url while running = %q, %v; want %s", b, err, srv.URL)
	}
	if _, err := os.Stat(srv.Socket); err != nil {
		t.Errorf("the socket while running: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, err := os.Stat(filepath.Join(dir, server.URLFile)); !os.IsNotExist(err) {
		t.Errorf("server-url after the stop: %v, want gone", err)
	}
	if _, err := os.Stat(srv.Socket); !os.IsNotExist(err) {
		t.Errorf("the socket after the stop: %v, want gone", err)
	}
	if _, err := http.Get("http://" + debug + "/debug/pprof/"); err == nil {
		t.Error("pprof still serves after the stop")
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

// A busy address fails New before anything is made, naming the flag to change.
func TestBusyAddressTouchesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := filepath.Join(t.TempDir(), "data")
	_, err = server.New(t.Context(), server.Config{DataDir: dir, Addr: ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "--addr") {
		t.Fatalf("New on a busy address = %v, want an error naming --addr", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the data directory after a failed listen: %v, want none", err)
	}
}

// A stack started again over the same store keeps its administrator token.
func TestStackRestart(t *testing.T) {
	first := servertest.New(t)
	first.Close()
	again := servertest.New(t, servertest.WithDir(first.Dir))
	if again.Token != first.Token || again.Token == "" {
		t.Fatalf("token after a restart = %q, want the first one", again.Token)
	}
	if _, err := again.Client.ListWorkspaces(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitGet gets url once something listens there.
func waitGet(t *testing.T, url string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return resp.StatusCode
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
