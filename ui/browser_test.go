package ui_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/local"
	"github.com/atelier-ml/atelier/server"
	"github.com/atelier-ml/atelier/server/servertest"
	"github.com/atelier-ml/atelier/service"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The studio's tests drive a real headless Chromium (Debian's chromium package; CI installs
// it) against the real server stack, as a user clicks through it.

// chromiumPath finds the browser, or skips the test saying how to install it.
func chromiumPath(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("ATELIER_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	tb.Skip("no chromium to drive: install it (apt-get install chromium) or set ATELIER_CHROMIUM to a Chrome binary")
	return ""
}

// browser starts headless Chromiums, one a tab: each tab is a user with cookies of its own
// (a new browser context of one Chromium fails to open its tab in headless Chromium 14x).
type browser struct {
	tb   testing.TB
	path string
}

func newBrowser(tb testing.TB) *browser {
	tb.Helper()
	return &browser{tb: tb, path: chromiumPath(tb)}
}

// tab is a page in a browser of its own.
type tab struct {
	tb   testing.TB
	ctx  context.Context
	base string
}

func (b *browser) tab(base string) *tab {
	b.tb.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(b.path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b.tb.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Run(ctx); err != nil { // starts the browser
		b.tb.Fatalf("starting chromium (%s): %v", b.path, err)
	}
	return &tab{tb: b.tb, ctx: ctx, base: base}
}

// run runs actions with a deadline, failing the test with what was being done.
func (t *tab) run(what string, actions ...chromedp.Action) {
	t.tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var url, body string
		_ = chromedp.Run(t.ctx, chromedp.Location(&url), chromedp.Evaluate(`document.body ? document.body.innerText.slice(0, 2000) : ""`, &body))
		t.tb.Fatalf("%s: %v\nat %s:\n%s", what, err, url, body)
	}
}

func (t *tab) open(path string) {
	t.tb.Helper()
	t.run("opening "+path, chromedp.Navigate(t.base+path))
}

// eval evaluates a JavaScript expression into out.
func (t *tab) eval(js string, out any) {
	t.tb.Helper()
	t.run("evaluating "+js, chromedp.Evaluate(js, out))
}

// await evaluates a JavaScript expression whose value is a promise into out.
func (t *tab) await(js string, out any) {
	t.tb.Helper()
	t.run("evaluating "+js, chromedp.Evaluate(js, out, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
}

func (t *tab) location() string {
	t.tb.Helper()
	var u string
	t.run("reading the location", chromedp.Location(&u))
	return strings.TrimPrefix(u, t.base)
}

func (t *tab) text(sel string) string {
	t.tb.Helper()
	var s string
	t.run("reading "+sel, chromedp.WaitVisible(sel, chromedp.ByQuery), chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

// status is the HTTP status of the page's navigation.
func (t *tab) status() int {
	t.tb.Helper()
	var n int
	t.eval(`performance.getEntriesByType("navigation")[0].responseStatus`, &n)
	return n
}

// waitJS waits until a JavaScript expression is true, across navigations (a click may load a
// whole page, or swap part of it with htmx).
func (t *tab) waitJS(what, js string) {
	t.tb.Helper()
	deadline := time.Now().Add(25 * time.Second)
	for {
		var ok bool
		ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
		err := chromedp.Run(ctx, chromedp.Evaluate("!!("+js+")", &ok))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.run("waiting until "+what, chromedp.Evaluate("!!("+js+")", &ok))
			t.tb.Fatalf("waiting until %s: still false (%v)", what, err)
		}
		time.Sleep(20 * time.Millisecond) // the polling interval
	}
}

func (t *tab) login(user, password string) {
	t.tb.Helper()
	t.run("logging in as "+user,
		chromedp.WaitVisible("#login-form", chromedp.ByQuery),
		chromedp.SendKeys("#user", user, chromedp.ByQuery),
		chromedp.SendKeys("#password", password, chromedp.ByQuery),
		chromedp.Click("#login-submit", chromedp.ByQuery),
		chromedp.WaitVisible("#logout", chromedp.ByQuery))
}

// screenshot saves the page to $ATELIER_SCREENSHOTS/name.png when that is set (make
// screenshots sets it to docs/screenshots).
func (t *tab) screenshot(name string) {
	t.tb.Helper()
	dir := os.Getenv("ATELIER_SCREENSHOTS")
	if dir == "" {
		return
	}
	var png []byte
	t.run("taking a screenshot", chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.tb.Fatal(err)
	}
}

// fixture is a server with users of each role and runs to look at.
type fixture struct {
	stack *servertest.Stack
	ctx   context.Context
	runs  []*atelier.Run
	live  *atelier.Run // a Running run
	big   *atelier.Run // a run with a 20,000-point metric holding one spike
}

const password = "correct horse battery"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s := servertest.New(t, servertest.WithoutScheduler())
	ctx := context.Background()
	c := s.Client
	for _, u := range []struct {
		name string
		role atelier.Role
	}{{"alice", atelier.RoleContributor}, {"rita", atelier.RoleReader}, {"oscar", ""}} {
		if err := c.CreateUser(ctx, &atelier.User{Name: u.name}, password); err != nil {
			t.Fatal(err)
		}
		if u.role != "" {
			if _, err := c.ShareWorkspace(ctx, "default", u.name, u.role); err != nil {
				t.Fatal(err)
			}
		}
	}
	f := &fixture{stack: s, ctx: ctx}
	for i := range 30 {
		exp := "mnist"
		if i%3 == 0 {
			exp = "cifar"
		}
		r, err := c.CreateRun(ctx, "default", atelier.RunCreate{Experiment: exp, Name: fmt.Sprintf("run-%02d", i), Status: atelier.StatusRunning,
			Params: map[string]string{"alpha": fmt.Sprint(float64(i%5) / 10), "layers": fmt.Sprint(2 + i%3)}, Tags: map[string]string{"team": "vision"}})
		if err != nil {
			t.Fatal(err)
		}
		var pts []atelier.MetricPoint
		for step := range int64(100) {
			pts = append(pts, atelier.MetricPoint{Name: "rmse", Step: ptr(step), Timestamp: 1_700_000_000_000 + step*1000,
				Value: atelier.Float(float64(i)/30 + 1/float64(step+1))})
		}
		if err := c.LogMetrics(ctx, "default", r.ID, &atelier.MetricBatch{Points: pts}); err != nil {
			t.Fatal(err)
		}
		if i != 29 {
			if r, err = c.UpdateRunStatus(ctx, "default", r.ID, atelier.RunStatusUpdate{Status: atelier.StatusCompleted}); err != nil {
				t.Fatal(err)
			}
		}
		f.runs = append(f.runs, r)
	}
	f.live = f.runs[29]
	big, err := c.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "big", Name: "big", Status: atelier.StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	var pts []atelier.MetricPoint
	for step := range int64(20_000) {
		v := math.Sin(float64(step) / 500)
		if step == 12_345 {
			v = 1000 // a spike downsampling must keep
		}
		pts = append(pts, atelier.MetricPoint{Name: "loss", Step: ptr(step), Timestamp: 1_700_000_000_000 + step, Value: atelier.Float(v)})
	}
	if err := c.LogMetrics(ctx, "default", big.ID, &atelier.MetricBatch{Points: pts}); err != nil {
		t.Fatal(err)
	}
	f.big = big
	return f
}

func ptr[T any](v T) *T { return &v }

// TestStudio walks through the studio as its users do. Its parts share one server and one
// browser (starting them is most of the time).
func TestStudio(t *testing.T) {
	b := newBrowser(t)
	f := newFixture(t)
	base := f.stack.URL
	alice := b.tab(base)

	t.Run("login remembers the page", func(t *testing.T) {
		alice.tb = t
		alice.open("/w/default/runs?filter=" + urlq("metrics.rmse < 0.2"))
		if loc := alice.location(); !strings.HasPrefix(loc, "/login?next=") {
			t.Fatalf("without a session the page went to %s, want the login page", loc)
		}
		alice.screenshot("login")
		alice.login("alice", password)
		if loc := alice.location(); loc != "/w/default/runs?filter="+urlq("metrics.rmse < 0.2") {
			t.Fatalf("after the login the page is %s, want the page asked for", loc)
		}
	})

	t.Run("a wrong password is said on the page", func(t *testing.T) {
		tb := b.tab(base)
		tb.tb = t
		tb.open("/login")
		tb.run("logging in wrong", chromedp.SendKeys("#user", "alice", chromedp.ByQuery), chromedp.SendKeys("#password", "nope", chromedp.ByQuery),
			chromedp.Click("#login-submit", chromedp.ByQuery))
		if got := tb.text("#login-error"); !strings.Contains(got, "wrong user name or password") {
			t.Fatalf("login error = %q", got)
		}
	})

	t.Run("runs table filters and orders", func(t *testing.T) {
		alice.tb = t
		alice.open("/w/default/runs?filter=" + urlq("metrics.rmse < 0.2"))
		var n int
		alice.eval(`document.querySelectorAll("#runs-table tbody tr[data-run-id]").length`, &n)
		// rmse's last value is i/30 + 1/100: below 0.2 for i = 0..5.
		if n != 6 {
			t.Fatalf("metrics.rmse < 0.2 shows %d runs, want 6", n)
		}
		// Order by the metric, clicking its column's header twice (desc, then asc).
		first := `document.querySelector("#runs-table tbody tr:first-child .runlink").textContent`
		alice.run("ordering by rmse", chromedp.Click(`th.metrics a`, chromedp.ByQuery))
		alice.waitJS("the table is ordered by rmse desc (run-05 first)", first+` === "run-05" && location.search.includes("desc")`)
		alice.run("ordering by rmse asc", chromedp.Click(`th.metrics a`, chromedp.ByQuery))
		alice.waitJS("the table is ordered by rmse asc (run-00 first)", first+` === "run-00" && location.search.includes("asc")`)
		// Typing a filter in the form.
		alice.open("/w/default/runs")
		alice.run("filtering by a param", chromedp.SetValue("#filter", "params.alpha = '0.4' and tags.team = 'vision'", chromedp.ByQuery),
			chromedp.SetValue("#cols", "params.alpha, metrics.rmse", chromedp.ByQuery),
			chromedp.Click("#apply", chromedp.ByQuery))
		alice.waitJS("params.alpha = '0.4' shows 6 runs", `location.search.includes("alpha") && document.querySelectorAll("#runs-table tbody tr[data-run-id]").length === 6`)
		var heads string
		alice.eval(`[...document.querySelectorAll("#runs-table thead th")].map(e => e.innerText.trim()).join("|")`, &heads)
		if !strings.Contains(heads, "params alpha") || !strings.Contains(heads, "metrics rmse") {
			t.Fatalf("chosen columns missing from %q", heads)
		}
		alice.screenshot("runs")
	})

	t.Run("a filter that does not parse is shown where it was typed", func(t *testing.T) {
		alice.tb = t
		alice.open("/w/default/runs?filter=" + urlq("metrics.rmse < 0.5 and and"))
		msg := alice.text("#filter-error")
		if !strings.Contains(msg, "position 24") {
			t.Fatalf("the error %q does not point at the token", msg)
		}
		if st := alice.status(); st != 400 {
			t.Fatalf("status %d, want 400", st)
		}
		var caret string
		alice.eval(`document.querySelector("#filter-error pre.caret").textContent.split("\n")[1]`, &caret)
		if caret != strings.Repeat(" ", 23)+"^" {
			t.Fatalf("caret line %q does not point at position 24", caret)
		}
		alice.open("/w/default/runs?order=" + urlq("metrics.rmse sideways"))
		if msg := alice.text("#order-error"); !strings.Contains(msg, "order by") {
			t.Fatalf("order error %q", msg)
		}
	})

	t.Run("pages of runs", func(t *testing.T) {
		alice.tb = t
		alice.open("/w/default/runs?limit=10&order=" + urlq("name asc"))
		seen := map[string]bool{}
		for page := 1; ; page++ {
			var names []string
			alice.eval(`[...document.querySelectorAll("#runs-table .runlink")].map(e => e.textContent)`, &names)
			for _, n := range names {
				if seen[n] {
					t.Fatalf("run %s on two pages", n)
				}
				seen[n] = true
			}
			var next bool
			alice.eval(`!!document.getElementById("next-page")`, &next)
			if !next {
				break
			}
			alice.run("next page", chromedp.Click("#next-page", chromedp.ByQuery))
			alice.waitJS("the next page", fmt.Sprintf(`document.querySelector("#runs-table .runlink").textContent !== %q`, names[0]))
			if page > 10 {
				t.Fatal("more than 10 pages of 10 for 31 runs")
			}
		}
		if len(seen) != 31 {
			t.Fatalf("the pages showed %d runs, want 31", len(seen))
		}
	})

	t.Run("run page draws its charts", func(t *testing.T) {
		alice.tb = t
		alice.open("/w/default/runs/" + f.runs[3].ID)
		alice.waitJS("the charts are drawn", `document.body.getAttribute("data-charts-ready") === "1"`)
		var points int
		alice.eval(`atelier.charts["rmse"].u.data[0].length`, &points)
		if points != 100 {
			t.Fatalf("the rmse chart has %d points, want the 100 logged", points)
		}
		if got := alice.text("#params"); !strings.Contains(got, "alpha") || !strings.Contains(got, "0.3") {
			t.Fatalf("params table: %q", got)
		}
		alice.screenshot("run")

		alice.open("/w/default/runs/" + f.big.ID)
		alice.waitJS("the big chart is drawn", `document.body.getAttribute("data-charts-ready") === "1"`)
		var res struct {
			Points int     `json:"points"`
			Max    float64 `json:"max"`
			Down   bool    `json:"down"`
		}
		alice.eval(`(() => { const c = atelier.charts["loss"]; return {points: c.u.data[0].length, max: Math.max(...c.u.data[3]), down: c.series[0].downsampled}; })()`, &res)
		if !res.Down || res.Points > 2000 || res.Points < 200 {
			t.Fatalf("a 20,000-point series drew %d points (downsampled %v), want it downsampled to the plot's width", res.Points, res.Down)
		}
		if res.Max != 1000 {
			t.Fatalf("the downsampled chart's max band peaks at %v, want the spike of 1000", res.Max)
		}
		alice.screenshot("run-big-metric")
		// New points of the running run are drawn as they come.
		alice.waitJS("the page follows the run's events", `atelier.eventsOpen === true`)
		if err := f.stack.Client.LogMetrics(f.ctx, "default", f.big.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "loss", Step: ptr(int64(20_000)), Value: 5000}}}); err != nil {
			t.Fatal(err)
		}
		alice.waitJS("the new point is drawn", `Math.max(...atelier.charts["loss"].u.data[3]) === 5000`)
		// A zoom reads the window at full detail.
		alice.eval(`atelier.charts["loss"].zoom(12300, 12400), true`, nil)
		alice.waitJS("the zoomed window is drawn", `atelier.charts["loss"].u.data[0].length === 101`)
		var spike float64
		alice.eval(`Math.max(...atelier.charts["loss"].u.data[1])`, &spike)
		if spike != 1000 {
			t.Fatalf("the zoomed window's peak is %v, want 1000", spike)
		}
	})

	t.Run("live log follows a running run", func(t *testing.T) {
		alice.tb = t
		c := f.stack.Client
		if err := c.AppendLog(f.ctx, "default", f.live.ID, "logs/std_log.txt", []byte("epoch 1 starting\n")); err != nil {
			t.Fatal(err)
		}
		alice.open("/w/default/runs/" + f.live.ID)
		alice.waitJS("the log's start is shown", `document.getElementById("log").textContent.includes("epoch 1 starting")`)
		for i := 2; i <= 4; i++ {
			line := fmt.Sprintf("epoch %d done, loss=%.2f\n", i, 1/float64(i))
			if err := c.AppendLog(f.ctx, "default", f.live.ID, "logs/std_log.txt", []byte(line)); err != nil {
				t.Fatal(err)
			}
			alice.waitJS("the appended line is followed", fmt.Sprintf(`document.getElementById("log").textContent.includes(%q)`, strings.TrimSpace(line)))
		}
	})

	t.Run("compare two runs", func(t *testing.T) {
		alice.tb = t
		alice.open("/w/default/experiments/mnist?order=" + urlq("name asc"))
		alice.run("choosing two runs", chromedp.Click(`#runs-table tbody tr:nth-child(1) input[type=checkbox]`, chromedp.ByQuery),
			chromedp.Click(`#runs-table tbody tr:nth-child(2) input[type=checkbox]`, chromedp.ByQuery),
			chromedp.Click("#compare", chromedp.ByQuery), chromedp.WaitVisible("#diff", chromedp.ByQuery))
		var differ []string
		alice.eval(`[...document.querySelectorAll("#diff tr.differ th")].map(e => e.firstChild.textContent.trim())`, &differ)
		if strings.Join(differ, ",") != "alpha,layers,rmse" {
			t.Fatalf("rows that differ: %v, want alpha, layers and rmse", differ)
		}
		alice.waitJS("the overlaid chart is drawn", `document.body.getAttribute("data-charts-ready") === "1"`)
		var series int
		alice.eval(`atelier.charts["compare"].u.series.length - 1`, &series)
		if series != 2 {
			t.Fatalf("the overlaid chart has %d series, want 2", series)
		}
		alice.screenshot("compare")
	})

	t.Run("parallel coordinates", func(t *testing.T) {
		alice.tb = t
		alice.open("/w/default/experiments/mnist")
		var href string
		alice.eval(`document.getElementById("parallel-link").href`, &href)
		alice.open(strings.TrimPrefix(href, base) + "&metric=rmse")
		var res struct {
			Lines int      `json:"lines"`
			Axes  []string `json:"axes"`
		}
		alice.eval(`({lines: document.querySelectorAll("#parallel polyline").length, axes: [...document.querySelectorAll("#parallel .axis-name")].map(e => e.textContent)})`, &res)
		if res.Lines != 20 || strings.Join(res.Axes, ",") != "params.alpha,params.layers,metrics.rmse" {
			t.Fatalf("parallel coordinates of mnist's 20 runs: %+v", res)
		}
		alice.screenshot("parallel")
	})

	t.Run("a model registered from a run is listed and downloads", func(t *testing.T) {
		alice.tb = t
		c := f.stack.Client
		if _, err := c.UploadFile(f.ctx, "default", f.runs[0].ID, "outputs/model.pkl", strings.NewReader("weights"), ""); err != nil {
			t.Fatal(err)
		}
		// Registered from the run's page.
		alice.open("/w/default/runs/" + f.runs[0].ID)
		alice.run("registering a model", chromedp.SetValue("#register-path", "outputs/model.pkl", chromedp.ByQuery),
			chromedp.SendKeys("#register-name", "digits", chromedp.ByQuery), chromedp.Click("#register", chromedp.ByQuery),
			chromedp.WaitVisible("#versions", chromedp.ByQuery))
		v, err := c.FindModelVersion(f.ctx, "default", atelier.ModelRef{Name: "digits"})
		if err != nil || v.RunID != f.runs[0].ID || v.Path != "outputs/model.pkl" {
			t.Fatalf("the registered version: %+v, %v", v, err)
		}
		if _, err := c.UpdateModelVersion(f.ctx, "default", atelier.ModelRef{Name: "digits", Version: 1}, atelier.ModelVersionUpdate{Tags: map[string]string{"stage": "prod"}}); err != nil {
			t.Fatal(err)
		}
		alice.open("/w/default/models?tag=" + urlq("stage=prod"))
		if got := alice.text("#model-versions"); !strings.Contains(got, "digits") || !strings.Contains(got, "stage=prod") {
			t.Fatalf("versions tagged stage=prod: %q", got)
		}
		alice.open("/w/default/models?tag=" + urlq("stage=dev"))
		if got := alice.text("#model-versions"); strings.Contains(got, "digits") {
			t.Fatalf("versions tagged stage=dev: %q", got)
		}
		alice.open("/w/default/models")
		alice.run("opening the model", chromedp.Click(`#models a`, chromedp.ByQuery), chromedp.WaitVisible("#versions", chromedp.ByQuery))
		var dl struct {
			Status int    `json:"status"`
			Type   string `json:"type"`
			Size   int    `json:"size"`
		}
		alice.await(`(async () => { const r = await fetch(document.querySelector("#versions a.download").href); const b = await r.arrayBuffer(); return {status: r.status, type: r.headers.get("content-type"), size: b.byteLength}; })()`, &dl)
		if dl.Status != 200 || dl.Type != "application/zip" || dl.Size == 0 {
			t.Fatalf("download: %+v", dl)
		}
		alice.open("/w/default/runs/" + f.runs[0].ID)
		if got := alice.text("#outputs"); !strings.Contains(got, "outputs/model.pkl") {
			t.Fatalf("outputs: %q", got)
		}
		alice.screenshot("models")
	})

	t.Run("tables, texts and previews of outputs", func(t *testing.T) {
		alice.tb = t
		c, run := f.stack.Client, f.runs[4]
		recs := []atelier.MetricRecord{
			{Name: "confusion", Kind: atelier.MetricTable, Value: []byte(`{"actual":["cat","dog"],"cats":[9,2],"dogs":[1,8]}`)},
			{Name: "per_epoch", Kind: atelier.MetricRow, Value: []byte(`{"epoch":1,"acc":0.5}`)},
			{Name: "per_epoch", Kind: atelier.MetricRow, Value: []byte(`{"epoch":2,"acc":0.75}`)},
			{Name: "note", Kind: atelier.MetricText, Value: []byte(`"converged early"`)},
		}
		if err := c.LogMetrics(f.ctx, "default", run.ID, &atelier.MetricBatch{Records: recs}); err != nil {
			t.Fatal(err)
		}
		for path, body := range map[string]string{"outputs/scores.csv": "name,score\nfirst,0.9\nsecond,0.8\n", "outputs/config.json": `{"lr":0.1,"layers":[64,32]}`} {
			if _, err := c.UploadFile(f.ctx, "default", run.ID, path, strings.NewReader(body), ""); err != nil {
				t.Fatal(err)
			}
		}
		alice.open("/w/default/runs/" + run.ID)
		got := alice.text("#h-records + details")
		if !strings.Contains(got, "cat") || !strings.Contains(got, "9") {
			t.Fatalf("the table record shows %q", got)
		}
		var records string
		alice.eval(`document.querySelector("section[aria-labelledby=h-records]").innerText`, &records)
		for _, want := range []string{"per_epoch", "0.75", "converged early"} {
			if !strings.Contains(records, want) {
				t.Fatalf("the records section lacks %q:\n%s", want, records)
			}
		}
		alice.run("opening the CSV's preview", chromedp.Click(`#outputs a[href$="scores.csv"]`, chromedp.ByQuery), chromedp.WaitVisible("#preview-table", chromedp.ByQuery))
		if got := alice.text("#preview-table"); !strings.Contains(got, "second") || !strings.Contains(got, "score") {
			t.Fatalf("the CSV preview shows %q", got)
		}
		alice.open("/w/default/runs/" + run.ID + "/files/outputs/config.json")
		if got := alice.text("#preview-text"); !strings.Contains(got, "\n  \"layers\": [") {
			t.Fatalf("the JSON preview is not indented: %q", got)
		}
		alice.open("/w/default/runs/" + run.ID + "/files/outputs/nothing.bin")
		if st := alice.status(); st != 404 {
			t.Fatalf("the preview of a missing file: status %d", st)
		}
	})

	t.Run("home shows running runs and activities", func(t *testing.T) {
		alice.tb = t
		alice.open("/w/default")
		running := alice.text("#h-running + ul")
		if !strings.Contains(running, "run-29") || strings.Contains(running, "run-28") {
			t.Fatalf("running runs: %q", running)
		}
		if got := alice.text("#activities"); !strings.Contains(got, "run") {
			t.Fatalf("activities: %q", got)
		}
		alice.screenshot("home")
	})

	t.Run("a reader sees no write buttons; a contributor cancels", func(t *testing.T) {
		rita := b.tab(base)
		rita.tb = t
		rita.open("/login")
		rita.login("rita", password)
		for _, id := range []string{f.live.ID, f.runs[0].ID} { // active, and with outputs
			rita.open("/w/default/runs/" + id)
			rita.run("the run page", chromedp.WaitVisible("#run-status", chromedp.ByQuery))
			var buttons int
			rita.eval(`document.querySelectorAll("#cancel, #register, form[method=post]:not([action='/logout'])").length`, &buttons)
			if buttons != 0 {
				t.Fatalf("a Reader sees %d write buttons on run %s", buttons, id)
			}
		}
		// A form post made anyway is refused by the service.
		var st int
		rita.await(`(async () => (await fetch(location.pathname + "/cancel", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "csrf_token=" + document.body.dataset.csrf})).status)()`, &st)
		if st != 403 {
			t.Fatalf("a Reader's cancel: status %d, want 403", st)
		}

		alice.tb = t
		alice.open("/w/default/runs/" + f.live.ID)
		alice.run("cancelling", chromedp.Click("#cancel", chromedp.ByQuery), chromedp.WaitNotPresent("#cancel", chromedp.ByQuery),
			chromedp.WaitVisible("#run-status", chromedp.ByQuery))
		if got := alice.text("#run-status"); got != "Canceled" && got != "CancelRequested" {
			t.Fatalf("after cancel the status is %q", got)
		}
	})

	t.Run("CSRF: a form post without the token is refused", func(t *testing.T) {
		alice.tb = t
		alice.open("/w/default/runs/" + f.big.ID)
		var st int
		alice.await(`(async () => (await fetch(location.pathname + "/cancel", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: ""})).status)()`, &st)
		if st != 403 {
			t.Fatalf("cancel without the CSRF token: status %d, want 403", st)
		}
		run, err := f.stack.Client.FindRun(f.ctx, "default", f.big.ID)
		if err != nil {
			t.Fatal(err)
		}
		if run.Status != atelier.StatusRunning {
			t.Fatalf("the run is %s after a refused cancel", run.Status)
		}
		// The login form too: a post without its token (another site's) is refused.
		alice.await(`(async () => (await fetch("/login", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "user=alice&password=x"})).status)()`, &st)
		if st != 403 {
			t.Fatalf("login without the form's token: status %d, want 403", st)
		}
	})

	t.Run("404 pages", func(t *testing.T) {
		alice.tb = t
		for _, path := range []string{"/w/default/runs/nosuchrun", "/w/secret/runs", "/w/default/models/nope", "/no/such/page", "/w/default/experiments/nope"} {
			alice.open(path)
			if st := alice.status(); st != 404 {
				t.Fatalf("%s: status %d, want 404", path, st)
			}
			if h := alice.text("h1"); h != "Not found" {
				t.Fatalf("%s: heading %q", path, h)
			}
		}
		// A user who is no member of the workspace gets the same 404 as for one that does not exist.
		oscar := b.tab(base)
		oscar.tb = t
		oscar.open("/login")
		oscar.login("oscar", password)
		oscar.open("/w/default/runs/" + f.runs[0].ID)
		if st := oscar.status(); st != 404 {
			t.Fatalf("a non-member's run page: status %d, want 404", st)
		}
		alice.screenshot("not-found")
	})

	t.Run("an expired session goes back to the login with the page remembered", func(t *testing.T) {
		tb := b.tab(base)
		tb.tb = t
		tb.open("/login")
		tb.login("alice", password)
		// The session's token revoked, as an expired one is refused.
		tb.run("forging a dead session", network.SetCookie("atelier_session", "atl_expired").WithURL(base))
		tb.open("/w/default/runs/" + f.runs[1].ID)
		loc := tb.location()
		if !strings.HasPrefix(loc, "/login?") || !strings.Contains(loc, "expired=1") || !strings.Contains(loc, urlq("/w/default/runs/"+f.runs[1].ID)) {
			t.Fatalf("a dead session went to %s", loc)
		}
		tb.text("#expired")
		tb.login("alice", password)
		if loc := tb.location(); loc != "/w/default/runs/"+f.runs[1].ID {
			t.Fatalf("after logging in again the page is %s", loc)
		}
	})

	t.Run("MLflow's View run link lands on the run", func(t *testing.T) {
		alice.tb = t
		alice.open("/#/experiments/1/runs/" + f.runs[2].ID)
		alice.waitJS("the run page", `location.pathname === "/w/default/runs/`+f.runs[2].ID+`"`)
		alice.open("/workspaces/default/mlflow/#/experiments/1/runs/" + f.runs[2].ID)
		alice.waitJS("the run page", `location.pathname === "/w/default/runs/`+f.runs[2].ID+`"`)
		// Not logged in: the login page keeps the run as where to go.
		tb := b.tab(base)
		tb.tb = t
		tb.open("/#/experiments/1/runs/" + f.runs[2].ID)
		tb.login("alice", password)
		if loc := tb.location(); loc != "/w/default/runs/"+f.runs[2].ID {
			t.Fatalf("after the login from MLflow's link the page is %s", loc)
		}
	})

	t.Run("theme toggle", func(t *testing.T) {
		alice.tb = t
		alice.open("/w/default")
		var before, after string
		alice.eval(`getComputedStyle(document.body).backgroundColor`, &before)
		alice.run("toggling the theme", chromedp.Click("#theme-toggle", chromedp.ByQuery))
		alice.eval(`getComputedStyle(document.body).backgroundColor`, &after)
		if before == after {
			t.Fatalf("the theme toggle left the background %s", before)
		}
		alice.open("/w/default/runs")
		var kept string
		alice.eval(`document.documentElement.getAttribute("data-theme")`, &kept)
		if kept == "" {
			t.Fatal("the chosen theme was not kept across pages")
		}
		alice.screenshot("runs-dark")
		alice.run("toggling back", chromedp.Click("#theme-toggle", chromedp.ByQuery))
	})

	t.Run("child runs", func(t *testing.T) {
		alice.tb = t
		for i := range 3 {
			if _, err := f.stack.Client.CreateRun(f.ctx, "default", atelier.RunCreate{ParentID: f.runs[7].ID, Name: fmt.Sprintf("child-%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		alice.open("/w/default/runs?order=" + urlq("name asc") + "&limit=500")
		var href string
		alice.eval(`document.querySelector('tr[data-run-id="`+f.runs[7].ID+`"] a.children').href`, &href)
		alice.open(strings.TrimPrefix(href, base))
		alice.waitJS("the children's table", `document.querySelectorAll("#runs-table tbody tr[data-run-id]").length === 3 && document.querySelector("#runs-table .runlink").textContent.startsWith("child-")`)
		alice.open("/w/default/runs/" + f.runs[7].ID)
		if got := alice.text("#children"); !strings.Contains(got, "child-2") {
			t.Fatalf("the run's children: %q", got)
		}
	})

	t.Run("workspace pages; the audit log for Owners only", func(t *testing.T) {
		alice.tb = t
		alice.open("/w/default/members")
		if got := alice.text("#members"); !strings.Contains(got, "alice") || !strings.Contains(got, "Reader") {
			t.Fatalf("members: %q", got)
		}
		for _, page := range []string{"compute", "datastores", "activities"} {
			alice.open("/w/default/" + page)
			if st := alice.status(); st != 200 {
				t.Fatalf("%s: status %d", page, st)
			}
		}
		if got := alice.text("#activities-table"); !strings.Contains(got, "run") {
			t.Fatalf("activities: %q", got)
		}
		// The datastore browser: from the datastores page into a datastore, then a folder.
		if _, err := f.stack.Client.WriteDatastoreFile(f.ctx, "default", "default", "data/train.csv", strings.NewReader("a,b\n"), "", ""); err != nil {
			t.Fatal(err)
		}
		alice.open("/w/default/datastores")
		alice.run("opening the datastore", chromedp.Click(`#datastores a[href="/w/default/datastores/default"]`, chromedp.ByQuery),
			chromedp.WaitVisible("#datastore-files", chromedp.ByQuery))
		alice.run("opening a folder", chromedp.Click(`#datastore-files a.folder`, chromedp.ByQuery))
		alice.waitJS("the folder's listing", `document.querySelector("#breadcrumbs") && document.querySelector("#breadcrumbs").textContent.includes("data") && document.querySelector("#datastore-files").textContent.includes("train.csv")`)
		var audit bool
		alice.eval(`!!document.getElementById("nav-audit")`, &audit)
		if audit {
			t.Fatal("a Contributor is offered the audit log")
		}
		alice.open("/w/default/audit")
		if st := alice.status(); st != 403 {
			t.Fatalf("a Contributor's audit page: status %d, want 403", st)
		}
		admin := b.tab(base)
		admin.tb = t
		admin.open("/login")
		admin.run("pasting the administrator's token", chromedp.SendKeys("#token", f.stack.Token, chromedp.ByQuery),
			chromedp.Click("#login-submit", chromedp.ByQuery), chromedp.WaitVisible("#logout", chromedp.ByQuery))
		admin.open("/w/default/audit?user=alice")
		if got := admin.text("#audit"); !strings.Contains(got, "/w/default/runs/"+f.live.ID+"/cancel") {
			t.Fatalf("the audit log lacks alice's cancel from the studio:\n%s", got)
		}
	})

	t.Run("logout", func(t *testing.T) {
		tb := b.tab(base)
		tb.tb = t
		tb.open("/login")
		tb.login("alice", password)
		tb.run("logging out", chromedp.Click("#logout", chromedp.ByQuery), chromedp.WaitVisible("#login-form", chromedp.ByQuery))
		tb.open("/w/default")
		if loc := tb.location(); !strings.HasPrefix(loc, "/login") {
			t.Fatalf("after logout /w/default is %s", loc)
		}
	})
}

// TestXSS logs hostile text everywhere a user can put text and checks each page shows it as
// text and runs none of it.
func TestXSS(t *testing.T) {
	b := newBrowser(t)
	s := servertest.New(t, servertest.WithoutScheduler())
	ctx, c := context.Background(), s.Client
	const evil = `<script>window.__xss=1</script><img src=x onerror="window.__xss=2"><svg onload="window.__xss=3">`
	run, err := c.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "xss", Name: evil, Status: atelier.StatusRunning,
		Params: map[string]string{"p": evil}, Tags: map[string]string{"t": evil}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LogMetrics(ctx, "default", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: evil, Step: ptr(int64(0)), Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.AppendLog(ctx, "default", run.ID, "logs/std_log.txt", []byte(evil+"\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadFile(ctx, "default", run.ID, "outputs/"+strings.NewReplacer("/", "_").Replace(evil), strings.NewReader("x"), ""); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateUser(ctx, &atelier.User{Name: "mallory"}, password); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ShareWorkspace(ctx, "default", "mallory", atelier.RoleReader); err != nil {
		t.Fatal(err)
	}
	tb := b.tab(s.URL)
	tb.open("/login")
	tb.login("mallory", password)
	for _, path := range []string{"/w/default/runs?cols=" + urlq("params.p,tags.t"), "/w/default/runs/" + run.ID, "/w/default", "/w/default/compare?run=" + run.ID,
		"/w/default/runs?filter=" + urlq(evil), "/w/default/parallel", "/w/default/runs/" + run.ID + "/files/outputs/" + url.PathEscape(strings.NewReplacer("/", "_").Replace(evil))} {
		tb.open(path)
		tb.run("the page", chromedp.WaitReady("body", chromedp.ByQuery))
		if strings.Contains(path, "/runs/") && !strings.Contains(path, "/files/") {
			tb.waitJS("the charts are drawn", `document.body.getAttribute("data-charts-ready") === "1"`)
		}
		var res struct {
			XSS   any  `json:"xss"`
			Shown bool `json:"shown"`
		}
		shown := "<script>window.__xss=1</script>"
		if strings.Contains(path, "/files/") {
			shown = "<script>window.__xss=1<_script>" // the file's name has no slash
		}
		tb.eval(fmt.Sprintf(`({xss: window.__xss === undefined ? null : window.__xss, shown: document.body.innerText.includes(%q)})`, shown), &res)
		if res.XSS != nil {
			t.Fatalf("%s: a script ran (window.__xss = %v)", path, res.XSS)
		}
		if !res.Shown && !strings.Contains(path, "/parallel") { // its labels are cut short

			t.Fatalf("%s: the hostile text is not shown as text", path)
		}
	}
	var log string
	tb.open("/w/default/runs/" + run.ID)
	tb.eval(`document.getElementById("log").textContent`, &log)
	if !strings.Contains(log, evil) {
		t.Fatalf("the log shows %q", log)
	}
}

func urlq(s string) string { return url.QueryEscape(s) }

// TestWithoutJavaScript reads the studio with scripts disabled: the pages are whole as the
// server renders them, and the forms work as plain forms.
func TestWithoutJavaScript(t *testing.T) {
	b := newBrowser(t)
	f := newFixture(t)
	tb := b.tab(f.stack.URL)
	tb.run("disabling JavaScript", emulation.SetScriptExecutionDisabled(true))
	tb.open("/w/default/runs")
	tb.login("alice", password)
	tb.run("filtering with the plain form", chromedp.SetValue("#filter", "metrics.rmse < 0.2", chromedp.ByQuery),
		chromedp.Submit("#filter", chromedp.ByQuery))
	tb.run("the filtered page", chromedp.WaitVisible("#runs-table", chromedp.ByQuery))
	var n int
	tb.eval(`document.querySelectorAll("#runs-table tbody tr[data-run-id]").length`, &n)
	if loc := tb.location(); !strings.Contains(loc, "filter=") || n != 6 {
		t.Fatalf("without JavaScript the filtered table at %s has %d runs, want 6", loc, n)
	}
	if err := f.stack.Client.AppendLog(f.ctx, "default", f.live.ID, "logs/std_log.txt", []byte("hello from the run\n")); err != nil {
		t.Fatal(err)
	}
	tb.open("/w/default/runs/" + f.live.ID)
	if got := tb.text("#log"); !strings.Contains(got, "hello from the run") {
		t.Fatalf("the log without JavaScript: %q", got)
	}
	if got := tb.text("#metrics-table"); !strings.Contains(got, "rmse") {
		t.Fatalf("the metrics table without JavaScript: %q", got)
	}
}

// TestSubmittedRunLog follows the log of a script submitted to the local compute target while
// it prints, and sees the run end, live.
func TestSubmittedRunLog(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not on PATH")
	}
	b := newBrowser(t)
	s := servertest.New(t, servertest.WithLocalCompute(func(_ context.Context, m server.Machine) (*service.Target, error) {
		ex := &local.Executor{WorkDir: filepath.Join(m.DataDir, "work"), Envs: &local.EnvCache{Dir: filepath.Join(m.DataDir, "envs")}}
		return &service.Target{Name: "local", Kind: "local", MaxConcurrentRuns: 2, Executor: ex}, nil
	}))
	ctx := atelier.NewContextWithPrincipal(context.Background(), &atelier.Principal{Kind: atelier.PrincipalAdmin, Name: "admin"})
	// The script prints, then waits for the file the test writes once the page shows the
	// first line, then prints again: the second line can only reach the page by following.
	dir := t.TempDir()
	script := fmt.Sprintf(`import os, sys, time
print("first line from the script", flush=True)
while not os.path.exists(%q):
    time.sleep(0.05)
print("second line from the script", flush=True)
`, filepath.Join(dir, "go"))
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("train.py")
	io.WriteString(w, script)
	zw.Close()
	snap, err := s.Service.UploadSnapshotZip(ctx, "default", &buf)
	if err != nil {
		t.Fatal(err)
	}
	run, err := s.Service.SubmitRun(ctx, "default", atelier.RunSubmit{Experiment: "live", SnapshotID: snap.ID, Config: atelier.RunConfig{Script: "train.py"}})
	if err != nil {
		t.Fatal(err)
	}
	tb := b.tab(s.URL)
	tb.open("/login")
	tb.run("pasting the administrator's token", chromedp.SendKeys("#token", s.Token, chromedp.ByQuery),
		chromedp.Click("#login-submit", chromedp.ByQuery), chromedp.WaitVisible("#logout", chromedp.ByQuery))
	tb.open("/w/default/runs/" + run.ID)
	tb.eval(`window.__samePage = true`, nil) // gone if the page reloads
	tb.waitJS("the first line", `document.getElementById("log") && document.getElementById("log").textContent.includes("first line from the script")`)
	tb.waitJS("the page follows the run's events", `atelier.eventsOpen === true`)
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tb.waitJS("the second line, followed", `document.getElementById("log").textContent.includes("second line from the script")`)
	tb.waitJS("the run's end, live", `document.getElementById("run-status").textContent === "Completed"`)
	tb.waitJS("the timeline's end, live", `document.querySelector("dl.facts").textContent.includes("Ended")`)
	var same bool
	tb.eval(`window.__samePage === true`, &same)
	if !same {
		t.Fatal("the page reloaded: the log and the status must arrive without a reload")
	}
	// The run's code, browsed.
	tb.run("opening the snapshot", chromedp.Click("#snapshot-link", chromedp.ByQuery), chromedp.WaitVisible("#snapshot-files", chromedp.ByQuery))
	tb.run("opening train.py", chromedp.Click(`#snapshot-files a`, chromedp.ByQuery), chromedp.WaitVisible("#snapshot-text", chromedp.ByQuery))
	if got := tb.text("#snapshot-text"); !strings.Contains(got, "second line from the script") {
		t.Fatalf("the snapshot's train.py shows %q", got)
	}
}
