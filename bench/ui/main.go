// Command ui measures the studio (the web UI) in a real headless Chromium against a real server
// process, for the goals of issue 22, and prints a markdown table for docs/benchmarks.md:
//
//   - the runs table over N runs with a metric filter and an order: the server's time (its
//     Server-Timing header) and the browser's (navigation start to the load event);
//
//   - a run page with 10 metrics of 1,000,000 points each: navigation start to every chart drawn,
//     and a zoom (the window read again and redrawn);
//
//   - a log of 1,000,000 lines: the page open at its end, and the delay of a followed line.
//
//   - with -mlflow-python, the MLflow UI on the same data in the same browser (mlflow.go,
//     mlflow_server.py): its runs table with the same filter and order, and the big run's charts.
//
//     go build -o bin/atelier ./cmd/atelier && go run ./bench/ui -bin bin/atelier [-runs 100000] [-mlflow-python ~/.cache/atelier-bench/mlflow/bin/python]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/service"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

func main() {
	bin := flag.String("bin", "bin/atelier", "the atelier binary")
	nruns := flag.Int("runs", 100000, "runs in the runs table")
	points := flag.Int("points", 1_000_000, "points of each of the run page's 10 metrics")
	lines := flag.Int("lines", 1_000_000, "lines of the big log")
	chromium := flag.String("chromium", "chromium", "the Chromium binary")
	mlflowPy := flag.String("mlflow-python", "", "a python with mlflow: also measure the MLflow UI (mlflow server, bench/ui/mlflow_server.py) on the same data in the same browser (bench/scoring makes one: ~/.cache/atelier-bench/mlflow/bin/python)")
	mlflowPoints := flag.Int("mlflow-points", 0, "points of each of the MLflow run's 10 metrics (0: -points)")
	flag.Parse()
	if *mlflowPoints == 0 {
		*mlflowPoints = *points
	}
	if err := run(*bin, *chromium, *nruns, *points, *lines, *mlflowPy, *mlflowPoints); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type server struct {
	cmd    *exec.Cmd
	url    string
	dir    string
	token  string
	client *api.Client
}

func start(bin string) (*server, error) {
	dir, err := os.MkdirTemp("", "atelier-bench-ui-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "server", "--data", dir, "--addr", addr, "--log-level", "warn")
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

func (s *server) post(ctx context.Context, path string, body []byte) error {
	req, _ := http.NewRequestWithContext(ctx, "POST", s.url+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("POST %s: %s", path, resp.Status)
	}
	return nil
}

// createRuns makes n runs with params, tags and two metrics, as bench's search benchmark does.
func createRuns(ctx context.Context, s *server, n int) error {
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r, err := s.client.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "bench-ui", Name: fmt.Sprintf("run-%06d", i), Status: atelier.StatusRunning,
					Params: map[string]string{"alpha": fmt.Sprint([]float64{0.01, 0.1, 1, 10}[i%4]), "seed": fmt.Sprint(i)}, Tags: map[string]string{"team": []string{"vision", "nlp"}[i%2]}})
				if err != nil {
					errs <- err
					return
				}
				m := fmt.Sprintf(`{"metrics":[{"name":"rmse","step":0,"timestamp":1,"value":%g},{"name":"r2","step":0,"timestamp":1,"value":%g}]}`,
					40+float64((i*7919)%10000)/200, float64(i%100)/100)
				if err := s.post(ctx, "/api/v1/workspaces/default/runs/"+r.ID+"/metrics", []byte(m)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case work <- i:
		case err := <-errs:
			close(work)
			return err
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// bigRun makes a run with 10 metrics of n points (each with a spike) and a log of lines lines.
func bigRun(ctx context.Context, s *server, n, lines int) (*atelier.Run, error) {
	r, err := s.client.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "bench-ui-big", Name: "big", Status: atelier.StatusRunning})
	if err != nil {
		return nil, err
	}
	const batch = 100_000
	var b bytes.Buffer
	for m := 0; m < 10; m++ {
		for from := 0; from < n; from += batch {
			b.Reset()
			b.WriteString(`{"metrics":[`)
			for i := from; i < min(n, from+batch); i++ {
				if i > from {
					b.WriteByte(',')
				}
				v := float64(i%1000) / 1000
				if i == n/3 {
					v = 100
				}
				fmt.Fprintf(&b, `{"name":"m%d","step":%d,"timestamp":%d,"value":%g}`, m, i, 1_700_000_000_000+int64(i), v)
			}
			b.WriteString(`]}`)
			if err := s.post(ctx, "/api/v1/workspaces/default/runs/"+r.ID+"/metrics", b.Bytes()); err != nil {
				return nil, err
			}
		}
	}
	b.Reset()
	for i := 0; i < lines; i++ {
		fmt.Fprintf(&b, "step %d: loss=%.4f accuracy=%.4f\n", i, 1/float64(i+1), float64(i%1000)/1000)
		if b.Len() > 4<<20 || i == lines-1 {
			if err := s.client.AppendLog(ctx, "default", r.ID, "logs/std_log.txt", b.Bytes()); err != nil {
				return nil, err
			}
			b.Reset()
		}
	}
	return r, nil
}

type timing struct {
	Server float64 `json:"server"` // the Server-Timing app duration, ms
	Ready  float64 `json:"ready"`  // navigation start to the load event's end, ms
}

const navTiming = `(() => { const n = performance.getEntriesByType("navigation")[0]; const st = (n.serverTiming || []).find(e => e.name === "app"); return {server: st ? st.duration : -1, ready: n.loadEventEnd}; })()`

func spread(xs []float64) string {
	sort.Float64s(xs)
	return fmt.Sprintf("%.1f ms (%.1f–%.1f)", xs[len(xs)/2], xs[0], xs[len(xs)-1])
}

func run(bin, chromium string, nruns, npoints, nlines int, mlflowPy string, mlflowPoints int) error {
	ctx := context.Background()
	var ml *mlflowServer
	if mlflowPy != "" {
		// Filled while atelier is filled and measured.
		var err error
		if ml, err = startMLflow(mlflowPy, nruns, mlflowPoints); err != nil {
			return err
		}
		defer ml.stop()
	}
	s, err := start(bin)
	if err != nil {
		return err
	}
	defer s.stop()
	t0 := time.Now()
	if err := createRuns(ctx, s, nruns); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "created %d runs in %s\n", nruns, time.Since(t0).Round(time.Second))
	t0 = time.Now()
	big, err := bigRun(ctx, s, npoints, nlines)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "logged 10 × %d points and %d log lines in %s\n", npoints, nlines, time.Since(t0).Round(time.Second))

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Run(bctx); err != nil { // starts the browser, for as long as bctx lives
		return fmt.Errorf("starting %s: %w", chromium, err)
	}
	do := func(what string, actions ...chromedp.Action) error {
		c, cancel := context.WithTimeout(bctx, 2*time.Minute)
		defer cancel()
		if err := chromedp.Run(c, actions...); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	// Log in with the administrator's token, as a user pastes one.
	if err := do("logging in", chromedp.Navigate(s.url+"/login"), chromedp.WaitVisible("#token", chromedp.ByQuery),
		chromedp.SendKeys("#token", s.token, chromedp.ByQuery), chromedp.Click("#login-submit", chromedp.ByQuery),
		chromedp.WaitVisible("#logout", chromedp.ByQuery)); err != nil {
		return err
	}

	var rows [][3]string
	// The runs table: filter and order by a metric, first page of 50; warm once, then 9 times.
	filter := "metrics.rmse < 60 and params.alpha = '0.1'"
	q := url.Values{"filter": {filter}, "order": {"metrics.rmse asc"}, "cols": {"metrics.rmse,metrics.r2,params.alpha"}}
	tableURL := s.url + "/w/default/experiments/bench-ui?" + q.Encode()
	var serverMs, readyMs []float64
	for i := 0; i < 10; i++ {
		var tm timing
		var n int
		if err := do("the runs table", chromedp.Navigate(tableURL), chromedp.WaitVisible("#runs-table", chromedp.ByQuery),
			chromedp.Poll(`performance.getEntriesByType("navigation")[0].loadEventEnd > 0`, nil),
			chromedp.Evaluate(navTiming, &tm), chromedp.Evaluate(`document.querySelectorAll("#runs-table tbody tr[data-run-id]").length`, &n)); err != nil {
			return err
		}
		if n != 50 {
			return fmt.Errorf("the runs table shows %d runs, want 50", n)
		}
		if i > 0 {
			serverMs, readyMs = append(serverMs, tm.Server), append(readyMs, tm.Ready)
		}
	}
	rows = append(rows, [3]string{fmt.Sprintf("runs table over %d runs, `metrics.rmse < 60 and params.alpha = '0.1'` ordered by `metrics.rmse asc`, page of 50: server time (median of 9, min–max)", nruns), "< 50 ms", spread(serverMs)},
		[3]string{"the same page in the browser: navigation start to the load event", "< 300 ms", spread(readyMs)})

	// The live read of the table's cells (what the page polls every 3 s while runs on it are
	// active): the page's 50 runs with its three columns, from the browser; warm once, then 9.
	var liveMs []float64
	for i := 0; i < 10; i++ {
		var ms float64
		if err := do("the live cells", chromedp.Evaluate(`(async () => {
			const t = document.getElementById("runs-table"), q = new URLSearchParams();
			t.querySelectorAll("tbody tr[data-run-id]").forEach(r => q.append("run", r.dataset.runId));
			q.set("cols", t.dataset.cols);
			const t0 = performance.now();
			const d = await (await fetch("/w/default/runs/live?" + q)).json();
			if (d.runs.length !== 50) throw new Error("the live read answered " + d.runs.length + " runs");
			return performance.now() - t0;
		})()`, &ms, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) })); err != nil {
			return err
		}
		if i > 0 {
			liveMs = append(liveMs, ms)
		}
	}
	rows = append(rows, [3]string{"the runs table's live read of its 50 runs' status and 3 columns (one request, polled every 3 s while a run on the page is active): fetch to JSON in the browser (median of 9)", "(no goal)", spread(liveMs)})

	// The run page: 10 charts of 1,000,000 points each, downsampled by the server.
	runURL := s.url + "/w/default/runs/" + big.ID
	var chartMs, zoomMs, logReady []float64
	for i := 0; i < 6; i++ {
		var res struct {
			Charts float64 `json:"charts"`
			Ready  float64 `json:"ready"`
			Points int     `json:"points"`
		}
		if err := do("the run page", chromedp.Navigate(runURL),
			chromedp.Poll(`document.body.getAttribute("data-charts-ready") === "1"`, nil, chromedp.WithPollingInterval(5*time.Millisecond)),
			chromedp.Evaluate(`({charts: performance.now(), ready: performance.getEntriesByType("navigation")[0].loadEventEnd, points: atelier.charts["m0"].u.data[0].length})`, &res)); err != nil {
			return err
		}
		var zoom float64
		if err := do("a zoom", chromedp.Evaluate(fmt.Sprintf(`atelier.charts["m3"].zoomMs = undefined, atelier.charts["m3"].zoom(%d, %d), true`, npoints/3, npoints/3+499), nil),
			chromedp.Poll(`atelier.charts["m3"].zoomMs !== undefined && atelier.charts["m3"].u.data[0].length === 500`, nil, chromedp.WithPollingInterval(5*time.Millisecond)),
			chromedp.Evaluate(`atelier.charts["m3"].zoomMs`, &zoom)); err != nil {
			return err
		}
		if i > 0 {
			chartMs, zoomMs, logReady = append(chartMs, res.Charts), append(zoomMs, zoom), append(logReady, res.Ready)
		}
		if i == 0 {
			fmt.Fprintf(os.Stderr, "each chart draws %d points\n", res.Points)
		}
	}
	rows = append(rows, [3]string{fmt.Sprintf("run page with 10 metrics of %d points (charts downsampled by the server, spikes kept): navigation start to every chart drawn (median of 5)", npoints), "< 500 ms", spread(chartMs)},
		[3]string{"a zoom into 500 steps of one of them: the window read again at full detail and redrawn (median of 5)", "< 150 ms", spread(zoomMs)},
		[3]string{fmt.Sprintf("the same page opens its log of %d lines at its end (the last 64 KiB, server-rendered): navigation start to the load event", nlines), "< 300 ms", spread(logReady)})

	// A followed line: appended over the API, seen in the page.
	var delays []float64
	for i := 0; i < 5; i++ {
		line := fmt.Sprintf("followed line %d", i)
		t0 := time.Now()
		if err := s.client.AppendLog(ctx, "default", big.ID, "logs/std_log.txt", []byte(line+"\n")); err != nil {
			return err
		}
		if err := do("a followed line", chromedp.Poll(fmt.Sprintf(`document.getElementById("log").textContent.includes(%q)`, line), nil,
			chromedp.WithPollingInterval(5*time.Millisecond))); err != nil {
			return err
		}
		delays = append(delays, float64(time.Since(t0).Microseconds())/1000)
	}
	rows = append(rows, [3]string{"a line appended to the followed log, until the page shows it (median of 5)", "< 1 s", spread(delays)})

	for _, r := range rows {
		fmt.Fprintf(os.Stderr, "atelier: %s: %s\n", r[0], r[2])
	}
	if ml != nil {
		fmt.Fprintln(os.Stderr, "waiting for mlflow server to be filled")
		if err := ml.wait(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "mlflow %s filled in %.0f s (ready %.0f s after it started)\n", ml.info.Version, ml.info.FillSeconds, ml.info.readySeconds)
		mrows := measureMLflow(bctx, ml, filter)
		rows = append(rows, mrows...)
	}

	fmt.Println("| measure | goal | measured |")
	fmt.Println("|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s |\n", r[0], r[1], r[2])
	}
	b, _ := json.Marshal(rows)
	fmt.Fprintln(os.Stderr, string(b))
	return nil
}
