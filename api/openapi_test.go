package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

// The OpenAPI document is generated (openapigen.go) from the route table, the Go types and the
// tables beside them; TestOpenAPIGolden pins openapi.json to it. The other tests check what
// the generator does not guarantee by construction: every route and field documented, the
// references resolving, the error codes of the status table.

var updateOpenAPI = flag.Bool("update", false, "TestOpenAPIGolden: rewrite openapi.json with the generated document")

// TestOpenAPIGolden: openapi.json is the generated document. After changing a route, a Go type
// of a body or the tables (openapi_ops.go, openapi_schemas.go, openapi_meta.go), run
//
//	go test ./api -run TestOpenAPIGolden -update
//
// and commit openapi.json with the change.
func TestOpenAPIGolden(t *testing.T) {
	got, err := GenerateOpenAPI(NewServer(nil, nil, nil).Routes())
	if err != nil {
		t.Fatal(err)
	}
	if *updateOpenAPI {
		if err := os.WriteFile("openapi.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("openapi.json rewritten (%d lines)", bytes.Count(got, []byte("\n")))
		return
	}
	want, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		i := 0
		for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			i++
		}
		line := func(l []string) string {
			if i < len(l) {
				return strings.TrimSpace(l[i])
			}
			return "(end of file)"
		}
		t.Errorf("openapi.json is not the generated document: first difference at line %d:\n\topenapi.json: %s\n\tgenerated:    %s\n"+
			"run `go test ./api -run TestOpenAPIGolden -update` and commit openapi.json", i+1, line(wl), line(gl))
	}
}

var openapiMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// openapiOperation is one operation of the document with the path item it belongs to.
type openapiOperation struct {
	Method string // upper case, as in a route pattern
	Path   string
	Item   map[string]any
	Op     map[string]any
}

func (o openapiOperation) String() string { return o.Method + " " + o.Path }

func mustOpenAPIDoc(tb testing.TB) map[string]any {
	tb.Helper()
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(openapiDoc))
	if err := dec.Decode(&doc); err != nil {
		tb.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		tb.Fatalf("openapi.json has data after the JSON document")
	}
	return doc
}

func openapiOperations(tb testing.TB, doc map[string]any) []openapiOperation {
	tb.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		tb.Fatalf("openapi.json: paths is %T, want an object", doc["paths"])
	}
	var ops []openapiOperation
	for path, v := range paths {
		item, ok := v.(map[string]any)
		if !ok {
			tb.Fatalf("openapi.json: paths[%q] is %T, want an object", path, v)
		}
		for _, m := range openapiMethods {
			if op, ok := item[m].(map[string]any); ok {
				ops = append(ops, openapiOperation{Method: strings.ToUpper(m), Path: path, Item: item, Op: op})
			} else if item[m] != nil {
				tb.Errorf("openapi.json: %s %s is %T, want an object", m, path, item[m])
			}
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].String() < ops[j].String() })
	return ops
}

var wildcardParam = regexp.MustCompile(`\{([^{}]+)\.\.\.\}`)

// routeKey turns a ServeMux pattern into the "METHOD /path" of the document: a {name...}
// wildcard is the OpenAPI parameter {name}.
func routeKey(pattern string) string {
	method, path, _ := strings.Cut(pattern, " ")
	return method + " " + wildcardParam.ReplaceAllString(path, "{$1}")
}

// openapiRoutes maps each route of the table, in document form, to whether it is public.
func openapiRoutes(tb testing.TB) map[string]bool {
	tb.Helper()
	routes := map[string]bool{}
	for _, rt := range NewServer(nil, nil, nil).Routes() {
		key := routeKey(rt.Pattern)
		if _, dup := routes[key]; dup {
			tb.Errorf("route %s appears twice in Routes()", key)
		}
		routes[key] = rt.Public
	}
	return routes
}

// resolvePointer follows a local reference such as "#/components/schemas/Run".
func resolvePointer(doc any, ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("not a local reference")
	}
	cur := doc
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("no %q", tok)
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("no index %q", tok)
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("%q is inside a %T", tok, cur)
		}
	}
	return cur, nil
}

// openapiParams returns the parameters of an operation, path level first, references resolved.
func openapiParams(tb testing.TB, doc map[string]any, o openapiOperation) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, level := range []map[string]any{o.Item, o.Op} {
		list, _ := level["parameters"].([]any)
		for _, p := range list {
			pm, _ := p.(map[string]any)
			if ref, ok := pm["$ref"].(string); ok {
				v, err := resolvePointer(doc, ref)
				if err != nil {
					tb.Errorf("%s: parameter %s: %v", o, ref, err)
					continue
				}
				pm, _ = v.(map[string]any)
			}
			if pm == nil {
				tb.Errorf("%s: a parameter is not an object", o)
				continue
			}
			out = append(out, pm)
		}
	}
	return out
}

func TestOpenAPIDocument(t *testing.T) {
	doc := mustOpenAPIDoc(t)
	if doc["openapi"] != "3.0.3" {
		t.Errorf("openapi = %v, want 3.0.3", doc["openapi"])
	}
	info, _ := doc["info"].(map[string]any)
	for _, k := range []string{"title", "version", "description"} {
		if s, _ := info[k].(string); s == "" {
			t.Errorf("info.%s is missing", k)
		}
	}
	// The file served must be the file in the repository.
	onDisk, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, openapiDoc) {
		t.Errorf("the embedded document differs from openapi.json")
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := mustOpenAPIDoc(t)
	routes := openapiRoutes(t)
	documented := map[string]bool{}
	for _, o := range openapiOperations(t, doc) {
		documented[o.String()] = true
	}
	var undocumented, unrouted []string
	for r := range routes {
		if !documented[r] {
			undocumented = append(undocumented, r)
		}
	}
	for d := range documented {
		if _, ok := routes[d]; !ok {
			unrouted = append(unrouted, d)
		}
	}
	slices.Sort(undocumented)
	slices.Sort(unrouted)
	if len(undocumented) > 0 {
		t.Errorf("routes missing from openapi.json:\n\t%s", strings.Join(undocumented, "\n\t"))
	}
	if len(unrouted) > 0 {
		t.Errorf("operations in openapi.json that are not in Routes():\n\t%s", strings.Join(unrouted, "\n\t"))
	}
}

var templateParam = regexp.MustCompile(`\{([^{}]+)\}`)

func TestOpenAPIPathParameters(t *testing.T) {
	doc := mustOpenAPIDoc(t)
	for _, o := range openapiOperations(t, doc) {
		t.Run(o.String(), func(t *testing.T) {
			var inTemplate []string
			for _, m := range templateParam.FindAllStringSubmatch(o.Path, -1) {
				inTemplate = append(inTemplate, m[1])
			}
			declared := map[string]bool{}
			for _, p := range openapiParams(t, doc, o) {
				name, _ := p["name"].(string)
				in, _ := p["in"].(string)
				if name == "" || in == "" {
					t.Errorf("a parameter lacks a name or in: %v", p)
					continue
				}
				if p["schema"] == nil && p["content"] == nil {
					t.Errorf("parameter %s has no schema", name)
				}
				if in == "path" {
					declared[name] = true
					if p["required"] != true {
						t.Errorf("path parameter %s is not required: true", name)
					}
				}
			}
			for _, name := range inTemplate {
				if !declared[name] {
					t.Errorf("path parameter {%s} is not declared", name)
				}
				delete(declared, name)
			}
			for name := range declared {
				t.Errorf("parameter %s is declared in: path but is not in the path template", name)
			}
		})
	}
}

func TestOpenAPIOperations(t *testing.T) {
	doc := mustOpenAPIDoc(t)
	ids := map[string]string{}
	for _, o := range openapiOperations(t, doc) {
		id, _ := o.Op["operationId"].(string)
		if id == "" {
			t.Errorf("%s has no operationId", o)
		} else if other, dup := ids[id]; dup {
			t.Errorf("operationId %s is used by both %s and %s", id, other, o)
		} else {
			ids[id] = o.String()
		}
		if s, _ := o.Op["summary"].(string); s == "" {
			t.Errorf("%s has no summary", o)
		}
		responses, _ := o.Op["responses"].(map[string]any)
		ok2xx := false
		for code := range responses {
			if len(code) == 3 && code[0] == '2' {
				ok2xx = true
			}
		}
		if !ok2xx {
			t.Errorf("%s has no 2xx response", o)
		}
		if o.Method == "GET" || o.Method == "DELETE" {
			if o.Op["requestBody"] != nil {
				t.Errorf("%s has a request body", o)
			}
		}
	}
}

func TestOpenAPISecurity(t *testing.T) {
	doc := mustOpenAPIDoc(t)
	global, _ := doc["security"].([]any)
	if len(global) == 0 {
		t.Fatalf("openapi.json has no global security requirement")
	}
	schemes, _ := doc["components"].(map[string]any)["securitySchemes"].(map[string]any)
	for _, req := range global {
		for name := range req.(map[string]any) {
			s, _ := schemes[name].(map[string]any)
			if s["type"] != "http" || s["scheme"] != "bearer" {
				t.Errorf("security scheme %s is %v, want an http bearer scheme", name, s)
			}
		}
	}
	routes := openapiRoutes(t)
	for _, o := range openapiOperations(t, doc) {
		public, routed := routes[o.String()]
		if !routed {
			continue // reported by TestOpenAPIMatchesRoutes
		}
		sec, has := o.Op["security"]
		list, _ := sec.([]any)
		switch {
		case public && (!has || list == nil || len(list) != 0):
			t.Errorf("%s is public but does not say security: []", o)
		case !public && has && len(list) == 0:
			t.Errorf("%s needs a token but its security is empty", o)
		}
	}
}

func TestOpenAPIRefs(t *testing.T) {
	doc := mustOpenAPIDoc(t)
	n := 0
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				n++
				if !strings.HasPrefix(ref, "#/components/") {
					t.Errorf("%s: $ref %q does not point into components", at, ref)
				} else if _, err := resolvePointer(doc, ref); err != nil {
					t.Errorf("%s: $ref %q does not resolve: %v", at, ref, err)
				}
			}
			for k, e := range v {
				walk(at+"/"+k, e)
			}
		case []any:
			for i, e := range v {
				walk(at+"/"+strconv.Itoa(i), e)
			}
		}
	}
	walk("#", doc)
	if n == 0 {
		t.Errorf("no $ref at all: the walk is broken")
	}
}

// TestOpenAPISchemasMatchGoTypes checks that each schema has exactly the JSON fields of the Go
// type it describes, and that response types list their always-present fields as required.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	doc := mustOpenAPIDoc(t)
	schemas, _ := doc["components"].(map[string]any)["schemas"].(map[string]any)
	tests := []struct {
		schema   string
		typ      any
		response bool // every field without omitempty is always sent, so it must be required
	}{
		{"Error", ErrorResponse{}, true},
		{"Workspace", atelier.Workspace{}, true},
		{"WorkspaceCreate", WorkspaceCreate{}, false},
		{"Experiment", atelier.Experiment{}, true},
		{"ExperimentUpdate", atelier.ExperimentUpdate{}, false},
		{"GitInfo", atelier.GitInfo{}, true},
		{"Run", atelier.Run{}, true},
		{"RunCreate", atelier.RunCreate{}, false},
		{"RunQuery", atelier.RunQuery{}, false},
		{"RunPage", atelier.RunPage{}, true},
		{"RunStatusUpdate", atelier.RunStatusUpdate{}, false},
		{"KeyValues", KeyValues{}, false},
		{"MetricPoint", atelier.MetricPoint{}, false},
		{"MetricRecord", atelier.MetricRecord{}, false},
		{"MetricBatch", atelier.MetricBatch{}, false},
		{"MetricSummary", atelier.MetricSummary{}, true},
		{"Series", atelier.Series{}, true},
		{"File", atelier.File{}, true},
		{"Object", atelier.Object{}, true},
		{"MissingRequest", MissingRequest{}, false},
		{"MissingResponse", MissingResponse{}, true},
		{"SnapshotEntry", atelier.SnapshotEntry{}, false},
		{"SnapshotCreate", SnapshotCreate{}, false},
		{"Snapshot", atelier.Snapshot{}, true},
		{"Activity", atelier.Activity{}, true},
		{"Event", atelier.Event{}, true},
		{"RunSubmit", atelier.RunSubmit{}, false},
		{"EnvironmentConfig", atelier.EnvironmentConfig{}, false},
		{"RunConfig", atelier.RunConfig{}, false},
		{"DataReference", atelier.DataReference{}, false},
		{"ComputeTarget", atelier.ComputeTarget{}, true},
		{"ComputeCapacity", atelier.ComputeCapacity{}, true},
		{"ComputeTotals", atelier.ComputeTotals{}, true},
		{"ComputeNode", atelier.ComputeNode{}, true},
		{"ComputePartition", atelier.ComputePartition{}, true},
		{"WebService", atelier.WebService{}, true},
		{"WebServiceDeploy", atelier.WebServiceDeploy{}, false},
		{"WebServiceConfig", atelier.WebServiceConfig{}, false},
		{"ServiceImage", atelier.ServiceImage{}, false},
		{"ReplicaCounts", atelier.ReplicaCounts{}, true},
		{"ServiceEvent", atelier.ServiceEvent{}, true},
		{"WebServiceList", WebServiceList{}, true},
		{"ServiceKeys", atelier.ServiceKeys{}, true},
		{"RegenerateKey", RegenerateKey{}, false},
		{"ComputeTargetSpec", atelier.ComputeTargetSpec{}, false},
		{"ComputeCredentials", atelier.ComputeCredentials{}, false},
		{"SSHCompute", atelier.SSHCompute{}, false},
		{"SlurmCompute", atelier.SlurmCompute{}, false},
		{"KubernetesCompute", atelier.KubernetesCompute{}, false},
		{"PodmanCompute", atelier.PodmanCompute{}, false},
		{"ModelFile", atelier.ModelFile{}, true},
		{"ModelUpload", ModelUploadResponse{}, true},
		{"ModelVersion", atelier.ModelVersion{}, true},
		{"Model", atelier.Model{}, true},
		{"ModelRegister", atelier.ModelRegister{}, false},
		{"ModelVersionUpdate", atelier.ModelVersionUpdate{}, false},
		{"ModelQuery", atelier.ModelQuery{}, false},
		{"ModelPage", atelier.ModelPage{}, true},
		{"ModelVersionPage", atelier.ModelVersionPage{}, true},
		{"ModelReference", atelier.ModelReference{}, true},
		{"ModelAliasSet", ModelAliasSet{}, false},
		{"ModelInUse", ModelInUseResponse{}, true},
		{"Datastore", atelier.Datastore{}, true},
		{"DatastoreSpec", atelier.DatastoreSpec{}, false},
		{"DatastoreCredentials", atelier.DatastoreCredentials{}, false},
		{"DatastoreFile", atelier.DatastoreFile{}, true},
		{"DatastoreFilePage", atelier.DatastoreFilePage{}, true},
		{"DatastoreList", DatastoreList{}, true},
		{"DatastoreDeleted", DatastoreDeleted{}, true},
		{"DatastoreDigestRequest", DatastoreDigestRequest{}, false},
		{"DatastoreDigests", DatastoreDigests{}, true},
		{"User", atelier.User{}, true},
		{"UserCreate", UserCreate{}, false},
		{"Token", atelier.Token{}, true},
		{"TokenCreate", TokenCreate{}, false},
		{"Member", atelier.Member{}, true},
		{"MemberPut", MemberPut{}, false},
		{"AuditEntry", atelier.AuditEntry{}, true},
		{"LoginRequest", LoginRequest{}, false},
		{"LoginResponse", LoginResponse{}, true},
		{"Secret", atelier.Secret{}, true},
		{"SecretList", SecretList{}, true},
		{"SecretPut", SecretPut{}, false},
		{"Health", Health{}, true},
		{"Image", atelier.Image{}, true},
		{"ImageModel", atelier.ImageModel{}, true},
		{"ImageLayer", atelier.ImageLayer{}, true},
		{"ImageCreate", atelier.ImageCreate{}, false},
		{"ImageList", ImageList{}, true},
		{"BaseImage", atelier.BaseImage{}, true},
		{"BaseImageList", atelier.BaseImageList{}, true},
		{"DefaultBase", DefaultBase{}, false},
		{"RegistryGCReport", atelier.RegistryGCReport{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.schema, func(t *testing.T) {
			s, ok := schemas[tt.schema].(map[string]any)
			if !ok {
				t.Fatalf("components/schemas/%s is missing", tt.schema)
			}
			props, _ := s["properties"].(map[string]any)
			var required []string
			list, _ := s["required"].([]any)
			for _, r := range list {
				name, _ := r.(string)
				required = append(required, name)
			}
			for _, r := range required {
				if props[r] == nil {
					t.Errorf("required field %s is not a property", r)
				}
			}
			typ := reflect.TypeOf(tt.typ)
			fields := map[string]bool{}
			for i := range typ.NumField() {
				f := typ.Field(i)
				name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name == "-" || !f.IsExported() {
					continue
				}
				if name == "" {
					name = f.Name
				}
				fields[name] = true
				if props[name] == nil {
					t.Errorf("%s.%s (json %q) is not documented", typ.Name(), f.Name, name)
				}
				omitempty := slices.Contains(strings.Split(opts, ","), "omitempty")
				if tt.response && !omitempty && !slices.Contains(required, name) {
					t.Errorf("%s is always sent but not required", name)
				}
			}
			for name := range props {
				if !fields[name] {
					t.Errorf("property %s is not a field of %s", name, typ)
				}
			}
		})
	}
}

func TestOpenAPIServed(t *testing.T) {
	srv := httptest.NewServer(NewServer(nil, nil, nil))
	t.Cleanup(srv.Close)
	// No Authorization header: the document is public.
	resp, err := http.Get(srv.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: %s: %s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if !bytes.Equal(body, openapiDoc) {
		t.Errorf("the served document differs from openapi.json (%d bytes served, %d embedded)", len(body), len(openapiDoc))
	}
}

// TestOpenAPIErrorCodes: the document lists exactly the codes of the status table, each with
// its status, so a code added to the table without documenting it fails here.
func TestOpenAPIErrorCodes(t *testing.T) {
	doc := mustOpenAPIDoc(t)
	code, _ := dig(doc, "components", "schemas", "Error", "properties", "code").(map[string]any)
	var documented []string
	for _, c := range code["enum"].([]any) {
		documented = append(documented, c.(string))
	}
	var table []string
	for c := range statusOf {
		table = append(table, c)
	}
	slices.Sort(documented)
	slices.Sort(table)
	if !slices.Equal(documented, table) {
		t.Errorf("Error.code enum %v, the status table has %v", documented, table)
	}
	desc, _ := code["description"].(string)
	info, _ := dig(doc, "info", "description").(string)
	for c, status := range statusOf {
		if !strings.Contains(desc, fmt.Sprintf("%s (%d)", c, status)) {
			t.Errorf("Error.code's description does not say %s (%d)", c, status)
		}
		if !strings.Contains(info, fmt.Sprintf("%s %d", c, status)) {
			t.Errorf("info.description's error list does not say %s %d", c, status)
		}
	}
}

// TestOpenAPIJSONBodies: every route that decodes a JSON body has one in the document (the
// shape check reads it from there), and the document's bodies are objects.
func TestOpenAPIJSONBodies(t *testing.T) {
	b, err := newBodySchemas(openapiDoc)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.routes) == 0 {
		t.Fatal("no JSON request body found in the document")
	}
	for key, bs := range b.routes {
		if bs.name == "" {
			t.Errorf("%s: the JSON body is not a reference to a component schema, so errors cannot name it", key)
		}
		if s := b.resolve(bs.schema); s["type"] != "object" {
			t.Errorf("%s: the JSON body %s is %v, want an object", key, bs.name, s["type"])
		}
	}
}

// TestOpenAPIGeneratorRules pins how the generator reads a Go type: JSON names, omitempty,
// pointers, slices, maps, embedded structs, time.Time, json.RawMessage, references.
func TestOpenAPIGeneratorRules(t *testing.T) {
	type Inner struct {
		A string `json:"a"`
	}
	type Embedded struct {
		E int `json:"e"`
	}
	type T struct {
		Embedded
		Name     string            `json:"name"`
		Opt      string            `json:"opt,omitempty"`
		When     *time.Time        `json:"when"`
		OptWhen  *time.Time        `json:"opt_when,omitempty"`
		Count    int64             `json:"count"`
		Ratio    float64           `json:"ratio"`
		Raw      json.RawMessage   `json:"raw"`
		Inner    *Inner            `json:"inner"`
		List     []*Inner          `json:"list"`
		Labels   map[string]string `json:"labels"`
		Skipped  string            `json:"-"`
		internal string
	}
	g := &openapiGen{names: map[reflect.Type]string{reflect.TypeOf(Inner{}): "Inner"}}
	doc := func(response bool) map[string]any {
		s := g.schema(schemaDoc{Name: "T", Type: T{}, Response: response, Desc: "A T.",
			Fields: map[string]fieldDoc{"inner": {Desc: "The inner one."}, "name": {Extra: S{"maxLength": 10}}}})
		var buf bytes.Buffer
		writeJSONValue(&buf, s, "")
		var out map[string]any
		if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if len(g.errs) > 0 {
		t.Fatal(g.errs)
	}
	resp := doc(true)
	want := `{"additionalProperties":false,"description":"A T.","properties":{` +
		`"count":{"format":"int64","type":"integer"},"e":{"type":"integer"},` +
		`"inner":{"allOf":[{"$ref":"#/components/schemas/Inner"}],"description":"The inner one.","nullable":true},` +
		`"labels":{"additionalProperties":{"type":"string"},"type":"object"},` +
		`"list":{"items":{"$ref":"#/components/schemas/Inner"},"type":"array"},` +
		`"name":{"maxLength":10,"type":"string"},"opt":{"type":"string"},` +
		`"opt_when":{"format":"date-time","type":"string"},"ratio":{"type":"number"},"raw":{},` +
		`"when":{"format":"date-time","nullable":true,"type":"string"}},` +
		`"required":["e","name","when","count","ratio","raw","inner","list","labels"],"type":"object"}`
	if got, _ := json.Marshal(resp); string(got) != want {
		t.Errorf("response schema:\n got %s\nwant %s", got, want)
	}
	// In a request a pointer means optional, not null, and nothing is required unless listed.
	req := doc(false)
	if req["required"] != nil {
		t.Errorf("request schema requires %v", req["required"])
	}
	if when := dig(req, "properties", "when").(map[string]any); when["nullable"] != nil {
		t.Errorf("request field when is nullable: %v", when)
	}
}

// TestOpenAPIGeneratorRefuses: a route without an operation documented, or a field documented
// that its type does not have, is an error, not a silently incomplete document.
func TestOpenAPIGeneratorRefuses(t *testing.T) {
	routes := append(NewServer(nil, nil, nil).Routes(), Route{Pattern: "GET /api/v1/nowhere", Policy: PolicyAdmin})
	_, err := GenerateOpenAPI(routes)
	if err == nil || !strings.Contains(err.Error(), "GET /api/v1/nowhere has no operation") {
		t.Errorf("a route without an operation: %v", err)
	}
	g := &openapiGen{names: map[reflect.Type]string{}}
	g.schema(schemaDoc{Name: "W", Type: WorkspaceCreate{}, Fields: map[string]fieldDoc{"nope": {Desc: "x"}}})
	if len(g.errs) != 1 || !strings.Contains(g.errs[0], "field nope") {
		t.Errorf("a documented field the type lacks: %v", g.errs)
	}
}
