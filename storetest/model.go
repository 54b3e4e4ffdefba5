package storetest

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
)

// testModels is the conformance suite of atelier.ModelStore, run by TestStore as "Models".
func testModels(t *testing.T, open func(t *testing.T) atelier.Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) atelier.Store)
	}{
		{"Register", testModelRegister},
		{"ConcurrentVersions", testModelConcurrentVersions},
		{"BadInput", testModelBadInput},
		{"Aliases", testModelAliases},
		{"Query", testModelQuery},
		{"Delete", testModelDelete},
		{"References", testModelReferences},
		{"Records", testModelRecords},
		{"Reference", testModelReference},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

func modelFiles(names ...string) []atelier.ModelFile {
	out := make([]atelier.ModelFile, len(names))
	for i, n := range names {
		out[i] = atelier.ModelFile{Path: n, Digest: digestOf(n), Size: int64(len(n))}
	}
	return out
}

// MustRegisterModel stores a new version of name with one file or fails the test.
func MustRegisterModel(tb testing.TB, s atelier.Store, workspace string, v *atelier.ModelVersion) *atelier.ModelVersion {
	tb.Helper()
	if len(v.Files) == 0 {
		v.Files = modelFiles("model.pkl")
	}
	if err := s.CreateModelVersion(Context(tb), workspace, v); err != nil {
		tb.Fatalf("CreateModelVersion(%s): %v", v.Name, err)
	}
	return v
}

func versionNumbers(list []*atelier.ModelVersion) []string {
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = fmt.Sprintf("%s:%d", v.Name, v.Version)
	}
	return out
}

func testModelRegister(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")
	run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "diabetes"})

	files := modelFiles("model/weights.bin", "model/conf.json")
	v1 := MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "diabetes", Description: "ridge", RunID: run.ID, Path: "outputs/model",
		Tags: map[string]string{"stage": "dev"}, Properties: map[string]string{"auc": "0.9"}, Framework: "scikit-learn", FrameworkVersion: "1.5",
		Datasets: []string{"diabetes.csv", "azureml://datastores/blob/paths/x"}, Files: files})
	if v1.Version != 1 || v1.Experiment != "diabetes" || v1.CreatedBy != "tester" || v1.FileCount != 2 || v1.Size != files[0].Size+files[1].Size {
		t.Errorf("first version = %+v", v1)
	}
	v2 := MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "diabetes"})
	if v2.Version != 2 || v2.RunID != "" || v2.Experiment != "" {
		t.Errorf("second version = %+v", v2)
	}

	got, err := s.FindModelVersion(ctx, "ws", atelier.ModelRef{Name: "diabetes", Version: 1})
	mustOK(t, err, "FindModelVersion(diabetes:1)")
	want := &atelier.ModelVersion{Name: "diabetes", Version: 1, Workspace: "ws", Description: "ridge", Tags: map[string]string{"stage": "dev"},
		Properties: map[string]string{"auc": "0.9"}, Framework: "scikit-learn", FrameworkVersion: "1.5", RunID: run.ID, Experiment: "diabetes",
		Path: "outputs/model", Datasets: []string{"diabetes.csv", "azureml://datastores/blob/paths/x"}, FileCount: 2, Size: v1.Size,
		Aliases: []string{}, CreatedBy: "tester", CreatedAt: v1.CreatedAt, UpdatedAt: v1.UpdatedAt,
		Files: modelFiles("model/conf.json", "model/weights.bin")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FindModelVersion (-want +got):\n%s", diff)
	}
	latest, err := s.FindModelVersion(ctx, "ws", atelier.ModelRef{Name: "diabetes"})
	mustOK(t, err, "FindModelVersion(latest)")
	if latest.Version != 2 {
		t.Errorf("latest version %d, want 2", latest.Version)
	}
	m, err := s.FindModel(ctx, "ws", "diabetes")
	mustOK(t, err, "FindModel")
	if m.LatestVersion != 2 || m.VersionCount != 2 || len(m.Aliases) != 0 || m.Name != "diabetes" {
		t.Errorf("FindModel = %+v", m)
	}

	// The workspace now holds the objects the version references.
	missing, err := s.MissingObjects(ctx, "ws", []string{files[0].Digest, files[1].Digest})
	mustOK(t, err, "MissingObjects")
	if len(missing) != 0 {
		t.Errorf("after registering, the workspace lacks %v", missing)
	}

	// Lineage the other way: the run's models.
	page, err := s.ListModelVersions(ctx, "ws", atelier.ModelQuery{RunID: run.ID})
	mustOK(t, err, "ListModelVersions(run)")
	if diff := cmp.Diff([]string{"diabetes:1"}, versionNumbers(page.Versions)); diff != "" {
		t.Errorf("versions of the run (-want +got):\n%s", diff)
	}

	// Workspaces are separate registries.
	_, err = s.FindModelVersion(ctx, "other", atelier.ModelRef{Name: "diabetes"})
	wantCode(t, err, atelier.ENOTFOUND, "FindModelVersion in another workspace")
	o := MustRegisterModel(t, s, "other", &atelier.ModelVersion{Name: "diabetes"})
	if o.Version != 1 {
		t.Errorf("first version in another workspace is %d, want 1", o.Version)
	}
	// A run of another workspace cannot be named.
	err = s.CreateModelVersion(ctx, "other", &atelier.ModelVersion{Name: "x", RunID: run.ID, Files: modelFiles("a")})
	wantCode(t, err, atelier.ENOTFOUND, "CreateModelVersion with a run of another workspace")
}

func testModelConcurrentVersions(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	MustCreateWorkspace(t, s, "ws")
	const n = 20
	versions := make([]int64, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := &atelier.ModelVersion{Name: "busy", Files: modelFiles(fmt.Sprintf("f%d", i))}
			if err := s.CreateModelVersion(Context(t), "ws", v); err != nil {
				errs <- err
				return
			}
			versions[i] = v.Version
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent CreateModelVersion: %v", err)
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	for i, v := range versions {
		if v != int64(i+1) {
			t.Fatalf("versions %v, want 1..%d each once", versions, n)
		}
	}
	m, err := s.FindModel(Context(t), "ws", "busy")
	mustOK(t, err, "FindModel")
	if m.VersionCount != n || m.LatestVersion != n {
		t.Errorf("model = %+v, want %d versions", m, n)
	}
}

func testModelBadInput(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "m", Properties: map[string]string{"p": "1"}, Tags: map[string]string{"t": "1"}})

	for _, tc := range []struct {
		name string
		v    atelier.ModelVersion
		code string
	}{
		{"empty name", atelier.ModelVersion{Name: "", Files: modelFiles("a")}, atelier.EINVALID},
		{"name with a colon", atelier.ModelVersion{Name: "m:1", Files: modelFiles("a")}, atelier.EINVALID},
		{"name with a slash", atelier.ModelVersion{Name: "a/b", Files: modelFiles("a")}, atelier.EINVALID},
		{"name too long", atelier.ModelVersion{Name: strings.Repeat("a", 256), Files: modelFiles("a")}, atelier.EINVALID},
		{"no files", atelier.ModelVersion{Name: "n"}, atelier.EINVALID},
		{"escaping path", atelier.ModelVersion{Name: "n", Files: []atelier.ModelFile{{Path: "../x", Digest: digestOf("x")}}}, atelier.EINVALID},
		{"bad digest", atelier.ModelVersion{Name: "n", Files: []atelier.ModelFile{{Path: "x", Digest: "abc"}}}, atelier.EINVALID},
		{"file and directory", atelier.ModelVersion{Name: "n", Files: modelFiles("a", "a/b")}, atelier.EINVALID},
		{"unknown run", atelier.ModelVersion{Name: "n", RunID: "nope", Files: modelFiles("a")}, atelier.ENOTFOUND},
	} {
		err := s.CreateModelVersion(ctx, "ws", &tc.v)
		wantCode(t, err, tc.code, "CreateModelVersion(%s)", tc.name)
	}
	_, err := s.FindModel(ctx, "ws", "n")
	wantCode(t, err, atelier.ENOTFOUND, "FindModel after failed registrations")
	MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: strings.Repeat("a", 255)})
	// A failed registration did not use up a number.
	v := MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "m"})
	if v.Version != 2 {
		t.Errorf("version after failed registrations %d, want 2", v.Version)
	}

	_, err = s.FindModelVersion(ctx, "ws", atelier.ModelRef{Name: "m", Version: 9})
	wantCode(t, err, atelier.ENOTFOUND, "FindModelVersion(m:9)")
	_, err = s.FindModelVersion(ctx, "ws", atelier.ModelRef{Name: "nope"})
	wantCode(t, err, atelier.ENOTFOUND, "FindModelVersion(nope)")
	_, err = s.FindModelVersion(ctx, "ws", atelier.ModelRef{Name: "m", Alias: "prod"})
	wantCode(t, err, atelier.ENOTFOUND, "FindModelVersion(m@prod)")

	// A property overwrite fails whole: the tag of the same update is not set either.
	ref := atelier.ModelRef{Name: "m", Version: 1}
	_, err = s.UpdateModelVersion(ctx, "ws", ref, atelier.ModelVersionUpdate{Tags: map[string]string{"t": "2"}, Properties: map[string]string{"p": "2", "q": "x"}})
	wantCode(t, err, atelier.ECONFLICT, "overwriting a property")
	got, err := s.FindModelVersion(ctx, "ws", ref)
	mustOK(t, err, "FindModelVersion")
	if got.Tags["t"] != "1" || got.Properties["p"] != "1" || got.Properties["q"] != "" {
		t.Errorf("after a refused update: tags %v properties %v", got.Tags, got.Properties)
	}
	// The same value again is fine, and tags change.
	desc := "new"
	got, err = s.UpdateModelVersion(ctx, "ws", ref, atelier.ModelVersionUpdate{Description: &desc, Tags: map[string]string{"t": "2", "u": "3"},
		Properties: map[string]string{"p": "1", "q": "x"}})
	mustOK(t, err, "UpdateModelVersion")
	if diff := cmp.Diff(map[string]string{"t": "2", "u": "3"}, got.Tags); diff != "" || got.Description != "new" || got.Properties["q"] != "x" {
		t.Errorf("after update: %+v", got)
	}
	got, err = s.UpdateModelVersion(ctx, "ws", ref, atelier.ModelVersionUpdate{DeleteTags: []string{"t"}})
	mustOK(t, err, "UpdateModelVersion(delete tag)")
	if diff := cmp.Diff(map[string]string{"u": "3"}, got.Tags); diff != "" {
		t.Errorf("after deleting a tag (-want +got):\n%s", diff)
	}

	// An alias to a missing version is refused and not created.
	_, err = s.SetModelAlias(ctx, "ws", "m", "prod", 7)
	wantCode(t, err, atelier.ENOTFOUND, "SetModelAlias to a missing version")
	_, err = s.SetModelAlias(ctx, "ws", "m", "latest", 1)
	wantCode(t, err, atelier.EINVALID, "SetModelAlias(latest)")
	_, err = s.SetModelAlias(ctx, "ws", "m", "1abc", 1)
	wantCode(t, err, atelier.EINVALID, "SetModelAlias(1abc)")
	m, err := s.FindModel(ctx, "ws", "m")
	mustOK(t, err, "FindModel")
	if len(m.Aliases) != 0 {
		t.Errorf("aliases after refused sets: %v", m.Aliases)
	}
}

func testModelAliases(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	for range 3 {
		MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "m"})
	}
	v, err := s.SetModelAlias(ctx, "ws", "m", "production", 2)
	mustOK(t, err, "SetModelAlias")
	if v.Version != 2 || len(v.Aliases) != 1 || v.Aliases[0] != "production" {
		t.Errorf("SetModelAlias returned %+v", v)
	}
	_, err = s.SetModelAlias(ctx, "ws", "m", "staging", 2)
	mustOK(t, err, "SetModelAlias(staging)")
	prod := atelier.ModelRef{Name: "m", Alias: "production"}
	got, err := s.FindModelVersion(ctx, "ws", prod)
	mustOK(t, err, "FindModelVersion(m@production)")
	if got.Version != 2 || fmt.Sprint(got.Aliases) != "[production staging]" {
		t.Errorf("m@production = version %d aliases %v", got.Version, got.Aliases)
	}
	// Moving an alias.
	_, err = s.SetModelAlias(ctx, "ws", "m", "production", 3)
	mustOK(t, err, "moving production")
	if got, _ := s.FindModelVersion(ctx, "ws", prod); got == nil || got.Version != 3 {
		t.Errorf("after moving, m@production = %+v", got)
	}
	m, err := s.FindModel(ctx, "ws", "m")
	mustOK(t, err, "FindModel")
	if diff := cmp.Diff(map[string]int64{"production": 3, "staging": 2}, m.Aliases); diff != "" {
		t.Errorf("aliases (-want +got):\n%s", diff)
	}
	mustOK(t, s.DeleteModelAlias(ctx, "ws", "m", "staging"), "DeleteModelAlias")
	wantCode(t, s.DeleteModelAlias(ctx, "ws", "m", "staging"), atelier.ENOTFOUND, "DeleteModelAlias twice")
	// Deleting a version removes its aliases.
	mustOK(t, s.DeleteModelVersion(ctx, "ws", prod), "DeleteModelVersion(m@production)")
	_, err = s.FindModelVersion(ctx, "ws", prod)
	wantCode(t, err, atelier.ENOTFOUND, "m@production after deleting its version")
}

func testModelQuery(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	for _, v := range []*atelier.ModelVersion{
		{Name: "diabetes", Tags: map[string]string{"stage": "dev"}, Properties: map[string]string{"algo": "ridge"}},
		{Name: "diabetes", Tags: map[string]string{"stage": "prod", "team": "a"}, Properties: map[string]string{"algo": "lasso"}},
		{Name: "Diabetes-big", Tags: map[string]string{"stage": "prod"}, Properties: map[string]string{"algo": "ridge"}},
		{Name: "mnist", Tags: map[string]string{"team": "a"}},
		{Name: "diabetes", Properties: map[string]string{"algo": "ridge"}},
	} {
		MustRegisterModel(t, s, "ws", v)
	}
	for _, tc := range []struct {
		name string
		q    atelier.ModelQuery
		want []string
	}{
		{"all newest first", atelier.ModelQuery{}, []string{"diabetes:3", "mnist:1", "Diabetes-big:1", "diabetes:2", "diabetes:1"}},
		{"one name by version", atelier.ModelQuery{Name: "diabetes", OrderBy: "version asc"}, []string{"diabetes:1", "diabetes:2", "diabetes:3"}},
		{"one name by version desc", atelier.ModelQuery{Name: "diabetes", OrderBy: "version desc"}, []string{"diabetes:3", "diabetes:2", "diabetes:1"}},
		{"name substring ignores case", atelier.ModelQuery{NameContains: "BETES", OrderBy: "created_at asc"}, []string{"diabetes:1", "diabetes:2", "Diabetes-big:1", "diabetes:3"}},
		{"tag key", atelier.ModelQuery{Tags: []string{"team"}, OrderBy: "created_at asc"}, []string{"diabetes:2", "mnist:1"}},
		{"tag key=value", atelier.ModelQuery{Tags: []string{"stage=prod"}, OrderBy: "created_at asc"}, []string{"diabetes:2", "Diabetes-big:1"}},
		{"property", atelier.ModelQuery{Properties: []string{"algo=ridge"}, OrderBy: "created_at asc"}, []string{"diabetes:1", "Diabetes-big:1", "diabetes:3"}},
		{"combined", atelier.ModelQuery{NameContains: "diabetes", Tags: []string{"stage=prod"}, Properties: []string{"algo=ridge"}}, []string{"Diabetes-big:1"}},
		{"two tags", atelier.ModelQuery{Tags: []string{"stage=prod", "team=a"}}, []string{"diabetes:2"}},
		{"by name", atelier.ModelQuery{NameContains: "e", OrderBy: "name asc"}, []string{"Diabetes-big:1", "diabetes:3", "diabetes:2", "diabetes:1"}},
		{"nothing", atelier.ModelQuery{Tags: []string{"stage=none"}}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.ListModelVersions(ctx, "ws", tc.q)
			mustOK(t, err, "ListModelVersions(%+v)", tc.q)
			if diff := cmp.Diff(tc.want, versionNumbers(page.Versions)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if page.NextPageToken != "" {
				t.Errorf("a next page token on the only page")
			}
		})
	}

	// Paging walks every version once.
	var seen []string
	q := atelier.ModelQuery{Limit: 2, OrderBy: "created_at asc"}
	for range 10 {
		page, err := s.ListModelVersions(ctx, "ws", q)
		mustOK(t, err, "ListModelVersions(page)")
		seen = append(seen, versionNumbers(page.Versions)...)
		if page.NextPageToken == "" {
			break
		}
		q.PageToken = page.NextPageToken
	}
	if diff := cmp.Diff([]string{"diabetes:1", "diabetes:2", "Diabetes-big:1", "mnist:1", "diabetes:3"}, seen); diff != "" {
		t.Errorf("paged (-want +got):\n%s", diff)
	}

	// Tags and properties come with each version in a list; files do not.
	page, err := s.ListModelVersions(ctx, "ws", atelier.ModelQuery{Name: "diabetes", OrderBy: "version asc", Limit: 2})
	mustOK(t, err, "ListModelVersions")
	if v := page.Versions[1]; v.Tags["team"] != "a" || v.Properties["algo"] != "lasso" || v.Files != nil || v.FileCount != 1 {
		t.Errorf("listed version = %+v", v)
	}

	models, err := s.ListModels(ctx, "ws", atelier.ModelQuery{})
	mustOK(t, err, "ListModels")
	var names []string
	for _, m := range models.Models {
		names = append(names, fmt.Sprintf("%s:%d/%d", m.Name, m.LatestVersion, m.VersionCount))
	}
	if diff := cmp.Diff([]string{"Diabetes-big:1/1", "diabetes:3/3", "mnist:1/1"}, names); diff != "" {
		t.Errorf("ListModels (-want +got):\n%s", diff)
	}
	models, err = s.ListModels(ctx, "ws", atelier.ModelQuery{NameContains: "mni"})
	mustOK(t, err, "ListModels(mni)")
	if len(models.Models) != 1 || models.Models[0].Name != "mnist" {
		t.Errorf("ListModels(mni) = %+v", models.Models)
	}

	for _, q := range []atelier.ModelQuery{{OrderBy: "size"}, {OrderBy: "version sideways"}, {Tags: []string{"=x"}}, {Limit: -1},
		{PageToken: "garbage!"}, {Name: "bad/name"}} {
		_, err := s.ListModelVersions(ctx, "ws", q)
		wantCode(t, err, atelier.EINVALID, "ListModelVersions(%+v)", q)
	}
}

func testModelDelete(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	for range 3 {
		MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "m"})
	}
	mustOK(t, s.DeleteModelVersion(ctx, "ws", atelier.ModelRef{Name: "m", Version: 3}), "DeleteModelVersion(m:3)")
	wantCode(t, s.DeleteModelVersion(ctx, "ws", atelier.ModelRef{Name: "m", Version: 3}), atelier.ENOTFOUND, "DeleteModelVersion(m:3) twice")
	// A deleted number is not given again.
	if v := MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "m"}); v.Version != 4 {
		t.Errorf("after deleting version 3 the next is %d, want 4", v.Version)
	}
	m, err := s.FindModel(ctx, "ws", "m")
	mustOK(t, err, "FindModel")
	if m.VersionCount != 3 || m.LatestVersion != 4 {
		t.Errorf("model = %+v", m)
	}
	mustOK(t, s.DeleteModel(ctx, "ws", "m"), "DeleteModel")
	_, err = s.FindModel(ctx, "ws", "m")
	wantCode(t, err, atelier.ENOTFOUND, "FindModel after DeleteModel")
	page, err := s.ListModelVersions(ctx, "ws", atelier.ModelQuery{Name: "m"})
	mustOK(t, err, "ListModelVersions")
	if len(page.Versions) != 0 {
		t.Errorf("versions after DeleteModel: %v", versionNumbers(page.Versions))
	}
	wantCode(t, s.DeleteModel(ctx, "ws", "m"), atelier.ENOTFOUND, "DeleteModel twice")

	// Deleting every version one by one leaves no model to list.
	MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "solo"})
	mustOK(t, s.DeleteModelVersion(ctx, "ws", atelier.ModelRef{Name: "solo"}), "DeleteModelVersion(solo)")
	models, err := s.ListModels(ctx, "ws", atelier.ModelQuery{})
	mustOK(t, err, "ListModels")
	if len(models.Models) != 0 {
		t.Errorf("models after deleting every version: %+v", models.Models)
	}
	_, err = s.FindModel(ctx, "ws", "solo")
	wantCode(t, err, atelier.ENOTFOUND, "FindModel without versions")
}

func testModelReferences(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	for range 2 {
		MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "m"})
	}
	img := atelier.ModelReference{Kind: "image", ID: "scorer-img", Name: "m", Version: 1}
	svc := atelier.ModelReference{Kind: "service", ID: "scorer", Name: "m", Version: 1}
	mustOK(t, s.AddModelReference(ctx, "ws", img), "AddModelReference(image)")
	mustOK(t, s.AddModelReference(ctx, "ws", img), "AddModelReference(image) again")
	mustOK(t, s.AddModelReference(ctx, "ws", svc), "AddModelReference(service)")
	wantCode(t, s.AddModelReference(ctx, "ws", atelier.ModelReference{Kind: "image", ID: "x", Name: "m", Version: 9}), atelier.ENOTFOUND, "a reference to a missing version")
	wantCode(t, s.AddModelReference(ctx, "ws", atelier.ModelReference{Kind: "", ID: "x", Name: "m", Version: 1}), atelier.EINVALID, "a reference without a kind")

	refs, err := s.ListModelReferences(ctx, "ws", atelier.ModelRef{Name: "m", Version: 1})
	mustOK(t, err, "ListModelReferences")
	if diff := cmp.Diff([]atelier.ModelReference{img, svc}, refs); diff != "" {
		t.Errorf("references (-want +got):\n%s", diff)
	}

	for _, del := range []struct {
		what string
		err  error
	}{
		{"DeleteModelVersion(m:1)", s.DeleteModelVersion(ctx, "ws", atelier.ModelRef{Name: "m", Version: 1})},
		{"DeleteModel(m)", s.DeleteModel(ctx, "ws", "m")},
	} {
		wantCode(t, del.err, atelier.ECONFLICT, "%s while referenced", del.what)
		var inUse *atelier.ModelInUseError
		if !errors.As(del.err, &inUse) || len(inUse.References) != 2 {
			t.Errorf("%s: error %v is not a ModelInUseError listing both references", del.what, del.err)
		} else if msg := atelier.ErrorMessage(del.err); !containsAll(msg, "image scorer-img", "service scorer", "m:1") {
			t.Errorf("%s: message %q does not name the references", del.what, msg)
		}
	}
	if _, err := s.FindModelVersion(ctx, "ws", atelier.ModelRef{Name: "m", Version: 1}); err != nil {
		t.Errorf("the referenced version is gone after refused deletes: %v", err)
	}
	// An unreferenced version of the same model can go.
	mustOK(t, s.DeleteModelVersion(ctx, "ws", atelier.ModelRef{Name: "m", Version: 2}), "DeleteModelVersion(m:2)")

	mustOK(t, s.RemoveModelReference(ctx, "ws", img), "RemoveModelReference(image)")
	mustOK(t, s.RemoveModelReference(ctx, "ws", svc), "RemoveModelReference(service)")
	mustOK(t, s.RemoveModelReference(ctx, "ws", svc), "RemoveModelReference twice")
	mustOK(t, s.DeleteModelVersion(ctx, "ws", atelier.ModelRef{Name: "m", Version: 1}), "DeleteModelVersion once unreferenced")
}

// testModelReference: a version may be a reference to files stored elsewhere (a source URI, no
// files): created, read back, listed and deleted as any version; a source that is no remote URI,
// or a reference with files, is refused.
func testModelReference(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "e"})
	MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "m"}) // stored files, version 1

	ref := &atelier.ModelVersion{Name: "m", Source: "s3://bucket/path/model", RunID: run.ID, Tags: map[string]string{"k": "v"}}
	mustOK(t, s.CreateModelVersion(ctx, "ws", ref), "CreateModelVersion(reference)")
	if ref.Version != 2 || ref.FileCount != 0 || ref.Size != 0 || len(ref.Files) != 0 || ref.Experiment != "e" || !ref.IsReference() {
		t.Errorf("reference version = %+v", ref)
	}
	got, err := s.FindModelVersion(ctx, "ws", atelier.ModelRef{Name: "m", Version: 2})
	mustOK(t, err, "FindModelVersion(m:2)")
	if got.Source != "s3://bucket/path/model" || got.RunID != run.ID || got.FileCount != 0 || len(got.Files) != 0 || got.Tags["k"] != "v" {
		t.Errorf("reference read back = %+v", got)
	}
	stored, err := s.FindModelVersion(ctx, "ws", atelier.ModelRef{Name: "m", Version: 1})
	mustOK(t, err, "FindModelVersion(m:1)")
	if stored.Source != "" || stored.IsReference() || len(stored.Files) != 1 {
		t.Errorf("stored version = %+v", stored)
	}
	page, err := s.ListModelVersions(ctx, "ws", atelier.ModelQuery{Name: "m"})
	mustOK(t, err, "ListModelVersions")
	sources := map[int64]string{}
	for _, v := range page.Versions {
		sources[v.Version] = v.Source
	}
	if len(sources) != 2 || sources[1] != "" || sources[2] != "s3://bucket/path/model" {
		t.Errorf("listed sources = %v", sources)
	}

	for _, bad := range []*atelier.ModelVersion{
		{Name: "m", Source: "/tmp/model"},
		{Name: "m", Source: "file:///tmp/model"},
		{Name: "m", Source: "s3://bucket/a/../../model"},
		{Name: "m", Source: "s3://bucket/model", Files: modelFiles("model.pkl")},
	} {
		wantCode(t, s.CreateModelVersion(ctx, "ws", bad), atelier.EINVALID, "CreateModelVersion(source %s)", bad.Source)
	}

	mustOK(t, s.DeleteModelVersion(ctx, "ws", atelier.ModelRef{Name: "m", Version: 2}), "DeleteModelVersion(reference)")
	_, err = s.FindModelVersion(ctx, "ws", atelier.ModelRef{Name: "m", Version: 2})
	wantCode(t, err, atelier.ENOTFOUND, "FindModelVersion after deleting the reference")
	if m, err := s.FindModel(ctx, "ws", "m"); err != nil || m.VersionCount != 1 {
		t.Errorf("model after deleting the reference = %+v, %v", m, err)
	}
}
