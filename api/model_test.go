package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/google/go-cmp/cmp"
)

// mustRunFiles uploads path → content to a run.
func mustRunFiles(tb testing.TB, c *api.Client, runID string, files map[string]string) {
	tb.Helper()
	for p, content := range files {
		if _, err := c.UploadFile(Ctx(tb), "default", runID, p, strings.NewReader(content), ""); err != nil {
			tb.Fatalf("UploadFile(%s): %v", p, err)
		}
	}
}

func mustRegister(tb testing.TB, c *api.Client, req atelier.ModelRegister) *atelier.ModelVersion {
	tb.Helper()
	v, err := c.RegisterModel(Ctx(tb), "default", req)
	if err != nil {
		tb.Fatalf("RegisterModel(%+v): %v", req, err)
	}
	return v
}

func TestModelRegistry(t *testing.T) {
	s := MustStack(t)
	c, ctx := s.Client, Ctx(t)
	run := MustRun(t, c, atelier.RunCreate{Experiment: "diabetes"})
	mustRunFiles(t, c, run.ID, map[string]string{"outputs/model/model.pkl": "pickle", "outputs/model/conf/a.json": "{}",
		"outputs/model.pkl": "single", "outputs/other.txt": "x"})

	// From a folder of the run's outputs: the files are named from the folder, and reference
	// the run's objects (same digests, nothing copied).
	v1 := mustRegister(t, c, atelier.ModelRegister{Name: "diabetes", RunID: run.ID, Path: "outputs/model", Description: "ridge",
		Tags: map[string]string{"stage": "dev"}, Properties: map[string]string{"algo": "ridge"}, Framework: "scikit-learn",
		FrameworkVersion: "1.5", Datasets: []string{"diabetes.csv"}})
	want := []atelier.ModelFile{{Path: "model/conf/a.json", Digest: Sum([]byte("{}")), Size: 2}, {Path: "model/model.pkl", Digest: Sum([]byte("pickle")), Size: 6}}
	if diff := cmp.Diff(want, v1.Files); diff != "" {
		t.Errorf("registered files (-want +got):\n%s", diff)
	}
	if v1.Version != 1 || v1.Experiment != "diabetes" || v1.RunID != run.ID || v1.CreatedBy != "admin" || v1.Size != 8 {
		t.Errorf("version 1 = %+v", v1)
	}
	// A single file.
	v2 := mustRegister(t, c, atelier.ModelRegister{Name: "diabetes", RunID: run.ID, Path: "outputs/model.pkl", Tags: map[string]string{"stage": "prod"}})
	if v2.Version != 2 || len(v2.Files) != 1 || v2.Files[0].Path != "model.pkl" {
		t.Errorf("version 2 = %+v", v2)
	}

	// Aliases resolve anywhere a reference is accepted.
	if _, err := c.SetModelAlias(ctx, "default", "diabetes", "production", 1); err != nil {
		t.Fatal(err)
	}
	ref, _ := atelier.ParseModelRef("diabetes@production")
	got, err := c.FindModelVersion(ctx, "default", ref)
	if err != nil || got.Version != 1 || fmt.Sprint(got.Aliases) != "[production]" {
		t.Fatalf("diabetes@production = %+v, %v", got, err)
	}
	latest, err := c.FindModelVersion(ctx, "default", atelier.ModelRef{Name: "diabetes"})
	if err != nil || latest.Version != 2 {
		t.Fatalf("diabetes (latest) = %+v, %v", latest, err)
	}
	var zip bytes.Buffer
	if err := c.WriteModelZip(ctx, "default", ref, &zip); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"model/model.pkl": "pickle", "model/conf/a.json": "{}"}, MustUnzip(t, zip.Bytes())); diff != "" {
		t.Errorf("zip of diabetes@production (-want +got):\n%s", diff)
	}
	f, rc, err := c.OpenModelFile(ctx, "default", atelier.ModelRef{Name: "diabetes", Version: 1}, "model/conf/a.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "{}" || f.Digest != Sum([]byte("{}")) {
		t.Errorf("model file = %q (%+v)", b, f)
	}

	// Tags change; lineage from the run's side.
	if _, err := c.UpdateModelVersion(ctx, "default", atelier.ModelRef{Name: "diabetes", Version: 1}, atelier.ModelVersionUpdate{Tags: map[string]string{"stage": "prod"}}); err != nil {
		t.Fatal(err)
	}
	resp := s.MustDo(t, Request{Method: "GET", Path: "/api/v1/workspaces/default/runs/" + run.ID + "/models?order_by=version+asc"})
	var page atelier.ModelVersionPage
	if resp.Status != 200 || json.Unmarshal(resp.Body, &page) != nil || len(page.Versions) != 2 || page.Versions[0].Version != 1 {
		t.Errorf("GET runs/{run}/models: %d %s", resp.Status, resp.Body)
	}
	resp = s.MustDo(t, Request{Method: "GET", Path: "/api/v1/workspaces/default/models/diabetes/versions?tag=stage%3Dprod&property=algo"})
	page = atelier.ModelVersionPage{}
	if resp.Status != 200 || json.Unmarshal(resp.Body, &page) != nil || len(page.Versions) != 1 || page.Versions[0].Version != 1 {
		t.Errorf("GET versions?tag=stage=prod&property=algo: %d %s", resp.Status, resp.Body)
	}
	models, err := c.ListModels(ctx, "default", atelier.ModelQuery{NameContains: "DIAB"})
	if err != nil || len(models.Models) != 1 || models.Models[0].LatestVersion != 2 || models.Models[0].Aliases["production"] != 1 {
		t.Errorf("ListModels = %+v, %v", models, err)
	}

	// From uploaded files: objects first, then the manifest.
	content := []byte("weights")
	if _, err := c.UploadObject(ctx, "default", bytes.NewReader(content), Sum(content)); err != nil {
		t.Fatal(err)
	}
	up := mustRegister(t, c, atelier.ModelRegister{Name: "local", Files: []atelier.ModelFile{{Path: "dir/w.bin", Digest: Sum(content), Size: 7}}})
	if up.Version != 1 || up.FileCount != 1 || up.RunID != "" {
		t.Errorf("uploaded version = %+v", up)
	}
}

func TestModelConcurrentRegistrations(t *testing.T) {
	s := MustStack(t)
	run := MustRun(t, s.Client, atelier.RunCreate{})
	mustRunFiles(t, s.Client, run.ID, map[string]string{"outputs/m.bin": "m"})
	const n = 20
	var mu sync.Mutex
	var versions []int64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := s.Client.RegisterModel(Ctx(t), "default", atelier.ModelRegister{Name: "race", RunID: run.ID, Path: "outputs/m.bin"})
			if err != nil {
				t.Errorf("RegisterModel: %v", err)
				return
			}
			mu.Lock()
			versions = append(versions, v.Version)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	for i, v := range versions {
		if v != int64(i+1) {
			t.Fatalf("versions %v: want 1..%d, each once", versions, n)
		}
	}
	if len(versions) != n {
		t.Fatalf("%d registrations succeeded, want %d", len(versions), n)
	}
}

func TestModelBadInput(t *testing.T) {
	s := MustStack(t)
	run := MustRun(t, s.Client, atelier.RunCreate{})
	mustRunFiles(t, s.Client, run.ID, map[string]string{"outputs/model.pkl": "m"})
	mustRegister(t, s.Client, atelier.ModelRegister{Name: "m", RunID: run.ID, Path: "outputs/model.pkl", Properties: map[string]string{"p": "1"}})
	base := "/api/v1/workspaces/default/models"
	reg := func(body string) Request { return Request{Method: "POST", Path: base, Body: body} }
	for _, tc := range []struct {
		name   string
		req    Request
		status int
		want   []string
	}{
		{"invalid name", reg(`{"name":"bad/name","run_id":"` + run.ID + `","path":"outputs/model.pkl"}`), 400, []string{"invalid model name", "bad/name"}},
		{"name with @", reg(`{"name":"m@x","run_id":"` + run.ID + `","path":"outputs/model.pkl"}`), 400, []string{"invalid model name"}},
		{"missing path in the run", reg(`{"name":"m","run_id":"` + run.ID + `","path":"outputs/nope"}`), 404, []string{"no file or directory", "outputs/nope"}},
		{"unknown run", reg(`{"name":"m","run_id":"nope","path":"outputs/model.pkl"}`), 404, []string{"run", "nope"}},
		{"path without run", reg(`{"name":"m","path":"outputs/model.pkl"}`), 400, []string{"give the run"}},
		{"no files", reg(`{"name":"m"}`), 400, []string{"needs files"}},
		{"escaping path", reg(`{"name":"m","run_id":"` + run.ID + `","path":"../x"}`), 400, []string{"invalid path"}},
		{"object not uploaded", reg(`{"name":"m","files":[{"path":"a","digest":"` + Sum([]byte("nope")) + `","size":4}]}`), 400, []string{"was not uploaded"}},
		{"unknown field", reg(`{"name":"m","colour":"red"}`), 400, []string{"unknown field"}},
		{"missing version", Request{Method: "GET", Path: base + "/m/versions/9"}, 404, []string{"no version 9"}},
		{"bad version", Request{Method: "GET", Path: base + "/m/versions/0"}, 400, []string{"invalid model version"}},
		{"missing alias", Request{Method: "GET", Path: base + "/m/versions/prod"}, 404, []string{"no alias", "prod"}},
		{"missing model", Request{Method: "GET", Path: base + "/nope"}, 404, []string{"nope"}},
		{"property overwrite", Request{Method: "PATCH", Path: base + "/m/versions/1", Body: `{"tags":{"t":"x"},"properties":{"p":"2"}}`}, 409, []string{"property", "cannot change"}},
		{"alias to a missing version", Request{Method: "PUT", Path: base + "/m/aliases/prod", Body: `{"version":5}`}, 404, []string{"prod", "no version 5"}},
		{"reserved alias", Request{Method: "PUT", Path: base + "/m/aliases/latest", Body: `{"version":1}`}, 400, []string{"reserved"}},
		{"bad order", Request{Method: "POST", Path: base + "/search", Body: `{"order_by":"size"}`}, 400, []string{"order_by"}},
		{"bad limit", Request{Method: "GET", Path: base + "/m/versions?limit=-1"}, 400, []string{"limit"}},
		{"delete missing version", Request{Method: "DELETE", Path: base + "/m/versions/7"}, 404, []string{"no version 7"}},
		{"missing file", Request{Method: "GET", Path: base + "/m/versions/1/files/nope.bin"}, 404, []string{"no file", "nope.bin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			MustAPIError(t, s.MustDo(t, tc.req), tc.status, tc.want...)
		})
	}
	// Nothing was half-written: one model, one version, its property and no tag or alias.
	m, err := s.Client.FindModel(Ctx(t), "default", "m")
	if err != nil || m.VersionCount != 1 || m.LatestVersion != 1 || len(m.Aliases) != 0 {
		t.Errorf("after bad requests, model = %+v, %v", m, err)
	}
	v, err := s.Client.FindModelVersion(Ctx(t), "default", atelier.ModelRef{Name: "m", Version: 1})
	if err != nil || len(v.Tags) != 0 || v.Properties["p"] != "1" {
		t.Errorf("after bad requests, version = %+v, %v", v, err)
	}
	list, err := s.Client.ListModels(Ctx(t), "default", atelier.ModelQuery{})
	if err != nil || len(list.Models) != 1 {
		t.Errorf("after bad requests, models = %+v, %v", list, err)
	}
	// The next registration is version 2: failed ones used up no number.
	if v := mustRegister(t, s.Client, atelier.ModelRegister{Name: "m", RunID: run.ID, Path: "outputs/model.pkl"}); v.Version != 2 {
		t.Errorf("next version %d, want 2", v.Version)
	}
}

func TestModelDeleteProtection(t *testing.T) {
	s := MustStack(t)
	ctx := Ctx(t)
	run := MustRun(t, s.Client, atelier.RunCreate{})
	mustRunFiles(t, s.Client, run.ID, map[string]string{"outputs/model.pkl": "m"})
	for range 2 {
		mustRegister(t, s.Client, atelier.ModelRegister{Name: "m", RunID: run.ID, Path: "outputs/model.pkl"})
	}
	// Images and services arrive later; they record their use through the store.
	img := atelier.ModelReference{Kind: "image", ID: "img-1", Name: "m", Version: 1}
	if err := s.DB.AddModelReference(ctx, "default", img); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/workspaces/default/models/m/versions/1", "/api/v1/workspaces/default/models/m"} {
		resp := s.MustDo(t, Request{Method: "DELETE", Path: path})
		var body api.ModelInUseResponse
		dec := json.NewDecoder(bytes.NewReader(resp.Body))
		dec.DisallowUnknownFields()
		if resp.Status != http.StatusConflict || dec.Decode(&body) != nil || body.Code != atelier.ECONFLICT ||
			!strings.Contains(body.Message, "image img-1") || len(body.References) != 1 || body.References[0] != img {
			t.Errorf("DELETE %s: %d %s", path, resp.Status, resp.Body)
		}
	}
	err := s.Client.DeleteModelVersion(ctx, "default", atelier.ModelRef{Name: "m", Version: 1})
	var inUse *atelier.ModelInUseError
	if !errors.As(err, &inUse) || atelier.ErrorCode(err) != atelier.ECONFLICT || len(inUse.References) != 1 {
		t.Errorf("client DeleteModelVersion: %v, want a ModelInUseError", err)
	}
	refs, err := s.Client.ListModelReferences(ctx, "default", atelier.ModelRef{Name: "m"})
	if err != nil || len(refs) != 1 {
		t.Errorf("ListModelReferences = %v, %v", refs, err)
	}
	// The other version is free to go; the referenced one stays until the reference is removed.
	if err := s.Client.DeleteModelVersion(ctx, "default", atelier.ModelRef{Name: "m", Version: 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.DB.RemoveModelReference(ctx, "default", img); err != nil {
		t.Fatal(err)
	}
	if err := s.Client.DeleteModel(ctx, "default", "m"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Client.FindModel(ctx, "default", "m")
	MustCode(t, err, atelier.ENOTFOUND)
}

func TestModelRunToken(t *testing.T) {
	s := MustStack(t)
	ctx := Ctx(t)
	run := MustRun(t, s.Client, atelier.RunCreate{})
	other := MustRun(t, s.Client, atelier.RunCreate{})
	mustRunFiles(t, s.Client, run.ID, map[string]string{"outputs/model.pkl": "m"})
	mustRunFiles(t, s.Client, other.ID, map[string]string{"outputs/model.pkl": "o"})
	tok, err := s.Service.CreateToken(atelier.NewContextWithPrincipal(ctx, &atelier.Principal{Kind: atelier.PrincipalAdmin, Name: "admin"}),
		&atelier.Token{Name: "run", Kind: atelier.PrincipalRun, Owner: "run", Workspace: "default", RunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}
	rc := api.NewClient(s.Server.URL, tok.Secret)
	if _, err := rc.RegisterModel(ctx, "default", atelier.ModelRegister{Name: "m", RunID: run.ID, Path: "outputs/model.pkl"}); err != nil {
		t.Errorf("a run registering from its own outputs: %v", err)
	}
	_, err = rc.RegisterModel(ctx, "default", atelier.ModelRegister{Name: "m", RunID: other.ID, Path: "outputs/model.pkl"})
	MustCode(t, err, atelier.EFORBIDDEN)
	MustCode(t, rc.DeleteModel(ctx, "default", "m"), atelier.EFORBIDDEN)
	if _, err := rc.FindModelVersion(ctx, "default", atelier.ModelRef{Name: "m"}); err != nil {
		t.Errorf("a run reading the registry: %v", err)
	}
}

// TestModelReferenceVersion: a version registered from a source URI is a reference to files
// stored elsewhere: it reads back with its source and no files, and every use of its files
// (zip, one file, an image) is a 400 that says the files are not stored.
func TestModelReferenceVersion(t *testing.T) {
	s := MustStack(t)
	c, ctx := s.Client, Ctx(t)
	run := MustRun(t, c, atelier.RunCreate{Experiment: "e"})
	v := mustRegister(t, c, atelier.ModelRegister{Name: "ext", Source: "s3://bucket/path/model", RunID: run.ID})
	if v.Version != 1 || v.Source != "s3://bucket/path/model" || v.FileCount != 0 || len(v.Files) != 0 || v.RunID != run.ID {
		t.Errorf("reference version = %+v", v)
	}
	resp := s.MustDo(t, Request{Method: "GET", Path: "/api/v1/workspaces/default/models/ext/versions/1"})
	var got map[string]any
	if resp.Status != http.StatusOK || json.Unmarshal(resp.Body, &got) != nil || got["source"] != "s3://bucket/path/model" {
		t.Errorf("GET version: %d %s", resp.Status, resp.Body)
	}
	notStored := func(what string, err error) {
		t.Helper()
		MustCode(t, err, atelier.EINVALID)
		if msg := atelier.ErrorMessage(err); !strings.Contains(msg, "is a reference to s3://bucket/path/model; its files are not stored in atelier") {
			t.Errorf("%s: %q", what, msg)
		}
	}
	ref := atelier.ModelRef{Name: "ext", Version: 1}
	var zip bytes.Buffer
	notStored("WriteModelZip", c.WriteModelZip(ctx, "default", ref, &zip))
	_, _, err := c.OpenModelFile(ctx, "default", ref, "model")
	notStored("OpenModelFile", err)
	resp = s.MustDo(t, Request{Method: "GET", Path: "/api/v1/workspaces/default/models/ext/versions/1/zip"})
	if resp.Status != http.StatusBadRequest {
		t.Errorf("GET zip of a reference: %d %s", resp.Status, resp.Body)
	}

	// An image cannot hold a model whose files atelier does not store.
	s.Service.Builder = stubBuilder{}
	snap, err := c.UploadSnapshotZip(ctx, "default", bytes.NewReader(MustZip(t, [2]string{"score.py", "print(1)\n"})))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateImage(ctx, "default", atelier.ImageCreate{Name: "svc", Models: []string{"ext:1"}, EntryScript: "score.py", SnapshotID: snap.ID})
	notStored("CreateImage", err)

	// Bad sources and mixtures are refused; the reference deletes as any version.
	for _, bad := range []atelier.ModelRegister{
		{Name: "ext", Source: "/tmp/model"},
		{Name: "ext", Source: "file:///tmp/model"},
		{Name: "ext", Source: "s3://bucket/a/../../model"},
		{Name: "ext", Source: "s3://bucket/model", RunID: run.ID, Path: "outputs/model.pkl"},
	} {
		_, err := c.RegisterModel(ctx, "default", bad)
		MustCode(t, err, atelier.EINVALID)
	}
	if err := c.DeleteModelVersion(ctx, "default", ref); err != nil {
		t.Fatal(err)
	}
}
