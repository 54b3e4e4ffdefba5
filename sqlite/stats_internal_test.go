package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// TestUpgradeCountsRuns: a data directory from before experiment_stats gets its experiments'
// run counts and latest runs from the runs it holds.
func TestUpgradeCountsRuns(t *testing.T) {
	ctx := atelier.NewContextWithPrincipal(context.Background(), &atelier.Principal{Kind: atelier.PrincipalAdmin, Name: "admin"})
	path := filepath.Join(t.TempDir(), "atelier.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateWorkspace(ctx, &atelier.Workspace{Name: "ws"}); err != nil {
		t.Fatal(err)
	}
	var last *atelier.Run
	for i, exp := range []string{"a", "a", "a", "b"} {
		if last, err = db.CreateRun(ctx, "ws", atelier.RunCreate{Experiment: exp, Name: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	before := -1
	for i, m := range migrations {
		if strings.Contains(m, "CREATE TABLE experiment_stats") {
			before = i
		}
	}
	// The tables and columns of later migrations go too, or migrating again would find them.
	stmts := append([]string{`DROP TABLE experiment_stats`}, undoLater(before+1)...)
	for _, stmt := range append(stmts, fmt.Sprintf(`PRAGMA user_version = %d`, before)) {
		if _, err := db.write.ExecContext(ctx, stmt); err != nil {
			t.Fatal(stmt, err)
		}
	}
	db.Close()
	if db, err = Open(ctx, path, Options{}); err != nil {
		t.Fatalf("upgrading: %v", err)
	}
	defer db.Close()
	for name, want := range map[string]int64{"a": 3, "b": 1} {
		e, err := db.FindExperiment(ctx, "ws", name)
		if err != nil || e.RunCount != want || e.LastRunAt == nil {
			t.Errorf("experiment %s after the upgrade = %+v, %v; want %d runs and a latest run", name, e, err, want)
		}
	}
	if e, _ := db.FindExperiment(ctx, "ws", "b"); e != nil && e.LastRunAt != nil && !e.LastRunAt.Equal(last.CreatedAt) {
		t.Errorf("experiment b's latest run at %v, want %v", e.LastRunAt, last.CreatedAt)
	}
	// Runs created after the upgrade count on.
	if _, err := db.CreateRun(ctx, "ws", atelier.RunCreate{Experiment: "b"}); err != nil {
		t.Fatal(err)
	}
	if e, err := db.FindExperiment(ctx, "ws", "b"); err != nil || e.RunCount != 2 {
		t.Errorf("experiment b after one more run = %+v, %v; want 2 runs", e, err)
	}
}
