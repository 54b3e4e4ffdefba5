package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"strings"

	"github.com/atelier-ml/atelier"
)

var _ atelier.LoggedModelStore = (*DB)(nil)

const loggedModelColumns = `lm.id, w.name, e.name, lm.name, lm.model_type, coalesce(lm.source_run_id, ''), lm.status,
	lm.status_message, lm.deleted, lm.created_by, lm.created_at, lm.updated_at`

const loggedModelFrom = ` FROM logged_models lm JOIN workspaces w ON w.id = lm.workspace_id JOIN experiments e ON e.id = lm.experiment_id`

func scanLoggedModel(row interface{ Scan(...any) error }) (*atelier.LoggedModel, error) {
	m := &atelier.LoggedModel{Params: map[string]string{}, Tags: map[string]string{}, Metrics: []*atelier.LoggedModelMetric{}}
	var created, updated int64
	if err := row.Scan(&m.ID, &m.Workspace, &m.Experiment, &m.Name, &m.ModelType, &m.SourceRunID, &m.Status,
		&m.StatusMessage, &m.Deleted, &m.CreatedBy, &created, &updated); err != nil {
		return nil, err
	}
	m.CreatedAt, m.UpdatedAt = fromMS(created), fromMS(updated)
	return m, nil
}

func loggedModelNotFound(id string) error {
	return atelier.Errorf(atelier.ENOTFOUND, "logged model %q not found", id)
}

// CreateLoggedModel stores a new Pending model, creating its experiment if needed. Its source
// run is recorded as given, as MLflow does: a model may name a run kept elsewhere.
func (db *DB) CreateLoggedModel(ctx context.Context, workspace string, c atelier.LoggedModelCreate, createdBy string) (*atelier.LoggedModel, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var out *atelier.LoggedModel
	err := db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		expID, err := db.experimentID(ctx, tx, wsID, c.Experiment)
		if err != nil {
			return err
		}
		id, now := atelier.LoggedModelIDPrefix+db.NewID(), ms(db.now())
		if _, err := tx.ExecContext(ctx, `INSERT INTO logged_models (id, workspace_id, experiment_id, name, model_type, source_run_id,
			status, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, wsID, expID, c.Name, c.ModelType, nullString(c.SourceRunID), atelier.LoggedModelPending, createdBy, now, now); err != nil {
			return err
		}
		if err := putKeyValues(ctx, tx, "logged_model_params", id, c.Params); err != nil {
			return err
		}
		if err := putKeyValues(ctx, tx, "logged_model_tags", id, c.Tags); err != nil {
			return err
		}
		out, err = db.findLoggedModel(ctx, tx, wsID, id)
		return err
	})
	return out, err
}

func putKeyValues(ctx context.Context, tx *txn, table, id string, kv map[string]string) error {
	for _, k := range sortedKeys(kv) {
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO `+table+` (model_id, key, value) VALUES (?, ?, ?)`, id, k, kv[k]); err != nil {
			return err
		}
	}
	return nil
}

// FindLoggedModel returns a model with its params, tags and metrics, deleted or not.
func (db *DB) FindLoggedModel(ctx context.Context, workspace, id string) (*atelier.LoggedModel, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	return db.findLoggedModel(ctx, db.read, wsID, id)
}

func (db *DB) findLoggedModel(ctx context.Context, q querier, wsID int64, id string) (*atelier.LoggedModel, error) {
	m, err := scanLoggedModel(q.QueryRowContext(ctx, `SELECT `+loggedModelColumns+loggedModelFrom+` WHERE lm.id = ? AND lm.workspace_id = ?`, id, wsID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, loggedModelNotFound(id)
	} else if err != nil {
		return nil, err
	}
	return m, loggedModelDetails(ctx, q, []*atelier.LoggedModel{m})
}

// loggedModelDetails fills in the params, tags and metrics of models, the ids passed as one
// JSON array (so each query is one cached statement whatever the page's length).
func loggedModelDetails(ctx context.Context, q querier, list []*atelier.LoggedModel) error {
	if len(list) == 0 {
		return nil
	}
	byID := make(map[string]*atelier.LoggedModel, len(list))
	ids := make([]string, 0, len(list))
	for _, m := range list {
		byID[m.ID] = m
		ids = append(ids, m.ID)
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	const in = ` WHERE model_id IN (SELECT value FROM json_each(?))`
	for _, part := range []struct {
		table string
		get   func(*atelier.LoggedModel) map[string]string
	}{
		{"logged_model_params", func(m *atelier.LoggedModel) map[string]string { return m.Params }},
		{"logged_model_tags", func(m *atelier.LoggedModel) map[string]string { return m.Tags }},
	} {
		rows, err := q.QueryContext(ctx, `SELECT model_id, key, value FROM `+part.table+in, string(idsJSON))
		if err != nil {
			return err
		}
		for rows.Next() {
			var id, k, v string
			if err := rows.Scan(&id, &k, &v); err != nil {
				rows.Close()
				return err
			}
			part.get(byID[id])[k] = v
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	rows, err := q.QueryContext(ctx, `SELECT model_id, name, step, timestamp, value, is_nan, run_id, dataset_name, dataset_digest
		FROM logged_model_metrics`+in+` ORDER BY id`, string(idsJSON))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var mm atelier.LoggedModelMetric
		var ts int64
		var v sql.NullFloat64
		var isNaN bool
		if err := rows.Scan(&id, &mm.Name, &mm.Step, &ts, &v, &isNaN, &mm.RunID, &mm.DatasetName, &mm.DatasetDigest); err != nil {
			return err
		}
		mm.Timestamp, mm.Value = fromMS(ts), v.Float64
		if isNaN || !v.Valid {
			mm.Value = math.NaN()
		}
		byID[id].Metrics = append(byID[id].Metrics, &mm)
	}
	return rows.Err()
}

// liveLoggedModel checks that a model exists in the workspace and is not deleted.
func liveLoggedModel(ctx context.Context, tx *txn, wsID int64, id string) error {
	var deleted bool
	err := tx.QueryRowContext(ctx, `SELECT deleted FROM logged_models WHERE id = ? AND workspace_id = ?`, id, wsID).Scan(&deleted)
	if errors.Is(err, sql.ErrNoRows) || deleted {
		return loggedModelNotFound(id)
	}
	return err
}

// UpdateLoggedModel changes a live model in one transaction.
func (db *DB) UpdateLoggedModel(ctx context.Context, workspace, id string, upd atelier.LoggedModelUpdate) (*atelier.LoggedModel, error) {
	if err := upd.Validate(); err != nil {
		return nil, err
	}
	var out *atelier.LoggedModel
	err := db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		if err := liveLoggedModel(ctx, tx, wsID, id); err != nil {
			return err
		}
		for _, k := range sortedKeys(upd.Params) {
			var old string
			err := tx.QueryRowContext(ctx, `SELECT value FROM logged_model_params WHERE model_id = ? AND key = ?`, id, k).Scan(&old)
			if err == nil && old != upd.Params[k] {
				return atelier.Errorf(atelier.ECONFLICT, "param %q of logged model %s is already %q: params cannot change", k, id, old)
			} else if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if err := putKeyValues(ctx, tx, "logged_model_params", id, upd.Params); err != nil {
			return err
		}
		if err := putKeyValues(ctx, tx, "logged_model_tags", id, upd.Tags); err != nil {
			return err
		}
		for _, k := range upd.DeleteTags {
			res, err := tx.ExecContext(ctx, `DELETE FROM logged_model_tags WHERE model_id = ? AND key = ?`, id, k)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return atelier.Errorf(atelier.ENOTFOUND, "logged model %s has no tag %q", id, k)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE logged_models SET status = coalesce(?, status), status_message = coalesce(?, status_message),
			updated_at = ? WHERE id = ?`, nullStatus(upd.Status), nullStringPtr(upd.StatusMessage), ms(db.now()), id); err != nil {
			return err
		}
		out, err = db.findLoggedModel(ctx, tx, wsID, id)
		return err
	})
	return out, err
}

func nullStatus(s *atelier.LoggedModelStatus) any {
	if s == nil {
		return nil
	}
	return string(*s)
}

// DeleteLoggedModel marks a live model deleted.
func (db *DB) DeleteLoggedModel(ctx context.Context, workspace, id string) error {
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		if err := liveLoggedModel(ctx, tx, wsID, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE logged_models SET deleted = 1, updated_at = ? WHERE id = ?`, ms(db.now()), id)
		return err
	})
}

// LogLoggedModelMetrics records metrics measured on a live model.
func (db *DB) LogLoggedModelMetrics(ctx context.Context, workspace, id string, metrics []*atelier.LoggedModelMetric) error {
	if err := atelier.ValidateLoggedModelMetrics(metrics); err != nil {
		return err
	}
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		if err := liveLoggedModel(ctx, tx, wsID, id); err != nil {
			return err
		}
		for _, m := range metrics {
			var v any = m.Value
			if math.IsNaN(m.Value) {
				v = nil
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO logged_model_metrics (model_id, name, step, timestamp, value, is_nan, run_id,
				dataset_name, dataset_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, m.Name, m.Step, ms(m.Timestamp), v,
				math.IsNaN(m.Value), m.RunID, m.DatasetName, m.DatasetDigest); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE logged_models SET updated_at = ? WHERE id = ?`, ms(db.now()), id)
		return err
	})
}

// AddRunModels links runs to models; links already there stay as they are.
func (db *DB) AddRunModels(ctx context.Context, workspace string, links []atelier.RunModel) error {
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		for _, l := range links {
			if _, err := db.checkRun(ctx, tx, workspace, l.RunID); err != nil {
				return err
			}
			if err := liveLoggedModel(ctx, tx, wsID, l.ModelID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO run_models (run_id, model_id, input, step) VALUES (?, ?, ?, ?)`,
				l.RunID, l.ModelID, l.Input, l.Step); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListRunModels lists a run's model links in the order they were added.
func (db *DB) ListRunModels(ctx context.Context, workspace, runID string) ([]atelier.RunModel, error) {
	if _, err := db.checkRun(ctx, db.read, workspace, runID); err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT model_id, input, step FROM run_models WHERE run_id = ? ORDER BY id`, runID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []atelier.RunModel{}
	for rows.Next() {
		l := atelier.RunModel{RunID: runID}
		if err := rows.Scan(&l.ModelID, &l.Input, &l.Step); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// PutLoggedModelFile records (or replaces) a file of a live model.
func (db *DB) PutLoggedModelFile(ctx context.Context, workspace, id string, f *atelier.File) error {
	if err := atelier.ValidatePath(f.Path); err != nil {
		return err
	}
	if err := atelier.ValidateDigest(f.Digest); err != nil {
		return err
	}
	f.CreatedAt = db.now()
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		if err := liveLoggedModel(ctx, tx, wsID, id); err != nil {
			return err
		}
		// A file and a folder of one name could not both be registered.
		var clash string
		err = tx.QueryRowContext(ctx, `SELECT path FROM logged_model_files WHERE model_id = ? AND (path GLOB ? OR ? GLOB path || '/*') LIMIT 1`,
			id, globEscape(f.Path)+"/*", f.Path).Scan(&clash)
		if err == nil {
			return atelier.Errorf(atelier.ECONFLICT, "logged model %s: %q and %q cannot both be files", id, f.Path, clash)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO logged_model_files (model_id, path, digest, size, created_at) VALUES (?, ?, ?, ?, ?)`,
			id, f.Path, f.Digest, f.Size, ms(f.CreatedAt))
		return err
	})
}

// FindLoggedModelFile returns one file of a model.
func (db *DB) FindLoggedModelFile(ctx context.Context, workspace, id, path string) (*atelier.File, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	f := &atelier.File{Path: path}
	var created int64
	err = db.read.QueryRowContext(ctx, `SELECT f.digest, f.size, f.created_at FROM logged_model_files f JOIN logged_models lm ON lm.id = f.model_id
		WHERE f.model_id = ? AND f.path = ? AND lm.workspace_id = ?`, id, path, wsID).Scan(&f.Digest, &f.Size, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "logged model %s has no file %q", id, path)
	} else if err != nil {
		return nil, err
	}
	f.CreatedAt = fromMS(created)
	return f, nil
}

// ListLoggedModelFiles lists a model's files at prefix: the file itself, or a folder and all
// under it; "" lists all.
func (db *DB) ListLoggedModelFiles(ctx context.Context, workspace, id, prefix string) ([]*atelier.File, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	var n int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM logged_models WHERE id = ? AND workspace_id = ?`, id, wsID).Scan(&n); err != nil {
		return nil, err
	} else if n == 0 {
		return nil, loggedModelNotFound(id)
	}
	prefix = strings.Trim(prefix, "/")
	glob := "*"
	if prefix != "" {
		glob = globEscape(prefix) + "/*"
	}
	rows, err := db.read.QueryContext(ctx, `SELECT path, digest, size, created_at FROM logged_model_files
		WHERE model_id = ? AND (path GLOB ? OR path = ?) ORDER BY path`, id, glob, prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*atelier.File{}
	for rows.Next() {
		var f atelier.File
		var created int64
		if err := rows.Scan(&f.Path, &f.Digest, &f.Size, &created); err != nil {
			return nil, err
		}
		f.CreatedAt = fromMS(created)
		out = append(out, &f)
	}
	return out, rows.Err()
}

// loggedModelQuery is the search of logged models over logged_models lm and experiments e.
// Metrics are the newest value (highest step, then time) measured on the model, on the
// search's data sets when it names some.
func loggedModelQuery(datasets string, datasetsArgs []any) *recordQuery {
	return &recordQuery{
		attrs: map[string]string{"id": "lm.id", "name": "lm.name", "status": "lm.status", "model_type": "lm.model_type",
			"source_run_id": "coalesce(lm.source_run_id, '')", "experiment": "e.name",
			"created_at": "lm.created_at", "updated_at": "lm.updated_at"},
		times: map[string]bool{"created_at": true, "updated_at": true},
		sides: map[string]side{atelier.FieldParam: {"logged_model_params", "model_id", "lm.id"},
			atelier.FieldTag: {"logged_model_tags", "model_id", "lm.id"}},
		metric: func(q *recordQuery, name string) string {
			q.args = append(append(q.args, name), datasetsArgs...)
			return `(SELECT CASE WHEN x.is_nan THEN NULL ELSE x.value END FROM logged_model_metrics x WHERE x.model_id = lm.id AND x.name = ?` +
				datasets + ` ORDER BY x.step DESC, x.timestamp DESC, x.id DESC LIMIT 1)`
		},
	}
}

// ListLoggedModels searches live models in the database: the filter and ordering become SQL
// over the indexed side tables; pages are offsets into the ordering.
func (db *DB) ListLoggedModels(ctx context.Context, workspace string, lq atelier.LoggedModelQuery) (*atelier.LoggedModelPage, error) {
	if err := lq.Validate(); err != nil {
		return nil, err
	}
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	filter, err := atelier.ParseFilterFor(lq.Filter, atelier.LoggedModelAttributes, loggedModelStatuses)
	if err != nil {
		return nil, err
	}
	terms, err := atelier.ParseOrderByFor(lq.OrderBy, atelier.LoggedModelAttributes)
	if err != nil {
		return nil, err
	}
	offset, err := decodePageToken(lq.PageToken)
	if err != nil {
		return nil, err
	}
	limit := lq.Limit
	if limit == 0 {
		limit = atelier.DefaultPageSize
	}
	var datasets string
	var datasetsArgs []any
	if len(lq.Datasets) > 0 {
		var ors []string
		for _, d := range lq.Datasets {
			if d.Digest == "" {
				ors = append(ors, "x.dataset_name = ?")
				datasetsArgs = append(datasetsArgs, d.Name)
			} else {
				ors = append(ors, "(x.dataset_name = ? AND x.dataset_digest = ?)")
				datasetsArgs = append(datasetsArgs, d.Name, d.Digest)
			}
		}
		datasets = " AND (" + strings.Join(ors, " OR ") + ")"
	}
	q := loggedModelQuery(datasets, datasetsArgs)
	order, orderArgs, err := q.order(terms)
	if err != nil {
		return nil, err
	}
	order = append(order, "lm.created_at DESC", "lm.id DESC")
	where := []string{"lm.workspace_id = ?", "lm.deleted = 0"}
	q.args = append(q.args, wsID)
	// The experiments as ids, so that the models are walked on (experiment_id, created_at, id),
	// in the default order, for a search of one experiment.
	if len(lq.Experiments) == 1 {
		where = append(where, "lm.experiment_id = (SELECT id FROM experiments WHERE workspace_id = ? AND name = ?)")
		q.args = append(q.args, wsID, lq.Experiments[0])
	} else if len(lq.Experiments) > 1 {
		where = append(where, "lm.experiment_id IN (SELECT id FROM experiments WHERE workspace_id = ? AND name IN "+inList(len(lq.Experiments))+")")
		q.args = append(q.args, wsID)
		for _, e := range lq.Experiments {
			q.args = append(q.args, e)
		}
	}
	if datasets != "" {
		where = append(where, "EXISTS (SELECT 1 FROM logged_model_metrics x WHERE x.model_id = lm.id"+datasets+")")
		q.args = append(q.args, datasetsArgs...)
	}
	if filter != nil {
		cond, err := q.compile(filter)
		if err != nil {
			return nil, err
		}
		where = append(where, cond)
	}
	if few, err := q.few(ctx, db.read, "logged_models", offset+limit+1); err != nil {
		return nil, err
	} else if few {
		where[0], order = "+"+where[0], unindexed(order)
		if len(lq.Experiments) > 0 {
			where[2] = "+" + where[2]
		}
	}
	args := append(q.args, orderArgs...)
	args = append(args, limit+1, offset)
	rows, err := db.read.QueryContext(ctx, `SELECT `+loggedModelColumns+loggedModelFrom+` WHERE `+strings.Join(where, " AND ")+
		` ORDER BY `+strings.Join(order, ", ")+` LIMIT ? OFFSET ?`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	page := &atelier.LoggedModelPage{Models: []*atelier.LoggedModel{}}
	for rows.Next() {
		m, err := scanLoggedModel(rows)
		if err != nil {
			return nil, err
		}
		page.Models = append(page.Models, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(page.Models) > limit {
		page.Models = page.Models[:limit]
		page.NextPageToken = encodePageToken(offset + limit)
	}
	return page, loggedModelDetails(ctx, db.read, page.Models)
}

var loggedModelStatuses = []string{string(atelier.LoggedModelPending), string(atelier.LoggedModelReady), string(atelier.LoggedModelFailed)}
