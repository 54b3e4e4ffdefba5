package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/testdisk"
)

// TestDiskFull runs the real server on a data directory whose disk fills (a small tmpfs):
// every kind of write answers 507 with a message saying the server's storage is full and
// nothing was stored, through the REST API, the MLflow API and the CLI; the health check says
// degraded; the server logs the episode once, not once a request. Once space is freed, writes
// succeed again and everything stored before, and everything acknowledged, is intact.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("the full-disk test mounts a small tmpfs for the data directory, which needs root")
	}
	disk := testdisk.MustSmall(t, "4m") // unmounted after the server stops
	srv := startServer(t, filepath.Join(disk, "data"), freeAddr(t))
	c := srv.client
	ctx := context.Background()

	// What is stored before the disk fills.
	run, err := c.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "full", Status: atelier.StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	runPath := "/api/v1/workspaces/default/runs/" + run.ID
	if err := c.LogMetrics(ctx, "default", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "loss", Value: 0.5}}}); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer // the run's log as it must read back: the appends acknowledged
	appendLog := func(data []byte) (int, []byte) {
		status, body := srv.do(t, "POST", runPath+"/logs/logs/out.txt", "text/plain", data)
		if status == http.StatusNoContent {
			log.Write(data)
		}
		return status, body
	}
	if status, body := appendLog([]byte("before the disk filled\n")); status != http.StatusNoContent {
		t.Fatalf("append: %d %s", status, body)
	}
	output := bytes.Repeat([]byte("output "), 20000)
	if _, err := c.UploadFile(ctx, "default", run.ID, "outputs/model.bin", bytes.NewReader(output), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteDatastoreFile(ctx, "default", "default", "before.bin", bytes.NewReader(output), "", ""); err != nil {
		t.Fatal(err)
	}
	logBatch := func(key string, value float64) (int, []byte) {
		body, _ := json.Marshal(map[string]any{"run_id": run.ID,
			"metrics": []map[string]any{{"key": key, "value": value, "timestamp": time.Now().UnixMilli(), "step": 0}}})
		return srv.do(t, "POST", "/api/2.0/mlflow/runs/log-batch", "application/json", body)
	}
	if status, body := logBatch("acc", 0.9); status != http.StatusOK {
		t.Fatalf("MLflow log-batch: %d %s", status, body)
	}

	filler := testdisk.Fill(t, disk)
	// The database's write-ahead log may still have room: log until a write is refused.
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatalf("100 appends of 64 KiB to a full disk succeeded")
		}
		status, body := appendLog(bytes.Repeat([]byte(fmt.Sprintf("%07d\n", i)), 8<<10))
		if status != http.StatusNoContent {
			mustStorageFull(t, "log append", status, body)
			break
		}
	}
	writes := []struct {
		name, method, path, ctype string
		body                      []byte
	}{
		{"metric write", "POST", runPath + "/metrics", "application/json", []byte(`{"metrics":[{"name":"loss","value":0.25,"timestamp":1}]}`)},
		{"run create", "POST", "/api/v1/workspaces/default/runs", "application/json", []byte(`{"experiment":"full"}`)},
		{"tag", "POST", runPath + "/tags", "application/json", []byte(`{"tags":{"t":"v"}}`)},
		{"log append", "POST", runPath + "/logs/logs/out.txt", "text/plain", []byte("refused\n")},
		{"output upload", "PUT", runPath + "/files/outputs/more.bin", "application/octet-stream", output},
		{"datastore upload", "PUT", "/api/v1/workspaces/default/datastores/default/files/after.bin", "application/octet-stream", output},
	}
	for _, w := range writes {
		status, body := srv.do(t, w.method, w.path, w.ctype, w.body)
		mustStorageFull(t, w.name, status, body)
	}
	status, body := logBatch("acc", 0.1)
	if status != http.StatusInsufficientStorage || !bytes.Contains(body, []byte(`"error_code":"RESOURCE_EXHAUSTED"`)) ||
		!bytes.Contains(body, []byte("the server's storage is full")) {
		t.Errorf("MLflow log-batch on a full disk: %d %s, want 507 RESOURCE_EXHAUSTED saying the storage is full", status, body)
	}
	if h := srv.health(t); h["status"] != "degraded" || h["reason"] != "storage full" || h["storage_full_since"] == nil {
		t.Errorf("health on a full disk: %v, want status degraded, reason storage full", h)
	}

	// The CLI says so and fails.
	local := filepath.Join(t.TempDir(), "model.bin")
	if err := os.WriteFile(local, output, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"run", "log", run.ID, "loss", "0.3"}, {"run", "upload", run.ID, local},
		{"datastore", "upload", "default", local, "--target", "cli.bin"}} {
		stderr, err := srv.cli(t, args...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 || !strings.Contains(stderr, "the server's storage is full") {
			t.Errorf("atelier %s on a full disk: %v, stderr %q; want a failure saying the server's storage is full", strings.Join(args, " "), err, stderr)
		}
	}

	// Space is freed: writes succeed again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, w := range writes {
		if status, body := srv.do(t, w.method, w.path, w.ctype, w.body); status/100 != 2 {
			t.Errorf("%s after space was freed: %d %s", w.name, status, body)
		} else if w.name == "log append" {
			log.Write(w.body)
		}
	}
	if status, body := logBatch("acc", 0.8); status != http.StatusOK {
		t.Errorf("MLflow log-batch after space was freed: %d %s", status, body)
	}
	if _, err := srv.cli(t, "run", "log", run.ID, "loss", "0.125"); err != nil {
		t.Errorf("atelier run log after space was freed: %v", err)
	}
	// The episode ends at a write that stores once none has been refused for a while (10 s).
	// One write a second: the tmpfs is small, and on a loaded machine the database's
	// write-ahead log is not always checkpointed in time for ten a second to fit.
	deadline := time.Now().Add(2 * time.Minute)
	for srv.health(t)["status"] != "ok" {
		if time.Now().After(deadline) {
			t.Fatalf("health still %v two minutes after space was freed", srv.health(t))
		}
		time.Sleep(time.Second)
		if err := c.SetTags(ctx, "default", run.ID, map[string]string{"after": "yes"}); err != nil {
			t.Fatal(err)
		}
	}

	// Everything stored before, and everything acknowledged, is there.
	chunk, err := c.ReadLog(ctx, "default", run.ID, "logs/out.txt", 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(chunk.Data, log.Bytes()) {
		t.Errorf("the log holds %d bytes, want the %d acknowledged", len(chunk.Data), log.Len())
	}
	s, err := c.MetricHistory(ctx, "default", run.ID, "loss", atelier.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(s.Values) != "[0.5 0.25 0.125]" {
		t.Errorf("loss: %v, want [0.5 0.25 0.125]", s.Values)
	}
	if s, err := c.MetricHistory(ctx, "default", run.ID, "acc", atelier.HistoryQuery{}); err != nil || fmt.Sprint(s.Values) != "[0.9 0.8]" {
		t.Errorf("acc (logged through MLflow): %v, %v; want [0.9 0.8]", s, err)
	}
	for _, path := range []string{"outputs/model.bin", "outputs/more.bin"} {
		if got := readAll(t, func() (io.ReadCloser, error) { _, rc, err := c.OpenFile(ctx, "default", run.ID, path); return rc, err }); !bytes.Equal(got, output) {
			t.Errorf("%s: %d bytes, want the %d uploaded", path, len(got), len(output))
		}
	}
	for _, path := range []string{"before.bin", "after.bin"} {
		if got := readAll(t, func() (io.ReadCloser, error) {
			_, rc, err := c.OpenDatastoreFile(ctx, "default", "default", path)
			return rc, err
		}); !bytes.Equal(got, output) {
			t.Errorf("datastore file %s: %d bytes, want the %d uploaded", path, len(got), len(output))
		}
	}
	page, err := c.ListDatastoreFiles(ctx, "default", "default", atelier.DatastoreFileQuery{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Files) != 2 {
		t.Errorf("the built-in datastore lists %d files, want before.bin and after.bin (nothing of the refused uploads)", len(page.Files))
	}

	// One episode, logged once when it began and once when it ended; no request of it logged
	// as an error.
	srv.stop(t)
	out := srv.log.String()
	if n := strings.Count(out, `msg="the server's storage is full`); n != 1 {
		t.Errorf("the server logged the full disk %d times, want once:\n%s", n, out)
	}
	errorsOfIt := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "level=ERROR") && (strings.Contains(line, "storage is full") || strings.Contains(line, "disk is full") ||
			strings.Contains(line, "no space left")) {
			errorsOfIt++
		}
	}
	if errorsOfIt != 1 {
		t.Errorf("the server logged %d errors of the full disk, want 1:\n%s", errorsOfIt, out)
	}
	if n := strings.Count(out, `msg="the server's storage is no longer full`); n != 1 {
		t.Errorf("the server logged the recovery %d times, want once:\n%s", n, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "level=ERROR") && strings.Contains(line, "status=507") {
			t.Errorf("a refused request logged as an error: %s", line)
		}
	}
}

// mustStorageFull checks a refused write's answer: 507, code storage_full and a message saying
// the server's storage is full and nothing was stored.
func mustStorageFull(t *testing.T, what string, status int, body []byte) {
	t.Helper()
	var e struct{ Code, Message string }
	json.Unmarshal(body, &e)
	if status != http.StatusInsufficientStorage || e.Code != atelier.ENOSPACE ||
		!strings.Contains(e.Message, "the server's storage is full") || !strings.Contains(e.Message, "nothing was stored") {
		t.Errorf("%s on a full disk: %d %s, want 507 storage_full saying the server's storage is full and nothing was stored", what, status, body)
	}
}

// do sends a request with the administrator's token and returns the status and body.
func (p *serverProcess) do(t *testing.T, method, path, ctype string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, p.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.client.Token)
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// health returns the health check's answer, which must be 200.
func (p *serverProcess) health(t *testing.T) map[string]any {
	t.Helper()
	status, body := p.do(t, "GET", "/api/v1/health", "", nil)
	var h map[string]any
	if err := json.Unmarshal(body, &h); err != nil || status != http.StatusOK {
		t.Fatalf("health: %d %s", status, body)
	}
	return h
}

// cli runs the atelier binary against the server, as a user would, and returns its stderr.
func (p *serverProcess) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "ATELIER_SERVER="+p.url, "ATELIER_TOKEN="+p.client.Token, "HOME="+cmd.Dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	return stderr.String(), err
}

// stop ends the server (so its log can be read).
func (p *serverProcess) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
}

func readAll(t *testing.T, open func() (io.ReadCloser, error)) []byte {
	t.Helper()
	rc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
