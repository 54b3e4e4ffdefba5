package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/atelier-ml/atelier"
)

var _ atelier.LeaseStore = (*DB)(nil)

// ClaimRuns moves the oldest runs queued on a compute target to Preparing and leases them to
// owner, in one transaction.
func (db *DB) ClaimRuns(ctx context.Context, workspace, compute, owner string, limit int, expires time.Time) ([]*atelier.Run, error) {
	if owner == "" {
		return nil, atelier.Errorf(atelier.EINVALID, "a lease needs an owner")
	}
	// The controller asks every second: an empty queue costs a read, not a write transaction.
	var queued int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM runs WHERE status = 'Queued' AND compute = ? LIMIT 1)`, compute).Scan(&queued); err != nil || queued == 0 {
		return nil, err
	}
	var out []*atelier.Run
	err := db.update(ctx, func(tx *txn) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT r.id, w.name FROM runs r JOIN workspaces w ON w.id = r.workspace_id
			WHERE r.status = 'Queued' AND r.compute = ? AND (? = '' OR w.name = ?) ORDER BY r.created_at, r.id LIMIT ?`, compute, workspace, workspace, limit)
		if err != nil {
			return err
		}
		var ids [][2]string
		for rows.Next() {
			var id, ws string
			if err := rows.Scan(&id, &ws); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, [2]string{id, ws})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range ids {
			run, err := db.updateRunStatus(ctx, tx, r[1], r[0], atelier.RunStatusUpdate{Status: atelier.StatusPreparing})
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO leases (kind, id, workspace, owner, expires, handle) VALUES (?, ?, ?, ?, ?, '')
				ON CONFLICT (kind, id) DO UPDATE SET workspace = excluded.workspace, owner = excluded.owner, expires = excluded.expires, handle = ''`,
				atelier.LeaseKindRun, run.ID, run.Workspace, owner, ms(expires)); err != nil {
				return err
			}
			out = append(out, run)
		}
		return nil
	})
	return out, err
}

// AcquireLease takes a lease that is free, the caller's, expired, or held by from.
func (db *DB) AcquireLease(ctx context.Context, l *atelier.Lease, now time.Time, from string) (*atelier.Lease, error) {
	if l.Owner == "" || l.Kind == "" || l.ID == "" {
		return nil, atelier.Errorf(atelier.EINVALID, "a lease needs a kind, an id and an owner")
	}
	var out *atelier.Lease
	err := db.update(ctx, func(tx *txn) error {
		cur, err := findLease(ctx, tx, l.Kind, l.ID)
		if err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND {
			return err
		}
		if cur != nil && cur.Owner != l.Owner && !cur.Expires.Before(now) && (from == "" || cur.Owner != from) {
			return atelier.Errorf(atelier.ECONFLICT, "%s %s is held by %s until %s", l.Kind, l.ID, cur.Owner, cur.Expires.UTC().Format(time.RFC3339Nano))
		}
		handle, ws := l.Handle, l.Workspace
		if cur != nil && handle == "" {
			handle = cur.Handle
		}
		if cur != nil && ws == "" {
			ws = cur.Workspace
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO leases (kind, id, workspace, owner, expires, handle) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (kind, id) DO UPDATE SET workspace = excluded.workspace, owner = excluded.owner, expires = excluded.expires, handle = excluded.handle`,
			l.Kind, l.ID, ws, l.Owner, ms(l.Expires), handle); err != nil {
			return err
		}
		out = &atelier.Lease{Kind: l.Kind, ID: l.ID, Workspace: ws, Owner: l.Owner, Expires: l.Expires.UTC().Truncate(time.Millisecond), Handle: handle}
		return nil
	})
	return out, err
}

// RenewLeases extends the leases of kind owner holds.
func (db *DB) RenewLeases(ctx context.Context, kind, owner string, expires time.Time) (int, error) {
	var n int64
	err := db.update(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE leases SET expires = ? WHERE owner = ? AND kind = ?`, ms(expires), owner, kind)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// SetLeaseHandle records the handle of work owner holds.
func (db *DB) SetLeaseHandle(ctx context.Context, kind, id, owner, handle string) error {
	return db.update(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE leases SET handle = ? WHERE kind = ? AND id = ? AND owner = ?`, handle, kind, id, owner)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notHeld(ctx, tx, kind, id, owner)
		}
		return nil
	})
}

// ListLeases lists the leases of a kind, by id.
func (db *DB) ListLeases(ctx context.Context, kind string) ([]*atelier.Lease, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT kind, id, workspace, owner, expires, handle FROM leases WHERE kind = ? ORDER BY id`, kind)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.Lease{}
	for rows.Next() {
		l, err := scanLease(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, l)
	}
	return list, rows.Err()
}

// ReleaseLease deletes a lease owner holds.
func (db *DB) ReleaseLease(ctx context.Context, kind, id, owner string) error {
	return db.update(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE kind = ? AND id = ? AND owner = ?`, kind, id, owner)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if err := notHeld(ctx, tx, kind, id, owner); atelier.ErrorCode(err) != atelier.ENOTFOUND {
				return err
			}
		}
		return nil
	})
}

// notHeld explains why owner could not change a lease: there is none, or another holds it.
func notHeld(ctx context.Context, q querier, kind, id, owner string) error {
	cur, err := findLease(ctx, q, kind, id)
	if err != nil {
		return err
	}
	return atelier.Errorf(atelier.ECONFLICT, "%s %s is held by %s, not %s", kind, id, cur.Owner, owner)
}

func findLease(ctx context.Context, q querier, kind, id string) (*atelier.Lease, error) {
	l, err := scanLease(q.QueryRowContext(ctx, `SELECT kind, id, workspace, owner, expires, handle FROM leases WHERE kind = ? AND id = ?`, kind, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "%s %s has no lease", kind, id)
	}
	return l, err
}

func scanLease(row interface{ Scan(...any) error }) (*atelier.Lease, error) {
	var l atelier.Lease
	var expires int64
	if err := row.Scan(&l.Kind, &l.ID, &l.Workspace, &l.Owner, &expires, &l.Handle); err != nil {
		return nil, err
	}
	l.Expires = time.UnixMilli(expires).UTC()
	return &l, nil
}
