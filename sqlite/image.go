package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/atelier-ml/atelier"
)

var _ atelier.ImageStore = (*DB)(nil)

// imageSpec is what an image is built from, kept as one JSON column.
type imageSpec struct {
	Models       []atelier.ImageModel `json:"models"`
	EntryScript  string               `json:"entry_script"`
	SnapshotID   string               `json:"snapshot_id"`
	Requirements string               `json:"requirements,omitempty"`
	Conda        string               `json:"conda,omitempty"`
	Base         string               `json:"base,omitempty"`
}

// maxImageLog caps an image's build log; beyond it the log keeps its end.
const maxImageLog = 1 << 20

const imageColumns = `i.id, w.name, i.name, i.version, i.description, i.status, i.error, i.spec, i.digest, i.size, i.layers,
	i.created_by, i.created_at, i.started_at, i.ended_at`

const imageFrom = ` FROM images i JOIN workspaces w ON w.id = i.workspace_id`

func scanImage(row interface{ Scan(...any) error }) (int64, *atelier.Image, error) {
	var img atelier.Image
	var id, created int64
	var started, ended sql.NullInt64
	var spec, layers string
	if err := row.Scan(&id, &img.Workspace, &img.Name, &img.Version, &img.Description, &img.Status, &img.Error, &spec,
		&img.Digest, &img.Size, &layers, &img.CreatedBy, &created, &started, &ended); err != nil {
		return 0, nil, err
	}
	var s imageSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		return 0, nil, fmt.Errorf("image %s:%d: unreadable spec: %w", img.Name, img.Version, err)
	}
	img.Models, img.EntryScript, img.SnapshotID, img.Requirements, img.Conda, img.Base = s.Models, s.EntryScript, s.SnapshotID, s.Requirements, s.Conda, s.Base
	if img.Models == nil {
		img.Models = []atelier.ImageModel{}
	}
	json.Unmarshal([]byte(layers), &img.Layers)
	img.CreatedAt = time.UnixMilli(created).UTC()
	if started.Valid {
		t := time.UnixMilli(started.Int64).UTC()
		img.StartedAt = &t
	}
	if ended.Valid {
		t := time.UnixMilli(ended.Int64).UTC()
		img.EndedAt = &t
	}
	img.Location = img.Workspace + "/" + img.Name + ":" + fmt.Sprint(img.Version)
	img.Source = atelier.ImageBuilt
	img.Tags = map[string]string{}
	return id, &img, nil
}

func (db *DB) imageTags(ctx context.Context, q querier, ids map[int64]*atelier.Image) error {
	tags := make(map[int64]map[string]string, len(ids))
	for id, img := range ids {
		tags[id] = img.Tags
	}
	return readTags(ctx, q, "image_tags", "image_id", tags)
}

// readTags fills the tags of records (id → the record's tag map) from a tag table of (idCol,
// key, value) rows, in one query.
func readTags(ctx context.Context, q querier, table, idCol string, tags map[int64]map[string]string) error {
	if len(tags) == 0 {
		return nil
	}
	list := make([]int64, 0, len(tags))
	for id := range tags {
		list = append(list, id)
	}
	b, _ := json.Marshal(list)
	rows, err := q.QueryContext(ctx, `SELECT `+idCol+`, key, value FROM `+table+` WHERE `+idCol+` IN (SELECT value FROM json_each(?))`, string(b))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var k, v string
		if err := rows.Scan(&id, &k, &v); err != nil {
			return err
		}
		tags[id][k] = v
	}
	return rows.Err()
}

// CreateImage numbers and stores a queued image and records the model versions it uses.
func (db *DB) CreateImage(ctx context.Context, workspace string, img *atelier.Image) error {
	spec, err := json.Marshal(imageSpec{Models: img.Models, EntryScript: img.EntryScript, SnapshotID: img.SnapshotID,
		Requirements: img.Requirements, Conda: img.Conda, Base: img.Base})
	if err != nil {
		return err
	}
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		var version int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO image_names (workspace_id, name, last_version) VALUES (?, ?, 1)
			ON CONFLICT (workspace_id, name) DO UPDATE SET last_version = last_version + 1 RETURNING last_version`,
			wsID, img.Name).Scan(&version); err != nil {
			return err
		}
		now := db.now()
		res, err := tx.ExecContext(ctx, `INSERT INTO images (workspace_id, name, version, description, status, spec, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, wsID, img.Name, version, img.Description, atelier.ImageQueued, string(spec),
			atelier.PrincipalName(ctx), ms(now))
		if err != nil {
			return err
		}
		id, _ := res.LastInsertId()
		for k, v := range img.Tags {
			if _, err := tx.ExecContext(ctx, `INSERT INTO image_tags (image_id, key, value) VALUES (?, ?, ?)`, id, k, v); err != nil {
				return err
			}
		}
		ref := fmt.Sprintf("%s:%d", img.Name, version)
		for _, m := range img.Models {
			vid, _, err := db.resolve(ctx, tx, wsID, atelier.ModelRef{Name: m.Name, Version: m.Version})
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO model_references (version_id, kind, ref_id, created_at) VALUES (?, 'image', ?, ?)`,
				vid, ref, ms(now)); err != nil {
				return err
			}
		}
		img.Workspace, img.Version, img.Status, img.CreatedAt, img.CreatedBy = workspace, version, atelier.ImageQueued, now, atelier.PrincipalName(ctx)
		img.Location = workspace + "/" + ref
		img.Source = atelier.ImageBuilt
		if img.Tags == nil {
			img.Tags = map[string]string{}
		}
		if img.Models == nil {
			img.Models = []atelier.ImageModel{}
		}
		return nil
	})
}

func (db *DB) findImage(ctx context.Context, q querier, workspace string, ref atelier.ImageRef) (int64, *atelier.Image, error) {
	query := `SELECT ` + imageColumns + imageFrom + ` WHERE w.name = ? AND i.name = ?`
	args := []any{workspace, ref.Name}
	if ref.Version > 0 {
		query += ` AND i.version = ?`
		args = append(args, ref.Version)
	} else {
		query += ` ORDER BY i.version DESC LIMIT 1`
	}
	id, img, err := scanImage(q.QueryRowContext(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := db.workspaceID(ctx, q, workspace); err != nil {
			return 0, nil, err
		}
		return 0, nil, atelier.Errorf(atelier.ENOTFOUND, "image %s not found in workspace %q", ref, workspace)
	}
	if err != nil {
		return 0, nil, err
	}
	return id, img, db.imageTags(ctx, q, map[int64]*atelier.Image{id: img})
}

// FindImage returns an image (its latest version for a bare name).
func (db *DB) FindImage(ctx context.Context, workspace string, ref atelier.ImageRef) (*atelier.Image, error) {
	_, img, err := db.findImage(ctx, db.read, workspace, ref)
	return img, err
}

// ListImages lists a workspace's images, newest first.
func (db *DB) ListImages(ctx context.Context, workspace string, q atelier.ImageQuery) ([]*atelier.Image, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	query := `SELECT ` + imageColumns + imageFrom + ` WHERE i.workspace_id = ?`
	args := []any{wsID}
	if q.Name != "" {
		query += ` AND i.name = ?`
		args = append(args, q.Name)
	}
	if q.Model != "" {
		query += ` AND EXISTS (SELECT 1 FROM json_each(i.spec, '$.models') m WHERE json_extract(m.value, '$.name') = ?)`
		args = append(args, q.Model)
	}
	keys := make([]string, 0, len(q.Tags))
	for k := range q.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		query += ` AND EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = i.id AND t.key = ? AND t.value = ?)`
		args = append(args, k, q.Tags[k])
	}
	limit := q.Limit
	if limit <= 0 || limit > atelier.MaxPageSize {
		limit = atelier.DefaultPageSize
	}
	query += ` ORDER BY i.created_at DESC, i.id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.Image{}
	byID := map[int64]*atelier.Image{}
	for rows.Next() {
		id, img, err := scanImage(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, img)
		byID[id] = img
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return list, db.imageTags(ctx, db.read, byID)
}

// ClaimImages starts the oldest queued builds and leases them to owner.
func (db *DB) ClaimImages(ctx context.Context, owner string, limit int, expires time.Time) ([]*atelier.Image, error) {
	if owner == "" {
		return nil, atelier.Errorf(atelier.EINVALID, "a lease needs an owner")
	}
	// The controller asks every second: an empty queue costs a read, not a write transaction.
	var queued int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM images WHERE status = 'Queued' LIMIT 1)`).Scan(&queued); err != nil || queued == 0 {
		return nil, err
	}
	var out []*atelier.Image
	err := db.update(ctx, func(tx *txn) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT `+imageColumns+imageFrom+` WHERE i.status = 'Queued' ORDER BY i.created_at, i.id LIMIT ?`, limit)
		if err != nil {
			return err
		}
		byID := map[int64]*atelier.Image{}
		var ids []int64
		for rows.Next() {
			id, img, err := scanImage(rows)
			if err != nil {
				rows.Close()
				return err
			}
			byID[id] = img
			ids = append(ids, id)
		}
		rows.Close()
		now := db.now()
		for _, id := range ids {
			img := byID[id]
			if _, err := tx.ExecContext(ctx, `UPDATE images SET status = 'Building', started_at = ? WHERE id = ?`, ms(now), id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO leases (kind, id, workspace, owner, expires, handle) VALUES (?, ?, ?, ?, ?, '')
				ON CONFLICT (kind, id) DO UPDATE SET workspace = excluded.workspace, owner = excluded.owner, expires = excluded.expires, handle = ''`,
				atelier.LeaseKindBuild, ImageLeaseID(img.Workspace, img.Name, img.Version), img.Workspace, owner, ms(expires)); err != nil {
				return err
			}
			img.Status, img.StartedAt = atelier.ImageBuilding, &now
			out = append(out, img)
		}
		return db.imageTags(ctx, tx, byID)
	})
	return out, err
}

// ImageLeaseID is the id of an image's build lease: <workspace>/<name>:<version>.
func ImageLeaseID(workspace, name string, version int64) string {
	return fmt.Sprintf("%s/%s:%d", workspace, name, version)
}

// RequeueImage puts a Building image back in the queue.
func (db *DB) RequeueImage(ctx context.Context, workspace string, ref atelier.ImageRef) error {
	return db.update(ctx, func(tx *txn) error {
		id, img, err := db.findImage(ctx, tx, workspace, ref)
		if err != nil {
			return err
		}
		if img.Status != atelier.ImageBuilding {
			return atelier.Errorf(atelier.ECONFLICT, "image %s:%d is %s, not Building", img.Name, img.Version, img.Status)
		}
		_, err = tx.ExecContext(ctx, `UPDATE images SET status = 'Queued', started_at = NULL WHERE id = ?`, id)
		return err
	})
}

// EndImageBuild records the end of a build.
func (db *DB) EndImageBuild(ctx context.Context, workspace string, ref atelier.ImageRef, res *atelier.ImageBuildResult, msg string) (*atelier.Image, error) {
	var out *atelier.Image
	err := db.update(ctx, func(tx *txn) error {
		id, img, err := db.findImage(ctx, tx, workspace, ref)
		if err != nil {
			return err
		}
		if img.Status.Ended() {
			return atelier.Errorf(atelier.ECONFLICT, "image %s:%d has already ended (%s)", img.Name, img.Version, img.Status)
		}
		now := db.now()
		img.EndedAt = &now
		if img.StartedAt == nil {
			img.StartedAt = &now
		}
		if res != nil {
			layers, _ := json.Marshal(res.Layers)
			img.Status, img.Digest, img.Size, img.Layers = atelier.ImageSucceeded, res.Digest, res.Size, res.Layers
			_, err = tx.ExecContext(ctx, `UPDATE images SET status = ?, digest = ?, size = ?, layers = ?, started_at = ?, ended_at = ? WHERE id = ?`,
				img.Status, res.Digest, res.Size, string(layers), ms(*img.StartedAt), ms(now), id)
		} else {
			if len(msg) > atelier.MaxErrorLength {
				msg = msg[len(msg)-atelier.MaxErrorLength:]
			}
			img.Status, img.Error = atelier.ImageFailed, msg
			_, err = tx.ExecContext(ctx, `UPDATE images SET status = ?, error = ?, started_at = ?, ended_at = ? WHERE id = ?`,
				img.Status, msg, ms(*img.StartedAt), ms(now), id)
		}
		out = img
		return err
	})
	return out, err
}

// AppendImageLog adds text to an image's build log, keeping its last maxImageLog bytes.
func (db *DB) AppendImageLog(ctx context.Context, workspace string, ref atelier.ImageRef, text string) error {
	return db.update(ctx, func(tx *txn) error {
		id, _, err := db.findImage(ctx, tx, workspace, ref)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE images SET log = CASE WHEN length(CAST(log AS BLOB)) + length(CAST(? AS BLOB)) > ?
			THEN substr(log || ?, -?) ELSE log || ? END WHERE id = ?`, text, maxImageLog, text, maxImageLog, text, id)
		return err
	})
}

// ImageLog reads an image's build log from offset (bytes).
func (db *DB) ImageLog(ctx context.Context, workspace string, ref atelier.ImageRef, offset int64) (string, error) {
	id, _, err := db.findImage(ctx, db.read, workspace, ref)
	if err != nil {
		return "", err
	}
	var log string
	if err := db.read.QueryRowContext(ctx, `SELECT log FROM images WHERE id = ?`, id).Scan(&log); err != nil {
		return "", err
	}
	if offset < 0 || offset > int64(len(log)) {
		return "", nil
	}
	return log[offset:], nil
}

// DeleteImage removes an image, its tags, its model references and its build lease.
func (db *DB) DeleteImage(ctx context.Context, workspace string, ref atelier.ImageRef) error {
	if ref.Version == 0 {
		return atelier.Errorf(atelier.EINVALID, "name the image's version to delete (%s:VERSION)", ref.Name)
	}
	return db.update(ctx, func(tx *txn) error {
		id, img, err := db.findImage(ctx, tx, workspace, ref)
		if err != nil {
			return err
		}
		if img.Status == atelier.ImageBuilding {
			return atelier.Errorf(atelier.ECONFLICT, "image %s is being built: delete it once its build ended", ref)
		}
		var service string
		err = tx.QueryRowContext(ctx, `SELECT s.name FROM service_images u JOIN web_services s ON s.id = u.service_id WHERE u.image_id = ? ORDER BY s.name LIMIT 1`, id).Scan(&service)
		if err == nil {
			return atelier.Errorf(atelier.ECONFLICT, "image %s is served by web service %q: delete the service or move it to another image first", ref, service)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		refID := fmt.Sprintf("%s:%d", img.Name, img.Version)
		if _, err := tx.ExecContext(ctx, `DELETE FROM model_references WHERE kind = 'image' AND ref_id = ?
			AND version_id IN (SELECT v.id FROM model_versions v WHERE v.workspace_id = ?)`, refID, wsID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE kind = ? AND id = ?`, atelier.LeaseKindBuild, ImageLeaseID(workspace, img.Name, img.Version)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM images WHERE id = ?`, id)
		return err
	})
}
