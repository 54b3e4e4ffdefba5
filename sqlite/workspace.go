package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/atelier-ml/atelier"
	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// CreateWorkspace inserts a workspace; ECONFLICT if the name is taken.
func (db *DB) CreateWorkspace(ctx context.Context, ws *atelier.Workspace) error {
	if err := ws.Validate(); err != nil {
		return err
	}
	ws.CreatedAt = db.now()
	if ws.CreatedBy == "" {
		ws.CreatedBy = atelier.PrincipalName(ctx)
	}
	return db.update(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO workspaces (name, description, created_by, created_at) VALUES (?, ?, ?, ?)`,
			ws.Name, ws.Description, ws.CreatedBy, ms(ws.CreatedAt))
		if isUniqueViolation(err) {
			return atelier.Errorf(atelier.ECONFLICT, "workspace %q already exists", ws.Name)
		} else if err != nil {
			return err
		}
		ws.ID, err = res.LastInsertId()
		return err
	})
}

const workspaceColumns = `w.id, w.name, w.description, w.created_by, w.created_at,
	(SELECT count(*) FROM runs r WHERE r.workspace_id = w.id)`

func scanWorkspace(row interface{ Scan(...any) error }) (*atelier.Workspace, error) {
	var ws atelier.Workspace
	var created int64
	if err := row.Scan(&ws.ID, &ws.Name, &ws.Description, &ws.CreatedBy, &created, &ws.RunCount); err != nil {
		return nil, err
	}
	ws.CreatedAt = fromMS(created)
	return &ws, nil
}

// FindWorkspace returns a workspace by name.
func (db *DB) FindWorkspace(ctx context.Context, name string) (*atelier.Workspace, error) {
	ws, err := scanWorkspace(db.read.QueryRowContext(ctx, `SELECT `+workspaceColumns+` FROM workspaces w WHERE w.name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "workspace %q not found", name)
	}
	return ws, err
}

// ListWorkspaces returns every workspace by name.
func (db *DB) ListWorkspaces(ctx context.Context) ([]*atelier.Workspace, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+workspaceColumns+` FROM workspaces w ORDER BY w.name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.Workspace{}
	for rows.Next() {
		ws, err := scanWorkspace(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, ws)
	}
	return list, rows.Err()
}

// DeleteWorkspace removes a workspace and (with force) everything in it.
func (db *DB) DeleteWorkspace(ctx context.Context, name string, force bool) error {
	return db.update(ctx, func(tx *txn) error {
		id, err := db.workspaceID(ctx, tx, name)
		if err != nil {
			return err
		}
		var runs int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM runs WHERE workspace_id = ?`, id).Scan(&runs); err != nil {
			return err
		}
		if runs > 0 && !force {
			return atelier.Errorf(atelier.ECONFLICT, "workspace %q holds %d runs: delete it with force to remove them too", name, runs)
		}
		// Runs reference each other (parent_id), so children go first via one statement that
		// does not check parents: parent_id has no foreign key.
		if _, err := tx.ExecContext(ctx, `DELETE FROM workspaces WHERE id = ?`, id); err != nil {
			return err
		}
		// Its image registry repositories are named by it, not keyed by its id: a workspace
		// made again under the name must not serve the old images.
		if err := deleteRegistryRepos(ctx, tx, name); err != nil {
			return err
		}
		tx.onCommit = append(tx.onCommit, func() { db.workspaces.forget(name) })
		db.runWorkspace.Range(func(k, v any) bool {
			if v.(int64) == id {
				db.runWorkspace.Delete(k)
			}
			return true
		})
		return nil
	})
}

// isUniqueViolation reports whether err is SQLite's refusal of a duplicate key (a UNIQUE or
// PRIMARY KEY constraint), by its extended result code.
func isUniqueViolation(err error) bool {
	var e *sqlitedrv.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}
