package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/service"
)

// buildBinary builds the real atelier binary once per test run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "atelier-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "atelier")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// serverProcess is a real atelier server started from the built binary.
type serverProcess struct {
	cmd    *exec.Cmd
	url    string
	client *api.Client
	log    *lockedLog
}

// lockedLog collects a process's output while the test reads it.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startServer(t testing.TB, dataDir, addr string, args ...string) *serverProcess {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	log := &lockedLog{}
	cmd := exec.Command(bin, append([]string{"server", "--data", dataDir, "--addr", addr}, args...)...)
	cmd.Stderr, cmd.Stdout = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{cmd: cmd, url: "http://" + addr, log: log}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); killRunnersUnder(dataDir) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		token, _ := service.ReadTokenFile(filepath.Join(dataDir, adminTokenFile))
		if token != "" {
			p.client = api.NewClient(p.url, token)
			if _, err := p.client.Health(context.Background()); err == nil {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestKill9KeepsAcknowledgedWrites kills the server with SIGKILL in the middle of metric
// ingestion, param and file writes, restarts it on the same data directory and checks that
// every write the server acknowledged is there, and that runs left Running were failed.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	ctx := context.Background()
	dataDir, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, dataDir, addr)
	c := srv.client

	const writers = 4
	runs := make([]*atelier.Run, writers)
	for i := range runs {
		run, err := c.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "crash", Status: atelier.StatusRunning})
		if err != nil {
			t.Fatal(err)
		}
		runs[i] = run
	}

	// Each writer logs batches of 1,000 points with consecutive steps, a param per batch and a
	// file every 10 batches, and records what was acknowledged.
	acked := make([]int, writers) // batches acknowledged
	ackedFiles := make([][]string, writers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for b := 0; ; b++ {
				select {
				case <-stop:
					return
				default:
				}
				batch := &atelier.MetricBatch{Points: make([]atelier.MetricPoint, 1000)}
				for i := range batch.Points {
					step := int64(b*1000 + i)
					batch.Points[i] = atelier.MetricPoint{Name: "loss", Step: &step, Timestamp: 1, Value: atelier.Float(step)}
				}
				if c.LogMetrics(ctx, "default", runs[w].ID, batch) != nil {
					return
				}
				if c.LogParams(ctx, "default", runs[w].ID, map[string]string{fmt.Sprintf("p%d", b): "v"}) != nil {
					return
				}
				acked[w] = b + 1
				if b%10 == 0 {
					path := fmt.Sprintf("outputs/f%d.txt", b)
					if _, err := c.UploadFile(ctx, "default", runs[w].ID, path, strings.NewReader(path), ""); err != nil {
						return
					}
					ackedFiles[w] = append(ackedFiles[w], path)
				}
			}
		}(w)
	}
	// And an MLflow client: runs/create, then a runs/log-batch per run (one transaction, the
	// request's audit entry in it): every run and batch acknowledged, with its audit entry.
	var mlflowRuns []string // acknowledged creations
	mlflowBatches := 0      // of which the first this many had their batch acknowledged
	wg.Add(1)
	go func() {
		defer wg.Done()
		token, url := srv.client.Token, srv.url
		post := func(endpoint, body string) (map[string]any, bool) {
			req, _ := http.NewRequest("POST", url+"/api/2.0/mlflow/"+endpoint, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, false
			}
			defer resp.Body.Close()
			var out map[string]any
			if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
				return nil, false
			}
			return out, true
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			out, ok := post("runs/create", `{"experiment_id":"0"}`)
			if !ok {
				return
			}
			id, _ := out["run"].(map[string]any)["info"].(map[string]any)["run_id"].(string)
			mlflowRuns = append(mlflowRuns, id)
			if _, ok := post("runs/log-batch", fmt.Sprintf(`{"run_id":%q,"params":[{"key":"i","value":"%d"}],"metrics":[{"key":"m","value":%d,"timestamp":1,"step":0}],"tags":[{"key":"t","value":"x"}]}`, id, i, i)); !ok {
				return
			}
			mlflowBatches++
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Wait()
	close(stop)
	wg.Wait()

	srv = startServer(t, dataDir, addr)
	c = srv.client
	total := 0
	for w, run := range runs {
		if acked[w] == 0 {
			t.Fatalf("writer %d got no batch acknowledged before the kill", w)
		}
		total += acked[w]
		s, err := c.MetricHistory(ctx, "default", run.ID, "loss", atelier.HistoryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if want := acked[w] * 1000; len(s.Steps) < want {
			t.Errorf("run %d: %d points after restart, %d were acknowledged", w, len(s.Steps), want)
		}
		for i := 0; i < acked[w]*1000 && i < len(s.Steps); i++ {
			if s.Steps[i] != int64(i) || float64(s.Values[i]) != float64(i) {
				t.Fatalf("run %d: point %d is (%d, %v), want (%d, %d)", w, i, s.Steps[i], s.Values[i], i, i)
			}
		}
		got, err := c.FindRun(ctx, "default", run.ID)
		if err != nil {
			t.Fatal(err)
		}
		for b := 0; b < acked[w]; b++ {
			if got.Params[fmt.Sprintf("p%d", b)] != "v" {
				t.Errorf("run %d: acknowledged param p%d is missing", w, b)
			}
		}
		// These runs are interactive (their client, not the server, runs them): a restart
		// leaves them as they were, for the client to go on with.
		if got.Status != atelier.StatusRunning || got.Error != "" {
			t.Errorf("run %d after restart: status %s, error %q; want Running, as its client left it", w, got.Status, got.Error)
		}
		for _, path := range ackedFiles[w] {
			_, rc, err := c.OpenFile(ctx, "default", run.ID, path)
			if err != nil {
				t.Errorf("run %d: acknowledged file %s: %v", w, path, err)
				continue
			}
			b := make([]byte, 100)
			n, _ := rc.Read(b)
			rc.Close()
			if string(b[:n]) != path {
				t.Errorf("run %d: file %s holds %q", w, path, b[:n])
			}
		}
	}
	audit, err := c.ListAudit(ctx, "", atelier.AuditFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	audited := map[string]int{}
	for _, e := range audit {
		if e.Status == http.StatusOK {
			audited[e.Path]++
		}
	}
	if len(mlflowRuns) == 0 || audited["/api/2.0/mlflow/runs/create"] < len(mlflowRuns) || audited["/api/2.0/mlflow/runs/log-batch"] < mlflowBatches {
		t.Errorf("MLflow: %d runs and %d batches acknowledged, audit log has %d and %d", len(mlflowRuns), mlflowBatches,
			audited["/api/2.0/mlflow/runs/create"], audited["/api/2.0/mlflow/runs/log-batch"])
	}
	for i, id := range mlflowRuns {
		run, err := c.FindRun(ctx, "default", id)
		if err != nil {
			t.Errorf("MLflow run %d (%s), acknowledged: %v", i, id, err)
			continue
		}
		if i < mlflowBatches && (run.Params["i"] != strconv.Itoa(i) || run.Tags["t"] != "x" || run.Metrics["m"] != atelier.Float(i)) {
			t.Errorf("MLflow run %d: acknowledged batch missing: params %v, tags %v, metrics %v", i, run.Params, run.Tags, run.Metrics)
		}
	}
	t.Logf("%d batches of 1,000 points and %d MLflow runs acknowledged before the kill, all present after restart", total, len(mlflowRuns))
}
