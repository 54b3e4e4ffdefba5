// Command bench measures the workspace server against the goals of its issues, through the
// REST API of a real server process, and prints a markdown table for docs/benchmarks.md.
//
//	go run ./bench -bin bin/atelier [-only ingest,series,search,create,model,durable]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/service"
)

type result struct {
	name, goal, measured string
	met                  bool
}

func main() {
	bin := flag.String("bin", "bin/atelier", "the atelier binary")
	only := flag.String("only", "", "comma-separated subset: ingest,series,search,create,model,durable")
	dur := flag.Duration("duration", 10*time.Second, "how long the throughput benchmarks run")
	searchRuns := flag.Int("search-runs", 100000, "runs created for the search benchmark")
	modelRepeat := flag.Int("model-repeat", 5, "registrations of each local model folder (the spread is reported)")
	durableRuns := flag.Int("durable-runs", 100, "running runs the restart benchmark recovers")
	flag.Parse()
	want := func(name string) bool { return *only == "" || strings.Contains(","+*only+",", ","+name+",") }

	srv, err := start(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer srv.stop()
	ctx := context.Background()
	var results []result
	if want("ingest") {
		results = append(results, benchIngest(ctx, srv, *dur))
	}
	if want("series") {
		results = append(results, benchSeries(ctx, srv)...)
	}
	if want("create") {
		results = append(results, benchCreate(ctx, srv, *dur))
	}
	if want("search") {
		results = append(results, benchSearch(ctx, srv, *searchRuns))
	}
	if want("model") {
		results = append(results, benchModelUpload(ctx, *bin, *modelRepeat)...)
	}
	if want("durable") {
		results = append(results, benchDurable(ctx, *bin, *durableRuns)...)
	}
	fmt.Printf("\nMachine: %s, %d cores, %s; server and load generator on the same host.\n\n", cpuModel(), runtime.NumCPU(), runtime.Version())
	fmt.Println("| benchmark | goal | measured | met |")
	fmt.Println("|---|---|---|---|")
	for _, r := range results {
		met := "no"
		if r.met {
			met = "yes"
		}
		fmt.Printf("| %s | %s | %s | %s |\n", r.name, r.goal, r.measured, met)
	}
}

type server struct {
	cmd    *exec.Cmd
	url    string
	token  string
	client *api.Client
	dir    string
}

func start(bin string) (*server, error) {
	dir, err := os.MkdirTemp("", "atelier-bench-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "server", "--data", dir, "--addr", addr, "--log-level", "warn", "--debug-addr", os.Getenv("BENCH_PPROF"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, url: "http://" + addr, dir: dir}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s.token, _ = service.ReadTokenFile(filepath.Join(dir, "admin-token")); s.token == "" {
			continue
		}
		s.client = api.NewClient(s.url, s.token)
		s.client.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		if _, err := s.client.Health(context.Background()); err == nil {
			return s, nil
		}
	}
	cmd.Process.Kill()
	return nil, fmt.Errorf("the server did not start")
}

func (s *server) stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
	os.RemoveAll(s.dir)
}

// post sends a prepared JSON body, as a client that already encoded its batch would.
func (s *server) post(ctx context.Context, path string, body []byte) error {
	req, _ := http.NewRequestWithContext(ctx, "POST", s.url+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("POST %s: %s", path, resp.Status)
	}
	return nil
}

// batchBody encodes a batch the way a fast client would (appending, no reflection).
func batchBody(name string, first int64, n int) []byte {
	b := make([]byte, 0, n*72)
	b = append(b, `{"metrics":[`...)
	ts := time.Now().UnixMilli()
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":"`...)
		b = append(b, name...)
		b = append(b, `","step":`...)
		b = strconv.AppendInt(b, first+int64(i), 10)
		b = append(b, `,"timestamp":`...)
		b = strconv.AppendInt(b, ts+int64(i), 10)
		b = append(b, `,"value":`...)
		b = strconv.AppendFloat(b, 0.5+float64(i%997)/1000, 'g', -1, 64)
		b = append(b, '}')
	}
	return append(b, `]}`...)
}

func mustRun(ctx context.Context, s *server, exp string) *atelier.Run {
	run, err := s.client.CreateRun(ctx, "default", atelier.RunCreate{Experiment: exp, Status: atelier.StatusRunning})
	if err != nil {
		panic(err)
	}
	return run
}

// benchIngest: 4 writers, batches of 1,000 points, each to its own run, for dur.
func benchIngest(ctx context.Context, s *server, dur time.Duration) result {
	const writers, batch = 4, 1000
	var points atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(dur)
	start := time.Now()
	for w := 0; w < writers; w++ {
		run := mustRun(ctx, s, "bench-ingest")
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/api/v1/workspaces/default/runs/" + run.ID + "/metrics"
			for step := int64(0); time.Now().Before(deadline); step += batch {
				// Bodies are encoded ahead of the clock's concern: a real client encodes as it logs.
				if err := s.post(ctx, path, batchBody("loss", step, batch)); err != nil {
					panic(err)
				}
				points.Add(batch)
			}
		}()
	}
	wg.Wait()
	rate := float64(points.Load()) / time.Since(start).Seconds()
	return result{"metric ingestion, batch endpoint, 4 writers × 1,000-point batches", "≥ 1,000,000 points/s",
		fmt.Sprintf("%.0f points/s", rate), rate >= 1e6}
}

func benchSeries(ctx context.Context, s *server) []result {
	run := mustRun(ctx, s, "bench-series")
	path := "/api/v1/workspaces/default/runs/" + run.ID + "/metrics"
	for step := int64(0); step < 1_000_000; step += 10000 {
		if err := s.post(ctx, path, batchBody("loss", step, 10000)); err != nil {
			panic(err)
		}
	}
	read := func(query string) time.Duration {
		var times []time.Duration
		for i := 0; i < 7; i++ {
			req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/api/v1/workspaces/default/runs/"+run.ID+"/metric-history?name=loss"+query, nil)
			req.Header.Set("Authorization", "Bearer "+s.token)
			t0 := time.Now()
			resp, err := s.client.HTTP.Do(req)
			if err != nil {
				panic(err)
			}
			var series atelier.Series
			if query == "" {
				io.Copy(io.Discard, resp.Body)
			} else if err := json.NewDecoder(resp.Body).Decode(&series); err != nil {
				panic(err)
			}
			resp.Body.Close()
			times = append(times, time.Since(t0))
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		return times[len(times)/2]
	}
	full := read("")
	down := read("&max_points=1000")
	return []result{
		{"1,000,000-point series, full read (median of 7, response read whole)", "< 300 ms", full.Round(time.Millisecond).String(), full < 300*time.Millisecond},
		{"1,000,000-point series, downsampled to 1,000 points (median of 7)", "< 20 ms", down.Round(100 * time.Microsecond).String(), down < 20*time.Millisecond},
	}
}

// benchCreate: 8 concurrent clients creating runs for dur.
func benchCreate(ctx context.Context, s *server, dur time.Duration) result {
	var n atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(dur)
	start := time.Now()
	body := []byte(`{"experiment":"bench-create","status":"Running"}`)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := s.post(ctx, "/api/v1/workspaces/default/runs", body); err != nil {
					panic(err)
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	rate := float64(n.Load()) / time.Since(start).Seconds()
	return result{"run creation, 8 concurrent clients", "≥ 5,000 runs/s", fmt.Sprintf("%.0f runs/s", rate), rate >= 5000}
}

// benchSearch: n runs with a metric and params, then a search with a metric filter, a param
// filter and ordering by the metric, first page of 100.
func benchSearch(ctx context.Context, s *server, n int) result {
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				body := fmt.Sprintf(`{"experiment":"bench-search","status":"Running","params":{"alpha":"%g","seed":"%d"},"tags":{"team":"%s"}}`,
					[]float64{0.01, 0.1, 1, 10}[i%4], i, []string{"vision", "nlp"}[i%2])
				req, _ := http.NewRequestWithContext(ctx, "POST", s.url+"/api/v1/workspaces/default/runs", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+s.token)
				resp, err := s.client.HTTP.Do(req)
				if err != nil {
					panic(err)
				}
				var run atelier.Run
				json.NewDecoder(resp.Body).Decode(&run)
				resp.Body.Close()
				m := fmt.Sprintf(`{"metrics":[{"name":"rmse","step":0,"timestamp":1,"value":%g},{"name":"r2","step":0,"timestamp":1,"value":%g}]}`,
					40+float64((i*7919)%10000)/200, float64(i%100)/100)
				if err := s.post(ctx, "/api/v1/workspaces/default/runs/"+run.ID+"/metrics", []byte(m)); err != nil {
					panic(err)
				}
			}
		}()
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	fmt.Fprintf(os.Stderr, "created %d runs with metrics in %s\n", n, time.Since(t0).Round(time.Millisecond))
	q := atelier.RunQuery{Experiment: "bench-search", Filter: "metrics.rmse < 60 and params.alpha = '0.1'", OrderBy: "metrics.rmse asc", Limit: 100}
	var times []time.Duration
	for i := 0; i < 9; i++ {
		t0 := time.Now()
		page, err := s.client.ListRuns(ctx, "default", q)
		if err != nil {
			panic(err)
		}
		times = append(times, time.Since(t0))
		if len(page.Runs) != 100 {
			panic(fmt.Sprintf("search returned %d runs", len(page.Runs)))
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	med := times[len(times)/2]
	return result{fmt.Sprintf("run search over %d runs: metric + param filter, order by metric, first 100 (median of 9)", n),
		"< 50 ms", med.Round(100 * time.Microsecond).String(), med < 50*time.Millisecond}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			_, v, _ := strings.Cut(line, ":")
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
