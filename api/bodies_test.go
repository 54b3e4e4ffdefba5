package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/server"
	"github.com/atelier-ml/atelier/server/servertest"
	"golang.org/x/crypto/bcrypt"
)

// jsonBody is an operation of the document with an application/json request body.
type jsonBody struct {
	Method, Path string         // Path is the document's template
	Name         string         // the body's component schema
	Schema       map[string]any // resolved
}

// mustJSONBodies reads the operations with JSON bodies from openapi.json.
func mustJSONBodies(tb testing.TB) (map[string]any, []jsonBody) {
	tb.Helper()
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		tb.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		tb.Fatal(err)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	var out []jsonBody
	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			content, _ := lookup(op, "requestBody", "content", "application/json").(map[string]any)
			if content == nil {
				continue
			}
			ref, _ := lookup(content, "schema", "$ref").(string)
			name := ref[strings.LastIndexByte(ref, '/')+1:]
			s, _ := schemas[name].(map[string]any)
			if s == nil {
				tb.Fatalf("%s %s: body schema %q is not a component", method, path, ref)
			}
			out = append(out, jsonBody{Method: strings.ToUpper(method), Path: path, Name: name, Schema: s})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path+out[i].Method < out[j].Path+out[j].Method })
	if len(out) < 20 {
		tb.Fatalf("only %d JSON bodies found in openapi.json", len(out))
	}
	return doc, out
}

func lookup(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// fillPath puts names into a path template: those of things that exist where the handler looks
// them up before it reads the body.
func fillPath(tmpl string) string {
	r := strings.NewReplacer("{workspace}", "default", "{datastore}", "default", "{version}", "1", "{path}", "a.txt")
	out := r.Replace(tmpl)
	for strings.Contains(out, "{") {
		i, j := strings.Index(out, "{"), strings.Index(out, "}")
		out = out[:i] + "x" + out[j+1:]
	}
	return out
}

// placeholder is a value of the schema's type, enough to get past the decoder.
func placeholder(doc map[string]any, s map[string]any) any {
	if ref, ok := s["$ref"].(string); ok {
		s, _ = lookup(doc, strings.Split(strings.TrimPrefix(ref, "#/"), "/")...).(map[string]any)
	}
	if all, ok := s["allOf"].([]any); ok {
		return placeholder(doc, all[0].(map[string]any))
	}
	if enum, ok := s["enum"].([]any); ok {
		return enum[0]
	}
	switch s["type"] {
	case "integer", "number":
		return 1
	case "boolean":
		return false
	case "array":
		return []any{}
	case "object":
		return map[string]any{}
	}
	return "x"
}

// TestJSONBodyNull: a body of null is not the object the document wants; the answer names it.
func TestJSONBodyNull(t *testing.T) {
	s := MustStack(t)
	_, bodies := mustJSONBodies(t)
	for _, b := range bodies {
		t.Run(b.Method+" "+b.Path, func(t *testing.T) {
			resp := s.MustDo(t, Request{Method: b.Method, Path: fillPath(b.Path), Body: "null"})
			MustAPIError(t, resp, 400, "null", b.Name+" object")
		})
	}
}

// TestJSONBodyRequired: for every body of the document, leaving out any one of its required
// fields is a 400 that names the field.
func TestJSONBodyRequired(t *testing.T) {
	s := MustStack(t)
	doc, bodies := mustJSONBodies(t)
	n := 0
	for _, b := range bodies {
		required, _ := b.Schema["required"].([]any)
		props, _ := b.Schema["properties"].(map[string]any)
		for _, missing := range required {
			n++
			t.Run(fmt.Sprintf("%s %s without %s", b.Method, b.Path, missing), func(t *testing.T) {
				body := map[string]any{}
				for _, r := range required {
					if r != missing {
						ps, _ := props[r.(string)].(map[string]any)
						body[r.(string)] = placeholder(doc, ps)
					}
				}
				data, _ := json.Marshal(body)
				resp := s.MustDo(t, Request{Method: b.Method, Path: fillPath(b.Path), Body: string(data)})
				MustAPIError(t, resp, 400, fmt.Sprintf("required field %q is missing", missing))
			})
		}
	}
	if n < 10 {
		t.Errorf("only %d required fields in the document's bodies", n)
	}
}

// TestJSONBodyShape: the document's shape holds inside a body too, the metric batch's fast
// path included.
func TestJSONBodyShape(t *testing.T) {
	s := MustStack(t)
	run := s.MustDo(t, Request{Method: "POST", Path: "/api/v1/workspaces/default/runs", Body: `{"experiment":"e","status":"Running"}`})
	if run.Status != 201 {
		t.Fatalf("creating a run: %d %s", run.Status, run.Body)
	}
	var created struct{ ID string }
	json.Unmarshal(run.Body, &created)
	r := "/api/v1/workspaces/default/runs/" + created.ID
	tests := []struct {
		name string
		req  Request
		want []string
	}{
		{"a point without a timestamp", Request{Method: "POST", Path: r + "/metrics", Body: `{"metrics":[{"name":"a","timestamp":1,"value":1},{"name":"a","value":1}]}`}, []string{`"metrics[1].timestamp" is missing`}},
		{"a point without a value", Request{Method: "POST", Path: r + "/metrics", Body: `{"metrics":[{"name":"a","timestamp":1}]}`}, []string{`"metrics[0].value" is missing`}},
		{"a point without a name", Request{Method: "POST", Path: r + "/metrics", Body: `{"metrics":[{"timestamp":1,"value":1}]}`}, []string{`"metrics[0].name" is missing`}},
		{"a null point", Request{Method: "POST", Path: r + "/metrics", Body: `{"metrics":[null]}`}, []string{"metrics[0] is null", "object"}},
		{"null metrics", Request{Method: "POST", Path: r + "/metrics", Body: `{"metrics":null}`}, []string{"metrics is null", "array"}},
		{"a null value", Request{Method: "POST", Path: r + "/metrics", Body: `{"metrics":[{"name":"a","timestamp":1,"value":null}]}`}, []string{"value", "null"}}, // Float's own decoder refuses it
		{"a record without a kind", Request{Method: "POST", Path: r + "/metrics", Body: `{"metrics":[],"records":[{"name":"l","timestamp":1,"value":[1]}]}`}, []string{`"records[0].kind" is missing`}},
		{"a null tag value", Request{Method: "POST", Path: r + "/tags", Body: `{"tags":{"a":null}}`}, []string{"tags.a is null", "string"}},
		{"null tags", Request{Method: "POST", Path: r + "/tags", Body: `{"tags":null}`}, []string{"tags is null", "object"}},
		{"a null status", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs", Body: `{"experiment":"e","status":null}`}, []string{"status is null"}},
		{"a null page token", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs/search", Body: `{"page_token":null}`}, []string{"page_token is null"}},
		{"a config without a script", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs/submit", Body: `{"experiment":"e","snapshot_id":"x","config":{}}`}, []string{`"config.script" is missing`}},
		{"a data reference without a datastore", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs/submit", Body: `{"experiment":"e","snapshot_id":"x","config":{"script":"a.py","data":[{"name":"d"}]}}`}, []string{`"config.data[0].datastore" is missing`}},
		{"a snapshot entry without a digest", Request{Method: "POST", Path: "/api/v1/workspaces/default/snapshots", Body: `{"entries":[{"path":"a.py","size":1}]}`}, []string{`"entries[0].digest" is missing`}},
		{"null digests", Request{Method: "POST", Path: "/api/v1/workspaces/default/objects/missing", Body: `{"digests":null}`}, []string{"digests is null", "array"}},
		{"a git without a commit", Request{Method: "POST", Path: "/api/v1/workspaces/default/runs", Body: `{"experiment":"e","git":{"branch":"main","dirty":false}}`}, []string{`"git.commit" is missing`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			MustAPIError(t, s.MustDo(t, tt.req), 400, tt.want...)
		})
	}
	// None of it was stored.
	var page struct{ Runs []json.RawMessage }
	resp := s.MustDo(t, Request{Method: "GET", Path: "/api/v1/workspaces/default/runs"})
	json.Unmarshal(resp.Body, &page)
	if len(page.Runs) != 1 {
		t.Errorf("%d runs, want only the one created first: %s", len(page.Runs), resp.Body)
	}
	if resp := s.MustDo(t, Request{Method: "GET", Path: r + "/metrics"}); !strings.Contains(string(resp.Body), `"metrics":[]`) {
		t.Errorf("metrics were stored: %s", resp.Body)
	}
	// Complete bodies still pass, on the fast path and off it.
	for _, body := range []string{
		`{"metrics":[{"name":"a","timestamp":1,"value":1}]}`,
		`{"metrics":[{"name":"a","step":5,"timestamp":1,"value":"NaN"}],"records":[{"name":"l","kind":"list","timestamp":1,"value":[1,2]}]}`,
	} {
		if resp := s.MustDo(t, Request{Method: "POST", Path: r + "/metrics", Body: body}); resp.Status != 204 {
			t.Errorf("%s: %d %s", body, resp.Status, resp.Body)
		}
	}
}

// TestMethodNotAllowed: a path served with other methods answers 405 with an Allow header
// listing them; a path not served at all is a 404.
func TestMethodNotAllowed(t *testing.T) {
	s := MustStack(t)
	none := ""
	tests := []struct {
		method, path string
		allow        []string
	}{
		{"TRACE", "/api/v1/health", []string{"GET", "HEAD"}},
		{"OPTIONS", "/api/v1/health", []string{"GET", "HEAD"}},
		{"PATCH", "/api/v1/workspaces", []string{"GET", "HEAD", "POST"}},
		{"TRACE", "/api/v1/workspaces/default", []string{"GET", "HEAD", "DELETE"}},
		{"DELETE", "/api/v1/workspaces/default/runs/x/files/a/b.txt", []string{"GET", "HEAD", "PUT"}},
		{"GET", "/api/v1/login", []string{"POST"}},
		// The path's own route, not one whose wildcard happens to match it.
		{"OPTIONS", "/api/v1/workspaces/default/runs/search", []string{"POST"}},
		{"OPTIONS", "/api/v1/workspaces/default/models/search", []string{"POST"}},
		{"TRACE", "/api/v1/workspaces/default/objects/missing", []string{"POST"}},
		// Not a 307 to .../files/, where PUT .../files/{path...} would take an empty path.
		{"PUT", "/api/v1/workspaces/default/runs/x/files", []string{"GET", "HEAD"}},
		{"DELETE", "/api/v1/workspaces/default/datastores/default/files", []string{"GET", "HEAD"}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			for _, token := range []*string{nil, &none} { // the same without a token
				resp := s.MustDo(t, Request{Method: tt.method, Path: tt.path, Token: token})
				e := MustAPIError(t, resp, http.StatusMethodNotAllowed, tt.method, strings.Join(tt.allow, ", "))
				if e.Code != "method_not_allowed" {
					t.Errorf("code %q, want method_not_allowed", e.Code)
				}
				allow := strings.Split(resp.Header.Get("Allow"), ", ")
				slices.Sort(allow)
				want := slices.Sorted(slices.Values(tt.allow))
				if !slices.Equal(allow, want) {
					t.Errorf("Allow: %q, want %q", resp.Header.Get("Allow"), strings.Join(tt.allow, ", "))
				}
			}
		})
	}
	for _, req := range []Request{
		{Method: "TRACE", Path: "/api/v1/nope"},
		{Method: "GET", Path: "/api/v1/workspaces/default/frobnicate"},
	} {
		resp := s.MustDo(t, req)
		MustAPIError(t, resp, 404, req.Path)
		if resp.Header.Get("Allow") != "" {
			t.Errorf("%s %s: a 404 with Allow %q", req.Method, req.Path, resp.Header.Get("Allow"))
		}
	}
}

// TestClientSendsNoNull: the Go client's empty lists go out as [], which the document wants,
// not as null.
func TestClientSendsNoNull(t *testing.T) {
	s := MustStack(t)
	ctx := Ctx(t)
	run := MustRun(t, s.Client, atelier.RunCreate{Status: atelier.StatusRunning})
	if _, err := s.Client.MissingObjects(ctx, "default", nil); err != nil {
		t.Errorf("MissingObjects(nil): %v", err)
	}
	if _, err := s.Client.CreateSnapshot(ctx, "default", nil); err != nil {
		t.Errorf("CreateSnapshot(nil): %v", err)
	}
	if _, err := s.Client.DatastoreFileDigests(ctx, "default", atelier.DefaultDatastore, nil); err != nil {
		t.Errorf("DatastoreFileDigests(nil): %v", err)
	}
	records := &atelier.MetricBatch{Records: []atelier.MetricRecord{{Name: "l", Kind: atelier.MetricList, Timestamp: 1, Value: json.RawMessage(`[1]`)}}}
	if err := s.Client.LogMetrics(ctx, "default", run.ID, records); err != nil {
		t.Errorf("LogMetrics of records only: %v", err)
	}
	if records.Points != nil {
		t.Errorf("LogMetrics changed the caller's batch")
	}
}

// TestEmptyTypedQuery: an integer, boolean or time parameter given with no value is none of
// its type: a 400 naming it, not taken for absent.
func TestEmptyTypedQuery(t *testing.T) {
	s := MustStack(t)
	for _, tt := range []struct{ path, name string }{
		{"/api/v1/workspaces/default/runs?limit=", "limit"},
		{"/api/v1/workspaces/default/runs?root_only=", "root_only"},
		{"/api/v1/workspaces/default/experiments?include_archived=&name=x", "include_archived"},
		{"/api/v1/audit?since=", "since"},
		{"/api/v1/workspaces/default/audit?limit=", "limit"},
	} {
		MustAPIError(t, s.MustDo(t, Request{Method: "GET", Path: tt.path}), 400, "query parameter "+tt.name+" is empty")
	}
	// Absent is still absent.
	for _, p := range []string{"/api/v1/workspaces/default/runs", "/api/v1/audit", "/api/v1/workspaces/default/runs?experiment="} {
		if resp := s.MustDo(t, Request{Method: "GET", Path: p}); resp.Status != 200 {
			t.Errorf("GET %s: %d %s", p, resp.Status, resp.Body)
		}
	}
}

// TestFuzzFindings: what the schema fuzzer (make fuzz) found the server and the document
// disagreeing on, each now as the document says.
func TestFuzzFindings(t *testing.T) {
	s := MustStack(t)
	run := MustRun(t, s.Client, atelier.RunCreate{Status: atelier.StatusRunning})
	r := "/api/v1/workspaces/default/runs/" + run.ID
	empty := map[string]string{api.DigestHeader: ""}
	// An empty X-Content-Sha256 is no sha256; before, it was taken for absent.
	MustAPIError(t, s.MustDo(t, Request{Method: "PUT", Path: r + "/files/a.txt", Body: "x", ContentType: "application/octet-stream", Header: empty}), 400, api.DigestHeader, "empty")
	MustAPIError(t, s.MustDo(t, Request{Method: "PUT", Path: "/api/v1/workspaces/default/datastores/default/files/a.txt", Body: "x", ContentType: "application/octet-stream", Header: empty}), 400, api.DigestHeader, "empty")
	// A record's path names an image's file; a row had one stored, of any length.
	MustAPIError(t, s.MustDo(t, Request{Method: "POST", Path: r + "/metrics", Body: `{"metrics":[],"records":[{"name":"r","kind":"row","timestamp":1,"value":{},"path":"` + strings.Repeat("0", 2000) + `"}]}`}), 400, "records[0]", "path")
	// A list, row or table has a value.
	MustAPIError(t, s.MustDo(t, Request{Method: "POST", Path: r + "/metrics", Body: `{"metrics":[],"records":[{"name":"r","kind":"list","timestamp":1,"value":null}]}`}), 400, "records[0]", "value")
	// A live run's log that nothing was written to reads as empty, but no log has a path over
	// 1024 bytes.
	if resp := s.MustDo(t, Request{Method: "GET", Path: r + "/logs/not-yet.txt"}); resp.Status != 200 {
		t.Errorf("an unwritten log of a live run: %d %s", resp.Status, resp.Body)
	}
	MustAPIError(t, s.MustDo(t, Request{Method: "GET", Path: r + "/logs/" + strings.Repeat("0", 1025)}), 400, "invalid path")
	// An empty listing is an empty array, not null.
	resp := s.MustDo(t, Request{Method: "GET", Path: "/api/v1/workspaces/default/datastores/default/files"})
	if resp.Status != 200 || !strings.Contains(string(resp.Body), `"files":[]`) {
		t.Errorf("empty datastore listing: %d %s", resp.Status, resp.Body)
	}
	// Nothing was stored by the refused writes.
	if files, err := s.Client.ListFiles(Ctx(t), "default", run.ID, ""); err != nil || len(files) != 0 {
		t.Errorf("files of the run: %v, %v", files, err)
	}
	if metrics, err := s.Client.ListMetrics(Ctx(t), "default", run.ID); err != nil || len(metrics) != 0 {
		t.Errorf("metrics of the run: %v, %v", metrics, err)
	}
}

// TestAnyUserCreatesWorkspace: as the document says, any user (not only an administrator)
// creates a workspace and becomes its Owner; a run's token may not.
func TestAnyUserCreatesWorkspace(t *testing.T) {
	s := MustStack(t)
	s.Service.PasswordCost = bcrypt.MinCost
	ctx := Ctx(t)
	if err := s.Client.CreateUser(ctx, &atelier.User{Name: "ana"}, "long enough"); err != nil {
		t.Fatal(err)
	}
	tok, err := s.Client.CreateToken(ctx, &atelier.Token{Owner: "ana"})
	if err != nil {
		t.Fatal(err)
	}
	resp := s.MustDo(t, Request{Method: "POST", Path: "/api/v1/workspaces", Body: `{"name":"anas"}`, Token: &tok.Secret})
	if resp.Status != 201 {
		t.Fatalf("a user creating a workspace: %d %s", resp.Status, resp.Body)
	}
	members, err := s.Client.ListMembers(ctx, "anas")
	if err != nil || len(members) != 1 || members[0].User != "ana" || members[0].Role != atelier.RoleOwner {
		t.Errorf("members of the new workspace: %+v, %v; want ana as Owner", members, err)
	}
	run := MustRun(t, s.Client, atelier.RunCreate{Status: atelier.StatusRunning})
	runToken := "atl_run_" + run.ID // made as the authorization matrix makes its run tokens
	if err := s.DB.CreateToken(ctx, &atelier.Token{ID: "tok_" + run.ID, Name: "run", Kind: atelier.PrincipalRun, Owner: "ana",
		Workspace: "default", RunID: run.ID, Hash: Sum([]byte(runToken)), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	MustAPIError(t, s.MustDo(t, Request{Method: "POST", Path: "/api/v1/workspaces", Body: `{"name":"by-a-run"}`, Token: &runToken}), 403)
}

// The health check tells the server's version, as the document says.
func TestHealthVersion(t *testing.T) {
	s := MustStack(t, servertest.WithConfig(func(c *server.Config) { c.Version = "v1.2.3-test" }))
	h, err := api.NewClient(s.Server.URL, "").Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != "v1.2.3-test" || h.Status != "ok" {
		t.Errorf("health = %+v, want version v1.2.3-test", h)
	}
}
