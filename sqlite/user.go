package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/atelier-ml/atelier"
)

// CreateUser inserts a user; ECONFLICT if the name is taken.
func (db *DB) CreateUser(ctx context.Context, u *atelier.User) error {
	if err := u.Validate(); err != nil {
		return err
	}
	if u.PasswordHash == "" {
		return atelier.Errorf(atelier.EINVALID, "user without a password hash")
	}
	u.CreatedAt = db.now()
	return db.update(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO users (name, password_hash, admin, created_at) VALUES (?, ?, ?, ?)`,
			u.Name, u.PasswordHash, u.Admin, ms(u.CreatedAt))
		if isUniqueViolation(err) {
			return atelier.Errorf(atelier.ECONFLICT, "user %q already exists", u.Name)
		}
		return err
	})
}

const userColumns = `name, password_hash, admin, created_at, disabled_at`

func scanUser(row interface{ Scan(...any) error }) (*atelier.User, error) {
	var u atelier.User
	var created int64
	var disabled sql.NullInt64
	if err := row.Scan(&u.Name, &u.PasswordHash, &u.Admin, &created, &disabled); err != nil {
		return nil, err
	}
	u.CreatedAt, u.DisabledAt = fromMS(created), fromNullMS(disabled)
	return &u, nil
}

// FindUser returns a user by name.
func (db *DB) FindUser(ctx context.Context, name string) (*atelier.User, error) {
	u, err := scanUser(db.read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "user %q not found", name)
	}
	return u, err
}

// ListUsers lists every user by name.
func (db *DB) ListUsers(ctx context.Context) ([]*atelier.User, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, u)
	}
	return list, rows.Err()
}

// DisableUser marks a user disabled, once: ECONFLICT if they already are, so the first date stays.
func (db *DB) DisableUser(ctx context.Context, name string) error {
	return db.update(ctx, func(tx *txn) error {
		var disabled sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT disabled_at FROM users WHERE name = ?`, name).Scan(&disabled)
		if errors.Is(err, sql.ErrNoRows) {
			return atelier.Errorf(atelier.ENOTFOUND, "user %q not found", name)
		} else if err != nil {
			return err
		}
		if disabled.Valid {
			return atelier.Errorf(atelier.ECONFLICT, "user %q is already disabled (since %s)", name, fromMS(disabled.Int64).Format("2006-01-02 15:04:05Z07:00"))
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET disabled_at = ? WHERE name = ?`, ms(db.now()), name)
		return err
	})
}

// PutMember adds a member or changes its role; m gets the role's canonical spelling and the
// date the membership began.
func (db *DB) PutMember(ctx context.Context, m *atelier.Member) error {
	role, err := atelier.ParseRole(string(m.Role))
	if err != nil {
		return err
	}
	now := db.now()
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, m.Workspace)
		if err != nil {
			return err
		}
		var exists int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE name = ?`, m.User).Scan(&exists); err != nil {
			return err
		} else if exists == 0 {
			return atelier.Errorf(atelier.ENOTFOUND, "user %q not found", m.User)
		}
		var created int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO members (workspace_id, user, role, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (workspace_id, user) DO UPDATE SET role = excluded.role RETURNING created_at`,
			wsID, m.User, role, ms(now)).Scan(&created); err != nil {
			return err
		}
		m.Role, m.CreatedAt = role, fromMS(created)
		return nil
	})
}

const memberColumns = `w.name, m.user, m.role, m.created_at`

func scanMembers(rows *sql.Rows, err error) ([]*atelier.Member, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.Member{}
	for rows.Next() {
		var m atelier.Member
		var created int64
		if err := rows.Scan(&m.Workspace, &m.User, &m.Role, &created); err != nil {
			return nil, err
		}
		m.CreatedAt = fromMS(created)
		list = append(list, &m)
	}
	return list, rows.Err()
}

// FindMember returns a user's membership of a workspace; ENOTFOUND when there is none.
func (db *DB) FindMember(ctx context.Context, workspace, user string) (*atelier.Member, error) {
	list, err := scanMembers(db.read.QueryContext(ctx, `SELECT `+memberColumns+` FROM members m JOIN workspaces w ON w.id = m.workspace_id
		WHERE w.name = ? AND m.user = ?`, workspace, user))
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "user %q is not a member of workspace %q", user, workspace)
	}
	return list[0], nil
}

// ListMembers lists a workspace's members by user name.
func (db *DB) ListMembers(ctx context.Context, workspace string) ([]*atelier.Member, error) {
	if _, err := db.workspaceID(ctx, db.read, workspace); err != nil {
		return nil, err
	}
	return scanMembers(db.read.QueryContext(ctx, `SELECT `+memberColumns+` FROM members m JOIN workspaces w ON w.id = m.workspace_id
		WHERE w.name = ? ORDER BY m.user`, workspace))
}

// ListMemberships lists a user's memberships by workspace name.
func (db *DB) ListMemberships(ctx context.Context, user string) ([]*atelier.Member, error) {
	return scanMembers(db.read.QueryContext(ctx, `SELECT `+memberColumns+` FROM members m JOIN workspaces w ON w.id = m.workspace_id
		WHERE m.user = ? ORDER BY w.name`, user))
}

// DeleteMember removes a user from a workspace.
func (db *DB) DeleteMember(ctx context.Context, workspace, user string) error {
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM members WHERE workspace_id = ? AND user = ?`, wsID, user)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return atelier.Errorf(atelier.ENOTFOUND, "user %q is not a member of workspace %q", user, workspace)
		}
		return nil
	})
}

// AppendAudit records a write. An entry already stored with its request's write (ID set, see
// atelier.PendingAudit) gets the status the request ended with.
func (db *DB) AppendAudit(ctx context.Context, e *atelier.AuditEntry) error {
	if e.ID != 0 {
		return db.update(ctx, func(tx *txn) error {
			res, err := tx.ExecContext(ctx, `UPDATE audit SET status = ? WHERE id = ?`, e.Status, e.ID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return atelier.Errorf(atelier.ENOTFOUND, "audit entry %d not found", e.ID)
			}
			return nil
		})
	}
	return db.AppendAudits(ctx, []*atelier.AuditEntry{e})
}

// AppendAudits records new writes in one transaction; those without a time are recorded now.
func (db *DB) AppendAudits(ctx context.Context, entries []*atelier.AuditEntry) error {
	now := db.now()
	for _, e := range entries {
		if e.Time.IsZero() {
			e.Time = now
		}
	}
	return db.update(ctx, func(tx *txn) error {
		for _, e := range entries {
			id, err := insertAudit(ctx, tx, e)
			if err != nil {
				return err
			}
			e.ID = id
		}
		return nil
	})
}

func insertAudit(ctx context.Context, tx *txn, e *atelier.AuditEntry) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO audit (time, workspace, user, kind, token_id, method, path, status, remote)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, ms(e.Time), e.Workspace, e.User, e.Kind, e.TokenID, e.Method, e.Path, e.Status, e.Remote)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// ListAudit lists a workspace's audit entries ("" for every workspace), newest first.
func (db *DB) ListAudit(ctx context.Context, workspace string, f atelier.AuditFilter) ([]*atelier.AuditEntry, error) {
	q := `SELECT id, time, workspace, user, kind, token_id, method, path, status, remote FROM audit WHERE 1=1`
	var args []any
	if workspace != "" {
		q += ` AND workspace = ?`
		args = append(args, workspace)
	}
	if f.User != "" {
		q += ` AND user = ?`
		args = append(args, f.User)
	}
	if f.Since != nil {
		q += ` AND time >= ?`
		args = append(args, ms(*f.Since))
	}
	limit := f.Limit
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	q += ` ORDER BY time DESC, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.AuditEntry{}
	for rows.Next() {
		var e atelier.AuditEntry
		var t int64
		if err := rows.Scan(&e.ID, &t, &e.Workspace, &e.User, &e.Kind, &e.TokenID, &e.Method, &e.Path, &e.Status, &e.Remote); err != nil {
			return nil, err
		}
		e.Time = fromMS(t)
		list = append(list, &e)
	}
	return list, rows.Err()
}
