package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/atelier-ml/atelier"
)

var _ atelier.WebServiceStore = (*DB)(nil)

func webServiceNotFound(workspace, name string) error {
	return atelier.Errorf(atelier.ENOTFOUND, "web service %q not found in workspace %q", name, workspace)
}

// serviceImageIDs resolves a service's images to their rows: each must exist and be built.
func (db *DB) serviceImageIDs(ctx context.Context, tx *txn, workspace string, images []atelier.ServiceImage) ([]int64, error) {
	var ids []int64
	for _, si := range images {
		id, img, err := db.findImage(ctx, tx, workspace, si.Ref())
		if err != nil {
			return nil, err
		}
		if img.Status != atelier.ImageSucceeded {
			return nil, atelier.Errorf(atelier.EINVALID, "image %s cannot be served: its build is %s (see 'atelier image show %s')", si.Image, img.Status, si.Image)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func setServiceImages(ctx context.Context, tx *txn, serviceID int64, imageIDs []int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM service_images WHERE service_id = ?`, serviceID); err != nil {
		return err
	}
	for _, id := range imageIDs {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO service_images (service_id, image_id) VALUES (?, ?)`, serviceID, id); err != nil {
			return err
		}
	}
	return nil
}

func setServiceTags(ctx context.Context, tx *txn, serviceID int64, tags map[string]string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM web_service_tags WHERE service_id = ?`, serviceID); err != nil {
		return err
	}
	for k, v := range tags {
		if _, err := tx.ExecContext(ctx, `INSERT INTO web_service_tags (service_id, key, value) VALUES (?, ?, ?)`, serviceID, k, v); err != nil {
			return err
		}
	}
	return nil
}

// CreateWebService stores a new service.
func (db *DB) CreateWebService(ctx context.Context, workspace string, svc *atelier.WebService, sealedKeys []byte) error {
	if err := atelier.ValidateServiceName(svc.Name); err != nil {
		return err
	}
	if svc.CreatedBy == "" {
		svc.CreatedBy = atelier.PrincipalName(ctx)
	}
	if svc.Tags == nil {
		svc.Tags = map[string]string{}
	}
	images, _ := json.Marshal(svc.Images)
	cfg, _ := json.Marshal(svc.Config)
	now := db.now()
	svc.Workspace, svc.CreatedAt, svc.UpdatedAt = workspace, now, now
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		imageIDs, err := db.serviceImageIDs(ctx, tx, workspace, svc.Images)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO web_services (workspace_id, name, description, target, images, config, state, error, keys, created_by, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, wsID, svc.Name, svc.Description, svc.Target, string(images), string(cfg),
			svc.State, svc.Error, sealedKeys, svc.CreatedBy, ms(now), ms(now))
		if isUniqueViolation(err) {
			return atelier.Errorf(atelier.ECONFLICT, "web service %q already exists in workspace %q: update it ('atelier service update') or delete it first", svc.Name, workspace)
		} else if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		if err := setServiceTags(ctx, tx, id, svc.Tags); err != nil {
			return err
		}
		return setServiceImages(ctx, tx, id, imageIDs)
	})
}

const webServiceColumns = `s.id, w.name, s.name, s.description, s.target, s.images, s.config, s.state, s.error, s.created_by, s.created_at, s.updated_at`
const webServiceFrom = ` FROM web_services s JOIN workspaces w ON w.id = s.workspace_id`

func scanWebService(row interface{ Scan(...any) error }) (int64, *atelier.WebService, error) {
	var svc atelier.WebService
	var id, created, updated int64
	var images, cfg string
	if err := row.Scan(&id, &svc.Workspace, &svc.Name, &svc.Description, &svc.Target, &images, &cfg, &svc.State, &svc.Error,
		&svc.CreatedBy, &created, &updated); err != nil {
		return 0, nil, err
	}
	if err := json.Unmarshal([]byte(images), &svc.Images); err != nil {
		return 0, nil, fmt.Errorf("web service %s: images: %w", svc.Name, err)
	}
	if err := json.Unmarshal([]byte(cfg), &svc.Config); err != nil {
		return 0, nil, fmt.Errorf("web service %s: config: %w", svc.Name, err)
	}
	svc.CreatedAt, svc.UpdatedAt = fromMS(created), fromMS(updated)
	svc.Tags = map[string]string{}
	return id, &svc, nil
}

func (db *DB) webServiceTags(ctx context.Context, q querier, ids map[int64]*atelier.WebService) error {
	tags := make(map[int64]map[string]string, len(ids))
	for id, svc := range ids {
		tags[id] = svc.Tags
	}
	return readTags(ctx, q, "web_service_tags", "service_id", tags)
}

func (db *DB) findWebService(ctx context.Context, q querier, workspace, name string) (int64, *atelier.WebService, error) {
	id, svc, err := scanWebService(q.QueryRowContext(ctx, `SELECT `+webServiceColumns+webServiceFrom+` WHERE w.name = ? AND s.name = ?`, workspace, name))
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := db.workspaceID(ctx, q, workspace); err != nil {
			return 0, nil, err
		}
		return 0, nil, webServiceNotFound(workspace, name)
	} else if err != nil {
		return 0, nil, err
	}
	return id, svc, db.webServiceTags(ctx, q, map[int64]*atelier.WebService{id: svc})
}

// FindWebService returns a service.
func (db *DB) FindWebService(ctx context.Context, workspace, name string) (*atelier.WebService, error) {
	_, svc, err := db.findWebService(ctx, db.read, workspace, name)
	return svc, err
}

// ListWebServices lists a workspace's services by name, or every workspace's.
func (db *DB) ListWebServices(ctx context.Context, workspace string) ([]*atelier.WebService, error) {
	query, args := `SELECT `+webServiceColumns+webServiceFrom+` ORDER BY w.name, s.name`, []any{}
	if workspace != "" {
		wsID, err := db.workspaceID(ctx, db.read, workspace)
		if err != nil {
			return nil, err
		}
		query = `SELECT ` + webServiceColumns + webServiceFrom + ` WHERE s.workspace_id = ? ORDER BY s.name`
		args = append(args, wsID)
	}
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.WebService{}
	ids := map[int64]*atelier.WebService{}
	for rows.Next() {
		id, svc, err := scanWebService(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, svc)
		ids[id] = svc
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	return list, db.webServiceTags(ctx, db.read, ids)
}

// UpdateWebService replaces a service's images, configuration, description, tags, state and
// error.
func (db *DB) UpdateWebService(ctx context.Context, workspace string, svc *atelier.WebService) error {
	images, _ := json.Marshal(svc.Images)
	cfg, _ := json.Marshal(svc.Config)
	now := db.now()
	return db.update(ctx, func(tx *txn) error {
		id, _, err := db.findWebService(ctx, tx, workspace, svc.Name)
		if err != nil {
			return err
		}
		imageIDs, err := db.serviceImageIDs(ctx, tx, workspace, svc.Images)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE web_services SET description = ?, target = ?, images = ?, config = ?, state = ?, error = ?, updated_at = ? WHERE id = ?`,
			svc.Description, svc.Target, string(images), string(cfg), svc.State, svc.Error, ms(now), id); err != nil {
			return err
		}
		svc.UpdatedAt = now
		if err := setServiceTags(ctx, tx, id, svc.Tags); err != nil {
			return err
		}
		return setServiceImages(ctx, tx, id, imageIDs)
	})
}

// SetWebServiceState records a service's state and error.
func (db *DB) SetWebServiceState(ctx context.Context, workspace, name string, state atelier.WebServiceState, msg string) error {
	return db.update(ctx, func(tx *txn) error {
		id, _, err := db.findWebService(ctx, tx, workspace, name)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE web_services SET state = ?, error = ? WHERE id = ?`, state, msg, id)
		return err
	})
}

// WebServiceKeys returns a service's sealed keys.
func (db *DB) WebServiceKeys(ctx context.Context, workspace, name string) ([]byte, error) {
	var keys []byte
	err := db.read.QueryRowContext(ctx, `SELECT s.keys`+webServiceFrom+` WHERE w.name = ? AND s.name = ?`, workspace, name).Scan(&keys)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, webServiceNotFound(workspace, name)
	}
	return keys, err
}

// SetWebServiceKeys replaces a service's sealed keys.
func (db *DB) SetWebServiceKeys(ctx context.Context, workspace, name string, sealed []byte) error {
	return db.update(ctx, func(tx *txn) error {
		id, _, err := db.findWebService(ctx, tx, workspace, name)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE web_services SET keys = ?, updated_at = ? WHERE id = ?`, sealed, ms(db.now()), id)
		return err
	})
}

// DeleteWebService removes a service (and its lease).
func (db *DB) DeleteWebService(ctx context.Context, workspace, name string) error {
	return db.update(ctx, func(tx *txn) error {
		id, _, err := db.findWebService(ctx, tx, workspace, name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE kind = ? AND id = ?`, atelier.LeaseKindService, atelier.ServiceLeaseID(workspace, name)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM web_services WHERE id = ?`, id)
		return err
	})
}
