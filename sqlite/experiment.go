package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/atelier-ml/atelier"
)

const experimentColumns = `e.id, w.name, e.name, e.description, e.archived, e.created_at, e.updated_at,
	coalesce((SELECT run_count FROM experiment_stats s WHERE s.experiment_id = e.id), 0),
	(SELECT last_run_at FROM experiment_stats s WHERE s.experiment_id = e.id)`

func scanExperiment(row interface{ Scan(...any) error }) (*atelier.Experiment, error) {
	var e atelier.Experiment
	var created, updated int64
	var last sql.NullInt64
	if err := row.Scan(&e.ID, &e.Workspace, &e.Name, &e.Description, &e.Archived, &created, &updated, &e.RunCount, &last); err != nil {
		return nil, err
	}
	e.CreatedAt, e.UpdatedAt, e.LastRunAt = fromMS(created), fromMS(updated), fromNullMS(last)
	return &e, nil
}

// FindExperiment returns an experiment by name.
func (db *DB) FindExperiment(ctx context.Context, workspace, name string) (*atelier.Experiment, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	return db.findExperiment(ctx, db.read, wsID, name)
}

func (db *DB) findExperiment(ctx context.Context, q querier, wsID int64, name string) (*atelier.Experiment, error) {
	e, err := scanExperiment(q.QueryRowContext(ctx, `SELECT `+experimentColumns+`
		FROM experiments e JOIN workspaces w ON w.id = e.workspace_id WHERE e.workspace_id = ? AND e.name = ?`, wsID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "experiment %q not found", name)
	}
	return e, err
}

// ListExperiments returns a workspace's experiments by name.
func (db *DB) ListExperiments(ctx context.Context, workspace string, f atelier.ExperimentFilter) ([]*atelier.Experiment, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	query := `SELECT ` + experimentColumns + ` FROM experiments e JOIN workspaces w ON w.id = e.workspace_id WHERE e.workspace_id = ?`
	args := []any{wsID}
	if !f.IncludeArchived {
		query += ` AND e.archived = 0`
	}
	if f.Name != "" {
		query += ` AND e.name = ?`
		args = append(args, f.Name)
	}
	if f.ID != 0 {
		query += ` AND e.id = ?`
		args = append(args, f.ID)
	}
	rows, err := db.read.QueryContext(ctx, query+` ORDER BY e.name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.Experiment{}
	for rows.Next() {
		e, err := scanExperiment(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, e)
	}
	return list, rows.Err()
}

// UpdateExperiment renames, describes, archives or restores an experiment.
func (db *DB) UpdateExperiment(ctx context.Context, workspace, name string, upd atelier.ExperimentUpdate) (*atelier.Experiment, error) {
	if upd.Name != nil {
		if err := atelier.ValidateExperimentName(*upd.Name); err != nil {
			return nil, err
		}
	}
	if upd.Description != nil && len(*upd.Description) > 4096 {
		return nil, atelier.Errorf(atelier.EINVALID, "experiment description is longer than 4096 characters")
	}
	var out *atelier.Experiment
	err := db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		e, err := db.findExperiment(ctx, tx, wsID, name)
		if err != nil {
			return err
		}
		if upd.Name != nil {
			e.Name = *upd.Name
		}
		if upd.Description != nil {
			e.Description = *upd.Description
		}
		if upd.Archived != nil {
			e.Archived = *upd.Archived
		}
		e.UpdatedAt = db.now()
		_, err = tx.ExecContext(ctx, `UPDATE experiments SET name = ?, description = ?, archived = ?, updated_at = ? WHERE id = ?`,
			e.Name, e.Description, e.Archived, ms(e.UpdatedAt), e.ID)
		if isUniqueViolation(err) {
			return atelier.Errorf(atelier.ECONFLICT, "experiment %q already exists", e.Name)
		}
		out = e
		return err
	})
	return out, err
}

// experimentID returns the id of the named experiment, creating it on first use.
func (db *DB) experimentID(ctx context.Context, tx *txn, wsID int64, name string) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM experiments WHERE workspace_id = ? AND name = ?`, wsID, name).Scan(&id)
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		return id, err
	}
	now := ms(db.now())
	res, err := tx.ExecContext(ctx, `INSERT INTO experiments (workspace_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)`, wsID, name, now, now)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// countRun adds a new run to its experiment's stats, in the run's transaction.
func countRun(ctx context.Context, tx *txn, expID, createdAt int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO experiment_stats (experiment_id, run_count, last_run_at) VALUES (?, 1, ?)
		ON CONFLICT (experiment_id) DO UPDATE SET run_count = run_count + 1, last_run_at = max(last_run_at, excluded.last_run_at)`,
		expID, createdAt)
	return err
}
