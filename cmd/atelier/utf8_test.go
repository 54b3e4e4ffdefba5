package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/service"
)

// TestInvalidUTF8Refused: text that is not valid UTF-8 (a byte, or an unpaired surrogate
// escape) is refused with a 400 naming the field, through the REST API and the MLflow API
// alike, and nothing of it is stored with U+FFFD in its place.
func TestInvalidUTF8Refused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary")
	}
	ctx := context.Background()
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, freeAddr(t))
	token, err := service.ReadTokenFile(filepath.Join(dataDir, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	run, err := srv.client.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "e", Name: "good", Status: atelier.StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	post := func(path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const runs = "/api/v1/workspaces/default/runs"
	for _, tt := range []struct{ path, body, want string }{
		// REST
		{runs, "{\"experiment\":\"e\",\"name\":\"n\",\"tags\":{\"k\":\"v\\u00e9\xff\"}}", `tags.k is not valid UTF-8 (the byte 0xff)`},
		{runs, `{"experiment":"e","name":"a\udcff"}`, `name is not valid UTF-8 (an unpaired surrogate \udcff)`},
		{runs, "{\"experiment\":\"e\xe9t\xe9\"}", `experiment is not valid UTF-8`},
		{runs + "/" + run.ID + "/params", "{\"params\":{\"lr\\u00e9\xc3\":\"1\"}}", `a key of params is not valid UTF-8`},
		{runs + "/" + run.ID + "/metrics", "{\"metrics\":[{\"name\":\"acc\xff\",\"timestamp\":1,\"value\":1}]}", `metrics[0]`},
		{runs + "/" + run.ID + "/metrics", "{\"metrics\":[{\"name\":\"acc\",\"timestamp\":1,\"value\":1}],\"records\":[{\"name\":\"r\xff\",\"kind\":\"list\",\"timestamp\":1,\"value\":[1]}]}", `records[0].name is not valid UTF-8`},
		// MLflow
		{"/api/2.0/mlflow/experiments/create", "{\"name\":\"exp\xff\"}", `name is not valid UTF-8`},
		{"/api/2.0/mlflow/runs/log-batch", `{"run_id":"` + run.ID + "\",\"params\":[{\"key\":\"p\",\"value\":\"\xe2\x82\"}]}", `params[0].value is not valid UTF-8`},
		{"/api/2.0/mlflow/runs/set-tag", `{"run_id":"` + run.ID + `","key":"k","value":"\udcff"}`, `value is not valid UTF-8`},
		{"/api/2.0/mlflow/runs/create", "{\"experiment_id\":\"0\",\"run_name\":\"r\xff\"}", `run_name is not valid UTF-8`},
	} {
		status, body := post(tt.path, tt.body)
		var e struct{ Message string } // both APIs' errors have a message
		json.Unmarshal([]byte(body), &e)
		if status != http.StatusBadRequest || !strings.Contains(e.Message, tt.want) || !strings.Contains(e.Message, "not valid UTF-8") {
			t.Errorf("POST %s %q = %d %s, want 400 naming %q", tt.path, tt.body, status, body, tt.want)
		}
	}

	// Nothing was stored, changed or not.
	got, err := srv.client.FindRun(ctx, "default", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Params) != 0 || len(got.Tags) != 0 || len(got.Metrics) != 0 {
		t.Errorf("the run took writes that were refused: params %v, tags %v, metrics %v", got.Params, got.Tags, got.Metrics)
	}
	page, err := srv.client.ListRuns(ctx, "default", atelier.RunQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != 1 {
		t.Errorf("%d runs, want the one created before", len(page.Runs))
	}
	exps, err := srv.client.ListExperiments(ctx, "default", atelier.ExperimentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range exps {
		if strings.ContainsRune(e.Name, '\uFFFD') {
			t.Errorf("experiment %q was created", e.Name)
		}
	}
}
