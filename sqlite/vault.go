package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/atelier-ml/atelier"
)

func secretNotFound(name string) error {
	return atelier.Errorf(atelier.ENOTFOUND, "secret %q not found", name)
}

// PutSecret creates a secret or replaces its sealed value; the first creation's date and
// author stay.
func (db *DB) PutSecret(ctx context.Context, workspace, name string, sealed []byte) (*atelier.Secret, error) {
	if err := atelier.ValidateSecretName(name); err != nil {
		return nil, err
	}
	if len(sealed) == 0 {
		return nil, atelier.Errorf(atelier.EINVALID, "secret %q: no sealed value", name)
	}
	by, now := atelier.PrincipalName(ctx), ms(db.now())
	var s *atelier.Secret
	err := db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO secrets (workspace_id, name, sealed, created_by, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (workspace_id, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at`,
			wsID, name, sealed, by, now, now); err != nil {
			return err
		}
		s, err = scanSecret(tx.QueryRowContext(ctx, `SELECT `+secretColumns+` FROM secrets WHERE workspace_id = ? AND name = ?`, wsID, name), workspace)
		return err
	})
	return s, err
}

const secretColumns = `name, created_by, created_at, updated_at`

func scanSecret(row interface{ Scan(...any) error }, workspace string) (*atelier.Secret, error) {
	s := &atelier.Secret{Workspace: workspace}
	var created, updated int64
	if err := row.Scan(&s.Name, &s.CreatedBy, &created, &updated); err != nil {
		return nil, err
	}
	s.CreatedAt, s.UpdatedAt = fromMS(created), fromMS(updated)
	return s, nil
}

// ListSecrets lists a workspace's secrets by name, without their values.
func (db *DB) ListSecrets(ctx context.Context, workspace string) ([]*atelier.Secret, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+secretColumns+` FROM secrets WHERE workspace_id = ? ORDER BY name`, wsID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.Secret{}
	for rows.Next() {
		s, err := scanSecret(rows, workspace)
		if err != nil {
			return nil, err
		}
		list = append(list, s)
	}
	return list, rows.Err()
}

// SealedSecret returns a secret's sealed value.
func (db *DB) SealedSecret(ctx context.Context, workspace, name string) ([]byte, error) {
	var sealed []byte
	err := db.read.QueryRowContext(ctx, `SELECT s.sealed FROM secrets s JOIN workspaces w ON w.id = s.workspace_id
		WHERE w.name = ? AND s.name = ?`, workspace, name).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := db.workspaceID(ctx, db.read, workspace); err != nil {
			return nil, err
		}
		return nil, secretNotFound(name)
	}
	return sealed, err
}

// DeleteSecret removes a secret.
func (db *DB) DeleteSecret(ctx context.Context, workspace, name string) error {
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM secrets WHERE workspace_id = ? AND name = ?`, wsID, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return secretNotFound(name)
		}
		return nil
	})
}
