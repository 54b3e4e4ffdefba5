package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMLflowMakesNoHiddenRuns: experiments and registered models created through the MLflow
// API, with tags and descriptions, are records of their own: `atelier run list` shows no run
// (issue 19; they used to be hidden "record runs" listed as NotStarted).
func TestMLflowMakesNoHiddenRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, freeAddr(t))
	token, err := os.ReadFile(filepath.Join(dataDir, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(token))
	for _, c := range []struct{ method, path, body string }{
		{"POST", "experiments/create", `{"name":"made","artifact_location":"s3://b/made","tags":[{"key":"team","value":"a"}]}`},
		{"POST", "experiments/set-experiment-tag", `{"experiment_id":"0","key":"k","value":"v"}`},
		{"POST", "registered-models/create", `{"name":"reg","description":"d","tags":[{"key":"team","value":"a"}]}`},
		{"POST", "registered-models/set-tag", `{"name":"reg","key":"stage","value":"dev"}`},
		{"PATCH", "registered-models/update", `{"name":"reg","description":"new"}`},
	} {
		req, _ := http.NewRequest(c.method, srv.url+"/api/2.0/mlflow/"+c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d\n%s", c.method, c.path, resp.StatusCode, srv.log)
		}
	}
	bin, _ := buildBinary()
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "ATELIER_SERVER="+srv.url, "ATELIER_TOKEN="+tok)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("atelier %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := cli("run", "list", "-o", "json"); strings.Contains(out, `"id"`) {
		t.Errorf("atelier run list after MLflow made experiments and models:\n%s\nwant no runs", out)
	}
	if out := cli("model", "list", "-o", "json"); !strings.Contains(out, `"reg"`) || !strings.Contains(out, `"new"`) {
		t.Errorf("atelier model list: the model made through MLflow, described new, is missing:\n%s", out)
	}
	if out := cli("experiment", "list", "-o", "json"); !strings.Contains(out, `"made"`) || !strings.Contains(out, `"s3://b/made"`) {
		t.Errorf("atelier experiment list: the experiment made through MLflow, with its location, is missing:\n%s", out)
	}
}
