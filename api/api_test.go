package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/google/go-cmp/cmp"
)

func TestWorkspaces(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)

	ws := &atelier.Workspace{Name: "team-a", Description: "the A team"}
	if err := c.CreateWorkspace(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if ws.ID == 0 || ws.CreatedAt.IsZero() || ws.CreatedBy != "admin" {
		t.Errorf("created workspace %+v: want an id, a time and created_by admin", ws)
	}
	MustCode(t, c.CreateWorkspace(ctx, &atelier.Workspace{Name: "team-a"}), atelier.ECONFLICT)

	list, err := c.ListWorkspaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, w := range list {
		names = append(names, w.Name)
	}
	if diff := cmp.Diff([]string{"default", "team-a"}, names); diff != "" {
		t.Errorf("workspaces (-want +got):\n%s", diff)
	}

	got, err := c.FindWorkspace(ctx, "team-a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Description != "the A team" || got.RunCount != 0 {
		t.Errorf("FindWorkspace = %+v", got)
	}

	if _, err := c.CreateRun(ctx, "team-a", atelier.RunCreate{Experiment: "e"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.FindWorkspace(ctx, "team-a"); got.RunCount != 1 {
		t.Errorf("run count %d, want 1", got.RunCount)
	}
	MustCode(t, c.DeleteWorkspace(ctx, "team-a", false), atelier.ECONFLICT)
	if err := c.DeleteWorkspace(ctx, "team-a", true); err != nil {
		t.Fatal(err)
	}
	_, err = c.FindWorkspace(ctx, "team-a")
	MustCode(t, err, atelier.ENOTFOUND)
	MustCode(t, c.DeleteWorkspace(ctx, "default", true), atelier.ECONFLICT)
}

func TestExperiments(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)

	name := "diabetes ridge (v2)"
	_, err := c.FindExperiment(ctx, "default", name)
	MustCode(t, err, atelier.ENOTFOUND)
	for range 2 {
		MustRun(t, c, atelier.RunCreate{Experiment: name})
	}
	e, err := c.FindExperiment(ctx, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	if e.RunCount != 2 || e.LastRunAt == nil || e.Archived {
		t.Errorf("auto-created experiment %+v: want 2 runs, a last run time, not archived", e)
	}

	renamed, err := c.UpdateExperiment(ctx, "default", name, atelier.ExperimentUpdate{Name: ptr("ridge"), Description: ptr("renamed")})
	if err != nil {
		t.Fatal(err)
	}
	if renamed.Name != "ridge" || renamed.Description != "renamed" {
		t.Errorf("renamed = %+v", renamed)
	}
	_, err = c.FindExperiment(ctx, "default", name)
	MustCode(t, err, atelier.ENOTFOUND)
	page, err := c.ListRuns(ctx, "default", atelier.RunQuery{Experiment: "ridge"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != 2 {
		t.Errorf("runs of the renamed experiment: %d, want 2", len(page.Runs))
	}

	MustRun(t, c, atelier.RunCreate{Experiment: "other"})
	if _, err := c.UpdateExperiment(ctx, "default", "ridge", atelier.ExperimentUpdate{Archived: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	listNames := func(f atelier.ExperimentFilter) []string {
		t.Helper()
		list, err := c.ListExperiments(ctx, "default", f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range list {
			out = append(out, e.Name)
		}
		return out
	}
	if diff := cmp.Diff([]string{"other"}, listNames(atelier.ExperimentFilter{})); diff != "" {
		t.Errorf("after archiving (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"other", "ridge"}, listNames(atelier.ExperimentFilter{IncludeArchived: true})); diff != "" {
		t.Errorf("with archived (-want +got):\n%s", diff)
	}
	if _, err := c.UpdateExperiment(ctx, "default", "ridge", atelier.ExperimentUpdate{Archived: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"other", "ridge"}, listNames(atelier.ExperimentFilter{})); diff != "" {
		t.Errorf("after restoring (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ridge"}, listNames(atelier.ExperimentFilter{Name: "ridge"})); diff != "" {
		t.Errorf("by name (-want +got):\n%s", diff)
	}
	other, err := c.FindExperiment(ctx, "default", "other")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"other"}, listNames(atelier.ExperimentFilter{ID: other.ID})); diff != "" {
		t.Errorf("by id (-want +got):\n%s", diff)
	}
	_, err = c.UpdateExperiment(ctx, "default", "ridge", atelier.ExperimentUpdate{Name: ptr("other")})
	MustCode(t, err, atelier.ECONFLICT)
}

func TestRunsFindListPaginate(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)

	// Seven runs; acc = i/10, the optimizer alternates.
	var runs []*atelier.Run
	for i := range 7 {
		opt := "adam"
		if i%2 == 1 {
			opt = "sgd"
		}
		run := MustRun(t, c, atelier.RunCreate{Experiment: "search", Name: fmt.Sprintf("run-%d", i),
			Params: map[string]string{"opt": opt}, Tags: map[string]string{"i": fmt.Sprint(i)},
			Config: json.RawMessage(`{"script":"train.py"}`), Git: &atelier.GitInfo{Commit: "abc", Branch: "main"}})
		err := c.LogMetrics(ctx, "default", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "acc", Step: ptr[int64](0), Value: atelier.Float(float64(i) / 10)}}})
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, run)
	}
	MustRun(t, c, atelier.RunCreate{Experiment: "elsewhere", Params: map[string]string{"opt": "adam"}})

	got, err := c.FindRun(ctx, "default", runs[3].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "run-3" || got.Experiment != "search" || got.Params["opt"] != "sgd" || got.Tags["i"] != "3" ||
		float64(got.Metrics["acc"]) != 0.3 || got.Git == nil || got.Git.Commit != "abc" || string(got.Config) != `{"script":"train.py"}` ||
		got.Status != atelier.StatusNotStarted || got.CreatedBy != "admin" {
		t.Errorf("FindRun = %+v", got)
	}

	// adam runs with acc > 0.1: 2, 4, 6 — by acc descending, two a page.
	q := atelier.RunQuery{Experiment: "search", Filter: "params.opt = 'adam' and metrics.acc > 0.1", OrderBy: "metrics.acc desc", Limit: 2}
	var names []string
	pages := 0
	for {
		page, err := c.ListRuns(ctx, "default", q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range page.Runs {
			names = append(names, r.Name)
		}
		if page.NextPageToken == "" {
			break
		}
		q.PageToken = page.NextPageToken
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if diff := cmp.Diff([]string{"run-6", "run-4", "run-2"}, names); diff != "" {
		t.Errorf("search (-want +got):\n%s", diff)
	}
	if pages != 2 {
		t.Errorf("%d pages, want 2", pages)
	}

	// The same through GET with query parameters.
	v := url.Values{"experiment": {"search"}, "filter": {"tags.i in ('1', '5')"}, "order_by": {"name asc"}, "limit": {"1"}}
	var page atelier.RunPage
	getJSON(t, c, "/api/v1/workspaces/default/runs?"+v.Encode(), &page)
	if len(page.Runs) != 1 || page.Runs[0].Name != "run-1" || page.NextPageToken == "" {
		t.Fatalf("GET /runs page 1 = %+v", page)
	}
	v.Set("page_token", page.NextPageToken)
	page = atelier.RunPage{}
	getJSON(t, c, "/api/v1/workspaces/default/runs?"+v.Encode(), &page)
	if len(page.Runs) != 1 || page.Runs[0].Name != "run-5" || page.NextPageToken != "" {
		t.Fatalf("GET /runs page 2 = %+v", page)
	}
}

// getJSON reads a GET endpoint with the client's token into out.
func getJSON(tb testing.TB, c *api.Client, path string, out any) {
	tb.Helper()
	req, _ := http.NewRequestWithContext(Ctx(tb), "GET", c.BaseURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		tb.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
}

func TestChildRuns(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)
	parent := MustRun(t, c, atelier.RunCreate{Experiment: "hyperdrive"})
	var want []string
	for i := range 3 {
		child := MustRun(t, c, atelier.RunCreate{ParentID: parent.ID, Name: fmt.Sprintf("child-%d", i)})
		if child.Experiment != "hyperdrive" || child.ParentID != parent.ID {
			t.Errorf("child %+v: want the parent's experiment and id", child)
		}
		want = append(want, child.Name)
		time.Sleep(2 * time.Millisecond) // created_at has millisecond precision
	}
	got, err := c.FindRun(ctx, "default", parent.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ChildCount != 3 {
		t.Errorf("child count %d, want 3", got.ChildCount)
	}
	var page atelier.RunPage
	getJSON(t, c, "/api/v1/workspaces/default/runs/"+parent.ID+"/children", &page)
	var names []string
	for _, r := range page.Runs {
		names = append(names, r.Name)
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("children (-want +got):\n%s", diff)
	}
	roots, err := c.ListRuns(ctx, "default", atelier.RunQuery{RootOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(roots.Runs) != 1 || roots.Runs[0].ID != parent.ID {
		t.Errorf("root runs = %d runs, want only the parent", len(roots.Runs))
	}
	_, err = c.CreateRun(ctx, "default", atelier.RunCreate{ParentID: "nope"})
	MustCode(t, err, atelier.ENOTFOUND)
}

func TestRunStatus(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)
	run := MustRun(t, c, atelier.RunCreate{})
	if run.Status != atelier.StatusNotStarted || run.StartedAt != nil {
		t.Fatalf("new run %+v", run)
	}
	for _, st := range []atelier.RunStatus{atelier.StatusQueued, atelier.StatusPreparing, atelier.StatusRunning, atelier.StatusFinalizing} {
		got, err := c.UpdateRunStatus(ctx, "default", run.ID, atelier.RunStatusUpdate{Status: st})
		if err != nil {
			t.Fatalf("to %s: %v", st, err)
		}
		if got.Status != st {
			t.Errorf("status %s, want %s", got.Status, st)
		}
	}
	got, err := c.UpdateRunStatus(ctx, "default", run.ID, atelier.RunStatusUpdate{Status: atelier.StatusCompleted, ExitCode: ptr(0)})
	if err != nil {
		t.Fatal(err)
	}
	if got.StartedAt == nil || got.EndedAt == nil || got.ExitCode == nil || *got.ExitCode != 0 {
		t.Errorf("completed run %+v: want start, end and exit code 0", got)
	}
	_, err = c.UpdateRunStatus(ctx, "default", run.ID, atelier.RunStatusUpdate{Status: atelier.StatusRunning})
	MustCode(t, err, atelier.ECONFLICT)

	failed := MustRun(t, c, atelier.RunCreate{Status: atelier.StatusRunning})
	got, err = c.UpdateRunStatus(ctx, "default", failed.ID, atelier.RunStatusUpdate{Status: atelier.StatusFailed, Error: "OOM", ExitCode: ptr(137)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Error != "OOM" || *got.ExitCode != 137 {
		t.Errorf("failed run %+v", got)
	}
}

func TestParamsTagsProperties(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)
	run := MustRun(t, c, atelier.RunCreate{Params: map[string]string{"lr": "0.1"}})
	id := run.ID
	if err := c.LogParams(ctx, "default", id, map[string]string{"lr": "0.1", "epochs": "10"}); err != nil {
		t.Fatalf("same value again: %v", err)
	}
	MustCode(t, c.LogParams(ctx, "default", id, map[string]string{"lr": "0.2"}), atelier.ECONFLICT)
	if err := c.SetTags(ctx, "default", id, map[string]string{"stage": "dev", "owner": "ann"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetTags(ctx, "default", id, map[string]string{"stage": "prod"}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTag(ctx, "default", id, "owner"); err != nil {
		t.Fatal(err)
	}
	MustCode(t, c.DeleteTag(ctx, "default", id, "owner"), atelier.ENOTFOUND)
	if err := c.AddProperties(ctx, "default", id, map[string]string{"azureml.runsource": "experiment"}); err != nil {
		t.Fatal(err)
	}
	MustCode(t, c.AddProperties(ctx, "default", id, map[string]string{"azureml.runsource": "other"}), atelier.ECONFLICT)
	got, err := c.FindRun(ctx, "default", id)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"params":     {"lr": "0.1", "epochs": "10"},
		"tags":       {"stage": "prod"},
		"properties": {"azureml.runsource": "experiment"},
	}
	if diff := cmp.Diff(want, map[string]map[string]string{"params": got.Params, "tags": got.Tags, "properties": got.Properties}); diff != "" {
		t.Errorf("run key-values (-want +got):\n%s", diff)
	}
}

func sameFloat(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

func TestMetrics(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)
	run := MustRun(t, c, atelier.RunCreate{Status: atelier.StatusRunning})

	values := []float64{1.5, math.NaN(), math.Inf(1), math.Inf(-1), -0.25, 1e300}
	var batch atelier.MetricBatch
	for i, v := range values {
		batch.Points = append(batch.Points, atelier.MetricPoint{Name: "loss", Step: ptr(int64(i)), Timestamp: 1_700_000_000_000 + int64(i), Value: atelier.Float(v)})
	}
	batch.Points = append(batch.Points, atelier.MetricPoint{Name: "last_nan", Value: atelier.Float(math.NaN())})
	batch.Records = []atelier.MetricRecord{
		{Name: "confusion", Kind: atelier.MetricTable, Value: json.RawMessage(`{"a":[1,2],"b":[3,4]}`)},
		{Name: "row", Kind: atelier.MetricRow, Value: json.RawMessage(`{"x":1}`)},
		{Name: "row", Kind: atelier.MetricRow, Value: json.RawMessage(`{"x":2}`)},
	}
	if err := c.LogMetrics(ctx, "default", run.ID, &batch); err != nil {
		t.Fatal(err)
	}

	s, err := c.MetricHistory(ctx, "default", run.ID, "loss", atelier.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Total != int64(len(values)) || len(s.Values) != len(values) || s.Downsampled {
		t.Fatalf("history = %+v", s)
	}
	for i, v := range values {
		if !sameFloat(float64(s.Values[i]), v) || s.Steps[i] != int64(i) || s.Timestamps[i] != 1_700_000_000_000+int64(i) {
			t.Errorf("point %d: step %d ts %d value %v, want step %d value %v", i, s.Steps[i], s.Timestamps[i], s.Values[i], i, v)
		}
	}
	window, err := c.MetricHistory(ctx, "default", run.ID, "loss", atelier.HistoryQuery{MinStep: ptr[int64](1), MaxStep: ptr[int64](3)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{1, 2, 3}, window.Steps); diff != "" {
		t.Errorf("window steps (-want +got):\n%s", diff)
	}

	got, err := c.FindRun(ctx, "default", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Metrics["loss"] != 1e300 || !math.IsNaN(float64(got.Metrics["last_nan"])) {
		t.Errorf("latest metrics of the run = %v", got.Metrics)
	}
	list, err := c.ListMetrics(ctx, "default", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	summaries := map[string]*atelier.MetricSummary{}
	for _, m := range list {
		summaries[m.Name] = m
	}
	if m := summaries["loss"]; m == nil || m.Count != int64(len(values)) || m.Step != 5 || m.Kind != atelier.MetricScalar {
		t.Errorf("summary of loss = %+v", m)
	}
	if m := summaries["row"]; m == nil || m.Count != 2 || m.Kind != atelier.MetricRow || string(m.Last) != `{"x":2}` {
		t.Errorf("summary of row = %+v", m)
	}

	recs, err := c.MetricRecords(ctx, "default", run.ID, "row")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || string(recs[0].Value) != `{"x":1}` || string(recs[1].Value) != `{"x":2}` || recs[0].Timestamp == 0 {
		t.Errorf("records = %+v", recs)
	}
	recs, err = c.MetricRecords(ctx, "default", run.ID, "confusion")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Kind != atelier.MetricTable {
		t.Errorf("table records = %+v", recs)
	}
	_, err = c.MetricHistory(ctx, "default", run.ID, "nope", atelier.HistoryQuery{})
	MustCode(t, err, atelier.ENOTFOUND)
	// A scalar logged to a table metric is a conflict, and changes nothing.
	err = c.LogMetrics(ctx, "default", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "confusion", Value: 1}}})
	MustCode(t, err, atelier.ECONFLICT)
}

func TestMetricHistoryDownsampled(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)
	run := MustRun(t, c, atelier.RunCreate{Status: atelier.StatusRunning})
	const n = 1000
	var batch atelier.MetricBatch
	for i := range n {
		v := math.Sin(float64(i) / 50)
		if i == 537 {
			v = 42 // a spike must survive downsampling
		}
		batch.Points = append(batch.Points, atelier.MetricPoint{Name: "x", Value: atelier.Float(v)}) // steps assigned 0..n-1
	}
	if err := c.LogMetrics(ctx, "default", run.ID, &batch); err != nil {
		t.Fatal(err)
	}
	full, err := c.MetricHistory(ctx, "default", run.ID, "x", atelier.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if full.Total != n || len(full.Steps) != n || full.Steps[0] != 0 || full.Steps[n-1] != n-1 {
		t.Fatalf("full history: total %d, %d steps", full.Total, len(full.Steps))
	}
	ds, err := c.MetricHistory(ctx, "default", run.ID, "x", atelier.HistoryQuery{MaxPoints: 50})
	if err != nil {
		t.Fatal(err)
	}
	if !ds.Downsampled || ds.Total != n || len(ds.Steps) == 0 || len(ds.Steps) > 50 ||
		len(ds.Min) != len(ds.Steps) || len(ds.Max) != len(ds.Steps) || len(ds.Values) != len(ds.Steps) {
		t.Fatalf("downsampled: downsampled=%v total=%d steps=%d min=%d max=%d", ds.Downsampled, ds.Total, len(ds.Steps), len(ds.Min), len(ds.Max))
	}
	if !slices.IsSorted(ds.Steps) || ds.Steps[len(ds.Steps)-1] != n-1 {
		t.Errorf("downsampled steps %v: want sorted, ending at the last step", ds.Steps)
	}
	if slices.Max(ds.Max) != 42 {
		t.Errorf("the spike of 42 is lost: max %v", slices.Max(ds.Max))
	}
}

// randReader yields n deterministic pseudo-random bytes, so a big upload needs no memory.
func randReader(seed uint64, n int64) io.Reader {
	var key [32]byte
	key[0] = byte(seed)
	return io.LimitReader(rand.NewChaCha8(key), n)
}

func TestFileUploadDownload(t *testing.T) {
	s := MustStack(t)
	c := s.Client
	ctx := Ctx(t)
	run := MustRun(t, c, atelier.RunCreate{Status: atelier.StatusRunning})
	const size = 20 << 20

	h := sha256.New()
	// io.MultiReader hides the length, so the request goes out chunked: streamed, not buffered.
	f, err := c.UploadFile(ctx, "default", run.ID, "outputs/model.bin", io.TeeReader(io.MultiReader(randReader(1, size)), h), "")
	if err != nil {
		t.Fatal(err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if f.Size != size || f.Digest != sum || f.Path != "outputs/model.bin" {
		t.Fatalf("uploaded %+v, want size %d digest %s", f, size, sum)
	}

	got, rc, err := c.OpenFile(ctx, "default", run.ID, "outputs/model.bin")
	if err != nil {
		t.Fatal(err)
	}
	h2 := sha256.New()
	n, err := io.Copy(h2, rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if n != size || hex.EncodeToString(h2.Sum(nil)) != sum || got.Digest != sum || got.Size != size {
		t.Errorf("downloaded %d bytes, digest %s (header %s), want %d bytes, %s", n, hex.EncodeToString(h2.Sum(nil)), got.Digest, size, sum)
	}

	// With the right digest the upload is checked and accepted.
	f, err = c.UploadFile(ctx, "default", run.ID, "outputs/copy.bin", io.MultiReader(randReader(1, size)), sum)
	if err != nil {
		t.Fatalf("upload with the right digest: %v", err)
	}
	if f.Digest != sum || f.Size != size {
		t.Errorf("upload with the right digest = %+v", f)
	}

	// A wrong digest is refused, and nothing is listed or stored.
	wrong := Sum([]byte("something else"))
	_, err = c.UploadFile(ctx, "default", run.ID, "outputs/bad.bin", io.MultiReader(randReader(2, size)), wrong)
	MustCode(t, err, atelier.EINVALID)
	resp := s.MustDo(t, Request{Method: "PUT", Path: "/api/v1/workspaces/default/runs/" + run.ID + "/files/outputs/bad2.bin",
		Body: "hello", ContentType: "application/octet-stream", Header: map[string]string{api.DigestHeader: wrong}})
	MustAPIError(t, resp, http.StatusBadRequest, "digest")
	files, err := c.ListFiles(ctx, "default", run.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	if diff := cmp.Diff([]string{"outputs/copy.bin", "outputs/model.bin"}, paths); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	missing, err := c.MissingObjects(ctx, "default", []string{wrong, sum})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{wrong}, missing); diff != "" {
		t.Errorf("missing objects (-want +got):\n%s", diff)
	}
	files, err = c.ListFiles(ctx, "default", run.ID, "outputs")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Errorf("files under outputs/: %d, want 2", len(files))
	}
}

func TestLogs(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)
	run := MustRun(t, c, atelier.RunCreate{Status: atelier.StatusRunning})
	const path = "logs/std_log.txt"

	// Start following before anything is written.
	follow, err := c.FollowLog(ctx, "default", run.ID, path, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Close()
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(follow)
		done <- result{b, err}
	}()

	var want strings.Builder
	for i := range 50 {
		line := fmt.Sprintf("epoch %d: loss %.3f\n", i, 1/float64(i+1))
		want.WriteString(line)
		if err := c.AppendLog(ctx, "default", run.ID, path, []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	// Offsets: read from the middle, and a limited read.
	chunk, err := c.ReadLog(ctx, "default", run.ID, path, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(chunk.Data) != want.String()[10:] {
		t.Errorf("read from offset 10 = %q...", chunk.Data[:min(40, len(chunk.Data))])
	}
	chunk, err = c.ReadLog(ctx, "default", run.ID, path, 6, 5)
	if err != nil {
		t.Fatal(err)
	}
	if string(chunk.Data) != want.String()[6:11] {
		t.Errorf("read of 5 bytes at 6 = %q, want %q", chunk.Data, want.String()[6:11])
	}

	if _, err := c.UpdateRunStatus(ctx, "default", run.ID, atelier.RunStatusUpdate{Status: atelier.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("following: %v", r.err)
		}
		if string(r.data) != want.String() {
			t.Errorf("the follower got %d bytes, want %d:\n%s", len(r.data), want.Len(), r.data)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the follower did not end after the run completed")
	}

	// The whole log downloads as a file too, and is listed as a log.
	_, rc, err := c.OpenFile(ctx, "default", run.ID, path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != want.String() {
		t.Errorf("downloaded log differs: %d bytes, want %d", len(b), want.Len())
	}
	files, err := c.ListFiles(ctx, "default", run.ID, "logs")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || !files[0].Log || files[0].Size != int64(want.Len()) {
		t.Errorf("listed logs = %+v", files)
	}

	// Following the log of an ended run returns it whole and ends.
	rc, err = c.FollowLog(ctx, "default", run.ID, path, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(rc)
	rc.Close()
	if err != nil || string(b) != want.String() {
		t.Errorf("following an ended run: %d bytes, %v", len(b), err)
	}
}

func TestSnapshotManifest(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)
	files := map[string]string{"train.py": "print('hi')\n", "src/model.py": "class Model: pass\n", "data/README": "no data here\n"}
	var entries []atelier.SnapshotEntry
	var digests []string
	for p, content := range files {
		d := Sum([]byte(content))
		entries = append(entries, atelier.SnapshotEntry{Path: p, Digest: d, Size: int64(len(content)), Executable: p == "train.py"})
		digests = append(digests, d)
	}
	sort.Strings(digests)

	missing, err := c.MissingObjects(ctx, "default", digests)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(missing)
	if diff := cmp.Diff(digests, missing); diff != "" {
		t.Fatalf("missing before upload (-want +got):\n%s", diff)
	}
	for _, e := range entries {
		obj, err := c.UploadObject(ctx, "default", strings.NewReader(files[e.Path]), e.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if obj.Digest != e.Digest || obj.Size != e.Size {
			t.Errorf("uploaded object %+v, want %s/%d", obj, e.Digest, e.Size)
		}
	}
	snap, err := c.CreateSnapshot(ctx, "default", entries)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.ID) != 64 || snap.FileCount != 3 {
		t.Errorf("snapshot %+v", snap)
	}
	missing, err = c.MissingObjects(ctx, "default", digests)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 0 {
		t.Errorf("missing after upload: %v", missing)
	}
	again, err := c.CreateSnapshot(ctx, "default", entries)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != snap.ID {
		t.Errorf("the same manifest twice: ids %s and %s", snap.ID, again.ID)
	}

	found, err := c.FindSnapshot(ctx, "default", snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(found.Entries) != 3 || found.Size != snap.Size {
		t.Errorf("found %+v", found)
	}
	var buf bytes.Buffer
	if err := c.WriteSnapshotZip(ctx, "default", snap.ID, &buf); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(files, MustUnzip(t, buf.Bytes())); diff != "" {
		t.Errorf("zip content (-want +got):\n%s", diff)
	}

	// A run that names the snapshot downloads it.
	run := MustRun(t, c, atelier.RunCreate{SnapshotID: snap.ID})
	buf.Reset()
	if err := c.WriteRunSnapshotZip(ctx, "default", run.ID, &buf); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(files, MustUnzip(t, buf.Bytes())); diff != "" {
		t.Errorf("run snapshot content (-want +got):\n%s", diff)
	}
}

func TestSnapshotZip(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)
	files := [][2]string{{"main.py", "import pkg.util\n"}, {"pkg/util.py", "def f(): return 1\n"}, {"pkg/__init__.py", ""}}
	snap, err := c.UploadSnapshotZip(ctx, "default", bytes.NewReader(MustZip(t, files...)))
	if err != nil {
		t.Fatal(err)
	}
	if snap.FileCount != 3 {
		t.Errorf("snapshot %+v: want 3 files", snap)
	}
	var buf bytes.Buffer
	if err := c.WriteSnapshotZip(ctx, "default", snap.ID, &buf); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	var entries []atelier.SnapshotEntry
	for _, f := range files {
		want[f[0]] = f[1]
		entries = append(entries, atelier.SnapshotEntry{Path: f[0], Digest: Sum([]byte(f[1])), Size: int64(len(f[1]))})
	}
	if diff := cmp.Diff(want, MustUnzip(t, buf.Bytes())); diff != "" {
		t.Errorf("zip content (-want +got):\n%s", diff)
	}
	// Content-addressed: the same files as a manifest are the same snapshot.
	same, err := c.CreateSnapshot(ctx, "default", entries)
	if err != nil {
		t.Fatal(err)
	}
	if same.ID != snap.ID {
		t.Errorf("manifest of the same files: id %s, zip upload gave %s", same.ID, snap.ID)
	}
}

func TestActivities(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)
	run := MustRun(t, c, atelier.RunCreate{})
	a, err := c.FindActivity(ctx, "default", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != "run" || a.Target != run.ID || a.Status != atelier.ActivityQueued {
		t.Errorf("activity of a new run = %+v", a)
	}
	for _, st := range []atelier.RunStatus{atelier.StatusRunning, atelier.StatusCompleted} {
		if _, err := c.UpdateRunStatus(ctx, "default", run.ID, atelier.RunStatusUpdate{Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := c.ListActivities(ctx, "default", atelier.ActivityFilter{Kind: "run"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("activities = %+v", list)
	}
	if a := list[0]; a.ID != run.ID || a.Status != atelier.ActivitySucceeded || a.EndedAt == nil || a.Percent != 100 || a.Message != "Completed" {
		t.Errorf("activity of a completed run = %+v", a)
	}
	active, err := c.ListActivities(ctx, "default", atelier.ActivityFilter{Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 0 {
		t.Errorf("active activities = %+v, want none", active)
	}
}

func TestEvents(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)
	run := MustRun(t, c, atelier.RunCreate{})
	other := MustRun(t, c, atelier.RunCreate{})
	events, err := c.Subscribe(ctx, "default", atelier.EventFilter{RunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateRunStatus(ctx, "default", run.ID, atelier.RunStatusUpdate{Status: atelier.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateRunStatus(ctx, "default", other.ID, atelier.RunStatusUpdate{Status: atelier.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	if err := c.LogMetrics(ctx, "default", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "acc", Value: 0.5}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.AppendLog(ctx, "default", run.ID, "logs/out.txt", []byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateRunStatus(ctx, "default", run.ID, atelier.RunStatusUpdate{Status: atelier.StatusCompleted}); err != nil {
		t.Fatal(err)
	}

	var got []string
	timeout := time.After(15 * time.Second)
	for len(got) < 4 {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("the event stream ended after %v", got)
			}
			if e.RunID != run.ID {
				t.Errorf("event %s of run %s: the filter is run %s", e.Type, e.RunID, run.ID)
			}
			if e.Type == atelier.EventActivity {
				continue
			}
			got = append(got, e.Type)
			switch e.Type {
			case atelier.EventRunStatus:
				var r atelier.Run
				if err := json.Unmarshal(e.Data, &r); err != nil || r.ID != run.ID {
					t.Errorf("run.status data %s: %v", e.Data, err)
				}
			case atelier.EventMetrics:
				var m map[string]atelier.MetricPoint
				if err := json.Unmarshal(e.Data, &m); err != nil || m["acc"].Value != 0.5 {
					t.Errorf("run.metrics data %s: %v", e.Data, err)
				}
			case atelier.EventLog:
				var l struct{ Path, Text string }
				if err := json.Unmarshal(e.Data, &l); err != nil || l.Text != "hello\n" || l.Path != "logs/out.txt" {
					t.Errorf("run.log data %s: %v", e.Data, err)
				}
			}
		case <-timeout:
			t.Fatalf("events so far %v: want run.status, run.metrics, run.log, run.status", got)
		}
	}
	want := []string{atelier.EventRunStatus, atelier.EventMetrics, atelier.EventLog, atelier.EventRunStatus}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestBadInput sends what careless or hostile clients send and checks each answer is a JSON
// error with the right status and a message that says what was wrong: never a 500.
func TestBadInput(t *testing.T) {
	s := MustStack(t)
	c := s.Client
	ctx := Ctx(t)
	run := MustRun(t, c, atelier.RunCreate{Status: atelier.StatusRunning, Params: map[string]string{"lr": "0.1"}})
	done := MustRun(t, c, atelier.RunCreate{Status: atelier.StatusRunning})
	if _, err := c.UpdateRunStatus(ctx, "default", done.ID, atelier.RunStatusUpdate{Status: atelier.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	if err := c.LogMetrics(ctx, "default", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "loss", Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateWorkspace(ctx, &atelier.Workspace{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	r := "/api/v1/workspaces/default/runs/" + run.ID
	unknownDigest := Sum([]byte("never uploaded"))
	manifest := fmt.Sprintf(`{"entries":[{"path":"a.py","digest":%q,"size":14}]}`, unknownDigest)

	tests := []struct {
		name   string
		req    Request
		status int
		want   []string // the message mentions each
	}{
		// Query parameters.
		{"experiment id not a number", Request{Method: "GET", Path: "/api/v1/workspaces/default/experiments?id=abc"}, 400, []string{"id=", "abc", "not an integer"}},
		{"experiment id not positive", Request{Method: "GET", Path: "/api/v1/workspaces/default/experiments?id=0"}, 400, []string{"id=0", "positive"}},
		// Bodies.
		{"malformed JSON", Request{Method: "POST", Path: "/api/v1/workspaces", Body: `{"name": "x",`}, 400, []string{"invalid JSON"}},
		{"malformed JSON syntax", Request{Method: "POST", Path: r + "/status", Body: `{"status" "Running"}`}, 400, []string{"invalid JSON", "byte"}},
		{"unknown field", Request{Method: "POST", Path: "/api/v1/workspaces", Body: `{"name":"x","colour":"red"}`}, 400, []string{"colour"}},
		{"unknown field in run", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs", Body: `{"experiment":"e","paramz":{}}`}, 400, []string{"paramz"}},
		{"step of the wrong type", Request{Method: "POST", Path: r + "/metrics", Body: `{"metrics":[{"name":"a","step":"x","value":1}]}`}, 400, []string{"step"}},
		{"value not a number", Request{Method: "POST", Path: r + "/metrics", Body: `{"metrics":[{"name":"a","value":"abc"}]}`}, 400, []string{"abc"}},
		{"params as a list", Request{Method: "POST", Path: r + "/params", Body: `{"params":["a","b"]}`}, 400, []string{"params"}},
		{"body of the wrong type", Request{Method: "POST", Path: "/api/v1/workspaces", Body: `["x"]`}, 400, []string{"invalid JSON"}},
		{"empty body", Request{Method: "POST", Path: "/api/v1/workspaces", ContentType: "application/json"}, 400, []string{"empty"}},
		{"empty metrics body", Request{Method: "POST", Path: r + "/metrics", ContentType: "application/json"}, 400, []string{"empty"}},
		{"trailing garbage", Request{Method: "POST", Path: "/api/v1/workspaces", Body: `{"name":"x"} garbage`}, 400, []string{"after"}},
		{"trailing second value", Request{Method: "POST", Path: r + "/tags", Body: `{"tags":{"a":"b"}}{"tags":{}}`}, 400, []string{"after"}},
		{"trailing close brace", Request{Method: "POST", Path: "/api/v1/workspaces", Body: `{"name":"trailing-brace"}}`}, 400, []string{"after"}},
		{"trailing close bracket", Request{Method: "POST", Path: r + "/tags", Body: `{"tags":{"a":"b"}}]`}, 400, []string{"after"}},

		// Names.
		{"invalid workspace name", Request{Method: "POST", Path: "/api/v1/workspaces", Body: `{"name":"../etc"}`}, 400, []string{"workspace name"}},
		{"empty workspace name", Request{Method: "POST", Path: "/api/v1/workspaces", Body: `{"name":""}`}, 400, []string{"workspace name"}},
		{"duplicate workspace", Request{Method: "POST", Path: "/api/v1/workspaces", Body: `{"name":"default"}`}, 409, []string{"exists"}},
		{"invalid experiment name", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs", Body: `{"experiment":"a/b"}`}, 400, []string{"experiment name"}},
		{"missing experiment name", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs", Body: `{}`}, 400, []string{"experiment name"}},
		{"rename to an invalid name", Request{Method: "PATCH", Path: "/api/v1/workspaces/default/experiments/exp", Body: `{"name":""}`}, 400, []string{"experiment name"}},
		{"unknown run status", Request{Method: "POST", Path: r + "/status", Body: `{"status":"Sleeping"}`}, 400, []string{"Sleeping"}},

		// Unknown things.
		{"unknown workspace", Request{Method: "GET", Path: "/api/v1/workspaces/nope"}, 404, []string{"nope"}},
		{"unknown workspace runs", Request{Method: "GET", Path: "/api/v1/workspaces/nope/runs"}, 404, []string{"nope"}},
		{"unknown workspace create run", Request{Method: "POST", Path: "/api/v1/workspaces/nope/runs", Body: `{"experiment":"e"}`}, 404, []string{"nope"}},
		{"unknown workspace delete", Request{Method: "DELETE", Path: "/api/v1/workspaces/nope"}, 404, []string{"nope"}},
		{"unknown workspace events", Request{Method: "GET", Path: "/api/v1/workspaces/nope/events"}, 404, []string{"nope"}},
		{"unknown workspace activities", Request{Method: "GET", Path: "/api/v1/workspaces/nope/activities"}, 404, []string{"nope"}},
		{"unknown workspace missing objects", Request{Method: "POST", Path: "/api/v1/workspaces/nope/objects/missing", Body: `{"digests":[]}`}, 404, []string{"nope"}},
		{"unknown workspace upload object", Request{Method: "PUT", Path: "/api/v1/workspaces/nope/objects/" + Sum([]byte("x")), Body: "x", ContentType: "application/octet-stream"}, 404, []string{"nope"}},
		{"unknown workspace zip", Request{Method: "POST", Path: "/api/v1/workspaces/nope/snapshots", Body: "PK", ContentType: "application/zip"}, 404, []string{"nope"}},
		{"unknown run", Request{Method: "GET", Path: "/api/v1/workspaces/default/runs/nope"}, 404, []string{"nope"}},
		{"unknown run children", Request{Method: "GET", Path: "/api/v1/workspaces/default/runs/nope/children"}, 404, []string{"nope"}},
		{"unknown run status update", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs/nope/status", Body: `{"status":"Running"}`}, 404, []string{"nope"}},
		{"unknown run metrics", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs/nope/metrics", Body: `{"metrics":[{"name":"a","timestamp":1,"value":1}]}`}, 404, []string{"nope"}},
		{"unknown run files", Request{Method: "GET", Path: "/api/v1/workspaces/default/runs/nope/files"}, 404, []string{"nope"}},
		{"unknown run upload", Request{Method: "PUT", Path: "/api/v1/workspaces/default/runs/nope/files/a.txt", Body: "x", ContentType: "application/octet-stream"}, 404, []string{"nope"}},
		{"unknown run log", Request{Method: "GET", Path: "/api/v1/workspaces/default/runs/nope/logs/out.txt"}, 404, []string{"nope"}},
		{"unknown run append log", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs/nope/logs/out.txt", Body: "x", ContentType: "text/plain"}, 404, []string{"nope"}},
		{"run of another workspace", Request{Method: "GET", Path: "/api/v1/workspaces/other/runs/" + run.ID}, 404, []string{run.ID}},
		{"metrics of a run of another workspace", Request{Method: "POST", Path: "/api/v1/workspaces/other/runs/" + run.ID + "/metrics", Body: `{"metrics":[{"name":"x","timestamp":1,"value":1}]}`}, 404, []string{run.ID}},
		{"unknown file", Request{Method: "GET", Path: r + "/files/nope.txt"}, 404, []string{"nope.txt"}},
		{"unknown log of an ended run", Request{Method: "GET", Path: "/api/v1/workspaces/default/runs/" + done.ID + "/logs/nope.txt"}, 404, []string{"nope.txt"}},
		{"unknown metric", Request{Method: "GET", Path: r + "/metric-history?name=nope"}, 404, []string{"nope"}},
		{"unknown records", Request{Method: "GET", Path: r + "/metric-records?name=nope"}, 404, []string{"nope"}},
		{"unknown tag", Request{Method: "DELETE", Path: r + "/tags/nope"}, 404, []string{"nope"}},
		{"unknown experiment", Request{Method: "GET", Path: "/api/v1/workspaces/default/experiments/nope"}, 404, []string{"nope"}},
		{"unknown experiment update", Request{Method: "PATCH", Path: "/api/v1/workspaces/default/experiments/nope", Body: `{"archived":true}`}, 404, []string{"nope"}},
		{"unknown snapshot", Request{Method: "GET", Path: "/api/v1/workspaces/default/snapshots/" + unknownDigest}, 404, []string{"snapshot"}},
		{"unknown snapshot zip", Request{Method: "GET", Path: "/api/v1/workspaces/default/snapshots/nope/zip"}, 404, []string{"snapshot"}},
		{"run without snapshot", Request{Method: "GET", Path: r + "/snapshot"}, 404, []string{"snapshot"}},
		{"unknown activity", Request{Method: "GET", Path: "/api/v1/workspaces/default/activities/nope"}, 404, []string{"nope"}},

		// Queries.
		{"invalid filter", Request{Method: "GET", Path: "/api/v1/workspaces/default/runs?filter=" + url.QueryEscape("metrics.acc >> 1")}, 400, []string{"position"}},
		{"invalid filter in search", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs/search", Body: `{"filter":"params.x = 'a' and"}`}, 400, []string{"position"}},
		{"invalid order", Request{Method: "GET", Path: "/api/v1/workspaces/default/runs?order_by=" + url.QueryEscape("attributes.nope desc")}, 400, []string{"nope"}},
		{"bad page token", Request{Method: "GET", Path: "/api/v1/workspaces/default/runs?page_token=garbage!"}, 400, []string{"page token"}},
		{"bad page token in search", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs/search", Body: `{"page_token":"eyJvIjotNX0"}`}, 400, []string{"page token"}},
		{"negative limit", Request{Method: "GET", Path: "/api/v1/workspaces/default/runs?limit=-1"}, 400, []string{"limit"}},
		{"limit not a number", Request{Method: "GET", Path: "/api/v1/workspaces/default/runs?limit=abc"}, 400, []string{"limit", "abc"}},
		{"limit too large", Request{Method: "GET", Path: "/api/v1/workspaces/default/runs?limit=100000"}, 400, []string{"limit"}},
		{"negative limit in search", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs/search", Body: `{"limit":-1}`}, 400, []string{"limit"}},
		{"negative children limit", Request{Method: "GET", Path: r + "/children?limit=-1"}, 400, []string{"limit"}},
		{"negative activities limit", Request{Method: "GET", Path: "/api/v1/workspaces/default/activities?limit=-1"}, 400, []string{"limit"}},
		{"activities limit not a number", Request{Method: "GET", Path: "/api/v1/workspaces/default/activities?limit=abc"}, 400, []string{"limit"}},
		{"bad boolean", Request{Method: "GET", Path: "/api/v1/workspaces/default/runs?root_only=maybe"}, 400, []string{"root_only"}},
		{"max_points not a number", Request{Method: "GET", Path: r + "/metric-history?name=loss&max_points=abc"}, 400, []string{"max_points"}},
		{"max_points negative", Request{Method: "GET", Path: r + "/metric-history?name=loss&max_points=-5"}, 400, []string{"max_points"}},
		{"min_step not a number", Request{Method: "GET", Path: r + "/metric-history?name=loss&min_step=1.5"}, 400, []string{"min_step"}},
		{"metric name missing in history", Request{Method: "GET", Path: r + "/metric-history"}, 400, []string{"name"}},
		{"metric name missing in records", Request{Method: "GET", Path: r + "/metric-records"}, 400, []string{"name"}},
		{"metric name missing in batch", Request{Method: "POST", Path: r + "/metrics", Body: `{"metrics":[{"name":"","timestamp":1,"value":1}]}`}, 400, []string{"metric name"}},
		{"negative step", Request{Method: "POST", Path: r + "/metrics", Body: `{"metrics":[{"name":"a","step":-1,"timestamp":1,"value":1}]}`}, 400, []string{"negative"}},
		{"unknown record kind", Request{Method: "POST", Path: r + "/metrics", Body: `{"metrics":[],"records":[{"name":"a","kind":"blob","timestamp":1,"value":1}]}`}, 400, []string{"kind"}},
		{"negative log offset", Request{Method: "GET", Path: r + "/logs/out.txt?offset=-1"}, 400, []string{"offset"}},
		{"bad follow", Request{Method: "GET", Path: r + "/logs/out.txt?follow=sure"}, 400, []string{"follow"}},

		// Digests, snapshots.
		{"invalid digest header", Request{Method: "PUT", Path: r + "/files/a.txt", Body: "x", ContentType: "application/octet-stream", Header: map[string]string{api.DigestHeader: "ABC"}}, 400, []string{"digest"}},
		{"invalid object digest", Request{Method: "PUT", Path: "/api/v1/workspaces/default/objects/abc", Body: "x", ContentType: "application/octet-stream"}, 400, []string{"digest"}},
		{"object digest mismatch", Request{Method: "PUT", Path: "/api/v1/workspaces/default/objects/" + unknownDigest, Body: "not it", ContentType: "application/octet-stream"}, 400, []string{"digest"}},
		{"invalid digest in missing", Request{Method: "POST", Path: "/api/v1/workspaces/default/objects/missing", Body: `{"digests":["xyz"]}`}, 400, []string{"xyz"}},
		{"manifest with an object never uploaded", Request{Method: "POST", Path: "/api/v1/workspaces/default/snapshots", Body: manifest}, 400, []string{unknownDigest}},
		{"manifest with a bad path", Request{Method: "POST", Path: "/api/v1/workspaces/default/snapshots", Body: fmt.Sprintf(`{"entries":[{"path":"../a.py","digest":%q,"size":1}]}`, unknownDigest)}, 400, []string{"../a.py"}},
		{"snapshot of an unknown content type", Request{Method: "POST", Path: "/api/v1/workspaces/default/snapshots", Body: "x", ContentType: "text/plain"}, 400, []string{"Content-Type"}},
		{"not a zip", Request{Method: "POST", Path: "/api/v1/workspaces/default/snapshots", Body: "definitely not a zip", ContentType: "application/zip"}, 400, []string{"zip"}},

		// State.
		{"illegal status transition", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs/" + done.ID + "/status", Body: `{"status":"Running"}`}, 409, []string{"Completed", "Running"}},
		{"param change", Request{Method: "POST", Path: r + "/params", Body: `{"params":{"lr":"0.2"}}`}, 409, []string{"lr"}},
		{"delete a workspace with runs", Request{Method: "DELETE", Path: "/api/v1/workspaces/default"}, 409, []string{"default"}},

		// Routes and auth.
		{"unknown route", Request{Method: "GET", Path: "/api/v1/nope"}, 404, []string{"/api/v1/nope"}},
		{"unknown route deep", Request{Method: "POST", Path: r + "/frobnicate", Body: `{}`}, 404, []string{"frobnicate"}},
		{"no token", Request{Method: "GET", Path: "/api/v1/workspaces", Token: ptr("")}, 401, []string{"Bearer"}},
		{"wrong token", Request{Method: "GET", Path: "/api/v1/workspaces", Token: ptr("atl_wrong")}, 401, []string{"token"}},
		{"not a bearer", Request{Method: "GET", Path: "/api/v1/workspaces", Token: ptr(""), Header: map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="}}, 401, nil},
		{"no token on a run", Request{Method: "GET", Path: r, Token: ptr("")}, 401, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.MustDo(t, tt.req)
			MustAPIError(t, resp, tt.status, tt.want...)
			if tt.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("a 401 without a WWW-Authenticate header")
			}
		})
	}

	// The requests above changed nothing.
	got, err := c.FindRun(ctx, "default", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"lr": "0.1"}, got.Params); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
	if len(got.Tags) != 0 {
		t.Errorf("tags %v, want none", got.Tags)
	}
	list, err := c.ListWorkspaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Errorf("%d workspaces, want default and other", len(list))
	}
	metrics, err := c.ListMetrics(ctx, "default", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(metrics) != 1 || metrics[0].Name != "loss" {
		t.Errorf("metrics %+v, want only loss", metrics)
	}
}

func TestMethodNotAllowedIsJSON(t *testing.T) {
	s := MustStack(t)
	resp := s.MustDo(t, Request{Method: "PATCH", Path: "/api/v1/workspaces", Body: `{}`})
	MustAPIError(t, resp, 405, "PATCH")
}

func TestOversizeBody(t *testing.T) {
	s := MustStack(t, WithMaxJSONBody(256))
	run := MustRun(t, s.Client, atelier.RunCreate{Status: atelier.StatusRunning})
	big := `{"name":"x","description":"` + strings.Repeat("a", 1000) + `"}`
	MustAPIError(t, s.MustDo(t, Request{Method: "POST", Path: "/api/v1/workspaces", Body: big}), 413, "256")
	var points []string
	for i := range 100 {
		points = append(points, fmt.Sprintf(`{"name":"m","step":%d,"value":1}`, i))
	}
	body := `{"metrics":[` + strings.Join(points, ",") + `]}`
	MustAPIError(t, s.MustDo(t, Request{Method: "POST", Path: "/api/v1/workspaces/default/runs/" + run.ID + "/metrics", Body: body}), 413, "larger")
	metrics, err := s.Client.ListMetrics(Ctx(t), "default", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(metrics) != 0 {
		t.Errorf("an oversize batch stored %+v", metrics)
	}
	// Small bodies still work on that server.
	MustAPIError(t, s.MustDo(t, Request{Method: "POST", Path: "/api/v1/workspaces", Body: `{"name":"../x"}`}), 400, "workspace name")
}

func TestAuth(t *testing.T) {
	s := MustStack(t)
	ctx := Ctx(t)
	if err := s.Client.CreateUser(ctx, &atelier.User{Name: "ci"}, "a long password"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.ShareWorkspace(ctx, "default", "ci", atelier.RoleReader); err != nil {
		t.Fatal(err)
	}
	tok, err := s.Service.CreateToken(ctx, &atelier.Token{Name: "ci", Kind: atelier.PrincipalUser, Owner: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	ok := s.MustDo(t, Request{Method: "GET", Path: "/api/v1/workspaces/default", Token: &tok.Secret})
	if ok.Status != 200 {
		t.Fatalf("a fresh token: status %d: %s", ok.Status, ok.Body)
	}
	admin := atelier.NewContextWithPrincipal(ctx, &atelier.Principal{Kind: atelier.PrincipalAdmin, Name: "admin"})
	if err := s.Service.RevokeToken(admin, tok.ID); err != nil {
		t.Fatal(err)
	}
	resp := s.MustDo(t, Request{Method: "GET", Path: "/api/v1/workspaces/default", Token: &tok.Secret})
	MustAPIError(t, resp, 401, "revoked")
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Error("a 401 without a WWW-Authenticate header")
	}
	_, err = api.NewClient(s.Server.URL, tok.Secret).ListWorkspaces(ctx)
	MustCode(t, err, atelier.EUNAUTHORIZED)
	_, err = api.NewClient(s.Server.URL, "").ListWorkspaces(ctx)
	MustCode(t, err, atelier.EUNAUTHORIZED)

	// Public routes need no token.
	if _, err := api.NewClient(s.Server.URL, "").Health(ctx); err != nil {
		t.Errorf("health without a token: %v", err)
	}
}

// TestFilePathEscapes tries to write outside a run's files: every attempt is refused and
// nothing is stored.
func TestFilePathEscapes(t *testing.T) {
	s := MustStack(t)
	ctx := Ctx(t)
	run := MustRun(t, s.Client, atelier.RunCreate{Status: atelier.StatusRunning})
	base := "/api/v1/workspaces/default/runs/" + run.ID
	for _, p := range []string{"../x", "a//b", "%2e%2e/x", "a/%2e%2e/%2e%2e/x", "a/./b", "..%2fx", "a%2f%2fb", "%2fetc%2fpasswd", "a%5cb", "a%00b"} {
		for _, kind := range []string{"files", "logs"} {
			t.Run(kind+"/"+p, func(t *testing.T) {
				method := "PUT"
				if kind == "logs" {
					method = "POST"
				}
				resp := s.MustDo(t, Request{Method: method, Path: base + "/" + kind + "/" + p, Body: "evil", ContentType: "application/octet-stream"})
				if resp.Status != 400 && resp.Status != 404 {
					t.Errorf("status %d (Location %q), want 400 or 404", resp.Status, resp.Header.Get("Location"))
					return
				}
				MustAPIError(t, resp, resp.Status)
			})
		}
	}
	// Through the Go client, an escaping path is refused as invalid.
	for _, p := range []string{"../x", "a//b", "a/../../x", "/abs"} {
		_, err := s.Client.UploadFile(ctx, "default", run.ID, p, strings.NewReader("evil"), "")
		if code := atelier.ErrorCode(err); code != atelier.EINVALID {
			t.Errorf("client upload to %q: %v (code %q), want %q", p, err, code, atelier.EINVALID)
		}
	}
	files, err := s.Client.ListFiles(ctx, "default", run.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 0 {
		for _, f := range files {
			t.Errorf("stored %q", f.Path)
		}
	}
}

func TestZipEscapeRecordsNothing(t *testing.T) {
	s := MustStack(t)
	ctx := Ctx(t)
	good := "harmless content that must not be stored"
	for _, bad := range []string{"../evil", "a/../../evil", "/etc/evil", `a\..\evil`} {
		t.Run(bad, func(t *testing.T) {
			z := MustZip(t, [2]string{"ok.py", good}, [2]string{bad, "pwned"})
			resp := s.MustDo(t, Request{Method: "POST", Path: "/api/v1/workspaces/default/snapshots", Body: string(z), ContentType: "application/zip"})
			MustAPIError(t, resp, 400, "zip entry")
		})
	}
	missing, err := s.Client.MissingObjects(ctx, "default", []string{Sum([]byte(good)), Sum([]byte("pwned"))})
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 2 {
		t.Errorf("missing %v: a refused zip stored objects", missing)
	}
}

// TestMetricBatchAllOrNothing: a batch with one bad point stores none of its points.
func TestMetricBatchAllOrNothing(t *testing.T) {
	s := MustStack(t)
	ctx := Ctx(t)
	for _, tt := range []struct {
		name   string
		points []atelier.MetricPoint
	}{
		{"bad name in the middle", []atelier.MetricPoint{{Name: "a", Value: 1}, {Name: "a", Value: 2}, {Name: "bad\x01", Value: 3}, {Name: "b", Value: 4}}},
		{"control character last", []atelier.MetricPoint{{Name: "a", Value: 1}, {Name: "b", Value: 2}, {Name: "c\x7f", Value: 3}}},
		{"empty name after others", []atelier.MetricPoint{{Name: "a", Value: 1}, {Name: "", Value: 2}}},
		{"empty name first", []atelier.MetricPoint{{Name: "", Value: 1}, {Name: "a", Value: 2}}},
		{"only an empty name", []atelier.MetricPoint{{Value: 1}}},
		{"negative step last", []atelier.MetricPoint{{Name: "a", Value: 1}, {Name: "a", Step: ptr[int64](-3), Value: 2}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			run := MustRun(t, s.Client, atelier.RunCreate{Status: atelier.StatusRunning})
			b, _ := json.Marshal(atelier.MetricBatch{Points: tt.points})
			resp := s.MustDo(t, Request{Method: "POST", Path: "/api/v1/workspaces/default/runs/" + run.ID + "/metrics", Body: string(b)})
			MustAPIError(t, resp, 400, "metrics[")
			list, err := s.Client.ListMetrics(ctx, "default", run.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range list {
				t.Errorf("stored metric %q (%d points) of a refused batch", m.Name, m.Count)
			}
		})
	}
	// A batch whose record conflicts with a stored metric stores none of its points either.
	run := MustRun(t, s.Client, atelier.RunCreate{Status: atelier.StatusRunning})
	if err := s.Client.LogMetrics(ctx, "default", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "scalar", Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	err := s.Client.LogMetrics(ctx, "default", run.ID, &atelier.MetricBatch{
		Points:  []atelier.MetricPoint{{Name: "fresh", Value: 1}, {Name: "scalar", Value: 2}},
		Records: []atelier.MetricRecord{{Name: "scalar", Kind: atelier.MetricRow, Value: json.RawMessage(`{}`)}},
	})
	MustCode(t, err, atelier.ECONFLICT)
	list, err := s.Client.ListMetrics(ctx, "default", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "scalar" || list[0].Count != 1 {
		t.Errorf("after a conflicting batch: %+v, want only scalar with 1 point", list)
	}
}

// TestParamsAllOrNothing: a params call with one conflicting key writes none of the others.
func TestParamsAllOrNothing(t *testing.T) {
	s := MustStack(t)
	ctx := Ctx(t)
	run := MustRun(t, s.Client, atelier.RunCreate{Params: map[string]string{"lr": "0.1"}, Properties: map[string]string{"p": "1"}})
	params := map[string]string{"lr": "0.2"}
	for i := range 50 { // many keys, so the conflict is not simply the first one written
		params[fmt.Sprintf("k%02d", i)] = "v"
	}
	resp := s.MustDo(t, Request{Method: "POST", Path: "/api/v1/workspaces/default/runs/" + run.ID + "/params", Body: mustJSON(t, api.KeyValues{Params: params})})
	MustAPIError(t, resp, 409, "lr")
	MustCode(t, s.Client.AddProperties(ctx, "default", run.ID, map[string]string{"a": "1", "p": "2", "z": "3"}), atelier.ECONFLICT)
	// An invalid key refuses the whole call too.
	MustCode(t, s.Client.LogParams(ctx, "default", run.ID, map[string]string{"good": "1", " bad": "2"}), atelier.EINVALID)
	got, err := s.Client.FindRun(ctx, "default", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"lr": "0.1"}, got.Params); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"p": "1"}, got.Properties); diff != "" {
		t.Errorf("properties (-want +got):\n%s", diff)
	}
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// TestConcurrentMetrics: many writers logging to one run lose and duplicate nothing.
func TestConcurrentMetrics(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)
	run := MustRun(t, c, atelier.RunCreate{Status: atelier.StatusRunning})
	const writers, batches, perBatch = 20, 20, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				var batch atelier.MetricBatch
				for i := range perBatch {
					step := int64(w*batches*perBatch + b*perBatch + i)
					batch.Points = append(batch.Points,
						atelier.MetricPoint{Name: "explicit", Step: &step, Value: atelier.Float(step)},
						atelier.MetricPoint{Name: "auto", Value: atelier.Float(w)})
				}
				if err := c.LogMetrics(ctx, "default", run.ID, &batch); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("logging concurrently: %v", err)
	}
	const n = writers * batches * perBatch
	for _, name := range []string{"explicit", "auto"} {
		s, err := c.MetricHistory(ctx, "default", run.ID, name, atelier.HistoryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if s.Total != n || len(s.Steps) != n {
			t.Fatalf("%s: %d points (total %d), want %d", name, len(s.Steps), s.Total, n)
		}
		for i, step := range s.Steps {
			if step != int64(i) {
				t.Fatalf("%s: step %d at index %d: steps must be exactly 0..%d", name, step, i, n-1)
			}
			if name == "explicit" && float64(s.Values[i]) != float64(step) {
				t.Fatalf("explicit: value %v at step %d", s.Values[i], step)
			}
		}
	}
	list, err := c.ListMetrics(ctx, "default", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list {
		if m.Count != n {
			t.Errorf("%s: count %d, want %d", m.Name, m.Count, n)
		}
	}
}

// TestClientUploadPathStaysInItsRun: the Go client must not let a path with dot segments land
// somewhere else. Today the server's mux answers a non-clean path with a 307 redirect to the
// cleaned URL, and the client follows it with the same PUT and body.
func TestClientUploadPathStaysInItsRun(t *testing.T) {
	s := MustStack(t)
	ctx := Ctx(t)
	a := MustRun(t, s.Client, atelier.RunCreate{Status: atelier.StatusRunning})
	b := MustRun(t, s.Client, atelier.RunCreate{Status: atelier.StatusRunning})
	_, err := s.Client.UploadFile(ctx, "default", a.ID, "../../"+b.ID+"/files/planted.txt", strings.NewReader("planted"), "")
	if code := atelier.ErrorCode(err); code != atelier.EINVALID {
		t.Errorf("upload to run %s with an escaping path: err %v, want %q", a.ID, err, atelier.EINVALID)
	}
	files, err := s.Client.ListFiles(ctx, "default", b.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Errorf("an upload to run A stored %q in run B", f.Path)
	}
}

// TestDigestUploadNeedsTheContent: naming a digest must not be enough to own its content. A run
// token is scoped to its workspace, yet objects are shared by all workspaces and an upload whose
// digest is already stored is accepted without reading the body.
func TestDigestUploadNeedsTheContent(t *testing.T) {
	s := MustStack(t)
	ctx := Ctx(t)
	if err := s.Client.CreateWorkspace(ctx, &atelier.Workspace{Name: "secret"}); err != nil {
		t.Fatal(err)
	}
	secretRun, err := s.Client.CreateRun(ctx, "secret", atelier.RunCreate{Experiment: "e"})
	if err != nil {
		t.Fatal(err)
	}
	secret := "the weights of the secret model"
	if _, err := s.Client.UploadFile(ctx, "secret", secretRun.ID, "model.bin", strings.NewReader(secret), ""); err != nil {
		t.Fatal(err)
	}

	run := MustRun(t, s.Client, atelier.RunCreate{Status: atelier.StatusRunning})
	tok, err := s.Service.CreateToken(ctx, &atelier.Token{Name: "run", Kind: atelier.PrincipalRun, Owner: "run", Workspace: "default", RunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}
	rc := api.NewClient(s.Server.URL, tok.Secret)
	if _, err := rc.FindWorkspace(ctx, "secret"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Fatalf("the run token sees the secret workspace: %v", err)
	}
	_, err = rc.UploadFile(ctx, "default", run.ID, "stolen.bin", strings.NewReader("anything"), Sum([]byte(secret)))
	if atelier.ErrorCode(err) != atelier.EINVALID {
		t.Errorf("upload of other content under a stored digest: %v, want %q", err, atelier.EINVALID)
	}
	if _, body, err := rc.OpenFile(ctx, "default", run.ID, "stolen.bin"); err == nil {
		b, _ := io.ReadAll(body)
		body.Close()
		if string(b) == secret {
			t.Errorf("a run token of workspace default read the content of workspace secret: %q", b)
		}
	}
}

// TestFollowLogUnderLoad: a follower must get the whole log even when many writers append
// quickly; it must not end before the run does.
func TestFollowLogUnderLoad(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)
	run := MustRun(t, c, atelier.RunCreate{Status: atelier.StatusRunning})
	const path = "logs/busy.txt"
	follow, err := c.FollowLog(ctx, "default", run.ID, path, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Close()
	done := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(follow)
		done <- b
	}()
	const writers, lines = 20, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				if err := c.AppendLog(ctx, "default", run.ID, path, fmt.Appendf(nil, "writer %02d line %03d\n", w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if _, err := c.UpdateRunStatus(ctx, "default", run.ID, atelier.RunStatusUpdate{Status: atelier.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-done:
		if got := bytes.Count(b, []byte("\n")); got != writers*lines {
			t.Errorf("the follower got %d lines, want %d", got, writers*lines)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the follower did not end after the run completed")
	}
}
