package mlflow_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// TestLoggedModelLifecycle: create, upload through the proxy at the artifact location, finalize,
// tag, search, link to the run, metrics per data set; the model is atelier's logged model, not a run.
func TestLoggedModelLifecycle(t *testing.T) {
	s := MustStack(t)
	run := s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0","run_name":"train"}`)["run"].(map[string]any)["info"].(map[string]any)
	rid := str(run["run_id"])
	m := s.MustOK(t, "POST", api+"logged-models", `{"experiment_id":"0","name":"model","source_run_id":"`+rid+`","model_type":"sk",
		"params":[{"key":"alpha","value":"0.5"}],"tags":[{"key":"t","value":"1"}]}`)["model"].(map[string]any)
	info := m["info"].(map[string]any)
	mid := str(info["model_id"])
	if !strings.HasPrefix(mid, "m-") || info["status"] != "LOGGED_MODEL_PENDING" || info["source_run_id"] != rid || info["name"] != "model" {
		t.Fatalf("created model %v", info)
	}
	loc := str(info["artifact_uri"])
	eid := str(run["experiment_id"])
	if want := "mlflow-artifacts:/" + eid + "/models/" + mid + "/artifacts"; loc != want {
		t.Fatalf("artifact_uri %s, want %s", loc, want)
	}
	base := "/api/2.0/mlflow-artifacts/artifacts/" + strings.TrimPrefix(loc, "mlflow-artifacts:/")
	s.MustOK(t, "PUT", base+"/MLmodel", "flavors: {}\n")
	s.MustOK(t, "PUT", base+"/model.pkl", "pickle")
	if r := s.Do(t, "GET", base+"/MLmodel", ""); r.Status != 200 || string(r.Body) != "flavors: {}\n" {
		t.Fatalf("download %d %s", r.Status, r.Body)
	}
	fin := s.MustOK(t, "PATCH", api+"logged-models/"+mid, `{"model_id":"`+mid+`","status":"LOGGED_MODEL_READY"}`)
	if st := fin["model"].(map[string]any)["info"].(map[string]any)["status"]; st != "LOGGED_MODEL_READY" {
		t.Fatalf("finalized status %v", st)
	}
	s.MustOK(t, "PATCH", api+"logged-models/"+mid+"/tags", `{"tags":[{"key":"u","value":"2"}]}`)
	s.MustOK(t, "DELETE", api+"logged-models/"+mid+"/tags/t", "")
	s.MustOK(t, "POST", api+"logged-models/"+mid+"/params", `{"params":[{"key":"beta","value":"1"}]}`)
	got := s.MustOK(t, "GET", api+"logged-models/"+mid, "")["model"].(map[string]any)
	if tags := fmt.Sprint(got["info"].(map[string]any)["tags"]); tags != "[map[key:u value:2]]" {
		t.Fatalf("tags %s", tags)
	}
	if params := fmt.Sprint(got["data"].(map[string]any)["params"]); params != "[map[key:alpha value:0.5] map[key:beta value:1]]" {
		t.Fatalf("params %s", params)
	}
	found := s.MustOK(t, "POST", api+"logged-models/search", `{"experiment_ids":["`+eid+`"],"filter":"name = 'model' AND source_run_id = '`+rid+`'"}`)
	if ms := found["models"].([]any); len(ms) != 1 {
		t.Fatalf("search found %v", found)
	}
	none := s.MustOK(t, "POST", api+"logged-models/search", `{"experiment_ids":["`+eid+`"],"filter":"params.alpha = '9'"}`)
	if ms := none["models"].([]any); len(ms) != 0 {
		t.Fatalf("search with a non-matching filter found %v", none)
	}
	s.MustOK(t, "POST", api+"runs/outputs", `{"run_id":"`+rid+`","models":[{"model_id":"`+mid+`","step":0}]}`)
	r := s.MustOK(t, "GET", api+"runs/get?run_id="+rid, "")["run"].(map[string]any)
	if out := fmt.Sprint(r["outputs"]); out != "map[model_outputs:[map[model_id:"+mid+" step:0]]]" {
		t.Fatalf("run outputs %s", out)
	}
	// the model's record run is not an MLflow run
	runs := s.MustOK(t, "POST", api+"runs/search", `{"experiment_ids":["0"]}`)["runs"].([]any)
	if len(runs) != 1 {
		t.Fatalf("search runs found %d runs", len(runs))
	}
	// atelier: a logged model of its own (no run) holding the files, linked to the training run
	ctx := authCtx(t, s)
	if _, err := s.Service.FindRun(ctx, "default", strings.TrimPrefix(mid, "m-")); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Fatalf("the logged model is a run: %v", err)
	}
	lm, err := s.Service.FindLoggedModel(ctx, "default", mid)
	if err != nil || lm.SourceRunID != rid || lm.Status != atelier.LoggedModelReady {
		t.Fatalf("atelier's logged model: %+v, %v", lm, err)
	}
	files, err := s.Service.ListLoggedModelFiles(ctx, "default", mid, "")
	if err != nil || len(files) != 2 || files[0].Path != "MLmodel" || files[1].Path != "model.pkl" {
		t.Fatalf("atelier's logged model files: %+v, %v", files, err)
	}
	// A metric logged with model_id is measured on the model; data sets filter the search.
	s.MustOK(t, "POST", api+"runs/log-batch", `{"run_id":"`+rid+`","metrics":[{"key":"acc","value":0.9,"timestamp":1,"step":0,
		"model_id":"`+mid+`","dataset_name":"eval","dataset_digest":"d1"}]}`)
	got = s.MustOK(t, "GET", api+"logged-models/"+mid, "")["model"].(map[string]any)
	if ms := fmt.Sprint(got["data"].(map[string]any)["metrics"]); !strings.Contains(ms, "dataset_name:eval") || !strings.Contains(ms, "key:acc") {
		t.Fatalf("model metrics %s", ms)
	}
	for body, want := range map[string]int{
		`{"experiment_ids":["` + eid + `"],"datasets":[{"dataset_name":"eval"}]}`:                           1,
		`{"experiment_ids":["` + eid + `"],"datasets":[{"dataset_name":"test"}]}`:                           0,
		`{"experiment_ids":["` + eid + `"],"filter":"metrics.acc > 0.5"}`:                                   1,
		`{"experiment_ids":["` + eid + `"],"filter":"metrics.acc > 0.95"}`:                                  0,
		`{"experiment_ids":["` + eid + `"],"order_by":[{"field_name":"metrics.acc","ascending":false}]}`:    1,
		`{"experiment_ids":["` + eid + `"],"filter":"status = 'LOGGED_MODEL_READY' and model_type = 'sk'"}`: 1,
	} {
		if n := len(s.MustOK(t, "POST", api+"logged-models/search", body)["models"].([]any)); n != want {
			t.Errorf("search %s found %d, want %d", body, n, want)
		}
	}
	// A run that used the model lists it among its inputs.
	user := str(s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)["run_id"])
	s.MustOK(t, "POST", api+"runs/log-inputs", `{"run_id":"`+user+`","models":[{"model_id":"`+mid+`"}]}`)
	if in := fmt.Sprint(s.MustOK(t, "GET", api+"runs/get?run_id="+user, "")["run"].(map[string]any)["inputs"]); !strings.Contains(in, "model_inputs:[map[model_id:"+mid+"]]") {
		t.Fatalf("run inputs %s", in)
	}
	// Finalizing may move a READY model to FAILED, as MLflow allows.
	fin = s.MustOK(t, "PATCH", api+"logged-models/"+mid, `{"status":"LOGGED_MODEL_UPLOAD_FAILED"}`)
	if st := fin["model"].(map[string]any)["info"].(map[string]any)["status"]; st != "LOGGED_MODEL_UPLOAD_FAILED" {
		t.Fatalf("status after READY then FAILED: %v", st)
	}
	// A source run kept elsewhere is recorded, not refused.
	far := s.MustOK(t, "POST", api+"logged-models", `{"experiment_id":"0","name":"far","source_run_id":"0123456789abcdef"}`)["model"].(map[string]any)["info"].(map[string]any)
	if far["source_run_id"] != "0123456789abcdef" {
		t.Fatalf("far model %v", far)
	}
	s.MustOK(t, "DELETE", api+"logged-models/"+str(far["model_id"]), "")
	MustError(t, s.Do(t, "GET", api+"logged-models/"+str(far["model_id"]), ""), 404, "RESOURCE_DOES_NOT_EXIST")
	MustError(t, s.Do(t, "GET", api+"logged-models/m-nope", ""), 404, "RESOURCE_DOES_NOT_EXIST")
	MustError(t, s.Do(t, "GET", api+"logged-models/"+rid, ""), 404, "RESOURCE_DOES_NOT_EXIST")
}

// TestRegistryRoundTrip: one registry, two APIs.
func TestRegistryRoundTrip(t *testing.T) {
	s := MustStack(t)
	run := s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)
	rid := str(run["run_id"])
	m := s.MustOK(t, "POST", api+"logged-models", `{"experiment_id":"0","name":"model","source_run_id":"`+rid+`"}`)["model"].(map[string]any)["info"].(map[string]any)
	mid := str(m["model_id"])
	base := "/api/2.0/mlflow-artifacts/artifacts/" + strings.TrimPrefix(str(m["artifact_uri"]), "mlflow-artifacts:/")
	s.MustOK(t, "PUT", base+"/MLmodel", "flavors: {}\n")
	s.MustOK(t, "PUT", base+"/data/w.bin", "weights")

	rm := s.MustOK(t, "POST", api+"registered-models/create", `{"name":"reg","tags":[{"key":"team","value":"a"}],"description":"d"}`)["registered_model"].(map[string]any)
	if rm["name"] != "reg" || rm["description"] != "d" || fmt.Sprint(rm["tags"]) != "[map[key:team value:a]]" {
		t.Fatalf("created %v", rm)
	}
	MustError(t, s.Do(t, "POST", api+"registered-models/create", `{"name":"reg"}`), 400, "RESOURCE_ALREADY_EXISTS")
	mv := s.MustOK(t, "POST", api+"model-versions/create", `{"name":"reg","source":"models:/`+mid+`","model_id":"`+mid+`"}`)["model_version"].(map[string]any)
	if mv["version"] != "1" || mv["status"] != "READY" || mv["run_id"] != rid || mv["source"] != "models:/"+mid || mv["current_stage"] != "None" || mv["model_id"] != mid {
		t.Fatalf("version %v", mv)
	}
	// atelier's side: version 1 made of the logged model's files, lineage to the training run
	ctx := authCtx(t, s)
	v, err := s.Service.FindModelVersion(ctx, "default", atelier.ModelRef{Name: "reg", Version: 1})
	if err != nil || v.RunID != rid || len(v.Files) != 2 || v.Files[0].Path != "model/MLmodel" || v.Files[1].Path != "model/data/w.bin" {
		t.Fatalf("atelier version %+v, %v", v, err)
	}
	s.MustOK(t, "POST", api+"registered-models/alias", `{"name":"reg","alias":"champion","version":"1"}`)
	byAlias := s.MustOK(t, "GET", api+"registered-models/alias?name=reg&alias=champion", "")["model_version"].(map[string]any)
	if byAlias["version"] != "1" || fmt.Sprint(byAlias["aliases"]) != "[champion]" {
		t.Fatalf("by alias %v", byAlias)
	}
	uri := str(s.MustOK(t, "GET", api+"model-versions/get-download-uri?name=reg&version=1", "")["artifact_uri"])
	if uri != "mlflow-artifacts:/registered-models/reg/versions/1/files/model" {
		t.Fatalf("download uri %s", uri)
	}
	p := strings.TrimPrefix(uri, "mlflow-artifacts:/")
	list := s.MustOK(t, "GET", "/api/2.0/mlflow-artifacts/artifacts?path="+url.QueryEscape(p), "")
	if got := fmt.Sprint(list["files"]); got != "[map[file_size:12 is_dir:false path:MLmodel] map[is_dir:true path:data]]" {
		t.Fatalf("listing %s", got)
	}
	if r := s.Do(t, "GET", "/api/2.0/mlflow-artifacts/artifacts/"+p+"/data/w.bin", ""); r.Status != 200 || string(r.Body) != "weights" {
		t.Fatalf("download %d %q", r.Status, r.Body)
	}
	MustError(t, s.Do(t, "PUT", "/api/2.0/mlflow-artifacts/artifacts/"+p+"/x", "x"), 400, "INVALID_PARAMETER_VALUE")

	// a second version from run artifacts, staged
	s.MustOK(t, "PUT", "/api/2.0/mlflow-artifacts/artifacts/0/"+rid+"/artifacts/sk/MLmodel", "flavors: {}\n")
	s.MustOK(t, "POST", api+"model-versions/create", `{"name":"reg","source":"runs:/`+rid+`/sk","run_id":"`+rid+`"}`)
	tr := s.MustOK(t, "POST", api+"model-versions/transition-stage", `{"name":"reg","version":"2","stage":"production","archive_existing_versions":true}`)
	if st := tr["model_version"].(map[string]any)["current_stage"]; st != "Production" {
		t.Fatalf("stage %v", st)
	}
	s.MustOK(t, "POST", api+"model-versions/transition-stage", `{"name":"reg","version":"1","stage":"Staging"}`)
	latest := s.MustOK(t, "POST", api+"registered-models/get-latest-versions", `{"name":"reg","stages":["Production"]}`)
	if lv := latest["model_versions"].([]any); len(lv) != 1 || lv[0].(map[string]any)["version"] != "2" {
		t.Fatalf("latest production %v", latest)
	}
	s.MustOK(t, "POST", api+"model-versions/set-tag", `{"name":"reg","version":"2","key":"k","value":"v"}`)
	s.MustOK(t, "PATCH", api+"model-versions/update", `{"name":"reg","version":"2","description":"second"}`)
	vs := s.MustOK(t, "GET", api+"model-versions/search?filter="+url.QueryEscape("name = 'reg' and tags.k = 'v'"), "")["model_versions"].([]any)
	if len(vs) != 1 || vs[0].(map[string]any)["description"] != "second" {
		t.Fatalf("version search %v", vs)
	}
	s.MustOK(t, "DELETE", api+"model-versions/delete-tag", `{"name":"reg","version":"2","key":"k"}`)
	s.MustOK(t, "POST", api+"registered-models/set-tag", `{"name":"reg","key":"x","value":"y"}`)
	s.MustOK(t, "DELETE", api+"registered-models/delete-tag", `{"name":"reg","key":"team"}`)
	rms := s.MustOK(t, "GET", api+"registered-models/search?filter="+url.QueryEscape("name LIKE 're%'"), "")["registered_models"].([]any)
	if len(rms) != 1 || fmt.Sprint(rms[0].(map[string]any)["tags"]) != "[map[key:x value:y]]" {
		t.Fatalf("registered model search %v", rms)
	}
	// The client's own filter: a model without the tag passes != (as in MLflow's registry).
	for filter, want := range map[string]int{"tag.`mlflow.prompt.is_prompt` != 'true'": 1, "tags.x != 'y'": 0,
		"tags.x NOT IN ('z')": 1, "tags.x = 'y' AND creation_timestamp > 0": 1, "name = 'nope'": 0} {
		rms := s.MustOK(t, "GET", api+"registered-models/search?filter="+url.QueryEscape(filter), "")["registered_models"].([]any)
		if len(rms) != want {
			t.Errorf("registered model search %q found %d, want %d", filter, len(rms), want)
		}
	}
	for filter, want := range map[string]int{"name = 'reg'": 2, "name = 'reg' AND version_number = 2": 1,
		"current_stage = 'Production'": 1, "current_stage != 'None'": 2, "current_stage = 'None'": 0, "run_id = '" + rid + "'": 2, "tags.k = 'nope'": 0} {
		mvs := s.MustOK(t, "GET", api+"model-versions/search?filter="+url.QueryEscape(filter), "")["model_versions"].([]any)
		if len(mvs) != want {
			t.Errorf("model version search %q found %d, want %d", filter, len(mvs), want)
		}
	}

	// an atelier-native version reads through MLflow
	if _, err := s.Service.RegisterModel(ctx, "default", atelier.ModelRegister{Name: "native", RunID: rid, Path: "outputs/sk"}); err != nil {
		t.Fatal(err)
	}
	nv := s.MustOK(t, "GET", api+"model-versions/get?name=native&version=1", "")["model_version"].(map[string]any)
	if nv["source"] != "mlflow-artifacts:/0/"+rid+"/artifacts/sk" || nv["run_id"] != rid {
		t.Fatalf("native version %v", nv)
	}
	if u := s.MustOK(t, "GET", api+"model-versions/get-download-uri?name=native&version=1", "")["artifact_uri"]; u != "mlflow-artifacts:/registered-models/native/versions/1/files/sk" {
		t.Fatalf("native download uri %v", u)
	}

	// rename keeps versions, aliases and tags
	s.MustOK(t, "POST", api+"registered-models/rename", `{"name":"reg","new_name":"reg2"}`)
	MustError(t, s.Do(t, "GET", api+"registered-models/get?name=reg", ""), 404, "RESOURCE_DOES_NOT_EXIST")
	r2 := s.MustOK(t, "GET", api+"registered-models/get?name=reg2", "")["registered_model"].(map[string]any)
	if fmt.Sprint(r2["aliases"]) != "[map[alias:champion version:1]]" || fmt.Sprint(r2["tags"]) != "[map[key:x value:y]]" {
		t.Fatalf("renamed %v", r2)
	}
	s.MustOK(t, "DELETE", api+"registered-models/alias", `{"name":"reg2","alias":"champion"}`)
	s.MustOK(t, "DELETE", api+"model-versions/delete", `{"name":"reg2","version":"1"}`)
	s.MustOK(t, "DELETE", api+"model-versions/delete", `{"name":"reg2","version":"2"}`)
	// a registered model outlives its versions
	s.MustOK(t, "GET", api+"registered-models/get?name=reg2", "")
	s.MustOK(t, "DELETE", api+"registered-models/delete", `{"name":"reg2"}`)
	MustError(t, s.Do(t, "GET", api+"registered-models/get?name=reg2", ""), 404, "RESOURCE_DOES_NOT_EXIST")
	s.MustOK(t, "POST", api+"registered-models/create", `{"name":"reg2"}`)

	for _, tc := range []struct{ method, path, body string }{
		{"POST", api + "model-versions/create", `{"name":"nope","source":"models:/` + mid + `"}`},
		{"GET", api + "model-versions/get?name=native&version=9", ""},
		{"GET", api + "registered-models/alias?name=native&alias=nope", ""},
	} {
		MustError(t, s.Do(t, tc.method, tc.path, tc.body), 404, "RESOURCE_DOES_NOT_EXIST")
	}
	for _, tc := range []struct{ method, path, body string }{
		{"POST", api + "registered-models/create", `{"name":"bad/name"}`},
		// as MLflow: a local path, a file of the server, a remote URI with a '..' segment
		{"POST", api + "model-versions/create", `{"name":"native","source":"/tmp/x"}`},
		{"POST", api + "model-versions/create", `{"name":"native","source":"file:///tmp/x"}`},
		{"POST", api + "model-versions/create", `{"name":"native","source":"s3://bucket/a/../../x"}`},
		// as the newest MLflow server: a run source whose run is not held, or another run_id
		{"POST", api + "model-versions/create", `{"name":"native","source":"runs:/0123456789abcdef0123456789abcdef/sk"}`},
		{"POST", api + "model-versions/create", `{"name":"native","source":"mlflow-artifacts:/0/0123456789abcdef0123456789abcdef/artifacts/sk"}`},
		{"POST", api + "model-versions/create", `{"name":"native","source":"runs:/` + rid + `/sk","run_id":"0123456789abcdef0123456789abcdef"}`},
		{"GET", api + "model-versions/get?name=native&version=x", ""},
		{"POST", api + "model-versions/transition-stage", `{"name":"native","version":"1","stage":"Prod"}`},
		{"GET", api + "model-versions/search?filter=" + url.QueryEscape("name = "), ""},
	} {
		MustError(t, s.Do(t, tc.method, tc.path, tc.body), 400, "INVALID_PARAMETER_VALUE")
	}
}

// TestRunTokenLogsAndRegisters: a script submitted to atelier logs and registers a model with
// its run's token, which may only create child runs of its run.
func TestRunTokenLogsAndRegisters(t *testing.T) {
	s := MustStack(t)
	run := s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)
	rid := str(run["run_id"])
	tok, err := s.Service.CreateToken(context.Background(), &atelier.Token{Name: "run", Kind: atelier.PrincipalRun, Owner: "admin", Workspace: "default", RunID: rid})
	if err != nil {
		t.Fatal(err)
	}
	auth := "Bearer " + tok.Secret
	do := func(method, path, body string) map[string]any {
		t.Helper()
		r := s.DoAuth(t, method, path, body, auth)
		if r.Status != 200 {
			t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
		}
		return r.JSON(t)
	}
	m := do("POST", api+"logged-models", `{"experiment_id":"0","name":"model","source_run_id":"`+rid+`"}`)["model"].(map[string]any)["info"].(map[string]any)
	mid := str(m["model_id"])
	do("PUT", "/api/2.0/mlflow-artifacts/artifacts/"+strings.TrimPrefix(str(m["artifact_uri"]), "mlflow-artifacts:/")+"/MLmodel", "flavors: {}\n")
	do("PATCH", api+"logged-models/"+mid, `{"status":"LOGGED_MODEL_READY"}`)
	do("POST", api+"registered-models/create", `{"name":"from-run"}`)
	mv := do("POST", api+"model-versions/create", `{"name":"from-run","source":"models:/`+mid+`","model_id":"`+mid+`"}`)["model_version"].(map[string]any)
	if mv["version"] != "1" || mv["run_id"] != rid {
		t.Fatalf("version %v", mv)
	}
}

// TestModelVersionExternalSources: as MLflow records a remote source as a pointer, atelier
// registers a reference version (no files): the source and run_id read back as given (a run_id
// atelier does not hold is no lineage), get-download-uri answers the source, and runs:/ to a
// path of a held run without files is a reference too.
func TestModelVersionExternalSources(t *testing.T) {
	s := MustStack(t)
	rid := str(s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)["run_id"])
	s.MustOK(t, "POST", api+"registered-models/create", `{"name":"ext"}`)
	missing := "0000000000000000000000000000dead"
	for i, tc := range []struct{ source, runID, wantRunID, wantURI string }{
		{"s3://bucket/path/model", "", "", "s3://bucket/path/model"},
		{"gs://bucket/path/model", missing, missing, "gs://bucket/path/model"},
		{"dbfs:/databricks/mlflow/model", rid, rid, "dbfs:/databricks/mlflow/model"},
		{"https://example.com/models/model.tar.gz", "", "", "https://example.com/models/model.tar.gz"},
		{"runs:/" + rid + "/no-files-here", rid, rid, "mlflow-artifacts:/0/" + rid + "/artifacts/no-files-here"},
	} {
		body := fmt.Sprintf(`{"name":"ext","source":%q,"run_id":%q}`, tc.source, tc.runID)
		mv := s.MustOK(t, "POST", api+"model-versions/create", body)["model_version"].(map[string]any)
		runID := func(m map[string]any) string { s, _ := m["run_id"].(string); return s }
		if mv["source"] != tc.source || runID(mv) != tc.wantRunID || mv["version"] != fmt.Sprint(i+1) {
			t.Errorf("%s: created %v", tc.source, mv)
		}
		got := s.MustOK(t, "GET", api+"model-versions/get?name=ext&version="+fmt.Sprint(i+1), "")["model_version"].(map[string]any)
		if got["source"] != tc.source || runID(got) != tc.wantRunID {
			t.Errorf("%s: read back %v", tc.source, got)
		}
		uri := s.MustOK(t, "GET", api+"model-versions/get-download-uri?name=ext&version="+fmt.Sprint(i+1), "")["artifact_uri"]
		if uri != tc.wantURI {
			t.Errorf("%s: download uri %v, want %s", tc.source, uri, tc.wantURI)
		}
	}
	// The native view: a reference with its source, no files, and the run only when held.
	v, err := s.Store.FindModelVersion(context.Background(), "default", atelier.ModelRef{Name: "ext", Version: 2})
	if err != nil || v.Source != "gs://bucket/path/model" || v.RunID != "" || len(v.Files) != 0 {
		t.Errorf("ext:2 = %+v, %v", v, err)
	}
	if v, err := s.Store.FindModelVersion(context.Background(), "default", atelier.ModelRef{Name: "ext", Version: 3}); err != nil || v.RunID != rid {
		t.Errorf("ext:3 = %+v, %v", v, err)
	}
	s.MustOK(t, "DELETE", api+"model-versions/delete", `{"name":"ext","version":"1"}`)
}
