package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/atelier-ml/atelier"
)

// PutActivity inserts or updates an activity.
func (db *DB) PutActivity(ctx context.Context, a *atelier.Activity) error {
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, a.Workspace)
		if err != nil {
			return err
		}
		return putActivity(ctx, tx, wsID, a)
	})
}

// putActivity upserts an activity inside a transaction, so a run and its activity change together.
func putActivity(ctx context.Context, tx *txn, wsID int64, a *atelier.Activity) error {
	{
		_, err := tx.ExecContext(ctx, `INSERT INTO activities (id, workspace_id, kind, target, status, percent, message, started_at, updated_at, ended_at, error)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET status = excluded.status, percent = excluded.percent, message = excluded.message,
				updated_at = excluded.updated_at, ended_at = excluded.ended_at, error = excluded.error`,
			a.ID, wsID, a.Kind, a.Target, a.Status, a.Percent, a.Message, ms(a.StartedAt), ms(a.UpdatedAt), nullMS(a.EndedAt), a.Error)
		return err
	}
}

const activityColumns = `a.id, w.name, a.kind, a.target, a.status, a.percent, a.message, a.started_at, a.updated_at, a.ended_at, a.error`

func scanActivity(row interface{ Scan(...any) error }) (*atelier.Activity, error) {
	var a atelier.Activity
	var started, updated int64
	var ended sql.NullInt64
	if err := row.Scan(&a.ID, &a.Workspace, &a.Kind, &a.Target, &a.Status, &a.Percent, &a.Message, &started, &updated, &ended, &a.Error); err != nil {
		return nil, err
	}
	a.StartedAt, a.UpdatedAt, a.EndedAt = fromMS(started), fromMS(updated), fromNullMS(ended)
	return &a, nil
}

// ListActivities lists a workspace's activities, newest first.
func (db *DB) ListActivities(ctx context.Context, workspace string, f atelier.ActivityFilter) ([]*atelier.Activity, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	query := `SELECT ` + activityColumns + ` FROM activities a JOIN workspaces w ON w.id = a.workspace_id WHERE a.workspace_id = ?`
	args := []any{wsID}
	if f.Kind != "" {
		query += ` AND a.kind = ?`
		args = append(args, f.Kind)
	}
	if f.Target != "" {
		query += ` AND a.target = ?`
		args = append(args, f.Target)
	}
	if f.Active {
		query += ` AND a.ended_at IS NULL`
	}
	limit := f.Limit
	if limit <= 0 || limit > atelier.MaxPageSize {
		limit = atelier.DefaultPageSize
	}
	rows, err := db.read.QueryContext(ctx, query+` ORDER BY a.started_at DESC, a.id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.Activity{}
	for rows.Next() {
		a, err := scanActivity(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, a)
	}
	return list, rows.Err()
}

// FindActivity returns one activity.
func (db *DB) FindActivity(ctx context.Context, workspace, id string) (*atelier.Activity, error) {
	a, err := scanActivity(db.read.QueryRowContext(ctx, `SELECT `+activityColumns+` FROM activities a JOIN workspaces w ON w.id = a.workspace_id
		WHERE a.id = ? AND w.name = ?`, id, workspace))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "activity %q not found", id)
	}
	return a, err
}
