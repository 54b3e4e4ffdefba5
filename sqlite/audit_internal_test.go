package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

// TestAuditGoesWithTheWrite: a request's pending audit entry is written in its write's
// transaction, also when that transaction is a group's, and a write that fails (rolled back
// to its savepoint) leaves its entry to the request.
func TestAuditGoesWithTheWrite(t *testing.T) {
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
	write := func(path string, fail bool) (*atelier.PendingAudit, chan error) {
		p := atelier.NewPendingAudit(atelier.AuditEntry{Method: "POST", Path: path, Status: 200})
		done := make(chan error, 1)
		queued := len(db.writes)
		go func() {
			done <- db.update(atelier.NewContextWithAudit(bg, p), func(tx *txn) error {
				if _, err := tx.Exec(`INSERT INTO workspaces (name, created_at) VALUES (?, 0)`, path); err != nil {
					return err
				}
				if fail {
					return errors.New("refused")
				}
				return nil
			})
		}()
		for len(db.writes) == queued {
			time.Sleep(time.Millisecond)
		}
		return p, done
	}
	first, firstDone := write("/first", false)
	failed, failedDone := write("/failed", true)
	last, lastDone := write("/last", false)
	close(release)
	for _, tc := range []struct {
		path   string
		p      *atelier.PendingAudit
		done   chan error
		stored bool
	}{{"/first", first, firstDone, true}, {"/failed", failed, failedDone, false}, {"/last", last, lastDone, true}} {
		err := <-tc.done
		if (err == nil) != tc.stored {
			t.Errorf("write %s: %v", tc.path, err)
		}
		e, stored := tc.p.Finish()
		var n int
		if err := db.read.QueryRowContext(bg, `SELECT count(*) FROM audit WHERE path = ?`, tc.path).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if stored != tc.stored || (n == 1) != tc.stored || (e.ID != 0) != tc.stored {
			t.Errorf("write %s: entry stored %v (id %d, %d rows), want %v", tc.path, stored, e.ID, n, tc.stored)
		}
	}
}
