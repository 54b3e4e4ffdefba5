package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/atelier-ml/atelier"
)

const experimentColumns = `e.id, w.name, e.name, e.description, e.archived, e.created_at, e.updated_at, e.artifact_location,
	coalesce((SELECT run_count FROM experiment_stats s WHERE s.experiment_id = e.id), 0),
	(SELECT last_run_at FROM experiment_stats s WHERE s.experiment_id = e.id)`

func scanExperiment(row interface{ Scan(...any) error }) (*atelier.Experiment, error) {
	var e atelier.Experiment
	var created, updated int64
	var last sql.NullInt64
	if err := row.Scan(&e.ID, &e.Workspace, &e.Name, &e.Description, &e.Archived, &created, &updated, &e.ArtifactLocation, &e.RunCount, &last); err != nil {
		return nil, err
	}
	e.CreatedAt, e.UpdatedAt, e.LastRunAt = fromMS(created), fromMS(updated), fromNullMS(last)
	return &e, nil
}

// FindExperiment returns an experiment by name.
func (db *DB) FindExperiment(ctx context.Context, workspace, name string) (*atelier.Experiment, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	return db.findExperiment(ctx, db.read, wsID, name)
}

func (db *DB) findExperiment(ctx context.Context, q querier, wsID int64, name string) (*atelier.Experiment, error) {
	e, err := scanExperiment(q.QueryRowContext(ctx, `SELECT `+experimentColumns+`
		FROM experiments e JOIN workspaces w ON w.id = e.workspace_id WHERE e.workspace_id = ? AND e.name = ?`, wsID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "experiment %q not found", name)
	} else if err != nil {
		return nil, err
	}
	return e, experimentTags(ctx, q, `experiment_id = ?`, []any{e.ID}, []*atelier.Experiment{e})
}

// experimentTags fills in the tags of the experiments, reading those of experiment_tags rows
// matching where.
func experimentTags(ctx context.Context, q querier, where string, args []any, list []*atelier.Experiment) error {
	if len(list) == 0 {
		return nil
	}
	byID := make(map[int64]*atelier.Experiment, len(list))
	for _, e := range list {
		byID[e.ID] = e
	}
	rows, err := q.QueryContext(ctx, `SELECT experiment_id, key, value FROM experiment_tags WHERE `+where, args...)
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
		if e := byID[id]; e != nil {
			if e.Tags == nil {
				e.Tags = map[string]string{}
			}
			e.Tags[k] = v
		}
	}
	return rows.Err()
}

// ListExperiments returns a workspace's experiments by name.
func (db *DB) ListExperiments(ctx context.Context, workspace string, f atelier.ExperimentFilter) ([]*atelier.Experiment, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	query := `SELECT ` + experimentColumns + ` FROM experiments e JOIN workspaces w ON w.id = e.workspace_id WHERE e.workspace_id = ?`
	args := []any{wsID}
	if !f.IncludeArchived {
		query += ` AND e.archived = 0`
	}
	if f.Name != "" {
		query += ` AND e.name = ?`
		args = append(args, f.Name)
	}
	if f.ID != 0 {
		query += ` AND e.id = ?`
		args = append(args, f.ID)
	}
	rows, err := db.read.QueryContext(ctx, query+` ORDER BY e.name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.Experiment{}
	for rows.Next() {
		e, err := scanExperiment(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if f.ID != 0 || f.Name != "" {
		// At most one experiment: its tags by their primary key (a subquery naming the
		// experiment by "? = 0 OR id = ?" read every experiment's tags).
		if len(list) == 0 {
			return list, nil
		}
		ids := make([]any, len(list))
		for i, e := range list {
			ids[i] = e.ID
		}
		err = experimentTags(ctx, db.read, `experiment_id IN `+inList(len(ids)), ids, list)
	} else {
		err = experimentTags(ctx, db.read, `experiment_id IN (SELECT id FROM experiments WHERE workspace_id = ?)`, []any{wsID}, list)
	}
	return list, err
}

// CreateExperiment creates an experiment; ECONFLICT when the name is taken. The name is
// checked and taken in one write transaction, so of concurrent creates exactly one wins.
func (db *DB) CreateExperiment(ctx context.Context, workspace string, c atelier.ExperimentCreate) (*atelier.Experiment, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var out *atelier.Experiment
	err := db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		now := ms(db.now())
		res, err := tx.ExecContext(ctx, `INSERT INTO experiments (workspace_id, name, description, artifact_location, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)`, wsID, c.Name, c.Description, c.ArtifactLocation, now, now)
		if isUniqueViolation(err) {
			return atelier.Errorf(atelier.ECONFLICT, "experiment %q already exists", c.Name)
		} else if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		if err := changeTags(ctx, tx, "experiment_tags", "experiment_id", id, c.Tags, nil, nil); err != nil {
			return err
		}
		out, err = db.findExperiment(ctx, tx, wsID, c.Name)
		return err
	})
	return out, err
}

// changeTags sets and deletes the tags of one experiment or model (table experiment_tags or
// model_tags, keyed by owner column col); a tag to delete that is not there is ENOTFOUND.
func changeTags(ctx context.Context, tx *txn, table, col string, id int64, set map[string]string, del []string, missing func(key string) error) error {
	for _, k := range sortedKeys(set) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (`+col+`, key, value) VALUES (?, ?, ?)
			ON CONFLICT (`+col+`, key) DO UPDATE SET value = excluded.value`, id, k, set[k]); err != nil {
			return err
		}
	}
	for _, k := range del {
		res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+col+` = ? AND key = ?`, id, k)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return missing(k)
		}
	}
	return nil
}

// UpdateExperiment renames, describes, archives or restores an experiment.
func (db *DB) UpdateExperiment(ctx context.Context, workspace, name string, upd atelier.ExperimentUpdate) (*atelier.Experiment, error) {
	if upd.Name != nil {
		if err := atelier.ValidateExperimentName(*upd.Name); err != nil {
			return nil, err
		}
	}
	if err := upd.Validate(); err != nil {
		return nil, err
	}
	var out *atelier.Experiment
	err := db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		e, err := db.findExperiment(ctx, tx, wsID, name)
		if err != nil {
			return err
		}
		if upd.Name != nil {
			e.Name = *upd.Name
		}
		if upd.Description != nil {
			e.Description = *upd.Description
		}
		if upd.Archived != nil {
			e.Archived = *upd.Archived
		}
		e.UpdatedAt = db.now()
		_, err = tx.ExecContext(ctx, `UPDATE experiments SET name = ?, description = ?, archived = ?, updated_at = ? WHERE id = ?`,
			e.Name, e.Description, e.Archived, ms(e.UpdatedAt), e.ID)
		if isUniqueViolation(err) {
			return atelier.Errorf(atelier.ECONFLICT, "experiment %q already exists", e.Name)
		} else if err != nil {
			return err
		}
		missing := func(k string) error {
			return atelier.Errorf(atelier.ENOTFOUND, "experiment %q has no tag %q", e.Name, k)
		}
		if err := changeTags(ctx, tx, "experiment_tags", "experiment_id", e.ID, upd.Tags, upd.DeleteTags, missing); err != nil {
			return err
		}
		out, err = db.findExperiment(ctx, tx, wsID, e.Name)
		return err
	})
	return out, err
}

// experimentID returns the id of the named experiment, creating it on first use.
func (db *DB) experimentID(ctx context.Context, tx *txn, wsID int64, name string) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM experiments WHERE workspace_id = ? AND name = ?`, wsID, name).Scan(&id)
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		return id, err
	}
	now := ms(db.now())
	res, err := tx.ExecContext(ctx, `INSERT INTO experiments (workspace_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)`, wsID, name, now, now)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// countRun adds a new run to its experiment's stats, in the run's transaction.
func countRun(ctx context.Context, tx *txn, expID, createdAt int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO experiment_stats (experiment_id, run_count, last_run_at) VALUES (?, 1, ?)
		ON CONFLICT (experiment_id) DO UPDATE SET run_count = run_count + 1, last_run_at = max(last_run_at, excluded.last_run_at)`,
		expID, createdAt)
	return err
}

var _ atelier.ExperimentSearcher = (*DB)(nil)

// experimentQuery is the search of experiments e.
func experimentQuery() *recordQuery {
	return &recordQuery{
		attrs: map[string]string{"id": "e.id", "name": "e.name", "created_at": "e.created_at", "updated_at": "e.updated_at"},
		times: map[string]bool{"created_at": true, "updated_at": true},
		sides: map[string]side{atelier.FieldTag: {"experiment_tags", "experiment_id", "e.id"}},
	}
}

// SearchExperiments filters, orders and pages experiments in the database.
func (db *DB) SearchExperiments(ctx context.Context, workspace string, eq atelier.ExperimentQuery) (*atelier.ExperimentPage, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	limit, err := pageLimit(eq.Limit)
	if err != nil {
		return nil, err
	}
	offset, err := decodePageToken(eq.PageToken)
	if err != nil {
		return nil, err
	}
	q := experimentQuery()
	terms, err := atelier.ParseOrderByFor(eq.OrderBy, atelier.ExperimentAttributes)
	if err != nil {
		return nil, err
	}
	if len(terms) == 0 {
		terms = []atelier.OrderTerm{{Field: atelier.FilterField{Kind: atelier.FieldAttribute, Name: "created_at"}, Desc: true}}
	}
	order, orderArgs, err := q.order(terms)
	if err != nil {
		return nil, err
	}
	where := []string{"e.workspace_id = ?"}
	q.args = append(q.args, wsID)
	if eq.Archived != nil {
		where, q.args = append(where, "e.archived = ?"), append(q.args, *eq.Archived)
	}
	cond, err := q.where(eq.Filter, atelier.ExperimentAttributes, nil)
	if err != nil {
		return nil, err
	}
	if cond != "" {
		where = append(where, cond)
	}
	order = append(order, "e.id")
	if few, err := q.few(ctx, db.read, "experiments", offset+limit+1); err != nil {
		return nil, err
	} else if few {
		where[0], order = "+"+where[0], unindexed(order)
	}
	args := append(append(q.args, orderArgs...), limit+1, offset)
	rows, err := db.read.QueryContext(ctx, `SELECT `+experimentColumns+` FROM experiments e JOIN workspaces w ON w.id = e.workspace_id
		WHERE `+strings.Join(where, " AND ")+` ORDER BY `+strings.Join(order, ", ")+` LIMIT ? OFFSET ?`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	page := &atelier.ExperimentPage{Experiments: []*atelier.Experiment{}}
	for rows.Next() {
		e, err := scanExperiment(rows)
		if err != nil {
			return nil, err
		}
		page.Experiments = append(page.Experiments, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(page.Experiments) > limit {
		page.Experiments = page.Experiments[:limit]
		page.NextPageToken = encodePageToken(offset + limit)
	}
	if len(page.Experiments) == 0 {
		return page, nil
	}
	ids := make([]any, len(page.Experiments))
	for i, e := range page.Experiments {
		ids[i] = e.ID
	}
	return page, experimentTags(ctx, db.read, `experiment_id IN `+inList(len(ids)), ids, page.Experiments)
}
