package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// TestUpgradeConvertsRecordRuns: a data directory where the MLflow API kept experiment tags and
// registered models in hidden record runs (before issue 19) comes out of the migration with
// those as the experiments' and models' own records, and without the runs.
func TestUpgradeConvertsRecordRuns(t *testing.T) {
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
	// As the MLflow API made them: experiments/create, a later duplicate record, set-tag.
	expRecord := func(exp string, tags map[string]string) *atelier.Run {
		return mustRun(atelier.RunCreate{Experiment: exp, Name: "mlflow-experiment",
			Properties: map[string]string{"mlflow.experimentRecord": "true"}, Tags: tags})
	}
	expRecord("tagged", map[string]string{"team": "a", "mlflow.note.content": "about"})
	expRecord("tagged", map[string]string{"team": "later"})
	real := mustRun(atelier.RunCreate{Experiment: "tagged", Name: "training"})
	expRecord("empty", nil)
	modelRecord := func(name string, tags map[string]string) *atelier.Run {
		all := map[string]string{"mlflow.registeredModelName": name}
		for k, v := range tags {
			all[k] = v
		}
		return mustRun(atelier.RunCreate{Experiment: "Default", Name: "mlflow-registered-model",
			Properties: map[string]string{"mlflow.record": "registered-model"}, Tags: all})
	}
	first := modelRecord("noversions", map[string]string{"mlflow.registeredModelDescription": "d", "stage": "dev"})
	modelRecord("noversions", map[string]string{"stage": "later"})
	modelRecord("versioned", map[string]string{"k": "v"})
	gone := modelRecord("deleted", map[string]string{"k": "v"})
	if _, err := db.SetRunLifecycle(ctx, "ws", gone.ID, atelier.LifecycleDeleted); err != nil {
		t.Fatal(err)
	}
	v := &atelier.ModelVersion{Name: "versioned", Files: []atelier.ModelFile{{Path: "m.pkl", Digest: strings.Repeat("a", 64), Size: 1}}}
	if err := db.CreateModelVersion(ctx, "ws", v); err != nil {
		t.Fatal(err)
	}
	// A logged model's record stays a run (it is not converted yet).
	logged := mustRun(atelier.RunCreate{Experiment: "tagged", Properties: map[string]string{"mlflow.record": "logged-model"}})

	// Back to before the conversion, with the records' new homes empty.
	conv := -1
	for i, m := range migrations {
		if strings.Contains(m, "CREATE TEMP TABLE record_runs") {
			conv = i
		}
	}
	// Only that migration runs again: later ones would create their tables twice.
	for _, stmt := range []string{`DELETE FROM experiment_tags`, `DELETE FROM model_tags`, `UPDATE models SET kept = 0, description = ''`,
		migrations[conv]} {
		if _, err := db.write.ExecContext(ctx, stmt); err != nil {
			t.Fatal(stmt, err)
		}
	}
	db.Close()
	if db, err = Open(ctx, path, Options{}); err != nil {
		t.Fatalf("reopening: %v", err)
	}
	defer db.Close()

	e, err := db.FindExperiment(ctx, "ws", "tagged")
	if err != nil || e.Tags["team"] != "a" || e.Tags["mlflow.note.content"] != "about" || e.RunCount != 2 {
		t.Errorf("experiment tagged = %+v, %v; want the first record's tags and 2 runs (training, the logged model)", e, err)
	}
	if e, err := db.FindExperiment(ctx, "ws", "empty"); err != nil || e.RunCount != 0 || e.LastRunAt != nil {
		t.Errorf("experiment empty = %+v, %v; want it kept with no runs", e, err)
	}
	m, err := db.FindModel(ctx, "ws", "noversions")
	if err != nil || m.Description != "d" || m.Tags["stage"] != "dev" || len(m.Tags) != 1 || m.VersionCount != 0 ||
		m.CreatedAt.UnixMilli() != first.CreatedAt.UnixMilli() {
		t.Errorf("model noversions = %+v, %v; want description d, tag stage=dev, no versions, created with its record", m, err)
	}
	if m, err := db.FindModel(ctx, "ws", "versioned"); err != nil || m.Tags["k"] != "v" || m.VersionCount != 1 {
		t.Errorf("model versioned = %+v, %v; want tag k=v and its version", m, err)
	}
	if _, err := db.FindModel(ctx, "ws", "deleted"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("model of a deleted record: %v, want ENOTFOUND", err)
	}
	page, err := db.ListRuns(ctx, "ws", atelier.RunQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range page.Runs {
		ids = append(ids, r.ID)
	}
	if len(ids) != 2 || !strings.Contains(strings.Join(ids, " "), real.ID) || !strings.Contains(strings.Join(ids, " "), logged.ID) {
		t.Errorf("runs after the upgrade = %v, want only %s and %s", ids, real.ID, logged.ID)
	}
	acts, err := db.ListActivities(ctx, "ws", atelier.ActivityFilter{})
	if err == nil && len(acts) != 2 {
		t.Errorf("activities after the upgrade = %d, want the 2 remaining runs'", len(acts))
	}
}
