package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/sqlite"
	"github.com/atelier-ml/atelier/storetest"
)

// MustOpen opens a store at path and closes it when the test ends.
func MustOpen(tb testing.TB, path string) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		tb.Fatalf("sqlite.Open(%s): %v", path, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// TestStore is the whole conformance suite, every part of it.
func TestStore(t *testing.T) {
	storetest.TestStore(t, func(t *testing.T, now func() time.Time) atelier.Store {
		db := MustOpen(t, filepath.Join(t.TempDir(), "atelier.db"))
		if now != nil {
			db.Now = now
		}
		return db
	})
}

// TestRunSearchPlans runs the search part of the suite under each plan of ListRuns: with a
// plan limit of 0 no scope is small and only conjuncts that match no run drive the search; with
// 4 and 12 some do, and ordering by a metric reads the runs with a value first.
func TestRunSearchPlans(t *testing.T) {
	for _, limit := range []int{0, 4, 12} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			storetest.TestQueries(t, func(t *testing.T) atelier.Store {
				db := MustOpen(t, filepath.Join(t.TempDir(), "atelier.db"))
				sqlite.SetPlanLimit(db, limit)
				return db
			})
		})
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "atelier.db")
	ctx := storetest.Context(t)
	db, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "FULL"})
	if err != nil {
		t.Fatal(err)
	}
	storetest.MustCreateWorkspace(t, db, "ws")
	run := storetest.MustCreateRun(t, db, "ws", atelier.RunCreate{Experiment: "e", Status: atelier.StatusRunning,
		Params: map[string]string{"lr": "0.1"}, Tags: map[string]string{"t": "v"}})
	storetest.MustLogMetrics(t, db, "ws", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{
		{Name: "loss", Value: 0.5}, {Name: "loss", Value: 0.25}}})
	if _, err := db.AppendLog(ctx, "ws", run.ID, "logs/out.txt", []byte("line 1\n")); err != nil {
		t.Fatal(err)
	}
	before := storetest.MustFindRun(t, db, "ws", run.ID)
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := db.FindWorkspace(ctx, "ws"); err == nil {
		t.Errorf("FindWorkspace on a closed store succeeded")
	}

	for range 2 { // reopening twice also proves the migrations run once
		db, err = sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		after := storetest.MustFindRun(t, db, "ws", run.ID)
		if after.Status != atelier.StatusRunning || after.Params["lr"] != "0.1" || after.Tags["t"] != "v" ||
			after.Metrics["loss"] != 0.25 || !after.CreatedAt.Equal(before.CreatedAt) {
			t.Errorf("after reopening, run = %+v, want %+v", after, before)
		}
		ser := storetest.MustHistory(t, db, "ws", run.ID, "loss", atelier.HistoryQuery{})
		if len(ser.Steps) != 2 || ser.Steps[1] != 1 {
			t.Errorf("after reopening, loss steps = %v", ser.Steps)
		}
		chunk, err := db.ReadLog(ctx, "ws", run.ID, "logs/out.txt", 0, 0)
		if err != nil || !bytes.Equal(chunk.Data, []byte("line 1\n")) {
			t.Errorf("after reopening, log = %+v, %v", chunk, err)
		}
		// Writes keep working on the reopened store, and auto steps continue.
		storetest.MustLogMetrics(t, db, "ws", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "loss2", Value: 1}}})
		if err := db.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "atelier.db")
	versions := map[int]bool{}
	for i := range 3 {
		db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		if i == 0 {
			storetest.MustCreateWorkspace(t, db, "ws")
		}
		if list, err := db.ListWorkspaces(context.Background()); err != nil || len(list) != 1 {
			t.Errorf("Open #%d: workspaces %v, %v; want the one created first", i+1, list, err)
		}
		db.Close()
		versions[userVersion(t, path)] = true
	}
	if len(versions) != 1 {
		t.Errorf("user_version changed across reopenings: %v", versions)
	}
	for v := range versions {
		if v < 1 {
			t.Errorf("user_version = %d after migrating, want ≥ 1", v)
		}
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "atelier.db")
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`PRAGMA user_version = 9999`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if db, err := sqlite.Open(context.Background(), path, sqlite.Options{}); err == nil {
		db.Close()
		t.Fatal("Open of a database from a newer atelier succeeded")
	}
}

func TestOpenOptions(t *testing.T) {
	for _, tc := range []struct {
		sync string
		ok   bool
	}{{"", true}, {"NORMAL", true}, {"full", true}, {"OFF", true}, {"fast", false}} {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), sqlite.Options{Synchronous: tc.sync})
		if (err == nil) != tc.ok {
			t.Errorf("Open(Synchronous %q) err = %v, want ok %v", tc.sync, err, tc.ok)
		}
		if db != nil {
			db.Close()
		}
	}
}

func userVersion(t *testing.T, path string) int {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var v int
	if err := raw.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
