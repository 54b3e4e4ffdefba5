package mlflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The benchmarks drive the MLflow API as bench/mlflow_compare.py does over raw HTTP, against
// the real stack (SQLite in a temp directory, the service, a real listener), so a CPU profile
// of them shows where a request's time goes:
//
//	go test -run '^$' -bench . -cpuprofile /tmp/cpu.out ./mlflow/

// cpuTime is the CPU time the process (server and client goroutines) has used: on a shared
// machine it moves far less with the load than wall-clock time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per iteration since start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
}

// benchClient sends requests over one keep-alive connection.
type benchClient struct {
	s      *Stack
	client *http.Client
}

func newBenchClient(s *Stack) *benchClient {
	return &benchClient{s: s, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}}
}

func (c *benchClient) post(tb testing.TB, path string, body []byte) []byte {
	tb.Helper()
	b, err := c.send(path, body)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func (c *benchClient) send(path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(context.Background(), "POST", c.s.URL+api+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.s.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	return b, nil
}

// createBenchRun is one step of the run-creation workload: runs/create, then one small
// runs/log-batch (2 params, 2 metrics, 1 tag), as the benchmark script and MLflow's client do.
func (c *benchClient) createBenchRun(createBody []byte, i int, rmse float64) error {
	var created struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	b, err := c.send("runs/create", createBody)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &created); err != nil {
		return err
	}
	batch := fmt.Sprintf(`{"run_id":%q,"metrics":[{"key":"rmse","value":%g,"timestamp":1700000000000,"step":0},`+
		`{"key":"acc","value":0.5,"timestamp":1700000000000,"step":0}],"params":[{"key":"alpha","value":"0.%d"},`+
		`{"key":"l1_ratio","value":"%d"}],"tags":[{"key":"group","value":"g%d"}]}`, created.Run.Info.RunID, rmse, i%5, i, i%7)
	_, err = c.send("runs/log-batch", []byte(batch))
	return err
}

func benchExperiment(tb testing.TB, c *benchClient, name string) (id string, createBody []byte) {
	tb.Helper()
	var exp struct {
		ID string `json:"experiment_id"`
	}
	if err := json.Unmarshal(c.post(tb, "experiments/create", []byte(`{"name":"`+name+`"}`)), &exp); err != nil {
		tb.Fatal(err)
	}
	return exp.ID, []byte(`{"experiment_id":"` + exp.ID + `","start_time":1700000000000}`)
}

// BenchmarkRunCreation is one runs/create and one small runs/log-batch per iteration, sequential.
func BenchmarkRunCreation(b *testing.B) {
	s := MustStack(b)
	c := newBenchClient(s)
	_, createBody := benchExperiment(b, c, "bench")
	rng := rand.New(rand.NewSource(1))
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		if err := c.createBenchRun(createBody, i, rng.Float64()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
	reportCPU(b, cpu)
}

// BenchmarkSearchRuns is the search of the benchmark script: metrics.rmse < 0.5 ordered by it,
// a page of 100, over 10,000 runs (set up before the clock starts).
func BenchmarkSearchRuns(b *testing.B) {
	s := MustStack(b)
	c := newBenchClient(s)
	id, createBody := benchExperiment(b, c, "bench")
	// Populated by several clients at once, which is quicker (group commit) and not measured.
	const runs, clients = 10000, 8
	var wg sync.WaitGroup
	errs := make([]error, clients)
	for k := 0; k < clients; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newBenchClient(s)
			rng := rand.New(rand.NewSource(int64(k)))
			for i := k; i < runs && errs[k] == nil; i += clients {
				errs[k] = c.createBenchRun(createBody, i, rng.Float64())
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"experiment_ids":["` + id + `"],"filter":"metrics.rmse < 0.5","order_by":["metrics.rmse ASC"],"max_results":100,"run_view_type":"ACTIVE_ONLY"}`)
	var page struct {
		Runs []json.RawMessage `json:"runs"`
	}
	if err := json.Unmarshal(c.post(b, "runs/search", body), &page); err != nil || len(page.Runs) != 100 {
		b.Fatalf("search: %d runs, %v", len(page.Runs), err)
	}
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		c.post(b, "runs/search", body)
	}
	reportCPU(b, cpu)
}
