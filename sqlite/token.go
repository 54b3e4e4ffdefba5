package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/atelier-ml/atelier"
)

// CreateToken stores a token by the hash of its secret.
func (db *DB) CreateToken(ctx context.Context, t *atelier.Token) error {
	if t.Hash == "" {
		return atelier.Errorf(atelier.EINVALID, "token without hash")
	}
	return db.update(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens (id, name, kind, owner, workspace, run_id, hash, created_at, expires_at, revoked_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.ID, t.Name, t.Kind, t.Owner, t.Workspace, t.RunID, t.Hash,
			ms(t.CreatedAt), nullMS(t.ExpiresAt), nullMS(t.RevokedAt))
		if isUniqueViolation(err) {
			// Which of id and hash collided stays unsaid: the hash is of a secret.
			return atelier.Errorf(atelier.ECONFLICT, "token %q already exists", t.ID)
		}
		return err
	})
}

const tokenColumns = `id, name, kind, owner, workspace, run_id, hash, created_at, expires_at, revoked_at`

func scanToken(row interface{ Scan(...any) error }) (*atelier.Token, error) {
	var t atelier.Token
	var created int64
	var expires, revoked sql.NullInt64
	if err := row.Scan(&t.ID, &t.Name, &t.Kind, &t.Owner, &t.Workspace, &t.RunID, &t.Hash, &created, &expires, &revoked); err != nil {
		return nil, err
	}
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromMS(created), fromNullMS(expires), fromNullMS(revoked)
	return &t, nil
}

// FindTokenByHash looks a token up by the hash of its secret.
func (db *DB) FindTokenByHash(ctx context.Context, hash string) (*atelier.Token, error) {
	t, err := scanToken(db.read.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, atelier.Errorf(atelier.EUNAUTHORIZED, "invalid token")
	}
	return t, err
}

// ListTokens lists every token (without secrets).
func (db *DB) ListTokens(ctx context.Context) ([]*atelier.Token, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, t)
	}
	return list, rows.Err()
}

// RevokeToken marks a token revoked.
func (db *DB) RevokeToken(ctx context.Context, id string) error {
	return db.update(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, ms(db.now()), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return atelier.Errorf(atelier.ENOTFOUND, "token %q not found or already revoked", id)
		}
		return nil
	})
}
