package main

import (
	"encoding/json"
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
	// A run deleted through MLflow is hidden from run list unless asked for.
	var run struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	mlflowCall(t, srv.url, tok, "POST", "runs/create", `{"experiment_id":"0","run_name":"kept"}`, nil)
	mlflowCall(t, srv.url, tok, "POST", "runs/create", `{"experiment_id":"0","run_name":"gone"}`, &run)
	mlflowCall(t, srv.url, tok, "POST", "runs/delete", `{"run_id":"`+run.Run.Info.RunID+`"}`, nil)
	if out := cli("run", "list"); !strings.Contains(out, "kept") || strings.Contains(out, "gone") {
		t.Errorf("atelier run list after MLflow deleted a run:\n%s\nwant kept listed, gone not", out)
	}
	if out := cli("run", "list", "--include-deleted"); !strings.Contains(out, "kept") || !strings.Contains(out, "(deleted)") {
		t.Errorf("atelier run list --include-deleted:\n%s\nwant kept and the deleted run, marked", out)
	}
	if out := cli("run", "list", "--include-deleted", "-o", "json"); !strings.Contains(out, `"deleted": true`) {
		t.Errorf("atelier run list --include-deleted -o json:\n%s\nwant the deleted run marked deleted", out)
	}
	if out := cli("model", "list", "-o", "json"); !strings.Contains(out, `"reg"`) || !strings.Contains(out, `"new"`) {
		t.Errorf("atelier model list: the model made through MLflow, described new, is missing:\n%s", out)
	}
	if out := cli("experiment", "list", "-o", "json"); !strings.Contains(out, `"made"`) || !strings.Contains(out, `"s3://b/made"`) {
		t.Errorf("atelier experiment list: the experiment made through MLflow, with its location, is missing:\n%s", out)
	}
}

// mlflowCall calls the MLflow API and decodes the answer into out (when not nil).
func mlflowCall(t *testing.T, url, tok, method, path, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, url+"/api/2.0/mlflow/"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}
