package storetest

import (
	"encoding/json"
	"testing"

	"github.com/atelier-ml/atelier"
)

// testDatasets runs the datasets' part of the conformance suite: versions count from 1 per
// name and workspace, the latest is found with version 0, a version's description and tags
// change but its definition does not, deletion of one or every version, lineage to runs; and
// a run's display name changes (RunRenamer).
func testDatasets(t *testing.T, open func(t *testing.T) atelier.Store) {
	ctx := Context(t)
	s := open(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")
	yes := true
	mk := func(ws, name, path string) *atelier.Dataset {
		t.Helper()
		d := &atelier.Dataset{Workspace: ws, Name: name, Type: atelier.DatasetTabular,
			Paths:      []atelier.DatasetPath{{Datastore: "default", Path: path}},
			Format:     &atelier.DatasetFormat{Kind: atelier.FormatDelimited, Separator: ",", Header: &yes},
			Transforms: json.RawMessage(`[["take",5]]`), Tags: map[string]string{"k": "v"}, CreatedBy: "tester"}
		if err := s.CreateDatasetVersion(ctx, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	v1 := mk("ws", "iris", "iris/*.csv")
	v2 := mk("ws", "iris", "iris2/*.csv")
	o1 := mk("other", "iris", "x.csv")
	mk("ws", "beta", "b")
	if v1.Version != 1 || v2.Version != 2 || o1.Version != 1 || v1.CreatedAt.IsZero() {
		t.Fatalf("versions = %d, %d, other %d", v1.Version, v2.Version, o1.Version)
	}
	got, err := s.FindDataset(ctx, "ws", "iris", 0)
	if err != nil || got.Version != 2 || got.Paths[0].Path != "iris2/*.csv" || got.Format.Kind != atelier.FormatDelimited ||
		got.Format.Header == nil || !*got.Format.Header || string(got.Transforms) != `[["take",5]]` || got.Tags["k"] != "v" ||
		got.CreatedBy != "tester" || !got.CreatedAt.Equal(v2.CreatedAt) {
		t.Fatalf("latest = %+v, %v", got, err)
	}
	if got, err := s.FindDataset(ctx, "ws", "iris", 1); err != nil || got.Paths[0].Path != "iris/*.csv" {
		t.Fatalf("version 1 = %+v, %v", got, err)
	}
	for _, c := range []struct {
		ws, name string
		v        int
	}{{"ws", "iris", 3}, {"ws", "nope", 0}, {"nope", "iris", 0}} {
		if _, err := s.FindDataset(ctx, c.ws, c.name, c.v); atelier.ErrorCode(err) != atelier.ENOTFOUND {
			t.Errorf("FindDataset(%s, %s, %d) = %v, want not found", c.ws, c.name, c.v, err)
		}
	}
	list, err := s.ListDatasets(ctx, "ws")
	if err != nil || len(list) != 2 || list[0].Name != "beta" || list[1].Name != "iris" || list[1].Version != 2 {
		t.Fatalf("ListDatasets = %+v, %v", list, err)
	}
	vs, err := s.ListDatasetVersions(ctx, "ws", "iris")
	if err != nil || len(vs) != 2 || vs[0].Version != 1 || vs[1].Version != 2 {
		t.Fatalf("ListDatasetVersions = %+v, %v", vs, err)
	}

	desc := "the iris data"
	up, err := s.UpdateDataset(ctx, "ws", "iris", 1, atelier.DatasetUpdate{Description: &desc, Tags: map[string]string{"a": "b"}})
	if err != nil || up.Description != desc || up.Tags["a"] != "b" || up.Paths[0].Path != "iris/*.csv" {
		t.Fatalf("UpdateDataset = %+v, %v", up, err)
	}
	if got, _ := s.FindDataset(ctx, "ws", "iris", 1); got.Description != desc || len(got.Tags) != 1 {
		t.Errorf("after the update: %+v", got)
	}

	// Lineage.
	run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "e", Name: "r"})
	// A version a run produced keeps its run, through an update of its description.
	produced := &atelier.Dataset{Workspace: "ws", Name: "predictions", Type: atelier.DatasetFile,
		Paths: []atelier.DatasetPath{{Datastore: "default", Path: "out/"}}, RunID: run.ID}
	if err := s.CreateDatasetVersion(ctx, produced); err != nil {
		t.Fatal(err)
	}
	s.UpdateDataset(ctx, "ws", "predictions", 1, atelier.DatasetUpdate{Description: &desc})
	if got, err := s.FindDataset(ctx, "ws", "predictions", 1); err != nil || got.RunID != run.ID || got.Description != desc {
		t.Errorf("a run's output dataset = %+v, %v; want run_id %s", got, err, run.ID)
	}
	if got, _ := s.FindDataset(ctx, "ws", "iris", 1); got.RunID != "" {
		t.Errorf("a dataset registered from elsewhere has run_id %q", got.RunID)
	}
	use := atelier.DatasetRun{Name: "iris", Version: 1, RunID: run.ID, Input: "train"}
	for i := 0; i < 2; i++ { // recording again is no change
		if err := s.RecordDatasetRun(ctx, "ws", use); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordDatasetRun(ctx, "ws", atelier.DatasetRun{Name: "iris", Version: 9, RunID: run.ID}); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("recording a version that does not exist: %v", err)
	}
	if err := s.RecordDatasetRun(ctx, "ws", atelier.DatasetRun{Name: "iris", Version: 1, RunID: "nope"}); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("recording a run that does not exist: %v", err)
	}
	runs, err := s.DatasetRuns(ctx, "ws", "iris", 1, "")
	if err != nil || len(runs) != 1 || runs[0].RunID != run.ID || runs[0].Input != "train" || runs[0].UsedAt.IsZero() {
		t.Fatalf("DatasetRuns = %+v, %v", runs, err)
	}
	if byRun, err := s.DatasetRuns(ctx, "ws", "", 0, run.ID); err != nil || len(byRun) != 1 || byRun[0].Name != "iris" {
		t.Fatalf("DatasetRuns by run = %+v, %v", byRun, err)
	}
	if none, _ := s.DatasetRuns(ctx, "ws", "iris", 2, ""); len(none) != 0 {
		t.Errorf("version 2 has runs: %+v", none)
	}

	// Deletion: one version, then all; the other workspace's dataset stays.
	if err := s.DeleteDataset(ctx, "ws", "iris", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindDataset(ctx, "ws", "iris", 1); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("a deleted version: %v", err)
	}
	if runs, _ := s.DatasetRuns(ctx, "ws", "iris", 1, ""); len(runs) != 0 {
		t.Errorf("a deleted version keeps its lineage: %+v", runs)
	}
	if err := s.DeleteDataset(ctx, "ws", "iris", 1); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("deleting it again: %v", err)
	}
	if err := s.DeleteDataset(ctx, "ws", "iris", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListDatasetVersions(ctx, "ws", "iris"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("versions of a deleted dataset: %v", err)
	}
	if _, err := s.FindDataset(ctx, "other", "iris", 0); err != nil {
		t.Errorf("the other workspace's dataset: %v", err)
	}

	// Renaming a run.
	rn, ok := s.(atelier.RunRenamer)
	if !ok {
		t.Fatal("the store cannot rename runs")
	}
	if r, err := rn.RenameRun(ctx, "ws", run.ID, "renamed"); err != nil || r.Name != "renamed" {
		t.Fatalf("RenameRun = %+v, %v", r, err)
	}
	if r := MustFindRun(t, s, "ws", run.ID); r.Name != "renamed" {
		t.Errorf("after renaming: %q", r.Name)
	}
	if _, err := rn.RenameRun(ctx, "ws", "nope", "x"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("renaming a run that does not exist: %v", err)
	}
}
