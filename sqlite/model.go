package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"github.com/atelier-ml/atelier"
)

// CreateModelVersion numbers and stores a new version. The number comes from models.last_version,
// incremented inside the write transaction: the single writer makes it atomic, so concurrent
// registrations of one name get consecutive versions.
func (db *DB) CreateModelVersion(ctx context.Context, workspace string, v *atelier.ModelVersion) error {
	if err := atelier.ValidateModelName(v.Name); err != nil {
		return err
	}
	if v.Source != "" {
		// A reference: its files live at the source, none here.
		if err := atelier.ValidateModelSource(v.Source); err != nil {
			return err
		}
		if len(v.Files) > 0 {
			return atelier.Errorf(atelier.EINVALID, "model %s is a reference to %s: it holds no files", v.Name, v.Source)
		}
	} else if len(v.Files) == 0 {
		return atelier.Errorf(atelier.EINVALID, "model %s has no files", v.Name)
	}
	if err := atelier.ValidateModelFiles(v.Files); err != nil {
		return err
	}
	if err := atelier.ValidateModelMetadata(v.Description, v.Framework, v.FrameworkVersion, v.Datasets, v.Tags, v.Properties); err != nil {
		return err
	}
	v.Tags, v.Properties = nonNil(v.Tags), nonNil(v.Properties)
	if v.Datasets == nil {
		v.Datasets = []string{}
	}
	v.Aliases = []string{}
	v.FileCount, v.Size = len(v.Files), 0
	for _, f := range v.Files {
		v.Size += f.Size
	}
	if v.CreatedBy == "" {
		v.CreatedBy = atelier.PrincipalName(ctx)
	}
	datasets, _ := json.Marshal(v.Datasets)
	now := db.now()
	v.Workspace, v.CreatedAt, v.UpdatedAt = workspace, now, now
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		v.Experiment = ""
		if v.RunID != "" {
			err := tx.QueryRowContext(ctx, `SELECT e.name FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE r.id = ? AND r.workspace_id = ?`,
				v.RunID, wsID).Scan(&v.Experiment)
			if errors.Is(err, sql.ErrNoRows) {
				return runNotFound(v.RunID)
			} else if err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO models (workspace_id, name, last_version, created_at, updated_at) VALUES (?, ?, 0, ?, ?)
			ON CONFLICT (workspace_id, name) DO NOTHING`, wsID, v.Name, ms(now), ms(now)); err != nil {
			return err
		}
		var modelID int64
		if err := tx.QueryRowContext(ctx, `UPDATE models SET last_version = last_version + 1, version_count = version_count + 1, updated_at = ? WHERE workspace_id = ? AND name = ?
			RETURNING id, last_version`, ms(now), wsID, v.Name).Scan(&modelID, &v.Version); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO model_versions (model_id, workspace_id, version, description, framework, framework_version,
			run_id, experiment, path, source, datasets, file_count, size, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			modelID, wsID, v.Version, v.Description, v.Framework, v.FrameworkVersion, nullString(v.RunID), v.Experiment, v.Path, v.Source,
			string(datasets), v.FileCount, v.Size, v.CreatedBy, ms(now), ms(now))
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		for table, kv := range map[string]map[string]string{"model_version_tags": v.Tags, "model_version_properties": v.Properties} {
			args := make([]any, 0, 3*len(kv))
			for k, val := range kv {
				args = append(args, id, k, val)
			}
			if err := insertRows(ctx, tx, `INSERT INTO `+table+` (version_id, key, value) VALUES `, 3, args); err != nil {
				return err
			}
		}
		files := make([]any, 0, 4*len(v.Files))
		objects := make([]any, 0, 3*len(v.Files))
		for _, f := range v.Files {
			files = append(files, id, f.Path, f.Digest, f.Size)
			objects = append(objects, wsID, f.Digest, f.Size)
		}
		if err := insertRows(ctx, tx, `INSERT INTO model_version_files (version_id, path, digest, size) VALUES `, 4, files); err != nil {
			return err
		}
		return insertRows(ctx, tx, `INSERT OR IGNORE INTO workspace_objects (workspace_id, digest, size) VALUES `, 3, objects)
	})
}

// insertRows runs insert (a statement up to VALUES) for the rows in args, width values each,
// several rows a statement: a statement costs more than a row. Statements hold 64, 32, … or 1
// rows, so few distinct ones are prepared and cached.
func insertRows(ctx context.Context, tx *txn, insert string, width int, args []any) error {
	row := "(?" + strings.Repeat(", ?", width-1) + ")"
	for n := len(args) / width; n > 0; {
		k := 64
		for k > n {
			k /= 2
		}
		if _, err := tx.ExecContext(ctx, insert+row+strings.Repeat(", "+row, k-1), args[:k*width]...); err != nil {
			return err
		}
		args, n = args[k*width:], n-k
	}
	return nil
}

const versionColumns = `v.id, m.name, v.version, v.description, v.framework, v.framework_version, coalesce(v.run_id, ''), v.experiment,
	v.path, v.source, v.datasets, v.file_count, v.size, v.created_by, v.created_at, v.updated_at`

const versionFrom = ` FROM model_versions v JOIN models m ON m.id = v.model_id`

func scanVersion(row interface{ Scan(...any) error }, workspace string) (int64, *atelier.ModelVersion, error) {
	v := &atelier.ModelVersion{Workspace: workspace, Tags: map[string]string{}, Properties: map[string]string{}, Aliases: []string{}}
	var id, created, updated int64
	var datasets string
	if err := row.Scan(&id, &v.Name, &v.Version, &v.Description, &v.Framework, &v.FrameworkVersion, &v.RunID, &v.Experiment,
		&v.Path, &v.Source, &datasets, &v.FileCount, &v.Size, &v.CreatedBy, &created, &updated); err != nil {
		return 0, nil, err
	}
	v.CreatedAt, v.UpdatedAt = fromMS(created), fromMS(updated)
	if err := json.Unmarshal([]byte(datasets), &v.Datasets); err != nil || v.Datasets == nil {
		v.Datasets = []string{}
	}
	return id, v, nil
}

// attachVersions fills the tags, properties and aliases of versions (keyed by row id).
func (db *DB) attachVersions(ctx context.Context, q querier, ids []int64, versions []*atelier.ModelVersion) error {
	if len(ids) == 0 {
		return nil
	}
	byID := make(map[int64]*atelier.ModelVersion, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		byID[id], args[i] = versions[i], id
	}
	in := "(" + strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + ")"
	for _, part := range []struct {
		query string
		add   func(v *atelier.ModelVersion, k, val string)
	}{
		{`SELECT version_id, key, value FROM model_version_tags WHERE version_id IN ` + in,
			func(v *atelier.ModelVersion, k, val string) { v.Tags[k] = val }},
		{`SELECT version_id, key, value FROM model_version_properties WHERE version_id IN ` + in,
			func(v *atelier.ModelVersion, k, val string) { v.Properties[k] = val }},
		{`SELECT version_id, alias, '' FROM model_aliases WHERE version_id IN ` + in + ` ORDER BY alias`,
			func(v *atelier.ModelVersion, k, _ string) { v.Aliases = append(v.Aliases, k) }},
	} {
		rows, err := q.QueryContext(ctx, part.query, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			var k, val string
			if err := rows.Scan(&id, &k, &val); err != nil {
				rows.Close()
				return err
			}
			part.add(byID[id], k, val)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

func modelNotFound(name string) error {
	return atelier.Errorf(atelier.ENOTFOUND, "model %q not found", name)
}

// modelID resolves a model name.
func (db *DB) modelID(ctx context.Context, q querier, wsID int64, name string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM models WHERE workspace_id = ? AND name = ?`, wsID, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, modelNotFound(name)
	}
	return id, err
}

// resolve turns a reference into the row id and number of a version.
func (db *DB) resolve(ctx context.Context, q querier, wsID int64, ref atelier.ModelRef) (id, version int64, err error) {
	if err := ref.Validate(); err != nil {
		return 0, 0, err
	}
	modelID, err := db.modelID(ctx, q, wsID, ref.Name)
	if err != nil {
		return 0, 0, err
	}
	switch {
	case ref.Alias != "":
		err = q.QueryRowContext(ctx, `SELECT v.id, v.version FROM model_aliases a JOIN model_versions v ON v.id = a.version_id
			WHERE a.model_id = ? AND a.alias = ?`, modelID, ref.Alias).Scan(&id, &version)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, 0, atelier.Errorf(atelier.ENOTFOUND, "model %s has no alias %q", ref.Name, ref.Alias)
		}
	case ref.Version > 0:
		err = q.QueryRowContext(ctx, `SELECT id, version FROM model_versions WHERE model_id = ? AND version = ?`, modelID, ref.Version).Scan(&id, &version)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, 0, atelier.Errorf(atelier.ENOTFOUND, "model %s has no version %d", ref.Name, ref.Version)
		}
	default:
		err = q.QueryRowContext(ctx, `SELECT id, version FROM model_versions WHERE model_id = ? ORDER BY version DESC LIMIT 1`, modelID).Scan(&id, &version)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, 0, modelNotFound(ref.Name)
		}
	}
	return id, version, err
}

// FindModelVersion returns a version with its files.
func (db *DB) FindModelVersion(ctx context.Context, workspace string, ref atelier.ModelRef) (*atelier.ModelVersion, error) {
	return db.findVersion(ctx, db.read, workspace, ref)
}

func (db *DB) findVersion(ctx context.Context, q querier, workspace string, ref atelier.ModelRef) (*atelier.ModelVersion, error) {
	wsID, err := db.workspaceID(ctx, q, workspace)
	if err != nil {
		return nil, err
	}
	id, _, err := db.resolve(ctx, q, wsID, ref)
	if err != nil {
		return nil, err
	}
	_, v, err := scanVersion(q.QueryRowContext(ctx, `SELECT `+versionColumns+versionFrom+` WHERE v.id = ?`, id), workspace)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "model %s not found", ref)
	} else if err != nil {
		return nil, err
	}
	if err := db.attachVersions(ctx, q, []int64{id}, []*atelier.ModelVersion{v}); err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT path, digest, size FROM model_version_files WHERE version_id = ? ORDER BY path`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	v.Files = make([]atelier.ModelFile, 0, v.FileCount)
	for rows.Next() {
		var f atelier.ModelFile
		if err := rows.Scan(&f.Path, &f.Digest, &f.Size); err != nil {
			return nil, err
		}
		v.Files = append(v.Files, f)
	}
	return v, rows.Err()
}

func pageLimit(limit int) (int, error) {
	if limit < 0 || limit > atelier.MaxPageSize {
		return 0, atelier.Errorf(atelier.EINVALID, "limit %d is out of range (0 to %d)", limit, atelier.MaxPageSize)
	}
	if limit == 0 {
		return atelier.DefaultPageSize, nil
	}
	return limit, nil
}

// modelQuery is the search of models m (grouped with their versions v).
func modelQuery() *recordQuery {
	return &recordQuery{
		attrs: map[string]string{"name": "m.name", "created_at": "m.created_at", "updated_at": "m.updated_at"},
		times: map[string]bool{"created_at": true, "updated_at": true},
		sides: map[string]side{atelier.FieldTag: {"model_tags", "model_id", "m.id"}},
	}
}

// versionQuery is the search of versions v of models m.
func versionQuery() *recordQuery {
	return &recordQuery{
		attrs: map[string]string{"name": "m.name", "version": "v.version", "run_id": "coalesce(v.run_id, '')", "experiment": "v.experiment",
			"created_at": "v.created_at", "updated_at": "v.updated_at"},
		times: map[string]bool{"created_at": true, "updated_at": true},
		sides: map[string]side{atelier.FieldTag: {"model_version_tags", "version_id", "v.id"},
			atelier.FieldProperty: {"model_version_properties", "version_id", "v.id"}},
	}
}

// ListModelVersions searches versions. Each tag or property filter is an EXISTS on its (key,
// value) index, so the search stays an index walk however many versions there are.
func (db *DB) ListModelVersions(ctx context.Context, workspace string, mq atelier.ModelQuery) (*atelier.ModelVersionPage, error) {
	if err := mq.Validate(); err != nil {
		return nil, err
	}
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	limit, err := pageLimit(mq.Limit)
	if err != nil {
		return nil, err
	}
	offset, err := decodePageToken(mq.PageToken)
	if err != nil {
		return nil, err
	}
	where, args := []string{"v.workspace_id = ?"}, []any{wsID}
	if mq.Name != "" {
		where, args = append(where, "m.name = ?"), append(args, mq.Name)
	}
	if mq.NameContains != "" {
		where, args = append(where, "instr(lower(m.name), lower(?)) > 0"), append(args, mq.NameContains)
	}
	if mq.RunID != "" {
		where, args = append(where, "v.run_id = ?"), append(args, mq.RunID)
	}
	tags, _ := atelier.ParseKeyFilters("tag", mq.Tags)
	props, _ := atelier.ParseKeyFilters("property", mq.Properties)
	for _, kf := range []struct {
		table   string
		filters []atelier.KeyFilter
	}{{"model_version_tags", tags}, {"model_version_properties", props}} {
		for _, f := range kf.filters {
			if f.HasValue {
				where = append(where, `EXISTS (SELECT 1 FROM `+kf.table+` x WHERE x.version_id = v.id AND x.key = ? AND x.value = ?)`)
				args = append(args, f.Key, f.Value)
			} else {
				where = append(where, `EXISTS (SELECT 1 FROM `+kf.table+` x WHERE x.version_id = v.id AND x.key = ?)`)
				args = append(args, f.Key)
			}
		}
	}
	vq := versionQuery()
	cond, err := vq.where(mq.Filter, atelier.ModelVersionAttributes, nil)
	if err != nil {
		return nil, err
	}
	if cond != "" {
		where, args = append(where, cond), append(args, vq.args...)
	}
	var orderBy string
	if mq.Sort != "" {
		terms, err := atelier.ParseOrderByFor(mq.Sort, atelier.ModelVersionAttributes)
		if err != nil {
			return nil, err
		}
		order, orderArgs, err := vq.order(terms)
		if err != nil {
			return nil, err
		}
		orderBy, args = strings.Join(append(order, "m.name", "v.version DESC"), ", "), append(args, orderArgs...)
	} else {
		order, _ := atelier.ParseModelOrder(mq.OrderBy)
		dir := " ASC"
		if order.Desc {
			dir = " DESC"
		}
		switch order.Field {
		case "version":
			orderBy = "v.version" + dir + ", v.id" + dir
		case "name":
			orderBy = "m.name" + dir + ", v.version DESC"
		default:
			orderBy = "v.created_at" + dir + ", v.id" + dir
		}
	}
	query := `SELECT ` + versionColumns + versionFrom + ` WHERE ` + strings.Join(where, " AND ") + ` ORDER BY ` + orderBy + ` LIMIT ? OFFSET ?`
	rows, err := db.read.QueryContext(ctx, query, append(args, limit+1, offset)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	page := &atelier.ModelVersionPage{Versions: []*atelier.ModelVersion{}}
	var ids []int64
	for rows.Next() {
		id, v, err := scanVersion(rows, workspace)
		if err != nil {
			return nil, err
		}
		ids, page.Versions = append(ids, id), append(page.Versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(page.Versions) > limit {
		page.Versions, ids = page.Versions[:limit], ids[:limit]
		page.NextPageToken = encodePageToken(offset + limit)
	}
	return page, db.attachVersions(ctx, db.read, ids, page.Versions)
}

// modelSelect reads models m without grouping them with their versions: a search walks the
// models in its order (by name, the (workspace_id, name) index) and stops after the page,
// reading the latest version of only the models it returns, off the end of their versions'
// index.
const modelSelect = `SELECT m.id, m.name, m.created_at, m.updated_at,
	coalesce((SELECT max(v.version) FROM model_versions v WHERE v.model_id = m.id), 0), m.version_count, m.description FROM models m`

// modelVisible keeps the models that exist: with a version, or kept.
const modelVisible = `(m.version_count > 0 OR m.kept)`

func (db *DB) scanModels(ctx context.Context, q querier, workspace string, rows *sql.Rows) ([]*atelier.Model, error) {
	defer rows.Close()
	list := []*atelier.Model{}
	byID := map[int64]*atelier.Model{}
	var args []any
	for rows.Next() {
		m := &atelier.Model{Workspace: workspace, Aliases: map[string]int64{}}
		var id, created, updated int64
		if err := rows.Scan(&id, &m.Name, &created, &updated, &m.LatestVersion, &m.VersionCount, &m.Description); err != nil {
			return nil, err
		}
		m.CreatedAt, m.UpdatedAt = fromMS(created), fromMS(updated)
		list, byID[id], args = append(list, m), m, append(args, id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(list) == 0 {
		return list, nil
	}
	in := `(` + strings.TrimSuffix(strings.Repeat("?,", len(args)), ",") + `)`
	trows, err := q.QueryContext(ctx, `SELECT model_id, key, value FROM model_tags WHERE model_id IN `+in, args...)
	if err != nil {
		return nil, err
	}
	defer trows.Close()
	for trows.Next() {
		var id int64
		var k, v string
		if err := trows.Scan(&id, &k, &v); err != nil {
			return nil, err
		}
		if byID[id].Tags == nil {
			byID[id].Tags = map[string]string{}
		}
		byID[id].Tags[k] = v
	}
	if err := trows.Err(); err != nil {
		return nil, err
	}
	trows.Close()
	// Aliases name versions: only models that have some can have aliases.
	var versioned []any
	for i, m := range list {
		if m.VersionCount > 0 {
			versioned = append(versioned, args[i])
		}
	}
	if len(versioned) == 0 {
		return list, nil
	}
	arows, err := q.QueryContext(ctx, `SELECT a.model_id, a.alias, v.version FROM model_aliases a JOIN model_versions v ON v.id = a.version_id
		WHERE a.model_id IN `+inList(len(versioned)), versioned...)
	if err != nil {
		return nil, err
	}
	defer arows.Close()
	for arows.Next() {
		var id, version int64
		var alias string
		if err := arows.Scan(&id, &alias, &version); err != nil {
			return nil, err
		}
		byID[id].Aliases[alias] = version
	}
	return list, arows.Err()
}

// FindModel returns a model that exists: with at least one version, or kept.
func (db *DB) FindModel(ctx context.Context, workspace, name string) (*atelier.Model, error) {
	if err := atelier.ValidateModelName(name); err != nil {
		return nil, err
	}
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	return db.findModel(ctx, db.read, workspace, wsID, name)
}

func (db *DB) findModel(ctx context.Context, q querier, workspace string, wsID int64, name string) (*atelier.Model, error) {
	// The same columns as modelSelect, read off the model's row and the last entry of its
	// versions' index rather than by visiting every version.
	rows, err := q.QueryContext(ctx, `SELECT m.id, m.name, m.created_at, m.updated_at,
		coalesce((SELECT max(v.version) FROM model_versions v WHERE v.model_id = m.id), 0), m.version_count, m.description
		FROM models m WHERE m.workspace_id = ? AND m.name = ? AND (m.version_count > 0 OR m.kept)`, wsID, name)
	if err != nil {
		return nil, err
	}
	list, err := db.scanModels(ctx, q, workspace, rows)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, modelNotFound(name)
	}
	return list[0], nil
}

// ListModels lists the models (with at least one version) in name order.
func (db *DB) ListModels(ctx context.Context, workspace string, mq atelier.ModelQuery) (*atelier.ModelPage, error) {
	if err := mq.Validate(); err != nil {
		return nil, err
	}
	if len(mq.Tags) > 0 || len(mq.Properties) > 0 || mq.RunID != "" || mq.Name != "" || mq.OrderBy != "" {
		return nil, atelier.Errorf(atelier.EINVALID, "models are listed by name, or searched with a filter: search versions to filter by tag, property or run")
	}
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	limit, err := pageLimit(mq.Limit)
	if err != nil {
		return nil, err
	}
	offset, err := decodePageToken(mq.PageToken)
	if err != nil {
		return nil, err
	}
	q := modelQuery()
	terms, err := atelier.ParseOrderByFor(mq.Sort, atelier.ModelAttributes)
	if err != nil {
		return nil, err
	}
	order, orderArgs, err := q.order(terms)
	if err != nil {
		return nil, err
	}
	where := "m.workspace_id = ?"
	q.args = append(q.args, wsID)
	if mq.NameContains != "" {
		where, q.args = where+" AND instr(lower(m.name), lower(?)) > 0", append(q.args, mq.NameContains)
	}
	cond, err := q.where(mq.Filter, atelier.ModelAttributes, nil)
	if err != nil {
		return nil, err
	}
	if cond != "" {
		where += " AND " + cond
	}
	order = append(order, "m.name")
	if few, err := q.few(ctx, db.read, "models", offset+limit+1); err != nil {
		return nil, err
	} else if few {
		where, order = "+"+where, unindexed(order)
	}
	args := append(append(q.args, orderArgs...), limit+1, offset)
	rows, err := db.read.QueryContext(ctx, modelSelect+` WHERE `+where+` AND `+modelVisible+` ORDER BY `+
		strings.Join(order, ", ")+` LIMIT ? OFFSET ?`, args...)
	if err != nil {
		return nil, err
	}
	list, err := db.scanModels(ctx, db.read, workspace, rows)
	if err != nil {
		return nil, err
	}
	page := &atelier.ModelPage{Models: list}
	if len(list) > limit {
		page.Models = list[:limit]
		page.NextPageToken = encodePageToken(offset + limit)
	}
	return page, nil
}

// UpdateModelVersion sets the description and tags and adds properties, all or nothing.
func (db *DB) UpdateModelVersion(ctx context.Context, workspace string, ref atelier.ModelRef, upd atelier.ModelVersionUpdate) (*atelier.ModelVersion, error) {
	if err := upd.Validate(); err != nil {
		return nil, err
	}
	var out *atelier.ModelVersion
	err := db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		id, version, err := db.resolve(ctx, tx, wsID, ref)
		if err != nil {
			return err
		}
		for _, k := range sortedKeys(upd.Properties) {
			v := upd.Properties[k]
			var old string
			err := tx.QueryRowContext(ctx, `SELECT value FROM model_version_properties WHERE version_id = ? AND key = ?`, id, k).Scan(&old)
			if err == nil && old != v {
				return atelier.Errorf(atelier.ECONFLICT, "property %q of model %s:%d is already %q: properties cannot change (use a tag)", k, ref.Name, version, old)
			} else if err == nil {
				continue
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO model_version_properties (version_id, key, value) VALUES (?, ?, ?)`, id, k, v); err != nil {
				return err
			}
		}
		for k, v := range upd.Tags {
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO model_version_tags (version_id, key, value) VALUES (?, ?, ?)`, id, k, v); err != nil {
				return err
			}
		}
		for _, k := range upd.DeleteTags {
			if _, err := tx.ExecContext(ctx, `DELETE FROM model_version_tags WHERE version_id = ? AND key = ?`, id, k); err != nil {
				return err
			}
		}
		if upd.Description != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE model_versions SET description = ? WHERE id = ?`, *upd.Description, id); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE model_versions SET updated_at = ? WHERE id = ?`, ms(db.now()), id); err != nil {
			return err
		}
		out, err = db.findVersion(ctx, tx, workspace, atelier.ModelRef{Name: ref.Name, Version: version})
		return err
	})
	return out, err
}

// SetModelAlias points an alias at an existing version.
func (db *DB) SetModelAlias(ctx context.Context, workspace, name, alias string, version int64) (*atelier.ModelVersion, error) {
	if err := atelier.ValidateModelAlias(alias); err != nil {
		return nil, err
	}
	if version < 1 {
		return nil, atelier.Errorf(atelier.EINVALID, "an alias points at a version number, not %d", version)
	}
	var out *atelier.ModelVersion
	err := db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		ref := atelier.ModelRef{Name: name, Version: version}
		id, _, err := db.resolve(ctx, tx, wsID, ref)
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return atelier.Errorf(atelier.ENOTFOUND, "cannot point alias %q at %s: %s", alias, ref, atelier.ErrorMessage(err))
		} else if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO model_aliases (model_id, alias, version_id)
			VALUES ((SELECT model_id FROM model_versions WHERE id = ?), ?, ?)`, id, alias, id); err != nil {
			return err
		}
		out, err = db.findVersion(ctx, tx, workspace, ref)
		return err
	})
	return out, err
}

// DeleteModelAlias removes an alias.
func (db *DB) DeleteModelAlias(ctx context.Context, workspace, name, alias string) error {
	if err := atelier.ValidateModelAlias(alias); err != nil {
		return err
	}
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		modelID, err := db.modelID(ctx, tx, wsID, name)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM model_aliases WHERE model_id = ? AND alias = ?`, modelID, alias)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return atelier.Errorf(atelier.ENOTFOUND, "model %s has no alias %q", name, alias)
		}
		return nil
	})
}

// references lists the references to the versions selected by where (on v), in a stable order.
func (db *DB) references(ctx context.Context, q querier, where string, args ...any) ([]atelier.ModelReference, error) {
	rows, err := q.QueryContext(ctx, `SELECT r.kind, r.ref_id, m.name, v.version FROM model_references r
		JOIN model_versions v ON v.id = r.version_id JOIN models m ON m.id = v.model_id WHERE `+where+`
		ORDER BY v.version, r.kind, r.ref_id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []atelier.ModelReference{}
	for rows.Next() {
		var r atelier.ModelReference
		if err := rows.Scan(&r.Kind, &r.ID, &r.Name, &r.Version); err != nil {
			return nil, err
		}
		list = append(list, r)
	}
	return list, rows.Err()
}

// DeleteModelVersion deletes a version (its aliases go with it) unless something uses it.
func (db *DB) DeleteModelVersion(ctx context.Context, workspace string, ref atelier.ModelRef) error {
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		id, version, err := db.resolve(ctx, tx, wsID, ref)
		if err != nil {
			return err
		}
		refs, err := db.references(ctx, tx, "v.id = ?", id)
		if err != nil {
			return err
		}
		if len(refs) > 0 {
			return atelier.NewModelInUseError(atelier.ModelRef{Name: ref.Name, Version: version}.String(), refs)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE models SET version_count = version_count - 1 WHERE id = (SELECT model_id FROM model_versions WHERE id = ?)`, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM model_versions WHERE id = ?`, id)
		return err
	})
}

// DeleteModel deletes every version of a model unless something uses one of them.
func (db *DB) DeleteModel(ctx context.Context, workspace, name string) error {
	if err := atelier.ValidateModelName(name); err != nil {
		return err
	}
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		modelID, err := db.modelID(ctx, tx, wsID, name)
		if err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT kept OR EXISTS (SELECT 1 FROM model_versions WHERE model_id = ?) FROM models WHERE id = ?`,
			modelID, modelID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return modelNotFound(name)
		}
		refs, err := db.references(ctx, tx, "v.model_id = ?", modelID)
		if err != nil {
			return err
		}
		if len(refs) > 0 {
			return atelier.NewModelInUseError(name, refs)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM models WHERE id = ?`, modelID)
		return err
	})
}

// CreateModel creates a kept model with no version. A name whose model went with its last
// version is free: the new model starts afresh (its own creation time, no tags, version 1 next).
func (db *DB) CreateModel(ctx context.Context, workspace string, c atelier.ModelCreate) (*atelier.Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var out *atelier.Model
	err := db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		if _, err := db.findModel(ctx, tx, workspace, wsID, c.Name); err == nil {
			return atelier.Errorf(atelier.ECONFLICT, "model %q already exists", c.Name)
		} else if atelier.ErrorCode(err) != atelier.ENOTFOUND {
			return err
		}
		if err := dropGoneModel(ctx, tx, wsID, c.Name); err != nil {
			return err
		}
		now := ms(db.now())
		var id int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO models (workspace_id, name, last_version, description, kept, created_at, updated_at)
			VALUES (?, ?, 0, ?, 1, ?, ?) RETURNING id`, wsID, c.Name, c.Description, now, now).Scan(&id); err != nil {
			return err
		}
		if err := changeTags(ctx, tx, "model_tags", "model_id", id, c.Tags, nil, nil); err != nil {
			return err
		}
		out, err = db.findModel(ctx, tx, workspace, wsID, c.Name)
		return err
	})
	return out, err
}

// dropGoneModel deletes the row left by a model that went with its last version.
func dropGoneModel(ctx context.Context, tx *txn, wsID int64, name string) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM models WHERE workspace_id = ? AND name = ? AND NOT kept
		AND NOT EXISTS (SELECT 1 FROM model_versions v WHERE v.model_id = models.id)`, wsID, name)
	return err
}

// UpdateModel sets a model's description and tags, all or nothing; the model is kept from then
// on, so what was said of it does not vanish with its last version.
func (db *DB) UpdateModel(ctx context.Context, workspace, name string, upd atelier.ModelUpdate) (*atelier.Model, error) {
	if err := atelier.ValidateModelName(name); err != nil {
		return nil, err
	}
	if err := upd.Validate(); err != nil {
		return nil, err
	}
	var out *atelier.Model
	err := db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		if _, err := db.findModel(ctx, tx, workspace, wsID, name); err != nil {
			return err
		}
		id, err := db.modelID(ctx, tx, wsID, name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE models SET kept = 1, updated_at = ?, description = coalesce(?, description) WHERE id = ?`,
			ms(db.now()), nullStringPtr(upd.Description), id); err != nil {
			return err
		}
		missing := func(k string) error { return atelier.Errorf(atelier.ENOTFOUND, "model %q has no tag %q", name, k) }
		if err := changeTags(ctx, tx, "model_tags", "model_id", id, upd.Tags, upd.DeleteTags, missing); err != nil {
			return err
		}
		out, err = db.findModel(ctx, tx, workspace, wsID, name)
		return err
	})
	return out, err
}

// RenameModel renames a model in place: versions, aliases, tags, references and creation
// times stay with it (they hang off its row, not its name).
func (db *DB) RenameModel(ctx context.Context, workspace, name, newName string) (*atelier.Model, error) {
	if err := atelier.ValidateModelName(name); err != nil {
		return nil, err
	}
	if err := atelier.ValidateModelName(newName); err != nil {
		return nil, err
	}
	var out *atelier.Model
	err := db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		if _, err := db.findModel(ctx, tx, workspace, wsID, name); err != nil {
			return err
		}
		if newName == name {
			return atelier.Errorf(atelier.EINVALID, "model %q already has that name", name)
		}
		if _, err := db.findModel(ctx, tx, workspace, wsID, newName); err == nil {
			return atelier.Errorf(atelier.ECONFLICT, "model %q already exists", newName)
		} else if atelier.ErrorCode(err) != atelier.ENOTFOUND {
			return err
		}
		if err := dropGoneModel(ctx, tx, wsID, newName); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE models SET name = ?, updated_at = ? WHERE workspace_id = ? AND name = ?`,
			newName, ms(db.now()), wsID, name); err != nil {
			return err
		}
		out, err = db.findModel(ctx, tx, workspace, wsID, newName)
		return err
	})
	return out, err
}

// AddModelReference records that something uses a version.
func (db *DB) AddModelReference(ctx context.Context, workspace string, r atelier.ModelReference) error {
	if err := r.Validate(); err != nil {
		return err
	}
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		id, _, err := db.resolve(ctx, tx, wsID, atelier.ModelRef{Name: r.Name, Version: r.Version})
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO model_references (version_id, kind, ref_id, created_at) VALUES (?, ?, ?, ?)`,
			id, r.Kind, r.ID, ms(db.now()))
		return err
	})
}

// RemoveModelReference forgets a reference; forgetting an unknown one is not an error.
func (db *DB) RemoveModelReference(ctx context.Context, workspace string, r atelier.ModelReference) error {
	if err := r.Validate(); err != nil {
		return err
	}
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		id, _, err := db.resolve(ctx, tx, wsID, atelier.ModelRef{Name: r.Name, Version: r.Version})
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return nil
		} else if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM model_references WHERE version_id = ? AND kind = ? AND ref_id = ?`, id, r.Kind, r.ID)
		return err
	})
}

// ListModelReferences lists what uses a version, or any version of the model for a bare name.
func (db *DB) ListModelReferences(ctx context.Context, workspace string, ref atelier.ModelRef) ([]atelier.ModelReference, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	if ref.Latest() {
		modelID, err := db.modelID(ctx, db.read, wsID, ref.Name)
		if err != nil {
			return nil, err
		}
		return db.references(ctx, db.read, "v.model_id = ?", modelID)
	}
	id, _, err := db.resolve(ctx, db.read, wsID, ref)
	if err != nil {
		return nil, err
	}
	return db.references(ctx, db.read, "v.id = ?", id)
}

// sortedKeys gives map keys in order, so errors name the same key every time.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// nullStringPtr is NULL for nil, so coalesce keeps the stored value.
func nullStringPtr(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
