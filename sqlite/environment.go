package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/atelier-ml/atelier"
)

const environmentColumns = `e.name, e.version, e.spec, e.spec_hash, e.description, e.tags, e.created_by, e.created_at`

func scanEnvironment(row interface{ Scan(...any) error }, workspace string) (*atelier.Environment, error) {
	e := &atelier.Environment{Workspace: workspace}
	var spec, tags string
	var created int64
	if err := row.Scan(&e.Name, &e.Version, &spec, &e.SpecHash, &e.Description, &tags, &e.CreatedBy, &created); err != nil {
		return nil, err
	}
	e.Spec = json.RawMessage(spec)
	if err := json.Unmarshal([]byte(tags), &e.Tags); err != nil || e.Tags == nil {
		e.Tags = map[string]string{}
	}
	e.CreatedAt = fromMS(created)
	return e, nil
}

// CreateEnvironmentVersion stores e as the next version of its name.
func (db *DB) CreateEnvironmentVersion(ctx context.Context, e *atelier.Environment) error {
	if e.Tags == nil {
		e.Tags = map[string]string{}
	}
	tags, _ := json.Marshal(e.Tags)
	now := db.now()
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, e.Workspace)
		if err != nil {
			return err
		}
		var last int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM environments WHERE workspace_id = ? AND name = ?`,
			wsID, e.Name).Scan(&last); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO environments (workspace_id, name, version, spec, spec_hash, description, tags, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, wsID, e.Name, last+1, string(e.Spec), e.SpecHash, e.Description, string(tags), e.CreatedBy, ms(now)); err != nil {
			return err
		}
		e.Version, e.CreatedAt = last+1, now
		return nil
	})
}

// FindEnvironment returns a version (0: the latest).
func (db *DB) FindEnvironment(ctx context.Context, workspace, name string, version int) (*atelier.Environment, error) {
	query := `SELECT ` + environmentColumns + ` FROM environments e JOIN workspaces w ON w.id = e.workspace_id
		WHERE w.name = ? AND e.name = ? AND e.version = ?`
	args := []any{workspace, name, version}
	if version <= 0 {
		query = `SELECT ` + environmentColumns + ` FROM environments e JOIN workspaces w ON w.id = e.workspace_id
		WHERE w.name = ? AND e.name = ? ORDER BY e.version DESC LIMIT 1`
		args = args[:2]
	}
	e, err := scanEnvironment(db.read.QueryRowContext(ctx, query, args...), workspace)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := db.workspaceID(ctx, db.read, workspace); err != nil {
			return nil, err
		}
		return nil, atelier.EnvironmentNotFound(workspace, name, version)
	}
	return e, err
}

func (db *DB) listEnvironments(ctx context.Context, workspace, where string, args ...any) ([]*atelier.Environment, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+environmentColumns+` FROM environments e WHERE e.workspace_id = ? AND `+where+` ORDER BY e.name, e.version`,
		append([]any{wsID}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.Environment{}
	for rows.Next() {
		e, err := scanEnvironment(rows, workspace)
		if err != nil {
			return nil, err
		}
		list = append(list, e)
	}
	return list, rows.Err()
}

// ListEnvironments returns the latest version of each name, by name.
func (db *DB) ListEnvironments(ctx context.Context, workspace string) ([]*atelier.Environment, error) {
	return db.listEnvironments(ctx, workspace, `e.version = (SELECT MAX(version) FROM environments x WHERE x.workspace_id = e.workspace_id AND x.name = e.name)`)
}

// ListEnvironmentVersions returns the versions of a name, oldest first; ENOTFOUND when none.
func (db *DB) ListEnvironmentVersions(ctx context.Context, workspace, name string) ([]*atelier.Environment, error) {
	list, err := db.listEnvironments(ctx, workspace, `e.name = ?`, name)
	if err == nil && len(list) == 0 {
		return nil, atelier.EnvironmentNotFound(workspace, name, 0)
	}
	return list, err
}

// DeleteEnvironment deletes a version, or every version with version 0.
func (db *DB) DeleteEnvironment(ctx context.Context, workspace, name string, version int) error {
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		q, args := `DELETE FROM environments WHERE workspace_id = ? AND name = ? AND version = ?`, []any{wsID, name, version}
		if version <= 0 {
			q, args = `DELETE FROM environments WHERE workspace_id = ? AND name = ?`, args[:2]
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return atelier.EnvironmentNotFound(workspace, name, version)
		}
		return nil
	})
}
