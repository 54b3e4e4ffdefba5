package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpgradeMLflowRecordRuns starts today's binary on a data directory written at commit
// 98a321f through the MLflow API, when it kept what the domain lacked in hidden record runs:
// experiments/create of "made" with tag team=a, set-experiment-tag k=v on experiment 0,
// registered-models/create of "reg" (description d, tag team=a) and set-tag stage=dev,
// registered-models create then delete of "gone", and runs/create then runs/delete of one run
// (then a tag mlflow.lifecycleStage). After the upgrade they are the records' own, the record
// runs are gone from `atelier run list`, and the deleted run is deleted (issue 19).
func TestUpgradeMLflowRecordRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	dataDir := t.TempDir()
	untarGz(t, filepath.Join("testdata", "upgrade", "data-98a321f-mlflow.tar.gz"), dataDir)
	token, err := os.ReadFile(filepath.Join(dataDir, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(token))
	srv := startServer(t, dataDir, freeAddr(t))
	const deletedRun = "01a24cb12bc2242fb35d0c2cb75d1aca"

	mlflow := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.url+"/api/2.0/mlflow/"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	for _, c := range []struct {
		path string
		want []string
	}{
		{"experiments/get-by-name?experiment_name=made", []string{"map[key:team value:a]"}},
		{"experiments/get?experiment_id=0", []string{"map[key:k value:v]"}},
		{"registered-models/get?name=reg", []string{"description:d", "map[key:stage value:dev]", "map[key:team value:a]"}},
		{"runs/get?run_id=" + deletedRun, []string{"lifecycle_stage:deleted"}},
	} {
		status, body := mlflow("GET", c.path, "")
		got := fmt.Sprint(body)
		if status != http.StatusOK {
			t.Errorf("GET %s: %d %s", c.path, status, got)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("GET %s: no %q in %s", c.path, w, got)
			}
		}
	}
	if status, body := mlflow("GET", "registered-models/get?name=gone", ""); status != http.StatusNotFound {
		t.Errorf("the model deleted before the upgrade: %d %v, want 404", status, body)
	}
	if _, body := mlflow("POST", "runs/search", `{"experiment_ids":["0","1"]}`); len(asList(body["runs"])) != 0 {
		t.Errorf("active runs after the upgrade: %v, want none (the only run was deleted)", body["runs"])
	}

	bin, _ := buildBinary()
	cmd := exec.Command(bin, "run", "list", "--include-deleted", "-o", "json")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "ATELIER_SERVER="+srv.url, "ATELIER_TOKEN="+tok)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("atelier run list: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "mlflow-experiment") || strings.Contains(string(out), "mlflow-registered-model") ||
		strings.Count(string(out), `"id"`) != 1 || !strings.Contains(string(out), deletedRun) {
		t.Errorf("atelier run list after the upgrade:\n%s\nwant only the run made through MLflow, no record runs", out)
	}
	if !strings.Contains(string(out), `"deleted": true`) {
		t.Errorf("atelier run list: the run deleted through MLflow is not deleted:\n%s", out)
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }
