package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/registry"
)

// Registry is the workspace image registry's metadata (registry.Metadata) in the database:
// manifests, tags, the links that let a repository read a blob, and upload sessions. Each
// method is one write transaction (or one read), so the checks and changes that garbage
// collection relies on (PutManifest, UnlinkBlob, DeleteManifest, ReleaseBlob) happen in one
// step. Times are kept in nanoseconds, as the registry compares them.
type Registry struct{ db *DB }

var _ registry.Metadata = Registry{}

// Registry returns the registry's metadata store.
func (db *DB) Registry() Registry { return Registry{db} }

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func manifestNotFound(repo string, d registry.Digest) error {
	return atelier.Errorf(atelier.ENOTFOUND, "manifest %s is not in repository %s", d, repo)
}

func (r Registry) PutManifest(ctx context.Context, repo string, m *registry.Manifest, tags []string) error {
	blobs, err := json.Marshal(nonNilRefs(m.Blobs))
	if err != nil {
		return err
	}
	children, err := json.Marshal(nonNilRefs(m.Manifests))
	if err != nil {
		return err
	}
	var annotations []byte
	if m.Annotations != nil {
		if annotations, err = json.Marshal(m.Annotations); err != nil {
			return err
		}
	}
	now := r.db.now()
	return r.db.update(ctx, func(tx *txn) error {
		for _, ref := range m.Blobs {
			var size int64
			err := tx.QueryRowContext(ctx, `SELECT size FROM registry_links WHERE repo = ? AND digest = ?`, repo, string(ref.Digest)).Scan(&size)
			if errors.Is(err, sql.ErrNoRows) {
				return atelier.Errorf(atelier.ENOTFOUND, "the manifest references blob %s, which repository %s does not hold: push it first", ref.Digest, repo)
			} else if err != nil {
				return err
			} else if size != ref.Size {
				return atelier.Errorf(atelier.EINVALID, "the manifest gives blob %s a size of %d bytes, but it has %d", ref.Digest, ref.Size, size)
			}
		}
		for _, ref := range m.Manifests {
			var size int64
			err := tx.QueryRowContext(ctx, `SELECT length(body) FROM registry_manifests WHERE repo = ? AND digest = ?`, repo, string(ref.Digest)).Scan(&size)
			if errors.Is(err, sql.ErrNoRows) {
				return atelier.Errorf(atelier.ENOTFOUND, "the index references manifest %s, which repository %s does not hold: push it first", ref.Digest, repo)
			} else if err != nil {
				return err
			} else if size != ref.Size {
				return atelier.Errorf(atelier.EINVALID, "the index gives manifest %s a size of %d bytes, but it has %d", ref.Digest, ref.Size, size)
			}
		}
		// The same digest is the same body: storing it again changes nothing but its tags.
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO registry_manifests
			(repo, digest, media_type, body, blobs, manifests, subject, artifact_type, annotations) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			repo, string(m.Digest), m.MediaType, m.Body, string(blobs), string(children), string(m.Subject), m.ArtifactType, nullBytes(annotations))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			for kind, refs := range map[string][]registry.Ref{"blob": m.Blobs, "manifest": m.Manifests} {
				for _, ref := range refs {
					if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO registry_references (repo, manifest, kind, digest) VALUES (?, ?, ?, ?)`,
						repo, string(m.Digest), kind, string(ref.Digest)); err != nil {
						return err
					}
				}
			}
		}
		for _, t := range tags {
			if _, err := tx.ExecContext(ctx, `INSERT INTO registry_tags (repo, tag, digest, tagged_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, tagged_at = excluded.tagged_at`,
				repo, t, string(m.Digest), nanos(now)); err != nil {
				return err
			}
		}
		return nil
	})
}

func nonNilRefs(refs []registry.Ref) []registry.Ref {
	if refs == nil {
		return []registry.Ref{}
	}
	return refs
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

func (r Registry) Manifest(ctx context.Context, repo string, d registry.Digest) (*registry.Manifest, error) {
	m := &registry.Manifest{Digest: d}
	var blobs, children string
	var subject string
	var annotations sql.NullString
	err := r.db.read.QueryRowContext(ctx, `SELECT media_type, body, blobs, manifests, subject, artifact_type, annotations
		FROM registry_manifests WHERE repo = ? AND digest = ?`, repo, string(d)).
		Scan(&m.MediaType, &m.Body, &blobs, &children, &subject, &m.ArtifactType, &annotations)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, manifestNotFound(repo, d)
	} else if err != nil {
		return nil, err
	}
	m.Subject = registry.Digest(subject)
	if err := json.Unmarshal([]byte(blobs), &m.Blobs); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(children), &m.Manifests); err != nil {
		return nil, err
	}
	if len(m.Blobs) == 0 {
		m.Blobs = nil
	}
	if len(m.Manifests) == 0 {
		m.Manifests = nil
	}
	if annotations.Valid {
		if err := json.Unmarshal([]byte(annotations.String), &m.Annotations); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (r Registry) Tag(ctx context.Context, repo, tag string) (registry.Digest, error) {
	var d string
	err := r.db.read.QueryRowContext(ctx, `SELECT digest FROM registry_tags WHERE repo = ? AND tag = ?`, repo, tag).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		return "", atelier.Errorf(atelier.ENOTFOUND, "repository %s has no tag %q", repo, tag)
	}
	return registry.Digest(d), err
}

func (r Registry) DeleteManifest(ctx context.Context, repo string, d registry.Digest) error {
	return r.db.update(ctx, func(tx *txn) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM registry_manifests WHERE repo = ? AND digest = ?`, repo, string(d)).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return manifestNotFound(repo, d)
		} else if err != nil {
			return err
		}
		var index string
		err = tx.QueryRowContext(ctx, `SELECT manifest FROM registry_references WHERE repo = ? AND kind = 'manifest' AND digest = ?
			ORDER BY manifest LIMIT 1`, repo, string(d)).Scan(&index)
		if err == nil {
			return atelier.Errorf(atelier.ECONFLICT, "manifest %s is listed by index %s of %s: delete the index first", d, index, repo)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// Its tags and references go with it (ON DELETE CASCADE).
		_, err = tx.ExecContext(ctx, `DELETE FROM registry_manifests WHERE repo = ? AND digest = ?`, repo, string(d))
		return err
	})
}

func (r Registry) DeleteTag(ctx context.Context, repo, tag string) error {
	return r.db.update(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM registry_tags WHERE repo = ? AND tag = ?`, repo, tag)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return atelier.Errorf(atelier.ENOTFOUND, "repository %s has no tag %q", repo, tag)
		}
		return nil
	})
}

// page runs a query of names (one column) and returns them.
func (r Registry) names(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names := []string{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// sqlLimit is SQLite's "no limit" for a negative limit.
func sqlLimit(limit int) int {
	if limit < 0 {
		return -1
	}
	return limit
}

func (r Registry) Tags(ctx context.Context, repo, after string, limit int) ([]string, error) {
	tags, err := r.names(ctx, r.db.read, `SELECT tag FROM registry_tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?`, repo, after, sqlLimit(limit))
	if err != nil || len(tags) > 0 {
		return tags, err
	}
	var one int
	err = r.db.read.QueryRowContext(ctx, `SELECT 1 WHERE EXISTS (SELECT 1 FROM registry_manifests WHERE repo = ?)
		OR EXISTS (SELECT 1 FROM registry_links WHERE repo = ?)`, repo, repo).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "repository %s does not exist", repo)
	}
	return tags, err
}

func (r Registry) Referrers(ctx context.Context, repo string, d registry.Digest) ([]registry.Descriptor, error) {
	rows, err := r.db.read.QueryContext(ctx, `SELECT digest, media_type, length(body), artifact_type, annotations
		FROM registry_manifests WHERE repo = ? AND subject = ? ORDER BY digest`, repo, string(d))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var refs []registry.Descriptor
	for rows.Next() {
		var desc registry.Descriptor
		var digest string
		var annotations sql.NullString
		if err := rows.Scan(&digest, &desc.MediaType, &desc.Size, &desc.ArtifactType, &annotations); err != nil {
			return nil, err
		}
		desc.Digest = registry.Digest(digest)
		if annotations.Valid {
			if err := json.Unmarshal([]byte(annotations.String), &desc.Annotations); err != nil {
				return nil, err
			}
		}
		refs = append(refs, desc)
	}
	return refs, rows.Err()
}

func (r Registry) Repositories(ctx context.Context, after string, limit int) ([]string, error) {
	return r.names(ctx, r.db.read, `SELECT repo FROM (SELECT repo FROM registry_manifests UNION SELECT repo FROM registry_links)
		WHERE repo > ? ORDER BY repo LIMIT ?`, after, sqlLimit(limit))
}

func (r Registry) LinkBlob(ctx context.Context, repo string, d registry.Digest, size int64, at time.Time) error {
	return r.db.update(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO registry_links (repo, digest, size, linked_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (repo, digest) DO UPDATE SET size = excluded.size, linked_at = excluded.linked_at`, repo, string(d), size, nanos(at))
		return err
	})
}

func (r Registry) BlobLink(ctx context.Context, repo string, d registry.Digest) (int64, error) {
	var size int64
	err := r.db.read.QueryRowContext(ctx, `SELECT size FROM registry_links WHERE repo = ? AND digest = ?`, repo, string(d)).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, atelier.Errorf(atelier.ENOTFOUND, "blob %s is not in repository %s", d, repo)
	}
	return size, err
}

func (r Registry) UnlinkBlob(ctx context.Context, repo string, d registry.Digest) error {
	return r.db.update(ctx, func(tx *txn) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM registry_links WHERE repo = ? AND digest = ?`, repo, string(d)).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return atelier.Errorf(atelier.ENOTFOUND, "blob %s is not in repository %s", d, repo)
		} else if err != nil {
			return err
		}
		var man string
		err = tx.QueryRowContext(ctx, `SELECT manifest FROM registry_references WHERE repo = ? AND kind = 'blob' AND digest = ?
			ORDER BY manifest LIMIT 1`, repo, string(d)).Scan(&man)
		if err == nil {
			return atelier.Errorf(atelier.ECONFLICT, "blob %s is used by manifest %s of %s: delete the manifest first", d, man, repo)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM registry_links WHERE repo = ? AND digest = ?`, repo, string(d))
		return err
	})
}

func (r Registry) BlobRepositories(ctx context.Context, d registry.Digest) ([]string, error) {
	repos, err := r.names(ctx, r.db.read, `SELECT repo FROM registry_links WHERE digest = ? ORDER BY repo`, string(d))
	if len(repos) == 0 {
		repos = nil
	}
	return repos, err
}

func (r Registry) CreateUpload(ctx context.Context, u *registry.Upload) error {
	return r.db.update(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO registry_uploads (id, repo, size, started_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
			u.ID, u.Repo, u.Size, nanos(u.Started), nanos(u.Updated))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return atelier.Errorf(atelier.ECONFLICT, "upload %s exists", u.ID)
		}
		for i, c := range u.Chunks {
			if _, err := tx.ExecContext(ctx, `INSERT INTO registry_upload_chunks (upload_id, seq, digest, size) VALUES (?, ?, ?, ?)`,
				u.ID, i, string(c.Digest), c.Size); err != nil {
				return err
			}
		}
		return nil
	})
}

func uploadNotFound(id string) error {
	return atelier.Errorf(atelier.ENOTFOUND, "no upload session %q", id)
}

// readUpload reads a session and its chunks in one statement, so they agree.
func (r Registry) readUpload(ctx context.Context, q querier, id string) (*registry.Upload, error) {
	u := &registry.Upload{ID: id}
	var started, updated int64
	var chunks string
	err := q.QueryRowContext(ctx, `SELECT repo, size, started_at, updated_at,
		(SELECT json_group_array(json_object('Digest', digest, 'Size', size)) FROM
			(SELECT digest, size FROM registry_upload_chunks WHERE upload_id = ? ORDER BY seq))
		FROM registry_uploads WHERE id = ?`, id, id).Scan(&u.Repo, &u.Size, &started, &updated, &chunks)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, uploadNotFound(id)
	} else if err != nil {
		return nil, err
	}
	u.Started, u.Updated = fromNanos(started), fromNanos(updated)
	if err := json.Unmarshal([]byte(chunks), &u.Chunks); err != nil {
		return nil, err
	}
	if len(u.Chunks) == 0 {
		u.Chunks = nil
	}
	return u, nil
}

func (r Registry) Upload(ctx context.Context, id string) (*registry.Upload, error) {
	return r.readUpload(ctx, r.db.read, id)
}

func (r Registry) AppendUpload(ctx context.Context, id string, offset int64, chunk registry.Ref, at time.Time) (*registry.Upload, error) {
	var u *registry.Upload
	err := r.db.update(ctx, func(tx *txn) error {
		var size, n int64
		err := tx.QueryRowContext(ctx, `SELECT size, (SELECT count(*) FROM registry_upload_chunks WHERE upload_id = id)
			FROM registry_uploads WHERE id = ?`, id).Scan(&size, &n)
		if errors.Is(err, sql.ErrNoRows) {
			return uploadNotFound(id)
		} else if err != nil {
			return err
		} else if size != offset {
			return atelier.Errorf(atelier.ECONFLICT, "upload %s has %d bytes, not %d", id, size, offset)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO registry_upload_chunks (upload_id, seq, digest, size) VALUES (?, ?, ?, ?)`,
			id, n, string(chunk.Digest), chunk.Size); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE registry_uploads SET size = size + ?, updated_at = ? WHERE id = ?`,
			chunk.Size, nanos(at), id); err != nil {
			return err
		}
		u, err = r.readUpload(ctx, tx, id)
		return err
	})
	return u, err
}

func (r Registry) DeleteUpload(ctx context.Context, id string) error {
	return r.db.update(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM registry_uploads WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return uploadNotFound(id)
		}
		return nil
	})
}

func (r Registry) ExpireUploads(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := r.db.update(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM registry_uploads WHERE updated_at < ?`, nanos(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

func (r Registry) ReleaseBlob(ctx context.Context, d registry.Digest, linkedBefore time.Time) (bool, error) {
	released := false
	err := r.db.update(ctx, func(tx *txn) error {
		released = false
		var held int
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM registry_upload_chunks WHERE digest = ?)
			OR EXISTS (SELECT 1 FROM registry_references WHERE kind = 'blob' AND digest = ?)
			OR EXISTS (SELECT 1 FROM registry_links WHERE digest = ? AND linked_at >= ?)`,
			string(d), string(d), string(d), nanos(linkedBefore)).Scan(&held); err != nil {
			return err
		}
		if held != 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM registry_links WHERE digest = ?`, string(d)); err != nil {
			return err
		}
		released = true
		return nil
	})
	return released, err
}

// ListTagged lists the tags of the repositories whose names start with prefix, with the
// manifests they point at, by repository and tag.
func (r Registry) ListTagged(ctx context.Context, prefix string) ([]registry.TaggedManifest, error) {
	rows, err := r.db.read.QueryContext(ctx, `SELECT t.repo, t.tag, t.digest, m.media_type,
			length(m.body) + coalesce((SELECT sum(json_extract(b.value, '$.Size')) FROM json_each(m.blobs) b), 0), t.tagged_at
		FROM registry_tags t JOIN registry_manifests m ON m.repo = t.repo AND m.digest = t.digest
		WHERE substr(t.repo, 1, length(?)) = ? ORDER BY t.repo, t.tag`, prefix, prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []registry.TaggedManifest
	for rows.Next() {
		var tm registry.TaggedManifest
		var d string
		var at int64
		if err := rows.Scan(&tm.Repo, &tm.Tag, &d, &tm.MediaType, &tm.Size, &at); err != nil {
			return nil, err
		}
		tm.Digest, tm.TaggedAt = registry.Digest(d), fromNanos(at)
		list = append(list, tm)
	}
	return list, rows.Err()
}

// deleteRegistryRepos removes the registry repositories of a workspace (<workspace>/...) in tx:
// their manifests (with their tags and references), links and upload sessions. The blobs they
// held, now unreferenced, are garbage collected.
func deleteRegistryRepos(ctx context.Context, tx *txn, workspace string) error {
	// The repositories whose names start with "<workspace>/": '0' follows '/' in byte order.
	lo, hi := workspace+"/", workspace+"0"
	for _, table := range []string{"registry_manifests", "registry_links", "registry_uploads"} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE repo >= ? AND repo < ?`, lo, hi); err != nil {
			return err
		}
	}
	return nil
}

// RecordImport records that b was imported as <b.Workspace>/<b.Name>:<b.Tag> (replacing a
// record of an earlier import under that tag) and, when b.Default, makes it the workspace's
// default base, in one transaction.
func (db *DB) RecordImport(ctx context.Context, b *atelier.BaseImage) error {
	return db.update(ctx, func(tx *txn) error {
		id, err := db.workspaceID(ctx, tx, b.Workspace)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO registry_imports
			(workspace_id, repo, tag, digest, size, platform, format, imported_by, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (repo, tag) DO UPDATE SET workspace_id = excluded.workspace_id, digest = excluded.digest, size = excluded.size,
				platform = excluded.platform, format = excluded.format, imported_by = excluded.imported_by, imported_at = excluded.imported_at`,
			id, b.Workspace+"/"+b.Name, b.Tag, b.Digest, b.Size, b.Platform, b.Format, b.ImportedBy, ms(b.ImportedAt)); err != nil {
			return err
		}
		if b.Default {
			return setDefaultBase(ctx, tx, id, b.Name+":"+b.Tag, b.ImportedBy, b.ImportedAt)
		}
		return nil
	})
}

func setDefaultBase(ctx context.Context, tx *txn, workspaceID int64, base, by string, at time.Time) error {
	if base == "" {
		_, err := tx.ExecContext(ctx, `DELETE FROM workspace_default_bases WHERE workspace_id = ?`, workspaceID)
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO workspace_default_bases (workspace_id, base, set_by, set_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (workspace_id) DO UPDATE SET base = excluded.base, set_by = excluded.set_by, set_at = excluded.set_at`,
		workspaceID, base, by, ms(at))
	return err
}

// SetDefaultBase makes base the default base of the workspace's images ("" for none).
func (db *DB) SetDefaultBase(ctx context.Context, workspace, base, by string) error {
	return db.update(ctx, func(tx *txn) error {
		id, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		return setDefaultBase(ctx, tx, id, base, by, db.now())
	})
}

// DefaultBase returns the workspace's default base, "" when it has none.
func (db *DB) DefaultBase(ctx context.Context, workspace string) (string, error) {
	var base string
	err := db.read.QueryRowContext(ctx, `SELECT d.base FROM workspace_default_bases d JOIN workspaces w ON w.id = d.workspace_id
		WHERE w.name = ?`, workspace).Scan(&base)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return base, err
}

// ListImports lists the workspace's imported bases whose tags still point at what was imported,
// by name and tag.
func (db *DB) ListImports(ctx context.Context, workspace string) ([]*atelier.BaseImage, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT i.repo, i.tag, i.digest, i.size, i.platform, i.format, i.imported_by, i.imported_at,
			coalesce(d.base, '')
		FROM registry_imports i JOIN workspaces w ON w.id = i.workspace_id
		JOIN registry_tags t ON t.repo = i.repo AND t.tag = i.tag AND t.digest = i.digest
		LEFT JOIN workspace_default_bases d ON d.workspace_id = i.workspace_id
		WHERE w.name = ? ORDER BY i.repo, i.tag`, workspace)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.BaseImage{}
	for rows.Next() {
		b := &atelier.BaseImage{Workspace: workspace}
		var repo, def string
		var at int64
		if err := rows.Scan(&repo, &b.Tag, &b.Digest, &b.Size, &b.Platform, &b.Format, &b.ImportedBy, &at, &def); err != nil {
			return nil, err
		}
		b.Name = repo[len(workspace)+1:]
		b.Location = repo + ":" + b.Tag
		b.ImportedAt = fromMS(at)
		b.Default = def == b.Name+":"+b.Tag || b.Tag == "latest" && def == b.Name
		list = append(list, b)
	}
	return list, rows.Err()
}
