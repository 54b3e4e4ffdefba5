package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/atelier-ml/atelier"
)

// datasetDefinition is what the definition column holds.
type datasetDefinition struct {
	Paths      []atelier.DatasetPath  `json:"paths"`
	Format     *atelier.DatasetFormat `json:"format,omitempty"`
	Transforms json.RawMessage        `json:"transforms,omitempty"`
	RunID      string                 `json:"run_id,omitempty"` // the producing run
}

const datasetColumns = `d.name, d.version, d.type, d.definition, d.description, d.tags, d.created_by, d.created_at`

func scanDataset(row interface{ Scan(...any) error }, workspace string) (*atelier.Dataset, error) {
	d := &atelier.Dataset{Workspace: workspace}
	var def, tags string
	var created int64
	if err := row.Scan(&d.Name, &d.Version, &d.Type, &def, &d.Description, &tags, &d.CreatedBy, &created); err != nil {
		return nil, err
	}
	var dd datasetDefinition
	if err := json.Unmarshal([]byte(def), &dd); err != nil {
		return nil, err
	}
	d.Paths, d.Format, d.Transforms, d.RunID = dd.Paths, dd.Format, dd.Transforms, dd.RunID
	if err := json.Unmarshal([]byte(tags), &d.Tags); err != nil || d.Tags == nil {
		d.Tags = map[string]string{}
	}
	d.CreatedAt = fromMS(created)
	return d, nil
}

// CreateDatasetVersion stores d as the next version of its name.
func (db *DB) CreateDatasetVersion(ctx context.Context, d *atelier.Dataset) error {
	def, err := json.Marshal(datasetDefinition{Paths: d.Paths, Format: d.Format, Transforms: d.Transforms, RunID: d.RunID})
	if err != nil {
		return err
	}
	if d.Tags == nil {
		d.Tags = map[string]string{}
	}
	tags, _ := json.Marshal(d.Tags)
	now := db.now()
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, d.Workspace)
		if err != nil {
			return err
		}
		var last int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM datasets WHERE workspace_id = ? AND name = ?`,
			wsID, d.Name).Scan(&last); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO datasets (workspace_id, name, version, type, definition, description, tags, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, wsID, d.Name, last+1, d.Type, string(def), d.Description, string(tags), d.CreatedBy, ms(now)); err != nil {
			return err
		}
		d.Version, d.CreatedAt = last+1, now
		return nil
	})
}

func (db *DB) findDataset(ctx context.Context, q querier, workspace, name string, version int) (*atelier.Dataset, error) {
	query := `SELECT ` + datasetColumns + ` FROM datasets d JOIN workspaces w ON w.id = d.workspace_id
		WHERE w.name = ? AND d.name = ? AND d.version = ?`
	args := []any{workspace, name, version}
	if version <= 0 {
		query = `SELECT ` + datasetColumns + ` FROM datasets d JOIN workspaces w ON w.id = d.workspace_id
		WHERE w.name = ? AND d.name = ? ORDER BY d.version DESC LIMIT 1`
		args = args[:2]
	}
	d, err := scanDataset(q.QueryRowContext(ctx, query, args...), workspace)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := db.workspaceID(ctx, q, workspace); err != nil {
			return nil, err
		}
		return nil, atelier.DatasetNotFound(workspace, name, version)
	}
	return d, err
}

// FindDataset returns a version (0: the latest).
func (db *DB) FindDataset(ctx context.Context, workspace, name string, version int) (*atelier.Dataset, error) {
	return db.findDataset(ctx, db.read, workspace, name, version)
}

func (db *DB) listDatasets(ctx context.Context, workspace, where string, args ...any) ([]*atelier.Dataset, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+datasetColumns+` FROM datasets d WHERE d.workspace_id = ? AND `+where+` ORDER BY d.name, d.version`,
		append([]any{wsID}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.Dataset{}
	for rows.Next() {
		d, err := scanDataset(rows, workspace)
		if err != nil {
			return nil, err
		}
		list = append(list, d)
	}
	return list, rows.Err()
}

// ListDatasets returns the latest version of each name, by name.
func (db *DB) ListDatasets(ctx context.Context, workspace string) ([]*atelier.Dataset, error) {
	return db.listDatasets(ctx, workspace, `d.version = (SELECT MAX(version) FROM datasets x WHERE x.workspace_id = d.workspace_id AND x.name = d.name)`)
}

// ListDatasetVersions returns the versions of a name, oldest first; ENOTFOUND when it has none.
func (db *DB) ListDatasetVersions(ctx context.Context, workspace, name string) ([]*atelier.Dataset, error) {
	list, err := db.listDatasets(ctx, workspace, `d.name = ?`, name)
	if err == nil && len(list) == 0 {
		return nil, atelier.DatasetNotFound(workspace, name, 0)
	}
	return list, err
}

// UpdateDataset changes a version's description and tags.
func (db *DB) UpdateDataset(ctx context.Context, workspace, name string, version int, upd atelier.DatasetUpdate) (*atelier.Dataset, error) {
	var out *atelier.Dataset
	err := db.update(ctx, func(tx *txn) error {
		d, err := db.findDataset(ctx, tx, workspace, name, version)
		if err != nil {
			return err
		}
		if upd.Description != nil {
			d.Description = *upd.Description
		}
		if upd.Tags != nil {
			d.Tags = upd.Tags
		}
		tags, _ := json.Marshal(d.Tags)
		if _, err := tx.ExecContext(ctx, `UPDATE datasets SET description = ?, tags = ?
			WHERE workspace_id = (SELECT id FROM workspaces WHERE name = ?) AND name = ? AND version = ?`,
			d.Description, string(tags), workspace, name, d.Version); err != nil {
			return err
		}
		out = d
		return nil
	})
	return out, err
}

// DeleteDataset deletes a version, or all of a name's versions with version 0, and their lineage.
func (db *DB) DeleteDataset(ctx context.Context, workspace, name string, version int) error {
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		q, args := `DELETE FROM datasets WHERE workspace_id = ? AND name = ? AND version = ?`, []any{wsID, name, version}
		if version <= 0 {
			q, args = `DELETE FROM datasets WHERE workspace_id = ? AND name = ?`, args[:2]
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return atelier.DatasetNotFound(workspace, name, version)
		}
		return nil
	})
}

// RecordDatasetRun records that a run consumed a dataset version.
func (db *DB) RecordDatasetRun(ctx context.Context, workspace string, use atelier.DatasetRun) error {
	now := db.now()
	return db.update(ctx, func(tx *txn) error {
		if _, err := db.findDataset(ctx, tx, workspace, use.Name, use.Version); err != nil {
			return err
		}
		if use.Version <= 0 {
			return atelier.Errorf(atelier.EINVALID, "version: a run consumes one version of a dataset")
		}
		if _, err := db.checkRun(ctx, tx, workspace, use.RunID); err != nil {
			return err
		}
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO dataset_runs (workspace_id, name, version, run_id, input, used_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, wsID, use.Name, use.Version, use.RunID, use.Input, ms(now))
		return err
	})
}

// DatasetRuns lists lineage: the runs of a version (0: of every version of name), or with
// name "" the datasets runID consumed.
func (db *DB) DatasetRuns(ctx context.Context, workspace, name string, version int, runID string) ([]*atelier.DatasetRun, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	q, args := `SELECT name, version, run_id, input, used_at FROM dataset_runs WHERE workspace_id = ?`, []any{wsID}
	if name != "" {
		q, args = q+` AND name = ?`, append(args, name)
	}
	if version > 0 {
		q, args = q+` AND version = ?`, append(args, version)
	}
	if runID != "" {
		q, args = q+` AND run_id = ?`, append(args, runID)
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY used_at, name, version, run_id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.DatasetRun{}
	for rows.Next() {
		u := &atelier.DatasetRun{}
		var used int64
		if err := rows.Scan(&u.Name, &u.Version, &u.RunID, &u.Input, &used); err != nil {
			return nil, err
		}
		u.UsedAt = fromMS(used)
		list = append(list, u)
	}
	return list, rows.Err()
}
