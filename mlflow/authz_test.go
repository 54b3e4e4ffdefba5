package mlflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// mustRunToken returns the token a submitted run gets, for run rid of the default workspace.
func mustRunToken(tb testing.TB, s *Stack, rid string) string {
	tb.Helper()
	tok, err := s.Service.CreateToken(context.Background(), &atelier.Token{Name: "run " + rid, Kind: atelier.PrincipalRun,
		Owner: "admin", Workspace: atelier.DefaultWorkspace, RunID: rid})
	if err != nil {
		tb.Fatal(err)
	}
	return tok.Secret
}

// mustUserToken creates user name, with role in workspace (no membership when role is empty),
// and returns a token of theirs.
func mustUserToken(tb testing.TB, s *Stack, name, workspace string, role atelier.Role) string {
	tb.Helper()
	ctx := authCtx(tb, s)
	if err := s.Service.CreateUser(ctx, &atelier.User{Name: name}, "a long password"); err != nil {
		tb.Fatal(err)
	}
	if role != "" {
		if _, err := s.Service.ShareWorkspace(ctx, workspace, name, role); err != nil {
			tb.Fatal(err)
		}
	}
	tok, err := s.Service.CreateToken(ctx, &atelier.Token{Name: name, Owner: name})
	if err != nil {
		tb.Fatal(err)
	}
	return tok.Secret
}

// registryView is what a reader sees of the registry: each registered model as registered-models/get
// answers it, after checking that registered-models/search answers the same, and each version.
func registryView(tb testing.TB, s *Stack, auth string) string {
	tb.Helper()
	do := func(method, path string) map[string]any {
		tb.Helper()
		r := s.DoAuth(tb, method, path, "", auth)
		if r.Status != http.StatusOK {
			tb.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
		}
		return r.JSON(tb)
	}
	compact := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		return string(b)
	}
	var view bytes.Buffer
	for _, m := range do("GET", api+"registered-models/search")["registered_models"].([]any) {
		name := str(m.(map[string]any)["name"])
		got := do("GET", api+"registered-models/get?name="+url.QueryEscape(name))["registered_model"]
		if compact(got) != compact(m) {
			tb.Fatalf("registered model %s: get and search disagree:\nget    %s\nsearch %s", name, compact(got), compact(m))
		}
		view.WriteString(compact(got) + "\n")
	}
	view.WriteString(compact(do("GET", api+"model-versions/search")["model_versions"]) + "\n")
	return view.String()
}

// TestRunTokenLeavesOthersModelsAlone: a run's token changes only its run, so the registry's
// models, versions and experiments that everyone reads are refused to it with a 403 that says so,
// before anything is written; a user of the workspace still changes them.
func TestRunTokenLeavesOthersModelsAlone(t *testing.T) {
	s := MustStack(t)
	train := str(s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)["run_id"])
	s.MustOK(t, "PUT", "/api/2.0/mlflow-artifacts/artifacts/0/"+train+"/artifacts/model/MLmodel", "flavors: {}\n")
	s.MustOK(t, "POST", api+"registered-models/create", `{"name":"shared","description":"original","tags":[{"key":"team","value":"a"}]}`)
	s.MustOK(t, "POST", api+"model-versions/create", `{"name":"shared","source":"runs:/`+train+`/model"}`)
	s.MustOK(t, "POST", api+"registered-models/alias", `{"name":"shared","alias":"champion","version":"1"}`)
	// A model with no version yet is only a record.
	s.MustOK(t, "POST", api+"registered-models/create", `{"name":"draft","description":"draft notes","tags":[{"key":"team","value":"a"}]}`)
	s.MustOK(t, "POST", api+"experiments/set-experiment-tag", `{"experiment_id":"0","key":"team","value":"a"}`)

	script := str(s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)["run_id"])
	runAuth := "Bearer " + mustRunToken(t, s, script)
	admin := "Bearer " + s.Token
	before := registryView(t, s, admin)
	expBefore := str(s.MustOK(t, "GET", api+"experiments/get?experiment_id=0", "")["experiment"])

	for _, tc := range []struct{ method, path, body string }{
		{"POST", "registered-models/set-tag", `{"name":"shared","key":"team","value":"pwned"}`},
		{"POST", "registered-models/set-tag", `{"name":"draft","key":"team","value":"pwned"}`},
		{"DELETE", "registered-models/delete-tag", `{"name":"shared","key":"team"}`},
		{"PATCH", "registered-models/update", `{"name":"shared","description":"pwned"}`},
		{"PATCH", "registered-models/update", `{"name":"draft","description":"pwned"}`},
		{"POST", "registered-models/rename", `{"name":"shared","new_name":"stolen"}`},
		{"POST", "registered-models/rename", `{"name":"draft","new_name":"stolen"}`},
		{"DELETE", "registered-models/delete", `{"name":"shared"}`},
		{"DELETE", "registered-models/delete", `{"name":"draft"}`},
		{"POST", "registered-models/alias", `{"name":"shared","alias":"champion","version":"1"}`},
		{"DELETE", "registered-models/alias", `{"name":"shared","alias":"champion"}`},
		{"PATCH", "model-versions/update", `{"name":"shared","version":"1","description":"pwned"}`},
		{"POST", "model-versions/set-tag", `{"name":"shared","version":"1","key":"k","value":"pwned"}`},
		{"DELETE", "model-versions/delete-tag", `{"name":"shared","version":"1","key":"k"}`},
		{"POST", "model-versions/transition-stage", `{"name":"shared","version":"1","stage":"Production"}`},
		{"DELETE", "model-versions/delete", `{"name":"shared","version":"1"}`},
		{"POST", "experiments/create", `{"name":"elsewhere"}`},
		{"POST", "experiments/update", `{"experiment_id":"0","new_name":"pwned"}`},
		{"POST", "experiments/delete", `{"experiment_id":"0"}`},
		{"POST", "experiments/restore", `{"experiment_id":"0"}`},
		{"POST", "experiments/set-experiment-tag", `{"experiment_id":"0","key":"team","value":"pwned"}`},
		{"POST", "experiments/delete-experiment-tag", `{"experiment_id":"0","key":"team"}`},
	} {
		t.Run(tc.path+" "+tc.body, func(t *testing.T) {
			r := s.DoAuth(t, tc.method, api+tc.path, tc.body, runAuth)
			MustError(t, r, http.StatusForbidden, "PERMISSION_DENIED")
			if !strings.Contains(string(r.Body), "a run's token may change only its run") {
				t.Errorf("the refusal does not say why: %s", r.Body)
			}
		})
	}
	// A run's token sees only its run tree, so it may not know a model that is only a record:
	// it may create one under that name, but the record made first stays the model's for others.
	s.DoAuth(t, "POST", api+"registered-models/create", `{"name":"draft","description":"pwned","tags":[{"key":"team","value":"pwned"}]}`, runAuth)
	if after := registryView(t, s, admin); after != before {
		t.Fatalf("a run's token changed the registry:\nbefore %s\nafter  %s", before, after)
	}
	if after := str(s.MustOK(t, "GET", api+"experiments/get?experiment_id=0", "")["experiment"]); after != expBefore {
		t.Fatalf("a run's token changed experiment 0:\nbefore %s\nafter  %s", expBefore, after)
	}
	// What it may do: register its own models.
	s.MustOK(t, "PUT", "/api/2.0/mlflow-artifacts/artifacts/0/"+script+"/artifacts/model/MLmodel", "flavors: {}\n")
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "registered-models/create", `{"name":"mine","description":"by the script"}`},
		{"POST", "model-versions/create", `{"name":"mine","source":"runs:/` + script + `/model"}`},
	} {
		if r := s.DoAuth(t, tc.method, api+tc.path, tc.body, runAuth); r.Status != http.StatusOK {
			t.Fatalf("run token: %s %s: %d %s", tc.method, tc.path, r.Status, r.Body)
		}
	}

	// A Contributor changes what the run's token may not, and every reader sees it.
	ana := "Bearer " + mustUserToken(t, s, "ana", atelier.DefaultWorkspace, atelier.RoleContributor)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "registered-models/set-tag", `{"name":"shared","key":"team","value":"b"}`},
		{"PATCH", "registered-models/update", `{"name":"shared","description":"reviewed"}`},
		{"PATCH", "registered-models/update", `{"name":"draft","description":"reviewed"}`},
		{"DELETE", "registered-models/delete-tag", `{"name":"draft","key":"team"}`},
	} {
		if r := s.DoAuth(t, tc.method, api+tc.path, tc.body, ana); r.Status != http.StatusOK {
			t.Fatalf("user token: %s %s: %d %s", tc.method, tc.path, r.Status, r.Body)
		}
	}
	registryView(t, s, admin) // get and search agree
	for _, name := range []string{"shared", "draft"} {
		rm := s.MustOK(t, "GET", api+"registered-models/get?name="+name, "")["registered_model"].(map[string]any)
		if rm["description"] != "reviewed" {
			t.Errorf("%s: description %v, want the user's", name, rm["description"])
		}
		if tags := str(rm["tags"]); (name == "shared" && tags != "[map[key:team value:b]]") || (name == "draft" && rm["tags"] != nil) {
			t.Errorf("%s: tags %s", name, tags)
		}
	}
	// Deleted, a model is gone for every reader, whichever records it had.
	s.MustOK(t, "DELETE", api+"registered-models/delete", `{"name":"draft"}`)
	MustError(t, s.Do(t, "GET", api+"registered-models/get?name=draft", ""), 404, "RESOURCE_DOES_NOT_EXIST")
	if v := registryView(t, s, admin); strings.Contains(v, `"draft"`) {
		t.Fatalf("a deleted model is still listed: %s", v)
	}
}

// TestSearchHiddenWorkspace: every search answers 404 for a workspace the caller cannot see,
// as every other endpoint does, and answers its members.
func TestSearchHiddenWorkspace(t *testing.T) {
	s := MustStack(t)
	if err := s.Service.CreateWorkspace(authCtx(t, s), &atelier.Workspace{Name: "secret"}); err != nil {
		t.Fatal(err)
	}
	ws := "/workspaces/secret/mlflow" + api
	s.MustOK(t, "POST", ws+"runs/create", `{"experiment_id":"0"}`)
	eve := "Bearer " + mustUserToken(t, s, "eve", "", "")
	searches := []struct{ method, path, body string }{
		{"POST", "runs/search", `{"experiment_ids":["0"]}`},
		{"POST", "runs/search", `{"experiment_ids":["1","999"]}`},
		{"POST", "runs/search", `{}`},
		{"POST", "experiments/search", `{}`},
		{"GET", "experiments/search", ""},
		{"GET", "registered-models/search", ""},
		{"GET", "model-versions/search", ""},
		{"GET", "model-versions/search?filter=" + url.QueryEscape("name = 'not/a/model'"), ""},
		{"POST", "logged-models/search", `{}`},
		{"POST", "logged-models/search", `{"experiment_ids":["0"]}`},
	}
	for _, tc := range searches {
		t.Run("non-member "+tc.path+" "+tc.body, func(t *testing.T) {
			MustError(t, s.DoAuth(t, tc.method, ws+tc.path, tc.body, eve), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
		})
	}
	// Nor does a workspace that does not exist answer, even to an administrator.
	MustError(t, s.Do(t, "POST", "/workspaces/nowhere/mlflow"+api+"runs/search", `{"experiment_ids":["0"]}`), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	if _, err := s.Service.ShareWorkspace(authCtx(t, s), "secret", "eve", atelier.RoleReader); err != nil {
		t.Fatal(err)
	}
	for _, tc := range searches {
		if r := s.DoAuth(t, tc.method, ws+tc.path, tc.body, eve); r.Status != http.StatusOK {
			t.Errorf("member: %s %s %s: %d %s", tc.method, tc.path, tc.body, r.Status, r.Body)
		}
	}
	if runs := s.MustOK(t, "POST", ws+"runs/search", `{"experiment_ids":["0"]}`)["runs"].([]any); len(runs) != 1 {
		t.Errorf("the workspace's run is not found: %v", runs)
	}
}

// TestAuthSchemeCase: the scheme of the Authorization header is case-insensitive (RFC 7235).
func TestAuthSchemeCase(t *testing.T) {
	s := MustStack(t)
	path := api + "experiments/get?experiment_id=0"
	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
		if r := s.DoAuth(t, "GET", path, "", scheme+" "+s.Token); r.Status != http.StatusOK {
			t.Errorf("%s: %d %s", scheme, r.Status, r.Body)
		}
	}
	for _, scheme := range []string{"Basic", "basic", "BASIC"} {
		if r := s.DoAuth(t, "GET", path, "", scheme+" "+base64Encode("me:"+s.Token)); r.Status != http.StatusOK {
			t.Errorf("%s: %d %s", scheme, r.Status, r.Body)
		}
	}
	for _, auth := range []string{"bearer atl_nope", "basic " + base64Encode("me:atl_nope"), "Token " + s.Token, "Bearer", "basic %%%"} {
		MustError(t, s.DoAuth(t, "GET", path, "", auth), http.StatusUnauthorized, "UNAUTHENTICATED")
	}
}
