package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/server/servertest"
)

// run metrics --name shows a metric of records as its records, told by the metric's kind; a
// series error of any other metric is the error.
func TestRunMetricsRecords(t *testing.T) {
	s := servertest.New(t)
	ctx := t.Context()
	run, err := s.Client.CreateRun(ctx, atelier.DefaultWorkspace, atelier.RunCreate{Experiment: "e", Status: atelier.StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Client.LogMetrics(ctx, atelier.DefaultWorkspace, run.ID, &atelier.MetricBatch{
		Points:  []atelier.MetricPoint{{Name: "loss", Value: 0.5, Timestamp: time.Now().UnixMilli()}},
		Records: []atelier.MetricRecord{{Name: "classes", Kind: atelier.MetricList, Timestamp: time.Now().UnixMilli(), Value: []byte(`["cat","dog"]`)}},
	}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ATELIER_SERVER", s.URL)
	t.Setenv("ATELIER_TOKEN", s.Token)
	cli := func(args ...string) (string, error) {
		cmd := newRootCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}
	out, err := cli("run", "metrics", run.ID, "--name", "classes", "-o", "json")
	if err != nil || !strings.Contains(out, `"kind": "list"`) || !strings.Contains(out, "dog") {
		t.Errorf("run metrics --name classes = %q, %v; want its records", out, err)
	}
	out, err = cli("run", "metrics", run.ID, "--name", "loss", "-o", "json")
	if err != nil || !strings.Contains(out, "0.5") {
		t.Errorf("run metrics --name loss = %q, %v; want its series", out, err)
	}
}

// An upload refused as not matching the sha256 sent says the file changed when it did, and
// passes the server's error on when it did not.
func TestUploadErrorAsksTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "data.csv")
	if err := os.WriteFile(p, []byte("a,b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := hashFile(p, false)
	if err != nil {
		t.Fatal(err)
	}
	it := &uploadItem{local: p, remote: "data.csv", size: 4}
	refused := atelier.Errorf(atelier.EINVALID, "datastore %q: data.csv: refused", "d")
	if err := uploadError(it, sum, refused); err == nil || strings.Contains(err.Error(), "changed") || atelier.ErrorMessage(err) != atelier.ErrorMessage(refused) {
		t.Errorf("an unchanged file's refusal = %v, want the server's error", err)
	}
	if err := os.WriteFile(p, []byte("a,b\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := uploadError(it, sum, refused); err == nil || !strings.Contains(err.Error(), "the file changed after it was read") {
		t.Errorf("a changed file's refusal = %v, want it to say the file changed", err)
	}
	if err := uploadError(it, sum, nil); err != nil {
		t.Errorf("no error = %v", err)
	}
}
