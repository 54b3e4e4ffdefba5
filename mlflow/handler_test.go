package mlflow_test

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
)

const api = "/api/2.0/mlflow/"

func str(v any) string { return fmt.Sprint(v) }

func TestTrackingRoundTrip(t *testing.T) {
	s := MustStack(t)
	exp := s.MustOK(t, "POST", api+"experiments/create", `{"name":"e1","tags":[{"key":"k","value":"v"}]}`)
	eid := str(exp["experiment_id"])
	// int64 fields as strings (proto JSON) and as numbers are both accepted
	run := s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"`+eid+`","start_time":"1700000000000","run_name":"r","tags":[{"key":"t","value":"1"}]}`)
	info := run["run"].(map[string]any)["info"].(map[string]any)
	id := str(info["run_id"])
	if info["status"] != "RUNNING" || info["run_name"] != "r" || info["experiment_id"] != eid || info["lifecycle_stage"] != "active" {
		t.Fatalf("run info %v", info)
	}
	if want := "mlflow-artifacts:/" + eid + "/" + id + "/artifacts"; info["artifact_uri"] != want {
		t.Fatalf("artifact_uri %v, want %s", info["artifact_uri"], want)
	}
	s.MustOK(t, "POST", api+"runs/log-batch", `{"run_id":"`+id+`","metrics":[{"key":"m","value":1.5,"timestamp":"10","step":"0"},{"key":"m","value":"NaN","timestamp":11,"step":1}],
		"params":[{"key":"p","value":"x"}],"tags":[{"key":"t2","value":"y"}]}`)
	s.MustOK(t, "POST", api+"runs/log-metric", `{"run_id":"`+id+`","key":"m","value":1.5,"timestamp":10,"step":0}`) // duplicate: dropped
	hist := s.MustOK(t, "GET", api+"metrics/get-history?run_id="+id+"&metric_key=m", "")
	if got := fmt.Sprint(hist["metrics"]); got != "[map[key:m step:0 timestamp:10 value:1.5] map[key:m step:1 timestamp:11 value:NaN]]" {
		t.Fatalf("history %s", got)
	}
	bulk := s.MustOK(t, "GET", api+"metrics/get-history-bulk-interval?run_ids="+id+"&metric_key=m&start_step=1&end_step=5", "")
	if got := fmt.Sprint(bulk["metrics"]); got != "[map[key:m run_id:"+id+" step:1 timestamp:11 value:NaN]]" {
		t.Fatalf("bulk history %s", got)
	}
	got := s.MustOK(t, "GET", api+"runs/get?run_id="+id, "")
	data := got["run"].(map[string]any)["data"].(map[string]any)
	if fmt.Sprint(data["params"]) != "[map[key:p value:x]]" {
		t.Fatalf("params %v", data["params"])
	}
	tags := fmt.Sprint(data["tags"])
	for _, want := range []string{"key:t value:1", "key:t2 value:y", "key:mlflow.runName value:r"} {
		if !strings.Contains(tags, want) {
			t.Fatalf("tags %s lack %s", tags, want)
		}
	}
	upd := s.MustOK(t, "POST", api+"runs/update", `{"run_id":"`+id+`","status":"FINISHED","end_time":5}`)
	if ri := upd["run_info"].(map[string]any); ri["status"] != "FINISHED" || ri["end_time"] == nil {
		t.Fatalf("run_info after update %v", ri)
	}
	// the same status again is fine; resuming an ended run leaves it ended
	s.MustOK(t, "POST", api+"runs/update", `{"run_id":"`+id+`","status":"FINISHED"}`)
	s.MustOK(t, "POST", api+"runs/update", `{"run_id":"`+id+`","status":"RUNNING"}`)

	search := s.MustOK(t, "POST", api+"runs/search", `{"experiment_ids":["`+eid+`"],"filter":"attributes.status = 'FINISHED' and params.p = 'x'","order_by":["metrics.m DESC"],"max_results":"10"}`)
	if runs := search["runs"].([]any); len(runs) != 1 {
		t.Fatalf("search found %d runs", len(runs))
	}
	e := s.MustOK(t, "GET", api+"experiments/get-by-name?experiment_name=e1", "")
	if fmt.Sprint(e["experiment"].(map[string]any)["tags"]) != "[map[key:k value:v]]" {
		t.Fatalf("experiment %v", e)
	}
	// the experiment's record run is not a run to MLflow
	all := s.MustOK(t, "POST", api+"runs/search", `{"experiment_ids":["`+eid+`"],"run_view_type":"ALL"}`)
	if runs := all["runs"].([]any); len(runs) != 1 {
		t.Fatalf("search ALL found %d runs", len(runs))
	}
}

func TestDefaultExperiment(t *testing.T) {
	s := MustStack(t)
	e := s.MustOK(t, "GET", api+"experiments/get?experiment_id=0", "")["experiment"].(map[string]any)
	if e["experiment_id"] != "0" || e["name"] != "Default" || e["lifecycle_stage"] != "active" {
		t.Fatalf("experiment 0: %v", e)
	}
	list := s.MustOK(t, "POST", api+"experiments/search", `{"max_results":10}`)
	if fmt.Sprint(list["experiments"]) == "[]" {
		t.Fatal("search does not list Default")
	}
	MustError(t, s.Do(t, "POST", api+"experiments/create", `{"name":"Default"}`), 400, "RESOURCE_ALREADY_EXISTS")
	run := s.MustOK(t, "POST", api+"runs/create", `{}`)["run"].(map[string]any)["info"].(map[string]any)
	if run["experiment_id"] != "0" || run["run_name"] == "" {
		t.Fatalf("run in the default experiment: %v", run)
	}
}

func TestArtifactsProxy(t *testing.T) {
	s := MustStack(t)
	run := s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)
	root := "/api/2.0/mlflow-artifacts/artifacts/0/" + str(run["run_id"]) + "/artifacts"
	s.MustOK(t, "PUT", root+"/model/MLmodel", "flavors: {}\n")
	s.MustOK(t, "PUT", root+"/a.txt", "aaa")
	r := s.Do(t, "GET", root+"/model/MLmodel", "")
	if r.Status != 200 || string(r.Body) != "flavors: {}\n" {
		t.Fatalf("download: %d %q", r.Status, r.Body)
	}
	list := s.MustOK(t, "GET", "/api/2.0/mlflow-artifacts/artifacts?path="+url.QueryEscape("0/"+str(run["run_id"])+"/artifacts"), "")
	if got := fmt.Sprint(list["files"]); got != "[map[file_size:3 is_dir:false path:a.txt] map[is_dir:true path:model]]" {
		t.Fatalf("list: %s", got)
	}
	files, err := s.Service.ListFiles(authCtx(t, s), "default", str(run["run_id"]), "outputs")
	if err != nil || len(files) != 2 || files[0].Path != "outputs/a.txt" {
		t.Fatalf("atelier outputs: %v, %v", files, err)
	}
	MustError(t, s.Do(t, "POST", "/api/2.0/mlflow-artifacts/mpu/create/0/x/artifacts/a", "{}"), 501, "NOT_IMPLEMENTED")
	MustError(t, s.Do(t, "GET", root+"/missing", ""), 404, "RESOURCE_DOES_NOT_EXIST")
	MustError(t, s.Do(t, "PUT", "/api/2.0/mlflow-artifacts/artifacts/0/"+str(run["run_id"])+"/artifacts/../../x", "x"), 400, "INVALID_PARAMETER_VALUE")
}

// TestValidationIsNever5xx: the MLflow client retries 5xx for minutes, so every request a
// caller got wrong must answer 4xx with MLflow's error body.
func TestValidationIsNever5xx(t *testing.T) {
	s := MustStack(t)
	run := s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)
	id := str(run["run_id"])
	s.MustOK(t, "POST", api+"runs/log-parameter", `{"run_id":"`+id+`","key":"p","value":"1"}`)
	many := func(n int, item string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(item, i)
		}
		return strings.Join(parts, ",")
	}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"malformed json", "POST", api + "runs/create", `{`, 400, "INVALID_PARAMETER_VALUE"},
		{"wrong type", "POST", api + "runs/create", `{"start_time":{}}`, 400, "INVALID_PARAMETER_VALUE"},
		{"bad experiment id", "POST", api + "runs/create", `{"experiment_id":"abc"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"missing experiment", "POST", api + "runs/create", `{"experiment_id":"4242"}`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"empty experiment name", "POST", api + "experiments/create", `{"name":""}`, 400, "INVALID_PARAMETER_VALUE"},
		{"slash in experiment name", "POST", api + "experiments/create", `{"name":"a/b"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"missing run id", "GET", api + "runs/get", ``, 400, "INVALID_PARAMETER_VALUE"},
		{"missing run", "GET", api + "runs/get?run_id=nope", ``, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"changed param", "POST", api + "runs/log-parameter", `{"run_id":"` + id + `","key":"p","value":"2"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"long param", "POST", api + "runs/log-parameter", `{"run_id":"` + id + `","key":"q","value":"` + strings.Repeat("x", 6001) + `"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"long key", "POST", api + "runs/set-tag", `{"run_id":"` + id + `","key":"` + strings.Repeat("k", 251) + `","value":"v"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"bad metric value", "POST", api + "runs/log-metric", `{"run_id":"` + id + `","key":"m","value":"abc"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"missing metric value", "POST", api + "runs/log-metric", `{"run_id":"` + id + `","key":"m"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"negative step", "POST", api + "runs/log-metric", `{"run_id":"` + id + `","key":"m","value":1,"step":-1}`, 400, "INVALID_PARAMETER_VALUE"},
		{"too many params", "POST", api + "runs/log-batch", `{"run_id":"` + id + `","params":[` + many(101, `{"key":"k%d","value":"v"}`) + `]}`, 400, "INVALID_PARAMETER_VALUE"},
		{"too many metrics", "POST", api + "runs/log-batch", `{"run_id":"` + id + `","metrics":[` + many(1001, `{"key":"m","value":%d,"timestamp":1,"step":0}`) + `]}`, 400, "INVALID_PARAMETER_VALUE"},
		{"changed param in a batch", "POST", api + "runs/log-batch", `{"run_id":"` + id + `","params":[{"key":"p","value":"2"}],"tags":[{"key":"half","value":"written"}],"metrics":[{"key":"half","value":1,"timestamp":1,"step":0}]}`, 400, "INVALID_PARAMETER_VALUE"},
		{"duplicate params", "POST", api + "runs/log-batch", `{"run_id":"` + id + `","params":[{"key":"a","value":"1"},{"key":"a","value":"2"}]}`, 400, "INVALID_PARAMETER_VALUE"},
		{"bad status", "POST", api + "runs/update", `{"run_id":"` + id + `","status":"DONE"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"bad filter", "POST", api + "runs/search", `{"experiment_ids":["0"],"filter":"metrics.rmse <"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"bad filter status", "POST", api + "runs/search", `{"experiment_ids":["0"],"filter":"attributes.status = 'DONE'"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"bad filter field", "POST", api + "runs/search", `{"experiment_ids":["0"],"filter":"datasets.name = 'x'"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"bad order by", "POST", api + "runs/search", `{"experiment_ids":["0"],"order_by":["metrics.rmse SIDEWAYS"]}`, 400, "INVALID_PARAMETER_VALUE"},
		{"bad max results", "POST", api + "runs/search", `{"experiment_ids":["0"],"max_results":0}`, 400, "INVALID_PARAMETER_VALUE"},
		{"bad page token", "POST", api + "runs/search", `{"experiment_ids":["0"],"page_token":"garbage"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"bad view type", "POST", api + "runs/search", `{"experiment_ids":["0"],"run_view_type":"SOME"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"bad experiment filter", "POST", api + "experiments/search", `{"filter":"owner = 'x'"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"bad experiment order", "POST", api + "experiments/search", `{"order_by":["size"]}`, 400, "INVALID_PARAMETER_VALUE"},
		{"history without key", "GET", api + "metrics/get-history?run_id=" + id, ``, 400, "INVALID_PARAMETER_VALUE"},
		{"bulk without runs", "GET", api + "metrics/get-history-bulk-interval?metric_key=m", ``, 400, "INVALID_PARAMETER_VALUE"},
		{"unknown endpoint", "POST", api + "runs/explode", `{}`, 404, "ENDPOINT_NOT_FOUND"},
		{"unknown workspace", "POST", "/workspaces/nope/mlflow" + api + "runs/create", `{}`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"bad artifact path", "GET", "/api/2.0/mlflow-artifacts/artifacts/x/../y", ``, 400, "INVALID_PARAMETER_VALUE"},
		{"delete artifact", "DELETE", "/api/2.0/mlflow-artifacts/artifacts/0/" + id + "/artifacts/a", ``, 501, "NOT_IMPLEMENTED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			MustError(t, s.Do(t, tc.method, tc.path, tc.body), tc.status, tc.code)
		})
	}
	// A refused batch stored nothing of itself.
	got := s.MustOK(t, "GET", api+"runs/get?run_id="+id, "")
	if data := fmt.Sprint(got["run"].(map[string]any)["data"]); strings.Contains(data, "half") {
		t.Errorf("the refused batch was half-written: %s", data)
	}
}

func TestAuth(t *testing.T) {
	s := MustStack(t)
	MustError(t, s.DoAuth(t, "GET", api+"experiments/get?experiment_id=0", "", ""), 401, "UNAUTHENTICATED")
	MustError(t, s.DoAuth(t, "GET", api+"experiments/get?experiment_id=0", "", "Bearer atl_nope"), 401, "UNAUTHENTICATED")
	basic := func(user, pass string) string {
		return "Basic " + base64Encode(user+":"+pass)
	}
	if r := s.DoAuth(t, "GET", api+"experiments/get?experiment_id=0", "", basic("me", s.Token)); r.Status != http.StatusOK {
		t.Fatalf("basic auth with the token as password: %d %s", r.Status, r.Body)
	}
	if r := s.DoAuth(t, "GET", "/api/3.0/mlflow/server-info", "", ""); r.Status != http.StatusOK {
		t.Fatalf("server-info is public: %d %s", r.Status, r.Body)
	}
}

func TestWorkspaceRouting(t *testing.T) {
	s := MustStack(t)
	run := s.MustOK(t, "POST", "/workspaces/default/mlflow/api/2.0/mlflow/runs/create", `{}`)["run"].(map[string]any)["info"].(map[string]any)
	s.MustOK(t, "GET", "/ajax-api/2.0/mlflow/runs/get?run_uuid="+str(run["run_id"]), "")
	s.MustOK(t, "GET", "/api/3.0/mlflow/runs/get?run_id="+str(run["run_id"]), "")
}

// TestLoggingRefusals: a deleted run takes no writes, a changed param is refused, a missing
// run is not found, in MLflow's words, and a refused batch stores nothing of itself.
func TestLoggingRefusals(t *testing.T) {
	s := MustStack(t)
	newRun := func() string {
		run := s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0"}`)
		return str(run["run"].(map[string]any)["info"].(map[string]any)["run_id"])
	}
	live, gone := newRun(), newRun()
	s.MustOK(t, "POST", api+"runs/log-batch", `{"run_id":"`+live+`","params":[{"key":"p","value":"1"}]}`)
	s.MustOK(t, "POST", api+"runs/delete", `{"run_id":"`+gone+`"}`)
	for _, tc := range []struct {
		name, path, body string
		status           int
		code, message    string
	}{
		{"batch to a deleted run", "runs/log-batch", `{"run_id":"` + gone + `","tags":[{"key":"half","value":"x"}]}`, 400, "INVALID_PARAMETER_VALUE", "must be in the 'active' state"},
		{"metric to a deleted run", "runs/log-metric", `{"run_id":"` + gone + `","key":"half","value":1,"timestamp":1,"step":0}`, 400, "INVALID_PARAMETER_VALUE", "must be in the 'active' state"},
		{"empty batch to a deleted run", "runs/log-batch", `{"run_id":"` + gone + `"}`, 400, "INVALID_PARAMETER_VALUE", "must be in the 'active' state"},
		{"changed param", "runs/log-batch", `{"run_id":"` + live + `","params":[{"key":"p","value":"2"}],"tags":[{"key":"half","value":"x"}]}`, 400, "INVALID_PARAMETER_VALUE", "Changing param values is not allowed"},
		{"missing run", "runs/log-batch", `{"run_id":"0123456789abcdef0123456789abcdef","tags":[{"key":"half","value":"x"}]}`, 404, "RESOURCE_DOES_NOT_EXIST", "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Do(t, "POST", api+tc.path, tc.body)
			MustError(t, r, tc.status, tc.code)
			if !strings.Contains(string(r.Body), tc.message) {
				t.Errorf("error %s, want it to say %q", r.Body, tc.message)
			}
		})
	}
	for _, id := range []string{live, gone} {
		got := s.MustOK(t, "GET", api+"runs/get?run_id="+id, "")
		if data := fmt.Sprint(got["run"].(map[string]any)["data"]); strings.Contains(data, "half") {
			t.Errorf("a refused write was stored: %s", data)
		}
	}
}

// TestWireTypes: a number where MLflow wants a string is refused (400), as MLflow's server
// refuses it, and messages name the protocol's types, not Go's.
func TestWireTypes(t *testing.T) {
	s := MustStack(t)
	for _, tc := range []struct{ path, body, want string }{
		{"experiments/create", `{"name":123}`, "'name' supplied: it must be a string"},
		{"runs/update", `{"run_id":31,"status":"FINISHED"}`, "'run_id' supplied: it must be a string"},
		{"runs/log-batch", `{"run_id":"x","metrics":{"key":"m"}}`, "it must be a list"},
		{"runs/log-metric", `{"run_id":"x","key":"m","value":1,"step":"two"}`, "integer"},
	} {
		r := s.Do(t, "POST", api+tc.path, tc.body)
		MustError(t, r, 400, "INVALID_PARAMETER_VALUE")
		if !strings.Contains(string(r.Body), tc.want) || strings.Contains(string(r.Body), "mlflow.") {
			t.Errorf("%s %s: %s, want a message with %q and no Go type", tc.path, tc.body, r.Body, tc.want)
		}
	}
	// A query parameter is text: run 31 is looked for, and not found.
	MustError(t, s.Do(t, "GET", api+"runs/get?run_id=31", ""), 404, "RESOURCE_DOES_NOT_EXIST")
	if list := s.MustOK(t, "POST", api+"experiments/search", `{"filter":"name = '123'"}`)["experiments"]; fmt.Sprint(list) != "[]" {
		t.Errorf("an experiment was created from a number: %v", list)
	}
}

// TestParentTagOfAMissingRun: mlflow.parentRunId naming a run atelier does not hold is kept as
// the tag it is, as MLflow keeps it; the run is created without a parent.
func TestParentTagOfAMissingRun(t *testing.T) {
	s := MustStack(t)
	run := s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0","tags":[{"key":"mlflow.parentRunId","value":"0123abcd"}]}`)["run"].(map[string]any)
	got := s.MustOK(t, "GET", api+"runs/get?run_id="+str(run["info"].(map[string]any)["run_id"]), "")["run"].(map[string]any)
	if tags := fmt.Sprint(got["data"].(map[string]any)["tags"]); !strings.Contains(tags, "key:mlflow.parentRunId value:0123abcd") {
		t.Fatalf("tags %s", tags)
	}
}

// TestSearchTies: runs that tie on the ordering go by start time (newest first), then by run id
// ascending, as MLflow's server orders them, so pages of one search never disagree.
func TestSearchTies(t *testing.T) {
	s := MustStack(t)
	type key struct {
		start float64
		id    string
	}
	var runs []key
	for range 6 {
		info := s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)
		runs = append(runs, key{info["start_time"].(float64), str(info["run_id"])})
	}
	sort.Slice(runs, func(i, j int) bool {
		if runs[i].start != runs[j].start {
			return runs[i].start > runs[j].start
		}
		return runs[i].id < runs[j].id
	})
	var want []string
	for _, r := range runs {
		want = append(want, r.id)
	}
	for _, order := range []string{``, `,"order_by":["attributes.start_time DESC"]`, `,"order_by":["params.nope"]`} {
		var got []string
		for token := ""; ; {
			page := s.MustOK(t, "POST", api+"runs/search", `{"experiment_ids":["0"],"max_results":2,"page_token":"`+token+`"`+order+`}`)
			for _, r := range page["runs"].([]any) {
				got = append(got, str(r.(map[string]any)["info"].(map[string]any)["run_id"]))
			}
			if token, _ = page["next_page_token"].(string); token == "" {
				break
			}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("order %s: %v, want %v", order, got, want)
		}
	}
}
