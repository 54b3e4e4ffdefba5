package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// One clock and one id generator for the whole stack: a server given them stamps what MLflow
// logs without a timestamp and what the store creates with that time, and names runs with
// those ids.
func TestOneClock(t *testing.T) {
	pinned := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	var n atomic.Int64
	st := servertest.New(t, servertest.WithConfig(func(c *server.Config) {
		c.Clock = func() time.Time { return pinned }
		c.NewID = func() string { return fmt.Sprintf("%032x", 0xa7e1000+n.Add(1)) }
	}))
	post := func(path, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("POST", st.URL+"/api/2.0/mlflow/"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+st.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %v %v", path, resp.StatusCode, out, err)
		}
		return out
	}
	run := post("runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)
	id := run["run_id"].(string)
	if !strings.HasPrefix(id, "0000000000000000000000000a7e10") {
		t.Errorf("run id %s is not from the server's id generator", id)
	}
	if got := run["start_time"]; got != fmt.Sprint(pinned.UnixMilli()) && got != float64(pinned.UnixMilli()) {
		t.Errorf("start_time %v, want the pinned clock's %d", got, pinned.UnixMilli())
	}
	post("runs/log-metric", `{"run_id":"`+id+`","key":"loss","value":1.5}`)
	req, _ := http.NewRequest("GET", st.URL+"/api/2.0/mlflow/metrics/get-history?run_id="+id+"&metric_key=loss", nil)
	req.Header.Set("Authorization", "Bearer "+st.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var hist struct {
		Metrics []struct{ Timestamp json.Number } `json:"metrics"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&hist); err != nil || len(hist.Metrics) != 1 {
		t.Fatalf("history: %+v %v", hist, err)
	}
	if ts, _ := hist.Metrics[0].Timestamp.Int64(); ts != pinned.UnixMilli() {
		t.Errorf("a metric logged without a timestamp is stamped %d, want the pinned clock's %d", ts, pinned.UnixMilli())
	}
}
