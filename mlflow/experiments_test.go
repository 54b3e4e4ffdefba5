package mlflow_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestRegisteredModelRecords: a registered model's description and tags are the model's own,
// it exists with no version, and a rename keeps its versions, aliases and creation time even
// while something uses a version; no hidden run is made for any of it.
func TestRegisteredModelRecords(t *testing.T) {
	s := MustStack(t)
	ctx := authCtx(t, s)
	rm := s.MustOK(t, "POST", api+"registered-models/create", `{"name":"empty","description":"d","tags":[{"key":"team","value":"a"}]}`)["registered_model"].(map[string]any)
	if rm["description"] != "d" || fmt.Sprint(rm["tags"]) != "[map[key:team value:a]]" || rm["latest_versions"] != nil {
		t.Fatalf("created %v", rm)
	}
	s.MustOK(t, "POST", api+"registered-models/set-tag", `{"name":"empty","key":"stage","value":"dev"}`)
	s.MustOK(t, "DELETE", api+"registered-models/delete-tag", `{"name":"empty","key":"team"}`)
	MustError(t, s.Do(t, "DELETE", api+"registered-models/delete-tag", `{"name":"empty","key":"team"}`), 404, "RESOURCE_DOES_NOT_EXIST")
	s.MustOK(t, "PATCH", api+"registered-models/update", `{"name":"empty","description":"new"}`)
	m, err := s.Service.FindModel(ctx, atelier.DefaultWorkspace, "empty")
	if err != nil || m.Description != "new" || fmt.Sprint(m.Tags) != "map[stage:dev]" || m.VersionCount != 0 {
		t.Fatalf("atelier model %+v, %v; want description new, tag stage=dev, no version", m, err)
	}

	// A version in use (an image's reference) does not stop a rename; everything moves along.
	run := s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)
	rid := str(run["run_id"])
	s.MustOK(t, "PUT", "/api/2.0/mlflow-artifacts/artifacts/0/"+rid+"/artifacts/sk/MLmodel", "flavors: {}\n")
	s.MustOK(t, "POST", api+"model-versions/create", `{"name":"empty","source":"runs:/`+rid+`/sk","run_id":"`+rid+`"}`)
	s.MustOK(t, "POST", api+"registered-models/alias", `{"name":"empty","alias":"champion","version":"1"}`)
	before := s.MustOK(t, "GET", api+"registered-models/get?name=empty", "")["registered_model"].(map[string]any)
	store := s.Store
	if err := store.AddModelReference(ctx, atelier.DefaultWorkspace, atelier.ModelReference{Kind: "image", ID: "img", Name: "empty", Version: 1}); err != nil {
		t.Fatal(err)
	}
	after := s.MustOK(t, "POST", api+"registered-models/rename", `{"name":"empty","new_name":"renamed"}`)["registered_model"].(map[string]any)
	if after["name"] != "renamed" || after["creation_timestamp"] != before["creation_timestamp"] || after["description"] != "new" ||
		fmt.Sprint(after["aliases"]) != "[map[alias:champion version:1]]" || fmt.Sprint(after["tags"]) != "[map[key:stage value:dev]]" {
		t.Fatalf("renamed %v, was %v", after, before)
	}
	v := s.MustOK(t, "GET", api+"model-versions/get?name=renamed&version=1", "")["model_version"].(map[string]any)
	if v["run_id"] != rid {
		t.Fatalf("renamed version %v", v)
	}
	MustError(t, s.Do(t, "GET", api+"registered-models/get?name=empty", ""), 404, "RESOURCE_DOES_NOT_EXIST")
	// Deleting its only version leaves the registered model, as in MLflow.
	if err := store.RemoveModelReference(ctx, atelier.DefaultWorkspace, atelier.ModelReference{Kind: "image", ID: "img", Name: "renamed", Version: 1}); err != nil {
		t.Fatal(err)
	}
	s.MustOK(t, "DELETE", api+"model-versions/delete", `{"name":"renamed","version":"1"}`)
	s.MustOK(t, "GET", api+"registered-models/get?name=renamed", "")
	found := s.MustOK(t, "GET", api+"registered-models/search?filter="+url.QueryEscape("tags.stage = 'dev'"), "")["registered_models"].([]any)
	if len(found) != 1 || found[0].(map[string]any)["name"] != "renamed" {
		t.Fatalf("search by tag %v", found)
	}
	// A deleted name created again is a new model: its own creation time, none of the old tags.
	old := s.MustOK(t, "POST", api+"registered-models/create", `{"name":"again","tags":[{"key":"k","value":"v"}]}`)["registered_model"].(map[string]any)
	s.MustOK(t, "DELETE", api+"registered-models/delete", `{"name":"again"}`)
	for time.Now().UnixMilli() <= int64(old["creation_timestamp"].(float64)) {
		time.Sleep(time.Millisecond)
	}
	again := s.MustOK(t, "POST", api+"registered-models/create", `{"name":"again"}`)["registered_model"].(map[string]any)
	if again["creation_timestamp"] == old["creation_timestamp"] || again["tags"] != nil {
		t.Errorf("recreated model %v, the deleted one %v: want a new creation time and no tags", again, old)
	}
	page, err := s.Service.ListRuns(ctx, atelier.DefaultWorkspace, atelier.RunQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != 1 || page.Runs[0].ID != rid {
		t.Errorf("runs after the registry calls: %d, want only the training run", len(page.Runs))
	}
}

// TestDeletedRunLifecycle: runs/delete sets the run's lifecycle in the store, which then
// refuses writes from any door (atelier's own API too), and runs/restore lifts it.
func TestDeletedRunLifecycle(t *testing.T) {
	s := MustStack(t)
	ctx := authCtx(t, s)
	rid := str(s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)["run_id"])
	s.MustOK(t, "POST", api+"runs/delete", `{"run_id":"`+rid+`"}`)
	run, err := s.Service.FindRun(ctx, atelier.DefaultWorkspace, rid)
	if err != nil || !run.Deleted || len(run.Tags) > 0 && run.Tags["mlflow.lifecycleStage"] != "" {
		t.Fatalf("atelier run after runs/delete = %+v, %v; want Deleted and no lifecycle tag", run, err)
	}
	MustError(t, s.Do(t, "POST", api+"runs/log-metric", `{"run_id":"`+rid+`","key":"m","value":1,"timestamp":1}`), 400, "INVALID_PARAMETER_VALUE")
	MustError(t, s.Do(t, "POST", api+"runs/log-batch", `{"run_id":"`+rid+`","params":[{"key":"p","value":"1"}]}`), 400, "INVALID_PARAMETER_VALUE")
	if err := s.Service.SetTags(ctx, atelier.DefaultWorkspace, rid, map[string]string{"t": "1"}); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("SetTags on a deleted run through the service: %v, want ECONFLICT", err)
	}
	got := s.MustOK(t, "POST", api+"runs/search", `{"experiment_ids":["0"],"run_view_type":"DELETED_ONLY"}`)["runs"].([]any)
	if len(got) != 1 {
		t.Fatalf("DELETED_ONLY search = %d runs, want 1", len(got))
	}
	if got := s.MustOK(t, "POST", api+"runs/search", `{"experiment_ids":["0"]}`)["runs"]; got != nil && len(got.([]any)) != 0 {
		t.Fatalf("ACTIVE_ONLY search = %v, want none", got)
	}
	s.MustOK(t, "POST", api+"runs/restore", `{"run_id":"`+rid+`"}`)
	s.MustOK(t, "POST", api+"runs/log-metric", `{"run_id":"`+rid+`","key":"m","value":1,"timestamp":1}`)
	info := s.MustOK(t, "GET", api+"runs/get?run_id="+rid, "")["run"].(map[string]any)["info"].(map[string]any)
	if info["lifecycle_stage"] != "active" {
		t.Fatalf("restored run lifecycle_stage = %v", info["lifecycle_stage"])
	}
}

// TestMetricHistoryPages: get-history pages as MLflow does (max_results, page_token), and a
// whole history without max_results is every point, in step order.
func TestMetricHistoryPages(t *testing.T) {
	s := MustStack(t)
	rid := str(s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)["run_id"])
	var metrics []string
	for i := range 25 {
		metrics = append(metrics, fmt.Sprintf(`{"key":"loss","value":%d.5,"timestamp":%d,"step":%d}`, i, 1000+i, i))
	}
	s.MustOK(t, "POST", api+"runs/log-batch", `{"run_id":"`+rid+`","metrics":[`+strings.Join(metrics, ",")+`]}`)
	var steps []string
	token := ""
	pages := 0
	for {
		q := "run_id=" + rid + "&metric_key=loss&max_results=10"
		if token != "" {
			q += "&page_token=" + url.QueryEscape(token)
		}
		page := s.MustOK(t, "GET", api+"metrics/get-history?"+q, "")
		pages++
		for _, m := range page["metrics"].([]any) {
			mm := m.(map[string]any)
			if mm["key"] != "loss" {
				t.Fatalf("point %v", mm)
			}
			steps = append(steps, fmt.Sprint(mm["step"]))
		}
		token, _ = page["next_page_token"].(string)
		if token == "" || pages > 5 {
			break
		}
	}
	if pages != 3 || len(steps) != 25 || steps[0] != "0" || steps[24] != "24" {
		t.Fatalf("paged history: %d pages, steps %v; want 3 pages of 0..24", pages, steps)
	}
	all := s.MustOK(t, "GET", api+"metrics/get-history?run_id="+rid+"&metric_key=loss", "")
	if got := all["metrics"].([]any); len(got) != 25 || all["next_page_token"] != nil {
		t.Fatalf("whole history: %d points, token %v", len(got), all["next_page_token"])
	}
	if v := all["metrics"].([]any)[3].(map[string]any); v["value"] != 3.5 || v["timestamp"] != float64(1003) {
		t.Fatalf("point 3 = %v", v)
	}
	none := s.MustOK(t, "GET", api+"metrics/get-history?run_id="+rid+"&metric_key=missing", "")
	if got, ok := none["metrics"].([]any); !ok || len(got) != 0 {
		t.Fatalf("history of a missing metric = %v, want an empty list", none)
	}
	MustError(t, s.Do(t, "GET", api+"metrics/get-history?run_id="+rid+"&metric_key=loss&max_results=0", ""), 400, "INVALID_PARAMETER_VALUE")
	MustError(t, s.Do(t, "GET", api+"metrics/get-history?run_id="+rid+"&metric_key=loss&page_token=x", ""), 400, "INVALID_PARAMETER_VALUE")
}
