package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// TestModelVersionCount: a model's version count, kept in its row as versions are added and
// deleted, is what counting its versions gives, and a data directory from before the count
// was kept gets its models counted when it is upgraded.
func TestModelVersionCount(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "atelier.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	if err := db.CreateWorkspace(ctx, &atelier.Workspace{Name: "ws"}); err != nil {
		t.Fatal(err)
	}
	create := func(name string, n int) {
		for i := range n {
			v := &atelier.ModelVersion{Name: name, Files: []atelier.ModelFile{{Path: "m.pkl", Digest: fmt.Sprintf("%064x", i), Size: 1}}}
			if err := db.CreateModelVersion(ctx, "ws", v); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(when, name string, count, latest int64) {
		t.Helper()
		m, err := db.FindModel(ctx, "ws", name)
		if err != nil {
			t.Fatalf("%s: FindModel(%s): %v", when, name, err)
		}
		var counted int64
		if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM model_versions v JOIN models m ON m.id = v.model_id WHERE m.name = ?`, name).Scan(&counted); err != nil {
			t.Fatal(err)
		}
		if m.VersionCount != count || counted != count || m.LatestVersion != latest {
			t.Fatalf("%s: %s has %d versions (%d counted), latest %d; want %d, latest %d", when, name, m.VersionCount, counted, m.LatestVersion, count, latest)
		}
	}
	create("a", 3)
	create("b", 2)
	check("created", "a", 3, 3)
	for _, v := range []int64{2, 3} {
		if err := db.DeleteModelVersion(ctx, "ws", atelier.ModelRef{Name: "a", Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	check("two deleted", "a", 1, 1)
	check("two deleted", "b", 2, 2)
	if err := db.DeleteModelVersion(ctx, "ws", atelier.ModelRef{Name: "a", Version: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FindModel(ctx, "ws", "a"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Fatalf("FindModel of a model whose versions are all deleted: %v, want ENOTFOUND", err)
	}
	create("a", 1)
	check("made again", "a", 1, 4)
	if err := db.DeleteModel(ctx, "ws", "b"); err != nil {
		t.Fatal(err)
	}
	create("b", 1)
	check("deleted and made again", "b", 1, 1)

	// Back to before the count was kept, its column gone; the upgrade counts.
	var before int
	for i, m := range migrations {
		if strings.Contains(m, "ADD COLUMN version_count") {
			before = i
		}
	}
	for _, stmt := range append(undoLater(before), fmt.Sprintf(`PRAGMA user_version = %d`, before)) {
		if _, err := db.write.ExecContext(ctx, stmt); err != nil {
			t.Fatal(stmt, err)
		}
	}
	// A version written by an atelier from before, which kept no count.
	if _, err := db.write.ExecContext(ctx, `INSERT INTO model_versions (model_id, workspace_id, version, file_count, size, created_at, updated_at)
		SELECT id, workspace_id, 10, 0, 0, 0, 0 FROM models WHERE name = 'b'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(ctx, path, Options{}); err != nil {
		t.Fatalf("upgrading: %v", err)
	}
	check("upgraded", "a", 1, 4)
	check("upgraded", "b", 2, 10)
}
