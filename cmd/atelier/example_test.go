package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

// TestExampleSklearnDiabetes submits examples/sklearn-diabetes as a user would and checks what
// the run recorded. It installs scikit-learn and matplotlib from PyPI into the run's
// environment, so it is skipped unless ATELIER_TEST_EXAMPLES=1 (make test sets it).
func TestExampleSklearnDiabetes(t *testing.T) {
	if os.Getenv("ATELIER_TEST_EXAMPLES") != "1" {
		t.Skip("set ATELIER_TEST_EXAMPLES=1 to run the examples (needs PyPI)")
	}
	ctx := context.Background()
	dataDir, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, dataDir, addr)
	bin, _ := buildBinary()
	token, _ := os.ReadFile(filepath.Join(dataDir, adminTokenFile))
	submit := func() (string, error) {
		cmd := exec.Command(bin, "run", "submit", "../../examples/sklearn-diabetes", "--wait", "-o", "json")
		cmd.Env = append(os.Environ(), "ATELIER_SERVER="+srv.url, "ATELIER_TOKEN="+strings.TrimSpace(string(token)))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	start := time.Now()
	out, err := submit()
	if err != nil {
		t.Fatalf("run submit --wait: %v\n%s\nserver log:\n%s", err, out, srv.log)
	}
	t.Logf("first submission (builds the environment) took %s", time.Since(start).Round(time.Millisecond))

	page, err := srv.client.ListRuns(ctx, "default", atelier.RunQuery{Experiment: "diabetes", RootOnly: true})
	if err != nil || len(page.Runs) != 1 {
		t.Fatalf("runs of experiment diabetes: %v, %v", page, err)
	}
	run := page.Runs[0]
	if run.Status != atelier.StatusCompleted || run.Compute != "local" {
		t.Fatalf("run %s: status %s on %q", run.ID, run.Status, run.Compute)
	}
	if run.Metrics["best_rmse"] <= 0 || run.Metrics["best_rmse"] > 80 || run.Metrics["best_alpha"] <= 0 {
		t.Errorf("parent metrics %v: want best_rmse in (0, 80] and a best_alpha", run.Metrics)
	}
	children, err := srv.client.ListRuns(ctx, "default", atelier.RunQuery{ParentID: run.ID})
	if err != nil || len(children.Runs) != 6 {
		t.Fatalf("child runs: %d, %v; want one per alpha (6)", len(children.Runs), err)
	}
	for _, c := range children.Runs {
		if c.Status != atelier.StatusCompleted || c.Params["alpha"] == "" || c.Metrics["rmse"] <= 0 {
			t.Errorf("child %s: status %s params %v metrics %v", c.ID, c.Status, c.Params, c.Metrics)
		}
		if float64(c.Metrics["rmse"]) < float64(run.Metrics["best_rmse"])-1e-9 {
			t.Errorf("child rmse %v is below the parent's best %v", c.Metrics["rmse"], run.Metrics["best_rmse"])
		}
	}
	files, err := srv.client.ListFiles(ctx, "default", run.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	joined := strings.Join(paths, " ")
	for _, want := range []string{"outputs/model.pkl", "logs/std_log.txt", "outputs/images/rmse_vs_alpha"} {
		if !strings.Contains(joined, want) {
			t.Errorf("run files %v: %s is missing", paths, want)
		}
	}
	metrics, err := srv.client.ListMetrics(ctx, "default", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]atelier.MetricKind{}
	for _, m := range metrics {
		kinds[m.Name] = m.Kind
	}
	if kinds["rmse_vs_alpha"] != atelier.MetricImage || kinds["rmse_by_alpha"] != atelier.MetricList || kinds["results"] != atelier.MetricTable {
		t.Errorf("metric kinds %v: want an image, a list and a table", kinds)
	}

	// The second submission reuses the environment: nothing is installed.
	start = time.Now()
	if out, err := submit(); err != nil {
		t.Fatalf("second submission: %v\n%s", err, out)
	}
	t.Logf("second submission (environment reused) took %s", time.Since(start).Round(time.Millisecond))
	page, _ = srv.client.ListRuns(ctx, "default", atelier.RunQuery{Experiment: "diabetes", RootOnly: true, OrderBy: "created_at desc", Limit: 1})
	chunk, err := srv.client.ReadLog(ctx, "default", page.Runs[0].ID, "logs/prepare_log.txt", 0, 0)
	if err != nil || !strings.Contains(string(chunk.Data), "reusing environment") {
		t.Errorf("second run's prepare log %q (%v): want the environment reused", chunk.Data, err)
	}
}
