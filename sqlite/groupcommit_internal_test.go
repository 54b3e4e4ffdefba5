package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestGroupCommitInterruptedWriterFailsAlone groups three writes in one transaction; the middle
// one's context ends while its statement runs (a client hanging up mid-request). The others must
// be committed and acknowledged, and the middle one stored exactly when it is reported stored.
// modernc.org/sqlite interrupts the connection when a statement's context ends, and SQLite then
// rolls back the whole transaction, so without care the first write is lost and the last is
// committed but reported as failed. (The store lets a started write finish.)
func TestGroupCommitInterruptedWriterFailsAlone(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "atelier.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bg := context.Background()

	// Hold the writer so the next three writes queue up and form one group.
	started, release := make(chan struct{}), make(chan struct{})
	go db.update(bg, func(tx *txn) error { close(started); <-release; return nil })
	<-started
	insert := func(ctx context.Context, name string, slow bool) chan error {
		done := make(chan error, 1)
		queued := len(db.writes)
		go func() {
			done <- db.update(ctx, func(tx *txn) error {
				q := `INSERT INTO workspaces (name, created_at) VALUES (?, 0)`
				if slow { // runs until its context ends
					q = `INSERT INTO workspaces (name, created_at) SELECT ?, max(x) FROM (WITH RECURSIVE c(x) AS
						(SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000000) SELECT x FROM c)`
				}
				_, err := tx.ExecContext(ctx, q, name)
				return err
			})
		}()
		for len(db.writes) == queued {
			time.Sleep(time.Millisecond)
		}
		return done
	}
	first := insert(bg, "first", false)
	ctx, cancel := context.WithTimeout(bg, 200*time.Millisecond)
	defer cancel()
	interrupted := insert(ctx, "interrupted", true)
	last := insert(bg, "last", false)
	close(release)

	interruptedStored := 0
	if err := <-interrupted; err == nil {
		interruptedStored = 1
	}
	for name, done := range map[string]chan error{"first": first, "last": last} {
		if err := <-done; err != nil {
			t.Errorf("write %q grouped with an interrupted one failed: %v", name, err)
		}
	}
	for name, want := range map[string]int{"first": 1, "interrupted": interruptedStored, "last": 1} {
		var n int
		if err := db.read.QueryRowContext(bg, `SELECT count(*) FROM workspaces WHERE name = ?`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("workspace %q stored %d times, want %d", name, n, want)
		}
	}
}
