package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// mlflowServer is `mlflow server` run by mlflow_server.py, filled with the data atelier gets.
type mlflowServer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	info  mlflowInfo
}

type mlflowInfo struct {
	URL          string  `json:"url"`
	Version      string  `json:"version"`
	Experiment   string  `json:"experiment_id"`
	BigExp       string  `json:"big_experiment_id"`
	BigRun       string  `json:"big_run_id"`
	FillSeconds  float64 `json:"fill_seconds"`
	startedAt    time.Time
	readySeconds float64
}

// startMLflow starts mlflow_server.py with the python given; it fills the server while atelier
// is filled and measured, and says when it is ready (wait).
func startMLflow(python string, nruns, npoints int) (*mlflowServer, error) {
	script := filepath.Join("bench", "ui", "mlflow_server.py")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("run bench/ui from the repository's root: %w", err)
	}
	cmd := exec.Command(python, script, "--runs", strconv.Itoa(nruns), "--points", strconv.Itoa(npoints))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (a python with mlflow; bench/scoring makes one in ~/.cache/atelier-bench/mlflow): %w", python, err)
	}
	return &mlflowServer{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), info: mlflowInfo{startedAt: time.Now()}}, nil
}

func (m *mlflowServer) wait() error {
	line, err := m.out.ReadString('\n')
	if err != nil {
		return fmt.Errorf("mlflow_server.py stopped before it was ready: %w", err)
	}
	if err := json.Unmarshal([]byte(line), &m.info); err != nil {
		return fmt.Errorf("mlflow_server.py said %q: %w", line, err)
	}
	m.info.readySeconds = time.Since(m.info.startedAt).Seconds()
	return nil
}

func (m *mlflowServer) stop() {
	m.stdin.Close() // it stops the server and removes its directory
	done := make(chan struct{})
	go func() { m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		m.cmd.Process.Kill()
	}
}

// The MLflow UI is a single-page app: its pages are read by the browser after the load event,
// so what is measured is navigation start (performance.timeOrigin) to the moment a condition on
// the DOM holds, polled every 5 ms: performance.now() then.

// mlflowRows is true once the runs table (an ag-grid) has rows of runs in the DOM.
// Each row is split between the grid's pinned and centre containers; the run's name is in the
// pinned one.
const mlflowRows = `(() => { const rows = [...document.querySelectorAll(".ag-row")].filter(r => /run-\d{6}/.test(r.textContent)); return rows.length > 0 ? performance.now() : 0; })()`

// mlflowCharts is true once n of the run page's model-metrics charts (plotly; it draws those in
// the viewport) have drawn their line.
func mlflowCharts(n int) string {
	return fmt.Sprintf(`(() => { const c = [...document.querySelectorAll(".js-plotly-plot")].filter(p => p.querySelector(".scatterlayer .trace path.js-line[d^='M']")); return c.length >= %d ? performance.now() : 0; })()`, n)
}

// mlflowChart tells what the first chart drew: its plotly charts, its points and its maximum (the
// spike, 100, if kept).
const mlflowChart = `(() => { const ps = [...document.querySelectorAll(".js-plotly-plot")]; const p = ps[0]; const y = p.data[0].y; return {charts: ps.length, points: y.length, max: Math.max(...y)}; })()`

func measureMLflow(bctx context.Context, m *mlflowServer, filter string) (rows [][3]string) {
	info := m.info
	// Up to 5 minutes a step: the MLflow UI is slow on this machine.
	do := func(what string, actions ...chromedp.Action) error {
		c, cancel := context.WithTimeout(bctx, 5*time.Minute)
		defer cancel()
		if err := chromedp.Run(c, actions...); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	fail := func(what string, err error) {
		var where string
		c, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		chromedp.Run(c, chromedp.Evaluate(`location.href + " :: " + document.body.innerText.slice(-600)`, &where))
		fmt.Fprintf(os.Stderr, "measuring the MLflow UI: %v\nthe page: %s\n", err, where)
		rows = append(rows, [3]string{"MLflow UI " + info.Version + ", " + what, "", "failed: " + err.Error()})
	}
	// The search the table makes, over REST (the server's time as a client sees it).
	var searchMs []float64
	body := fmt.Sprintf(`{"experiment_ids":[%q],"filter":%q,"order_by":["metrics.rmse ASC"],"max_results":100}`, info.Experiment, filter)
	for i := 0; i < 2; i++ {
		t0 := time.Now()
		resp, err := http.Post(info.URL+"/api/2.0/mlflow/runs/search", "application/json", strings.NewReader(body))
		if err != nil {
			fail("runs/search", err)
			break
		}
		var res struct {
			Runs []json.RawMessage `json:"runs"`
		}
		json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if i > 0 {
			searchMs = append(searchMs, float64(time.Since(t0).Microseconds())/1000)
		}
		if i == 0 {
			fmt.Fprintf(os.Stderr, "MLflow's runs/search: %s, %d runs\n", resp.Status, len(res.Runs))
		}
	}
	if len(searchMs) > 0 {
		rows = append(rows, [3]string{"MLflow " + info.Version + " `POST runs/search` with the same filter and order, 100 runs (what its table asks; over REST from the bench, once after one to warm)", "", spread(searchMs)})
	}

	q := url.Values{"searchFilter": {filter}, "orderByKey": {"metrics.`rmse`"}, "orderByAsc": {"true"}}
	// Spaces as %20: the UI reads its hash's query without turning '+' into a space.
	tableURL := info.URL + "/#/experiments/" + info.Experiment + "/runs?" + strings.ReplaceAll(q.Encode(), "+", "%20")
	var tableMs []float64
	var first string
	for i := 0; i < 2; i++ {
		var at float64
		if err := do("MLflow's runs table", chromedp.Navigate("about:blank"), chromedp.Navigate(tableURL),
			chromedp.Poll(mlflowRows, &at, chromedp.WithPollingInterval(5*time.Millisecond), chromedp.WithPollingTimeout(0)),
			chromedp.Evaluate(`[...document.querySelectorAll(".ag-row")].find(r => /run-\d{6}/.test(r.textContent)).textContent`, &first)); err != nil {
			fail("the runs table", err)
			break
		}
		if i > 0 {
			tableMs = append(tableMs, at)
		}
	}
	if len(tableMs) > 0 {
		fmt.Fprintf(os.Stderr, "MLflow's runs table: first row %q\n", first)
		rows = append(rows, [3]string{"MLflow UI " + info.Version + ", the experiment's runs table, the same filter and order (`searchFilter`, `orderByKey=metrics.`rmse``): navigation start to its rows in the DOM (once, after one load to warm)", "", spread(tableMs)})
	}

	runURL := info.URL + "/#/experiments/" + info.BigExp + "/runs/" + info.BigRun + "/model-metrics"
	var firstMs []float64
	var drawn struct {
		Charts int     `json:"charts"`
		Points int     `json:"points"`
		Max    float64 `json:"max"`
	}
	for i := 0; i < 2; i++ {
		var first float64
		if err := do("MLflow's run charts", chromedp.Navigate("about:blank"), chromedp.Navigate(runURL),
			chromedp.Poll(mlflowCharts(1), &first, chromedp.WithPollingInterval(5*time.Millisecond), chromedp.WithPollingTimeout(0)),
			chromedp.Evaluate(`document.querySelectorAll(".js-plotly-plot").length`, &drawn.Charts)); err != nil {
			fail("the run's charts", err)
			return rows
		}
		if err := do("MLflow's run charts", chromedp.Evaluate(mlflowChart, &drawn)); err != nil {
			fail("the run's charts", err)
			return rows
		}
		if i > 0 {
			firstMs = append(firstMs, first)
		}
	}
	fmt.Fprintf(os.Stderr, "MLflow's run page: %d charts present when the first drew, the first of %d points, its maximum %g (the spike is 100)\n", drawn.Charts, drawn.Points, drawn.Max)
	spike := "kept"
	if drawn.Max < 100 {
		spike = fmt.Sprintf("not kept: the chart's maximum is %g", drawn.Max)
	}
	rows = append(rows, [3]string{fmt.Sprintf("MLflow UI, the run's model-metrics page (10 metrics; %d charts present when the first drew, each read with `get-history-bulk-interval`, %d points; the spike %s): navigation start to the first chart drawn (once, after one load to warm)", drawn.Charts, drawn.Points, spike), "", spread(firstMs)})
	return rows
}
