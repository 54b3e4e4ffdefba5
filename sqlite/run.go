package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
)

// CreateRun inserts a run, creating its experiment on first use.
func (db *DB) CreateRun(ctx context.Context, workspace string, c atelier.RunCreate) (*atelier.Run, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Status == "" {
		c.Status = atelier.StatusNotStarted
		if c.StartedAt != nil {
			// A run given its start time has started (Validate refused any other status).
			c.Status = atelier.StatusRunning
		}
	}
	now := db.now()
	run := &atelier.Run{ID: db.NewID(), Workspace: workspace, Experiment: c.Experiment, ParentID: c.ParentID,
		Name: c.Name, Status: c.Status, CreatedAt: now, CreatedBy: atelier.PrincipalName(ctx), Compute: c.Compute,
		Config: c.Config, SnapshotID: c.SnapshotID, Git: c.Git,
		Params: nonNil(c.Params), Tags: nonNil(c.Tags), Properties: nonNil(c.Properties), Metrics: map[string]atelier.Float{}}
	if c.StartedAt != nil {
		started := c.StartedAt.UTC().Truncate(time.Millisecond)
		run.StartedAt = &started
	} else if c.Status.Active() {
		run.StartedAt = &now
	}
	err := db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		if c.ParentID != "" {
			var parentWS int64
			var parentExp string
			err := tx.QueryRowContext(ctx, `SELECT r.workspace_id, e.name FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE r.id = ?`,
				c.ParentID).Scan(&parentWS, &parentExp)
			if errors.Is(err, sql.ErrNoRows) || (err == nil && parentWS != wsID) {
				return atelier.Errorf(atelier.ENOTFOUND, "parent run %q not found", c.ParentID)
			} else if err != nil {
				return err
			}
			if run.Experiment == "" {
				run.Experiment = parentExp
			}
		}
		expID, err := db.experimentID(ctx, tx, wsID, run.Experiment)
		if err != nil {
			return err
		}
		var git any
		if c.Git != nil {
			b, _ := json.Marshal(c.Git)
			git = string(b)
		}
		var config any
		if len(c.Config) > 0 {
			config = string(c.Config)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO runs (id, workspace_id, experiment_id, parent_id, name, status, created_at,
			started_at, created_by, compute, config, snapshot_id, git) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			run.ID, wsID, expID, nullString(c.ParentID), run.Name, run.Status, ms(now), nullMS(run.StartedAt),
			run.CreatedBy, run.Compute, config, run.SnapshotID, git); err != nil {
			return err
		}
		if err := countRun(ctx, tx, expID, ms(now)); err != nil {
			return err
		}
		for table, kv := range map[string]map[string]string{"run_params": c.Params, "run_tags": c.Tags, "run_properties": c.Properties} {
			if err := insertKeyValues(ctx, tx, table, run.ID, kv); err != nil {
				return err
			}
		}
		if err := insertRunData(ctx, tx, wsID, run.ID, c.Data); err != nil {
			return err
		}
		return putActivity(ctx, tx, wsID, run.Activity(now))
	})
	if err != nil {
		return nil, err
	}
	return run, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func insertKeyValues(ctx context.Context, tx *txn, table, runID string, kv map[string]string) error {
	for k, v := range kv {
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO `+table+` (run_id, key, value) VALUES (?, ?, ?)`, runID, k, v); err != nil {
			return err
		}
	}
	return nil
}

const runColumns = `r.id, w.name, e.name, coalesce(r.parent_id, ''), r.name, r.status, r.created_at, r.started_at, r.ended_at,
	r.created_by, r.compute, r.config, r.snapshot_id, r.error, r.exit_code, r.git,
	(SELECT count(*) FROM runs c WHERE c.parent_id = r.id), r.deleted`

const runJoins = ` JOIN workspaces w ON w.id = r.workspace_id JOIN experiments e ON e.id = r.experiment_id`

const runFrom = ` FROM runs r` + runJoins

func scanRun(row interface{ Scan(...any) error }) (*atelier.Run, error) {
	var r atelier.Run
	var created int64
	var started, ended, exit sql.NullInt64
	var config, git sql.NullString
	if err := row.Scan(&r.ID, &r.Workspace, &r.Experiment, &r.ParentID, &r.Name, &r.Status, &created, &started, &ended,
		&r.CreatedBy, &r.Compute, &config, &r.SnapshotID, &r.Error, &exit, &git, &r.ChildCount, &r.Deleted); err != nil {
		return nil, err
	}
	r.CreatedAt, r.StartedAt, r.EndedAt = fromMS(created), fromNullMS(started), fromNullMS(ended)
	if config.Valid {
		r.Config = json.RawMessage(config.String)
	}
	if exit.Valid {
		code := int(exit.Int64)
		r.ExitCode = &code
	}
	if git.Valid {
		r.Git = &atelier.GitInfo{}
		json.Unmarshal([]byte(git.String), r.Git)
	}
	r.Params, r.Tags, r.Properties, r.Metrics = map[string]string{}, map[string]string{}, map[string]string{}, map[string]atelier.Float{}
	return &r, nil
}

// FindRun returns a run with its params, tags, properties and latest metrics.
func (db *DB) FindRun(ctx context.Context, workspace, id string) (*atelier.Run, error) {
	return db.findRun(ctx, db.read, workspace, id)
}

func (db *DB) findRun(ctx context.Context, q querier, workspace, id string) (*atelier.Run, error) {
	run, err := scanRun(q.QueryRowContext(ctx, `SELECT `+runColumns+runFrom+` WHERE r.id = ? AND w.name = ?`, id, workspace))
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := db.workspaceID(ctx, q, workspace); err != nil {
			return nil, err
		}
		return nil, runNotFound(id)
	} else if err != nil {
		return nil, err
	}
	if _, err := db.attach(ctx, q, []*atelier.Run{run}, false); err != nil {
		return nil, err
	}
	return run, nil
}

// attachQuery reads the params, tags, properties and latest scalar metrics of the runs whose
// ids are in a JSON array: one statement (one read of the database, prepared once whatever
// the number of runs) instead of one per table. The metric rows carry the whole summary.
const attachQuery = `WITH ids(id) AS (SELECT value FROM json_each(?))
	SELECT 0, run_id, key, value, NULL, 0, '', 0, 0, 0 FROM run_params WHERE run_id IN ids
	UNION ALL SELECT 1, run_id, key, value, NULL, 0, '', 0, 0, 0 FROM run_tags WHERE run_id IN ids
	UNION ALL SELECT 2, run_id, key, value, NULL, 0, '', 0, 0, 0 FROM run_properties WHERE run_id IN ids
	UNION ALL SELECT 3, run_id, name, last, value, is_nan, kind, step, timestamp, count FROM metric_latest
		WHERE run_id IN ids AND (kind = 'scalar' OR ?)`

// attach loads params, tags, properties and latest metrics of runs; with sums, it also returns
// every metric's summary by run id (the runs' order, metrics by name).
func (db *DB) attach(ctx context.Context, q querier, runs []*atelier.Run, sums bool) (map[string][]*atelier.MetricSummary, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	byID := make(map[string]*atelier.Run, len(runs))
	ids := make([]string, len(runs))
	for i, r := range runs {
		byID[r.ID], ids[i] = r, r.ID
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, attachQuery, string(list), sums)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out map[string][]*atelier.MetricSummary
	if sums {
		out = map[string][]*atelier.MetricSummary{}
	}
	for rows.Next() {
		var table int
		var id, key string
		var text sql.NullString
		var num sql.NullFloat64
		var isNaN bool
		var m atelier.MetricSummary
		if err := rows.Scan(&table, &id, &key, &text, &num, &isNaN, &m.Kind, &m.Step, &m.Timestamp, &m.Count); err != nil {
			return nil, err
		}
		r := byID[id]
		switch table {
		case 0:
			r.Params[key] = text.String
		case 1:
			r.Tags[key] = text.String
		case 2:
			r.Properties[key] = text.String
		case 3:
			m.Name = key
			if m.Kind == atelier.MetricScalar {
				m.Value = atelier.Float(fromNullFloat(num, isNaN))
				r.Metrics[key] = m.Value
			} else if text.Valid {
				m.Last = json.RawMessage(text.String)
			}
			if sums {
				out[id] = append(out[id], &m)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, list := range out {
		slices.SortFunc(list, func(a, b *atelier.MetricSummary) int { return strings.Compare(a.Name, b.Name) })
	}
	return out, nil
}

func fromNullFloat(v sql.NullFloat64, isNaN bool) float64 {
	if isNaN || !v.Valid {
		return math.NaN()
	}
	return v.Float64
}

// UpdateRunStatus moves a run through its lifecycle, refusing illegal transitions.
func (db *DB) UpdateRunStatus(ctx context.Context, workspace, id string, upd atelier.RunStatusUpdate) (*atelier.Run, error) {
	if err := upd.Validate(db.now()); err != nil {
		return nil, err
	}
	if len(upd.Error) > atelier.MaxErrorLength {
		upd.Error = upd.Error[len(upd.Error)-atelier.MaxErrorLength:]
	}
	var out *atelier.Run
	err := db.update(ctx, func(tx *txn) (err error) {
		out, err = db.updateRunStatus(ctx, tx, workspace, id, upd)
		return err
	})
	return out, err
}

// updateRunStatus moves a run to upd.Status inside tx (upd is valid).
func (db *DB) updateRunStatus(ctx context.Context, tx *txn, workspace, id string, upd atelier.RunStatusUpdate) (*atelier.Run, error) {
	run, err := db.findRun(ctx, tx, workspace, id)
	if err != nil {
		return nil, err
	}
	if !run.Status.CanTransition(upd.Status) {
		return nil, atelier.TransitionConflict(id, run.Status, upd.Status)
	}
	now := db.now()
	// A run starts when it becomes active (or ends having run); canceling a queued run does not start it.
	if run.StartedAt == nil && ((upd.Status.Active() && upd.Status != atelier.StatusCancelRequested) ||
		upd.Status == atelier.StatusCompleted || upd.Status == atelier.StatusFailed) {
		run.StartedAt = &now
	}
	if upd.Status.Terminal() {
		run.EndedAt = &now
		if upd.EndedAt != nil {
			ended := upd.EndedAt.UTC().Truncate(time.Millisecond)
			run.EndedAt = &ended
		}
	}
	run.Status = upd.Status
	if upd.Error != "" {
		run.Error = upd.Error
	}
	if upd.ExitCode != nil {
		run.ExitCode = upd.ExitCode
	}
	var exit any
	if run.ExitCode != nil {
		exit = *run.ExitCode
	}
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = ?, started_at = ?, ended_at = ?, error = ?, exit_code = ? WHERE id = ?`,
		run.Status, nullMS(run.StartedAt), nullMS(run.EndedAt), run.Error, exit, id); err != nil {
		return nil, err
	}
	wsID, err := db.workspaceID(ctx, tx, workspace)
	if err != nil {
		return nil, err
	}
	return run, putActivity(ctx, tx, wsID, run.Activity(now))
}

// LogParams sets params; a param keeps its first value forever.
func (db *DB) LogParams(ctx context.Context, workspace, id string, params map[string]string) error {
	return db.setImmutable(ctx, workspace, id, "run_params", "param", params, atelier.MaxParamValue)
}

// AddProperties sets properties, immutable like params.
func (db *DB) AddProperties(ctx context.Context, workspace, id string, props map[string]string) error {
	return db.setImmutable(ctx, workspace, id, "run_properties", "property", props, atelier.MaxTagValue)
}

func (db *DB) setImmutable(ctx context.Context, workspace, id, table, kind string, kv map[string]string, maxValue int) error {
	if err := atelier.ValidateKeyValues(kind, kv, maxValue); err != nil {
		return err
	}
	return db.update(ctx, func(tx *txn) error {
		if err := db.checkLiveRun(ctx, tx, workspace, id); err != nil {
			return err
		}
		return insertImmutable(ctx, tx, id, table, kind, kv)
	})
}

// insertImmutable adds key-values that may be set again only to the same value.
func insertImmutable(ctx context.Context, tx *txn, id, table, kind string, kv map[string]string) error {
	for k, v := range kv {
		var old string
		err := tx.QueryRowContext(ctx, `SELECT value FROM `+table+` WHERE run_id = ? AND key = ?`, id, k).Scan(&old)
		if err == nil {
			if old != v {
				return atelier.Errorf(atelier.ECONFLICT, "%s %q of run %s is already %q and cannot change to %q", kind, k, id, old, v)
			}
			continue
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (run_id, key, value) VALUES (?, ?, ?)`, id, k, v); err != nil {
			return err
		}
	}
	return nil
}

// SetTags sets or replaces tags.
func (db *DB) SetTags(ctx context.Context, workspace, id string, tags map[string]string) error {
	if err := atelier.ValidateKeyValues("tag", tags, atelier.MaxTagValue); err != nil {
		return err
	}
	return db.update(ctx, func(tx *txn) error {
		if err := db.checkLiveRun(ctx, tx, workspace, id); err != nil {
			return err
		}
		return insertKeyValues(ctx, tx, "run_tags", id, tags)
	})
}

// DeleteTag removes a tag; ENOTFOUND if the run has no such tag.
func (db *DB) DeleteTag(ctx context.Context, workspace, id, key string) error {
	return db.update(ctx, func(tx *txn) error {
		if err := db.checkLiveRun(ctx, tx, workspace, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM run_tags WHERE run_id = ? AND key = ?`, id, key)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return atelier.Errorf(atelier.ENOTFOUND, "run %s has no tag %q", id, key)
		}
		return nil
	})
}

// checkLiveRun is checkRun for writes a deleted run refuses (params, tags, metrics).
func (db *DB) checkLiveRun(ctx context.Context, tx *txn, workspace, id string) error {
	if _, err := db.checkRun(ctx, tx, workspace, id); err != nil {
		return err
	}
	var deleted bool
	if err := tx.QueryRowContext(ctx, `SELECT deleted FROM runs WHERE id = ?`, id).Scan(&deleted); err != nil {
		return err
	}
	if deleted {
		return atelier.RunDeletedConflict(id)
	}
	return nil
}

// SetRunLifecycle deletes or restores a run; setting the lifecycle it has is no change.
func (db *DB) SetRunLifecycle(ctx context.Context, workspace, id string, l atelier.RunLifecycle) (*atelier.Run, error) {
	if l != atelier.LifecycleActive && l != atelier.LifecycleDeleted {
		return nil, atelier.Errorf(atelier.EINVALID, "invalid run lifecycle %q: use active or deleted", l)
	}
	var out *atelier.Run
	err := db.update(ctx, func(tx *txn) error {
		if _, err := db.checkRun(ctx, tx, workspace, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET deleted = ? WHERE id = ?`, l == atelier.LifecycleDeleted, id); err != nil {
			return err
		}
		var err error
		out, err = db.findRun(ctx, tx, workspace, id)
		return err
	})
	return out, err
}

// ReconcileRuns fails the runs a server that died was executing (those with a compute target)
// and the child runs their scripts made; interactive runs, which clients drive, stay as they are,
// and so do leased runs, which their controller recovers through their drivers.
func (db *DB) ReconcileRuns(ctx context.Context, reason string) ([]*atelier.Run, error) {
	var ids []struct{ id, ws string }
	rows, err := db.read.QueryContext(ctx, `WITH RECURSIVE executed(id) AS (
			SELECT id FROM runs WHERE compute != '' AND status IN ('Preparing', 'Running', 'Finalizing', 'CancelRequested')
				AND id NOT IN (SELECT id FROM leases WHERE kind = 'run')
			UNION SELECT c.id FROM runs c JOIN executed e ON c.parent_id = e.id)
		SELECT r.id, w.name FROM runs r JOIN workspaces w ON w.id = r.workspace_id
		WHERE r.id IN (SELECT id FROM executed) AND r.status IN ('Preparing', 'Running', 'Finalizing', 'CancelRequested')`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id, ws string
		if err := rows.Scan(&id, &ws); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, struct{ id, ws string }{id, ws})
	}
	rows.Close()
	var out []*atelier.Run
	for _, r := range ids {
		run, err := db.UpdateRunStatus(ctx, r.ws, r.id, atelier.RunStatusUpdate{Status: atelier.StatusFailed, Error: reason})
		if err != nil {
			return out, err
		}
		out = append(out, run)
	}
	return out, nil
}

// RunStatuses returns the status of each existing run of ids, in one statement.
func (db *DB) RunStatuses(ctx context.Context, ids []string) (map[string]atelier.RunStatus, error) {
	statuses := make(map[string]atelier.RunStatus, len(ids))
	if len(ids) == 0 {
		return statuses, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT id, status FROM runs WHERE id IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var st atelier.RunStatus
		if err := rows.Scan(&id, &st); err != nil {
			return nil, err
		}
		statuses[id] = st
	}
	return statuses, rows.Err()
}

// QueuedRuns returns the runs waiting on a compute target, oldest first, across workspaces.
func (db *DB) QueuedRuns(ctx context.Context, compute string, limit int) ([]*atelier.Run, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+runColumns+runFrom+` WHERE r.status = 'Queued' AND r.compute = ?
		ORDER BY r.created_at, r.id LIMIT ?`, compute, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var runs []*atelier.Run
	for rows.Next() {
		run, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
	}
	return runs, rows.Err()
}
