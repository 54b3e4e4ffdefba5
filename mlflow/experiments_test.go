package mlflow_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/atelier-ml/atelier"
)

// TestCreateExperimentRace: of 20 concurrent experiments/create of one name exactly one
// succeeds; the others get MLflow's RESOURCE_ALREADY_EXISTS.
func TestCreateExperimentRace(t *testing.T) {
	s := MustStack(t)
	const n = 20
	var wg sync.WaitGroup
	resps := make([]Response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i] = s.Do(t, "POST", "/api/2.0/mlflow/experiments/create", `{"name": "race"}`)
		}()
	}
	wg.Wait()
	wins := 0
	for _, r := range resps {
		if r.Status == http.StatusOK {
			wins++
			continue
		}
		MustError(t, r, http.StatusBadRequest, "RESOURCE_ALREADY_EXISTS")
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent creates succeeded, want exactly 1", wins, n)
	}
}

// TestExperimentRecords: an experiment's tags and artifact location are its own, not those of
// a hidden run: no run appears in the workspace after creating and tagging experiments.
func TestExperimentRecords(t *testing.T) {
	s := MustStack(t)
	id := s.MustOK(t, "POST", "/api/2.0/mlflow/experiments/create",
		`{"name": "located", "artifact_location": "s3://bucket/path", "tags": [{"key": "team", "value": "a"}]}`)["experiment_id"].(string)
	s.MustOK(t, "POST", "/api/2.0/mlflow/experiments/set-experiment-tag", `{"experiment_id": "`+id+`", "key": "stage", "value": "dev"}`)
	s.MustOK(t, "POST", "/api/2.0/mlflow/experiments/set-experiment-tag", `{"experiment_id": "0", "key": "k", "value": "v"}`)
	s.MustOK(t, "POST", "/api/2.0/mlflow/experiments/delete-experiment-tag", `{"experiment_id": "`+id+`", "key": "team"}`)
	MustError(t, s.Do(t, "POST", "/api/2.0/mlflow/experiments/delete-experiment-tag", `{"experiment_id": "`+id+`", "key": "team"}`),
		http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	e := s.MustOK(t, "GET", "/api/2.0/mlflow/experiments/get?experiment_id="+id, "")["experiment"].(map[string]any)
	if e["artifact_location"] != "s3://bucket/path" {
		t.Errorf("artifact_location = %v, want the one given at creation", e["artifact_location"])
	}
	tags, _ := e["tags"].([]any)
	if len(tags) != 1 || tags[0].(map[string]any)["key"] != "stage" || tags[0].(map[string]any)["value"] != "dev" {
		t.Errorf("tags = %v, want only stage=dev", tags)
	}
	plain := s.MustOK(t, "POST", "/api/2.0/mlflow/experiments/create", `{"name": "plain"}`)["experiment_id"].(string)
	e = s.MustOK(t, "GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=plain", "")["experiment"].(map[string]any)
	if e["artifact_location"] != "mlflow-artifacts:/"+plain {
		t.Errorf("default artifact_location = %v, want mlflow-artifacts:/%s", e["artifact_location"], plain)
	}
	list := s.MustOK(t, "POST", "/api/2.0/mlflow/experiments/search", `{"filter": "tags.stage = 'dev'"}`)["experiments"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["name"] != "located" {
		t.Errorf("search by tag = %v, want located", list)
	}
	page, err := s.Service.ListRuns(authCtx(t, s), atelier.DefaultWorkspace, atelier.RunQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != 0 {
		t.Errorf("the workspace has %d runs after creating and tagging experiments, want none", len(page.Runs))
	}
}
