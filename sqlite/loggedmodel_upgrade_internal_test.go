package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// TestUpgradeConvertsLoggedModelRuns: a data directory where the MLflow API kept logged models
// in hidden runs comes out of the migration with logged models of the same ids, params, tags,
// status, files and run links, and without the runs, their activities or the hidden tag.
func TestUpgradeConvertsLoggedModelRuns(t *testing.T) {
	ctx := atelier.NewContextWithPrincipal(context.Background(), &atelier.Principal{Kind: atelier.PrincipalAdmin, Name: "admin"})
	path := filepath.Join(t.TempDir(), "atelier.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateWorkspace(ctx, &atelier.Workspace{Name: "ws"}); err != nil {
		t.Fatal(err)
	}
	mustRun := func(c atelier.RunCreate) *atelier.Run {
		t.Helper()
		r, err := db.CreateRun(ctx, "ws", c)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	train := mustRun(atelier.RunCreate{Experiment: "exp", Name: "training"})
	// As the MLflow API made them: a child run of the source run with the record property.
	hidden := mustRun(atelier.RunCreate{Experiment: "exp", Name: "my model", ParentID: train.ID, Status: atelier.StatusRunning,
		Params: map[string]string{"alpha": "0.5"}, Tags: map[string]string{"t": "1", "mlflow.datasetInputs": "[]"},
		Properties: map[string]string{"mlflow.record": "logged-model", "mlflow.modelType": "sklearn"}})
	if _, err := db.UpdateRunStatus(ctx, "ws", hidden.ID, atelier.RunStatusUpdate{Status: atelier.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	digest := strings.Repeat("b", 64)
	if err := db.HoldObjects(ctx, "ws", []atelier.Object{{Digest: digest, Size: 4}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"outputs/MLmodel", "outputs/data/model.pkl"} {
		if err := db.PutFile(ctx, "ws", hidden.ID, &atelier.File{Path: p, Digest: digest, Size: 4}); err != nil {
			t.Fatal(err)
		}
	}
	orphan := mustRun(atelier.RunCreate{Experiment: "exp", Status: atelier.StatusRunning,
		Properties: map[string]string{"mlflow.record": "logged-model"}})
	gone := mustRun(atelier.RunCreate{Experiment: "exp", Properties: map[string]string{"mlflow.record": "logged-model"}})
	if _, err := db.SetRunLifecycle(ctx, "ws", gone.ID, atelier.LifecycleDeleted); err != nil {
		t.Fatal(err)
	}
	mid := "m-" + hidden.ID
	if err := db.SetTags(ctx, "ws", train.ID, map[string]string{"mlflow.modelOutputs": `[{"model_id":"` + mid + `","step":2},{"model_id":"m-nope","step":0}]`}); err != nil {
		t.Fatal(err)
	}
	// A version registered from the orphan model had the hidden run as its lineage.
	v := &atelier.ModelVersion{Name: "reg", RunID: orphan.ID, Files: []atelier.ModelFile{{Path: "m.pkl", Digest: digest, Size: 4}}}
	if err := db.CreateModelVersion(ctx, "ws", v); err != nil {
		t.Fatal(err)
	}

	// Back to before the conversion, without the new tables, then the conversion again (only it:
	// later migrations would create their tables twice).
	conv := -1
	for i, m := range migrations {
		if strings.Contains(m, "CREATE TABLE logged_models") {
			conv = i
		}
	}
	for _, stmt := range []string{`DROP TABLE run_models`, `DROP TABLE logged_model_files`, `DROP TABLE logged_model_metrics`,
		`DROP TABLE logged_model_tags`, `DROP TABLE logged_model_params`, `DROP TABLE logged_models`, migrations[conv]} {
		if _, err := db.write.ExecContext(ctx, stmt); err != nil {
			t.Fatal(stmt, err)
		}
	}
	db.Close()
	if db, err = Open(ctx, path, Options{}); err != nil {
		t.Fatalf("reopening: %v", err)
	}
	defer db.Close()

	m, err := db.FindLoggedModel(ctx, "ws", mid)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "my model" || m.Experiment != "exp" || m.SourceRunID != train.ID || m.ModelType != "sklearn" || m.Status != atelier.LoggedModelReady ||
		m.Params["alpha"] != "0.5" || m.Tags["t"] != "1" || len(m.Tags) != 1 || m.Deleted {
		t.Errorf("converted model = %+v", m)
	}
	files, err := db.ListLoggedModelFiles(ctx, "ws", mid, "")
	if err != nil || len(files) != 2 || files[0].Path != "MLmodel" || files[1].Path != "data/model.pkl" || files[1].Digest != digest {
		t.Errorf("converted files = %+v, %v", files, err)
	}
	if o, err := db.FindLoggedModel(ctx, "ws", "m-"+orphan.ID); err != nil || o.Status != atelier.LoggedModelPending || o.SourceRunID != "" {
		t.Errorf("orphan model = %+v, %v", o, err)
	}
	if g, err := db.FindLoggedModel(ctx, "ws", "m-"+gone.ID); err != nil || !g.Deleted {
		t.Errorf("deleted model = %+v, %v", g, err)
	}
	links, err := db.ListRunModels(ctx, "ws", train.ID)
	if err != nil || len(links) != 1 || links[0] != (atelier.RunModel{RunID: train.ID, ModelID: mid, Step: 2}) {
		t.Errorf("links = %+v, %v", links, err)
	}
	run, err := db.FindRun(ctx, "ws", train.ID)
	if err != nil || run.Tags["mlflow.modelOutputs"] != "" {
		t.Errorf("training run = %+v, %v; want the hidden tag gone", run, err)
	}
	page, err := db.ListRuns(ctx, "ws", atelier.RunQuery{})
	if err != nil || len(page.Runs) != 1 || page.Runs[0].ID != train.ID {
		t.Errorf("runs after the upgrade = %v, %v; want only the training run", page, err)
	}
	if e, err := db.FindExperiment(ctx, "ws", "exp"); err != nil || e.RunCount != 1 {
		t.Errorf("experiment = %+v, %v; want 1 run", e, err)
	}
	if acts, err := db.ListActivities(ctx, "ws", atelier.ActivityFilter{}); err != nil || len(acts) != 1 {
		t.Errorf("activities after the upgrade = %d, %v; want the training run's", len(acts), err)
	}
	if got, err := db.FindModelVersion(ctx, "ws", atelier.ModelRef{Name: "reg", Version: 1}); err != nil || got.RunID != "" {
		t.Errorf("version = %+v, %v; want no lineage to the gone run", got, err)
	}
}
