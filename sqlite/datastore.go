package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/atelier-ml/atelier"
)

// datastoreConfig is the configuration column: the non-secret fields, as JSON, so a new field
// needs no migration.
type datastoreConfig struct {
	Path      string `json:"path,omitempty"`
	Endpoint  string `json:"endpoint,omitempty"`
	Region    string `json:"region,omitempty"`
	Bucket    string `json:"bucket,omitempty"`
	Account   string `json:"account,omitempty"`
	Container string `json:"container,omitempty"`
	Prefix    string `json:"prefix,omitempty"`
	PathStyle bool   `json:"path_style,omitempty"`
}

func datastoreNotFound(name string) error {
	return atelier.Errorf(atelier.ENOTFOUND, "datastore %q not found", name)
}

// CreateDatastore stores a datastore. The first of a workspace becomes its default.
func (db *DB) CreateDatastore(ctx context.Context, workspace string, d *atelier.Datastore) error {
	if err := atelier.ValidateName("datastore", d.Name); err != nil {
		return err
	}
	if d.CreatedBy == "" {
		d.CreatedBy = atelier.PrincipalName(ctx)
	}
	if d.Credentials == nil {
		d.Credentials = []string{}
	}
	cfg, _ := json.Marshal(datastoreConfig{Path: d.Path, Endpoint: d.Endpoint, Region: d.Region, Bucket: d.Bucket,
		Account: d.Account, Container: d.Container, Prefix: d.Prefix, PathStyle: d.PathStyle})
	creds, _ := json.Marshal(d.Credentials)
	now := db.now()
	d.Workspace, d.CreatedAt, d.UpdatedAt = workspace, now, now
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		if !d.IsDefault {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM datastores WHERE workspace_id = ? AND is_default`, wsID).Scan(&n); err != nil {
				return err
			}
			d.IsDefault = n == 0
		} else if _, err := tx.ExecContext(ctx, `UPDATE datastores SET is_default = 0 WHERE workspace_id = ? AND is_default`, wsID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO datastores (workspace_id, name, kind, is_default, config, credentials, sealed, created_by, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, wsID, d.Name, d.Kind, d.IsDefault, string(cfg), string(creds), d.Sealed, d.CreatedBy, ms(now), ms(now))
		if isUniqueViolation(err) {
			return atelier.Errorf(atelier.ECONFLICT, "datastore %q already exists", d.Name)
		}
		return err
	})
}

const datastoreColumns = `d.name, d.kind, d.is_default, d.config, d.credentials, d.sealed, d.created_by, d.created_at, d.updated_at`

func scanDatastore(row interface{ Scan(...any) error }, workspace string) (*atelier.Datastore, error) {
	d := &atelier.Datastore{Workspace: workspace}
	var cfgJSON, credsJSON string
	var created, updated int64
	if err := row.Scan(&d.Name, &d.Kind, &d.IsDefault, &cfgJSON, &credsJSON, &d.Sealed, &d.CreatedBy, &created, &updated); err != nil {
		return nil, err
	}
	var cfg datastoreConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return nil, err
	}
	d.Path, d.Endpoint, d.Region, d.Bucket = cfg.Path, cfg.Endpoint, cfg.Region, cfg.Bucket
	d.Account, d.Container, d.Prefix, d.PathStyle = cfg.Account, cfg.Container, cfg.Prefix, cfg.PathStyle
	if err := json.Unmarshal([]byte(credsJSON), &d.Credentials); err != nil || d.Credentials == nil {
		d.Credentials = []string{}
	}
	d.CreatedAt, d.UpdatedAt = fromMS(created), fromMS(updated)
	return d, nil
}

func (db *DB) findDatastore(ctx context.Context, q querier, workspace, name string) (*atelier.Datastore, error) {
	d, err := scanDatastore(q.QueryRowContext(ctx, `SELECT `+datastoreColumns+` FROM datastores d JOIN workspaces w ON w.id = d.workspace_id
		WHERE w.name = ? AND d.name = ?`, workspace, name), workspace)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := db.workspaceID(ctx, q, workspace); err != nil {
			return nil, err
		}
		return nil, datastoreNotFound(name)
	}
	return d, err
}

// FindDatastore returns a datastore with its sealed credentials.
func (db *DB) FindDatastore(ctx context.Context, workspace, name string) (*atelier.Datastore, error) {
	return db.findDatastore(ctx, db.read, workspace, name)
}

// ListDatastores returns a workspace's datastores by name.
func (db *DB) ListDatastores(ctx context.Context, workspace string) ([]*atelier.Datastore, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+datastoreColumns+` FROM datastores d WHERE d.workspace_id = ? ORDER BY d.name`, wsID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.Datastore{}
	for rows.Next() {
		d, err := scanDatastore(rows, workspace)
		if err != nil {
			return nil, err
		}
		list = append(list, d)
	}
	return list, rows.Err()
}

// UpdateDatastoreCredentials replaces the sealed credentials.
func (db *DB) UpdateDatastoreCredentials(ctx context.Context, workspace, name string, sealed []byte, names []string) (*atelier.Datastore, error) {
	if names == nil {
		names = []string{}
	}
	creds, _ := json.Marshal(names)
	var d *atelier.Datastore
	err := db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE datastores SET sealed = ?, credentials = ?, updated_at = ? WHERE workspace_id = ? AND name = ?`,
			sealed, string(creds), ms(db.now()), wsID, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return datastoreNotFound(name)
		}
		d, err = db.findDatastore(ctx, tx, workspace, name)
		return err
	})
	return d, err
}

// SetDefaultDatastore makes a datastore the workspace's default.
func (db *DB) SetDefaultDatastore(ctx context.Context, workspace, name string) (*atelier.Datastore, error) {
	var d *atelier.Datastore
	err := db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		if _, err := db.findDatastore(ctx, tx, workspace, name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE datastores SET is_default = 0 WHERE workspace_id = ? AND is_default AND name != ?`, wsID, name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE datastores SET is_default = 1 WHERE workspace_id = ? AND name = ?`, wsID, name); err != nil {
			return err
		}
		d, err = db.findDatastore(ctx, tx, workspace, name)
		return err
	})
	return d, err
}

// DeleteDatastore removes a datastore. Removing the default needs force, and fallback (which
// must exist) becomes the default.
func (db *DB) DeleteDatastore(ctx context.Context, workspace, name string, force bool, fallback string) error {
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		d, err := db.findDatastore(ctx, tx, workspace, name)
		if err != nil {
			return err
		}
		if d.IsDefault {
			if !force {
				return atelier.Errorf(atelier.ECONFLICT, "datastore %q is the workspace's default: make another one the default first, or delete it with force (%q becomes the default)", name, fallback)
			}
			if fallback == name {
				return atelier.Errorf(atelier.ECONFLICT, "datastore %q cannot be deleted", name)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM datastores WHERE workspace_id = ? AND name = ?`, wsID, name); err != nil {
			return err
		}
		if d.IsDefault {
			res, err := tx.ExecContext(ctx, `UPDATE datastores SET is_default = 1 WHERE workspace_id = ? AND name = ?`, wsID, fallback)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return atelier.Errorf(atelier.ECONFLICT, "datastore %q is the default and %q, which would replace it, does not exist", name, fallback)
			}
		}
		return nil
	})
}

// SaveDatastoreDigest keeps the digest of a cloud object.
func (db *DB) SaveDatastoreDigest(ctx context.Context, workspace, name, path string, d atelier.DatastoreDigest) error {
	return db.update(ctx, func(tx *txn) error {
		id, err := datastoreID(ctx, tx, workspace, name)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO datastore_digests (datastore_id, path, etag, sha256) VALUES (?, ?, ?, ?)
			ON CONFLICT (datastore_id, path) DO UPDATE SET etag = excluded.etag, sha256 = excluded.sha256`, id, path, d.ETag, d.SHA256)
		return err
	})
}

// DatastoreDigests returns the digests kept for paths.
func (db *DB) DatastoreDigests(ctx context.Context, workspace, name string, paths []string) (map[string]atelier.DatastoreDigest, error) {
	id, err := datastoreID(ctx, db.read, workspace, name)
	if err != nil {
		return nil, err
	}
	// The paths as one JSON array (as attachQuery does): one statement however many.
	list, err := json.Marshal(paths)
	if err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT path, etag, sha256 FROM datastore_digests
		WHERE datastore_id = ? AND path IN (SELECT value FROM json_each(?))`, id, string(list))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]atelier.DatastoreDigest{}
	for rows.Next() {
		var p string
		var d atelier.DatastoreDigest
		if err := rows.Scan(&p, &d.ETag, &d.SHA256); err != nil {
			return nil, err
		}
		out[p] = d
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func datastoreID(ctx context.Context, q querier, workspace, name string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT d.id FROM datastores d JOIN workspaces w ON w.id = d.workspace_id
		WHERE w.name = ? AND d.name = ?`, workspace, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, datastoreNotFound(name)
	}
	return id, err
}

// insertRunData records a run's lineage.
func insertRunData(ctx context.Context, tx *txn, wsID int64, runID string, refs []atelier.DataReference) error {
	for _, r := range refs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO run_data (run_id, workspace_id, name, datastore, path, mode) VALUES (?, ?, ?, ?, ?, ?)`,
			runID, wsID, r.Name, r.Datastore, r.Path, r.Mode); err != nil {
			if isUniqueViolation(err) {
				return atelier.Errorf(atelier.EINVALID, "data name %q is given twice", r.Name)
			}
			return err
		}
	}
	return nil
}

// DatastoreRuns returns the newest runs whose lineage names a datastore, and their count.
func (db *DB) DatastoreRuns(ctx context.Context, workspace, name string, limit int) ([]string, int, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, 0, err
	}
	var total int
	if err := db.read.QueryRowContext(ctx, `SELECT count(DISTINCT run_id) FROM run_data WHERE workspace_id = ? AND datastore = ?`,
		wsID, name).Scan(&total); err != nil {
		return nil, 0, err
	}
	ids := []string{}
	if total == 0 || limit <= 0 {
		return ids, total, nil
	}
	rows, err := db.read.QueryContext(ctx, `SELECT r.id FROM runs r WHERE r.id IN
		(SELECT run_id FROM run_data WHERE workspace_id = ? AND datastore = ?) ORDER BY r.created_at DESC, r.id DESC LIMIT ?`, wsID, name, limit)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, 0, err
		}
		ids = append(ids, id)
	}
	return ids, total, rows.Err()
}
