package service_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/datastore"
	"github.com/atelier-ml/atelier/python"
)

// TestRunData: a run reads a files datastore's folder through ATELIER_DATA_TRAIN (and the SDK's
// input_datasets) and what it writes to its upload folder lands in the datastore; the lineage
// then keeps the datastore from being deleted without force.
func TestRunData(t *testing.T) {
	t.Parallel()
	s := MustComputeStack(t, "", 1, false)
	s.svc.Datastores = datastore.NewOpener(filepath.Join(s.dir, "datastores"))
	sdk, err := python.Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.exec.SDKPath = sdk
	lake := t.TempDir()
	if err := os.MkdirAll(filepath.Join(lake, "diabetes", "more"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(lake, "diabetes", "a.csv"), []byte("1,2\n"), 0o644)
	os.WriteFile(filepath.Join(lake, "diabetes", "more", "b.csv"), []byte("3,4\n"), 0o644)
	if _, err := s.svc.RegisterDatastore(s.ctx, "default", atelier.DatastoreSpec{Name: "lake", Kind: atelier.DatastoreFiles, Path: lake}); err != nil {
		t.Fatal(err)
	}

	script := `import os, pathlib
from atelier.run import Run
run = Run.get_context()
train = pathlib.Path(os.environ["ATELIER_DATA_TRAIN"])
assert run.input_datasets == {"train": str(train)}, run.input_datasets
out = pathlib.Path(run.output_datasets["scores"])
rows = sum(len(p.read_text().splitlines()) for p in sorted(train.rglob("*.csv")))
(out / "nested").mkdir()
(out / "nested" / "scores.txt").write_text("rows=%d" % rows)
print("read", rows, "rows")
`
	run := s.MustSubmit(t, script, atelier.RunConfig{Data: []atelier.DataReference{
		{Name: "train", Datastore: "lake", Path: "diabetes/"},
		{Name: "scores", Datastore: "lake", Path: "out", Mode: atelier.DataUpload}}}, nil)
	got := s.WaitRun(t, run.ID, 30*time.Second)
	if got.Status != atelier.StatusCompleted {
		t.Fatalf("run = %s %q; output:\n%s", got.Status, got.Error, s.Log(t, run.ID, "logs/std_log.txt"))
	}
	_, rc, err := s.svc.OpenDatastoreFile(s.ctx, "default", "lake", "out/nested/scores.txt")
	if err != nil {
		t.Fatalf("the upload did not land in the datastore: %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "rows=2" {
		t.Errorf("out/nested/scores.txt = %q, want rows=2", b)
	}

	// A datastore that does not exist is refused at submission.
	snap := s.MustSnapshot(t, map[string]string{"train.py": "pass"})
	_, err = s.svc.SubmitRun(s.ctx, "default", atelier.RunSubmit{Experiment: "exp", SnapshotID: snap.ID, Config: atelier.RunConfig{Script: "train.py",
		Data: []atelier.DataReference{{Name: "x", Datastore: "pond"}}}})
	MustCode(t, err, atelier.EINVALID)

	// Lineage: the run is recorded as reading and writing lake, which then needs force.
	ids, total, err := s.db.DatastoreRuns(s.ctx, "default", "lake", 10)
	if err != nil || total != 1 || len(ids) != 1 || ids[0] != run.ID {
		t.Errorf("DatastoreRuns(lake) = %v, %d, %v; want [%s]", ids, total, err, run.ID)
	}
	err = s.svc.DeleteDatastore(s.ctx, "default", "lake", false)
	MustCode(t, err, atelier.ECONFLICT)
	if !strings.Contains(atelier.ErrorMessage(err), run.ID) {
		t.Errorf("the refusal does not name the run: %v", err)
	}
	if err := s.svc.DeleteDatastore(s.ctx, "default", "lake", true); err != nil {
		t.Errorf("DeleteDatastore with force: %v", err)
	}
}

// TestRunDataMissingFolder: a download of nothing fails the run before the script runs.
func TestRunDataMissingFolder(t *testing.T) {
	t.Parallel()
	s := MustComputeStack(t, "", 1, false)
	s.svc.Datastores = datastore.NewOpener(filepath.Join(s.dir, "datastores"))
	run := s.MustSubmit(t, "print('ran')", atelier.RunConfig{Data: []atelier.DataReference{{Name: "train", Datastore: "default", Path: "nothing/"}}}, nil)
	got := s.WaitRun(t, run.ID, 30*time.Second)
	if got.Status != atelier.StatusFailed || !strings.Contains(got.Error, `data "train": default:nothing/ holds no files`) {
		t.Errorf("run = %s %q", got.Status, got.Error)
	}
}
