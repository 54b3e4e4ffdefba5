package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/server/servertest"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// getAs reads a studio path with a bearer token.
func getAs(t *testing.T, s *servertest.Stack, token, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// tableFixture is a parent with three children and a running run with a metric.
type tableFixture struct {
	s        *servertest.Stack
	ctx      context.Context
	parent   *atelier.Run
	children []*atelier.Run
	live     *atelier.Run
}

func newTableFixture(t *testing.T) *tableFixture {
	t.Helper()
	s := servertest.New(t, servertest.WithoutScheduler())
	ctx := context.Background()
	f := &tableFixture{s: s, ctx: ctx}
	var err error
	if f.parent, err = s.Client.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "sweep", Name: "the-parent"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		c, err := s.Client.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "sweep", ParentID: f.parent.ID, Name: fmt.Sprintf("kid-%d", i),
			Params: map[string]string{"lr": fmt.Sprint(i)}})
		if err != nil {
			t.Fatal(err)
		}
		f.children = append(f.children, c)
	}
	if f.live, err = s.Client.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "sweep", Name: "the-live-one", Status: atelier.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	f.logRMSE(t, 0, 1.5)
	return f
}

func (f *tableFixture) logRMSE(t *testing.T, step int64, v float64) {
	t.Helper()
	if err := f.s.Client.LogMetrics(f.ctx, "default", f.live.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{
		{Name: "rmse", Step: ptr(step), Timestamp: 1_700_000_000_000 + step, Value: atelier.Float(v)}}}); err != nil {
		t.Fatal(err)
	}
}

var childRow = regexp.MustCompile(`<tr data-run-id="([^"]+)" class="child" data-parent="([^"]+)">`)

// TestRunsTableExpand: a parent's children are rows under it when the table is asked with
// expand=ID (what the expand link opens without JavaScript), and not otherwise; the live
// endpoint answers the status and chosen cells of the runs asked, bounded.
func TestRunsTableExpand(t *testing.T) {
	f := newTableFixture(t)
	s := f.s
	base := "/w/default/runs?root=1&cols=" + urlq("metrics.rmse,params.lr")
	code, body := getAs(t, s, s.Token, base)
	if code != 200 {
		t.Fatalf("the table: %d", code)
	}
	if m := childRow.FindAllStringSubmatch(body, -1); len(m) != 0 {
		t.Fatalf("children shown without being expanded: %v", m)
	}
	link := regexp.MustCompile(`<a class="expand" href="([^"]+)" data-parent="` + f.parent.ID + `" aria-expanded="false"`).FindStringSubmatch(body)
	if link == nil {
		t.Fatalf("no expand link on the parent's row:\n%s", body)
	}
	href := strings.ReplaceAll(link[1], "&amp;", "&")
	if !strings.Contains(href, "expand="+f.parent.ID) || !strings.Contains(href, "root=1") {
		t.Fatalf("the expand link %q does not keep the table's query and add expand=", href)
	}
	code, body = getAs(t, s, s.Token, "/w/default/runs"+href)
	if code != 200 {
		t.Fatalf("the expanded table: %d", code)
	}
	m := childRow.FindAllStringSubmatch(body, -1)
	if len(m) != 3 {
		t.Fatalf("%d child rows, want 3:\n%s", len(m), body)
	}
	for i, row := range m {
		if row[1] != f.children[i].ID || row[2] != f.parent.ID {
			t.Fatalf("child row %d is %v, want %s under %s", i, row, f.children[i].ID, f.parent.ID)
		}
	}
	// The children's rows come right after their parent's, with the table's columns.
	pi, ci := strings.Index(body, `<tr data-run-id="`+f.parent.ID+`"`), strings.Index(body, m[0][0])
	if pi < 0 || ci < pi || strings.Contains(body[pi+10:ci], "<tr data-run-id") {
		t.Fatal("the children's rows do not follow their parent's")
	}
	if !strings.Contains(body, `data-col="1">2</td>`) {
		t.Fatal("a child's param column is not filled")
	}
	if !strings.Contains(body, `aria-expanded="true"`) {
		t.Fatal("the parent's link does not say it is expanded")
	}
	var many []string
	for i := range 21 {
		many = append(many, fmt.Sprintf("expand=r%d", i))
	}
	if code, _ := getAs(t, s, s.Token, "/w/default/runs?"+strings.Join(many, "&")); code != 400 {
		t.Fatalf("21 expanded parents: %d, want 400", code)
	}

	// The live cells.
	code, body = getAs(t, s, s.Token, "/w/default/runs/live?run="+f.live.ID+"&run="+f.children[0].ID+"&run=nosuch&cols="+urlq("metrics.rmse,params.lr"))
	if code != 200 {
		t.Fatalf("live: %d %s", code, body)
	}
	var live struct {
		Runs []struct {
			ID     string   `json:"id"`
			Status string   `json:"status"`
			Cells  []string `json:"cells"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(body), &live); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range live.Runs {
		got[r.ID] = r.Status + " " + strings.Join(r.Cells, "|")
	}
	if len(got) != 2 || got[f.live.ID] != "Running 1.5|" || got[f.children[0].ID] != "NotStarted |0" {
		t.Fatalf("live answered %v", got)
	}
	f.logRMSE(t, 1, 0.25)
	if _, body = getAs(t, s, s.Token, "/w/default/runs/live?run="+f.live.ID+"&cols=metrics.rmse"); !strings.Contains(body, `"cells":["0.25"]`) {
		t.Fatalf("live after a new point: %s", body)
	}
	var ids []string
	for i := range 101 {
		ids = append(ids, fmt.Sprintf("run=r%d", i))
	}
	for _, bad := range []string{"", strings.Join(ids, "&"), "run=x&cols=nope"} {
		code, body := getAs(t, s, s.Token, "/w/default/runs/live?"+bad)
		if code != 400 || !strings.Contains(body, `"message"`) {
			t.Fatalf("live?%.40s: %d %s, want a 400 with a message", bad, code, body)
		}
	}
	if code, _ := getAs(t, s, s.Token, "/w/nosuch/runs/live?run=x"); code != 404 {
		t.Fatalf("live of a workspace that does not exist: %d", code)
	}
}

// TestRunsTableLive: in Chromium, a parent's children open under its row and close again
// without leaving the page, and the metric cell and status of a running run follow it live,
// the polling stopping once no run on the page is active.
func TestRunsTableLive(t *testing.T) {
	b := newBrowser(t)
	f := newTableFixture(t)
	tb := b.tab(f.s.URL)
	tb.open("/login")
	tb.run("pasting the administrator's token", chromedp.SendKeys("#token", f.s.Token, chromedp.ByQuery),
		chromedp.Click("#login-submit", chromedp.ByQuery), chromedp.WaitVisible("#logout", chromedp.ByQuery))
	tb.open("/w/default/runs?root=1&cols=" + urlq("metrics.rmse"))
	tb.eval(`window.__samePage = true; atelier.liveInterval = 300`, nil)
	sel := `tr[data-run-id="` + f.parent.ID + `"] a.expand`
	tb.run("expanding the parent", chromedp.Click(sel, chromedp.ByQuery))
	tb.waitJS("the children under the parent", `(() => {
		const p = document.querySelector('tr[data-run-id="`+f.parent.ID+`"]');
		const kids = [], names = [];
		for (let r = p.nextElementSibling; r && r.dataset.parent === "`+f.parent.ID+`"; r = r.nextElementSibling) { kids.push(r); names.push(r.querySelector(".runlink").textContent); }
		return names.join(",") === "kid-0,kid-1,kid-2" && document.querySelector(`+"`"+sel+"`"+`).getAttribute("aria-expanded") === "true" && location.search.includes("expand=");
	})()`)
	tb.screenshot("runs-expanded")
	tb.run("collapsing the parent", chromedp.Click(sel, chromedp.ByQuery))
	tb.waitJS("the children gone", `document.querySelectorAll('#runs-table tr[data-parent]').length === 0 && document.querySelector(`+"`"+sel+"`"+`).getAttribute("aria-expanded") === "false" && !location.search.includes("expand=")`)

	cell := `document.querySelector('tr[data-run-id="` + f.live.ID + `"] td[data-col="0"]').textContent`
	status := `document.querySelector('tr[data-run-id="` + f.live.ID + `"] [data-status]').textContent`
	tb.waitJS("the first value", cell+` === "1.5"`)
	f.logRMSE(t, 1, 0.125)
	tb.waitJS("the new value, live", cell+` === "0.125"`)
	if _, err := f.s.Client.UpdateRunStatus(f.ctx, "default", f.live.ID, atelier.RunStatusUpdate{Status: atelier.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	tb.waitJS("the run's end, live", status+` === "Completed"`)
	// The parent and its children never started (NotStarted is active): they keep the polling
	// on; once they end it stops.
	for _, r := range append(f.children, f.parent) {
		if _, err := f.s.Client.UpdateRunStatus(f.ctx, "default", r.ID, atelier.RunStatusUpdate{Status: atelier.StatusCanceled}); err != nil {
			t.Fatal(err)
		}
	}
	tb.waitJS("the polling stopped", `atelier.livePolling === false`)
	var polls1, polls2 int
	tb.eval(`atelier.livePolls`, &polls1)
	tb.await(`new Promise(r => setTimeout(() => r(atelier.livePolls), 1000))`, &polls2)
	if polls1 != polls2 {
		t.Fatalf("the table still polls with no active run: %d then %d reads", polls1, polls2)
	}
	var same bool
	tb.eval(`window.__samePage === true`, &same)
	if !same {
		t.Fatal("the page reloaded")
	}
}

// TestRunsTableExpandWithoutJavaScript: with scripts disabled, a parent's expand link opens the
// table with its children under it, and the link then hides them.
func TestRunsTableExpandWithoutJavaScript(t *testing.T) {
	b := newBrowser(t)
	f := newTableFixture(t)
	tb := b.tab(f.s.URL)
	tb.open("/login")
	tb.run("pasting the administrator's token", chromedp.SendKeys("#token", f.s.Token, chromedp.ByQuery),
		chromedp.Click("#login-submit", chromedp.ByQuery), chromedp.WaitVisible("#logout", chromedp.ByQuery))
	tb.run("disabling JavaScript", emulation.SetScriptExecutionDisabled(true))
	tb.open("/w/default/runs?root=1")
	sel := `tr[data-run-id="` + f.parent.ID + `"] a.expand`
	tb.run("expanding the parent", chromedp.Click(sel, chromedp.ByQuery), chromedp.WaitVisible(`#runs-table tr[data-parent]`, chromedp.ByQuery))
	var n int
	tb.eval(`document.querySelectorAll('#runs-table tr[data-parent="`+f.parent.ID+`"]').length`, &n)
	if loc := tb.location(); n != 3 || !strings.Contains(loc, "expand="+f.parent.ID) || !strings.Contains(loc, "root=1") {
		t.Fatalf("without JavaScript the expanded table at %s has %d child rows, want 3", loc, n)
	}
	tb.run("collapsing the parent", chromedp.Click(sel, chromedp.ByQuery), chromedp.WaitNotPresent(`#runs-table tr[data-parent]`, chromedp.ByQuery))
	if loc := tb.location(); strings.Contains(loc, "expand=") {
		t.Fatalf("collapsed, the table is at %s", loc)
	}
}
