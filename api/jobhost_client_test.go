package api_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/service"
)

// The job host of the in-job runner gives an executor what the server's own does, through the
// API with the run's token alone.
func TestJobHostWithRunToken(t *testing.T) {
	s := MustStack(t)
	ctx := Ctx(t)
	ws := atelier.DefaultWorkspace
	s.Service.AddComputeTarget(&service.Target{Name: atelier.DefaultCompute, Kind: "local"})
	for p, content := range map[string]string{"sets/a.csv": "a", "sets/sub/b.csv": "bb", "sets.csv": "not in the folder", "other/c.csv": "c"} {
		if _, err := s.Client.WriteDatastoreFile(ctx, ws, atelier.DefaultDatastore, p, strings.NewReader(content), "", ""); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := s.Client.UploadSnapshotZip(ctx, ws, bytes.NewReader(MustZip(t, [2]string{"train.py", "print(1)\n"}, [2]string{"lib/util.py", "X = 2\n"})))
	if err != nil {
		t.Fatal(err)
	}
	folder := atelier.DataReference{Name: "sets", Datastore: atelier.DefaultDatastore, Path: "sets/"}
	file := atelier.DataReference{Name: "one", Datastore: atelier.DefaultDatastore, Path: "sets/a.csv"}
	out := atelier.DataReference{Name: "out", Datastore: atelier.DefaultDatastore, Path: "results", Mode: atelier.DataUpload}
	config := atelier.RunConfig{Script: "train.py", Compute: atelier.DefaultCompute, Data: []atelier.DataReference{folder, file, out}}
	run, err := s.Client.SubmitRun(ctx, ws, atelier.RunSubmit{Experiment: "jobs", SnapshotID: snap.ID, Config: config})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.UpdateRunStatus(ctx, ws, run.ID, atelier.RunStatusUpdate{Status: atelier.StatusPreparing}); err != nil {
		t.Fatal(err)
	}
	tok, err := s.Service.CreateToken(context.Background(), &atelier.Token{Name: "run", Kind: atelier.PrincipalRun, Owner: run.CreatedBy, Workspace: ws, RunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}
	host := api.NewJobHost(api.NewClient(s.Server.URL, tok.Secret), run, snap, t.TempDir())
	defer host.Close()
	job := &atelier.Job{Run: run, Config: config, Snapshot: snap}

	// The snapshot's files, by digest.
	for _, e := range snap.Entries {
		rc, err := host.OpenObject(ctx, e.Digest)
		if err != nil {
			t.Fatalf("OpenObject(%s): %v", e.Path, err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if want := map[string]string{"train.py": "print(1)\n", "lib/util.py": "X = 2\n"}[e.Path]; string(b) != want {
			t.Errorf("%s = %q, want %q", e.Path, b, want)
		}
	}
	if _, err := host.OpenObject(ctx, "sha256:"+strings.Repeat("0", 64)); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("an object of no snapshot: %v, want not found", err)
	}

	// Statuses: the claim's Preparing again is no error; then Running.
	if err := host.SetStatus(ctx, job, atelier.StatusPreparing); err != nil {
		t.Fatalf("Preparing again: %v", err)
	}
	if err := host.SetStatus(ctx, job, atelier.StatusRunning); err != nil {
		t.Fatal(err)
	}
	if err := host.AppendLog(ctx, job, "logs/std_log.txt", []byte("line\n")); err != nil {
		t.Fatal(err)
	}
	if err := host.UploadFile(ctx, job, "outputs/m.txt", strings.NewReader("m")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Client.FindRun(ctx, ws, run.ID)
	if err != nil || got.Status != atelier.StatusRunning {
		t.Fatalf("run %v, %v; want Running", got, err)
	}
	if chunk, err := s.Client.ReadLog(ctx, ws, run.ID, "logs/std_log.txt", 0, 0); err != nil || string(chunk.Data) != "line\n" {
		t.Errorf("std_log %v, %v", chunk, err)
	}

	// Data: a folder lists every file under it (not its neighbour sets.csv), a file itself.
	files, err := host.ListData(ctx, job, folder)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	if strings.Join(paths, ",") != "sets/a.csv,sets/sub/b.csv" {
		t.Errorf("folder lists %v", paths)
	}
	files, err = host.ListData(ctx, job, file)
	if err != nil || len(files) != 1 || files[0].Path != "sets/a.csv" {
		t.Fatalf("file lists %v, %v", files, err)
	}
	rc, err := host.OpenData(ctx, job, folder, "sets/sub/b.csv")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "bb" {
		t.Errorf("sets/sub/b.csv = %q", b)
	}
	if _, err := host.OpenData(ctx, job, folder, "other/c.csv"); atelier.ErrorCode(err) != atelier.EINVALID {
		t.Errorf("a file outside the reference: %v, want invalid", err)
	}
	undeclared := atelier.DataReference{Name: "other", Datastore: atelier.DefaultDatastore, Path: "other/"}
	if _, err := host.ListData(ctx, job, undeclared); atelier.ErrorCode(err) != atelier.EFORBIDDEN {
		t.Errorf("a reference the run does not declare: %v, want forbidden", err)
	}
	if err := host.WriteData(ctx, job, folder, "sets/new.csv", strings.NewReader("x")); atelier.ErrorCode(err) != atelier.EFORBIDDEN {
		t.Errorf("writing through a download reference: %v, want forbidden", err)
	}
}
