package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/series"
)

// pointGroup is the points of one metric name in a batch, in logging order.
type pointGroup struct {
	name    string
	points  series.Points
	autoIdx []int // indexes whose step is to be assigned after the last logged step
	chunk   []byte
	summary series.Summary
}

// latestRow is a metric_latest row.
type latestRow struct {
	exists   bool
	kind     atelier.MetricKind
	step, ts int64
	value    float64
	count    int64
	nextSeq  int64
	last     sql.NullString
}

func (db *DB) readLatest(ctx context.Context, tx *txn, runID, name string) (latestRow, error) {
	var l latestRow
	var v sql.NullFloat64
	var isNaN bool
	err := tx.QueryRowContext(ctx, `SELECT kind, step, timestamp, value, is_nan, count, next_seq, last FROM metric_latest WHERE run_id = ? AND name = ?`,
		runID, name).Scan(&l.kind, &l.step, &l.ts, &v, &isNaN, &l.count, &l.nextSeq, &l.last)
	if errors.Is(err, sql.ErrNoRows) {
		return l, nil
	}
	l.exists, l.value = err == nil, fromNullFloat(v, isNaN)
	return l, err
}

func writeLatest(ctx context.Context, tx *txn, runID, name string, l latestRow) error {
	var v any
	isNaN := math.IsNaN(l.value)
	if !isNaN {
		v = l.value
	}
	_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO metric_latest (run_id, name, kind, step, timestamp, value, is_nan, count, next_seq, last)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, runID, name, l.kind, l.step, l.ts, v, isNaN, l.count, l.nextSeq, l.last)
	return err
}

// LogMetrics stores a batch in one transaction: each metric name becomes one compressed chunk.
func (db *DB) LogMetrics(ctx context.Context, workspace, runID string, batch *atelier.MetricBatch) error {
	if err := batch.Validate(); err != nil {
		return err
	}
	now := db.now().UnixMilli()
	groups := prepareGroups(batch.Points, now, false)
	return db.update(ctx, func(tx *txn) error {
		if err := db.checkLiveRun(ctx, tx, workspace, runID); err != nil {
			return err
		}
		return db.insertMetrics(ctx, tx, runID, groups, batch.Records, now, false)
	})
}

// LogBatch stores params, metric points and tags of a run in one transaction: one commit
// (one WAL append) instead of three, and nothing half-written if a param conflicts.
func (db *DB) LogBatch(ctx context.Context, workspace, runID string, b *atelier.RunBatch) error {
	if err := b.Validate(); err != nil {
		return err
	}
	now := db.now().UnixMilli()
	groups := prepareGroups(b.Metrics.Points, now, b.SkipDuplicates)
	return db.update(ctx, func(tx *txn) error {
		if err := db.checkLiveRun(ctx, tx, workspace, runID); err != nil {
			return err
		}
		if err := insertImmutable(ctx, tx, runID, "run_params", "param", b.Params); err != nil {
			return err
		}
		if err := db.insertMetrics(ctx, tx, runID, groups, b.Metrics.Records, now, b.SkipDuplicates); err != nil {
			return err
		}
		return insertKeyValues(ctx, tx, "run_tags", runID, b.Tags)
	})
}

// pointKey is what makes two points of a series the same point (NaNs are all one value).
type pointKey struct {
	step, ts int64
	bits     uint64
}

func keyOf(step, ts int64, v float64) pointKey {
	if math.IsNaN(v) {
		v = math.NaN()
	}
	return pointKey{step, ts, math.Float64bits(v)}
}

// dropPoints keeps the points of p for which keep is true.
func dropPoints(p *series.Points, keep func(i int) bool) {
	n := 0
	for i := range p.Steps {
		if keep(i) {
			p.Steps[n], p.Timestamps[n], p.Values[n] = p.Steps[i], p.Timestamps[i], p.Values[i]
			n++
		}
	}
	p.Steps, p.Timestamps, p.Values = p.Steps[:n], p.Timestamps[:n], p.Values[:n]
}

// prepareGroups groups points by name and encodes, outside the write transaction, whatever
// does not depend on stored state; skipDup drops the points repeated within the batch.
func prepareGroups(points []atelier.MetricPoint, now int64, skipDup bool) []*pointGroup {
	groups := groupPoints(points, now)
	for _, g := range groups {
		if skipDup && len(g.autoIdx) == 0 && len(g.points.Steps) > 1 {
			seen := make(map[pointKey]bool, len(g.points.Steps))
			dropPoints(&g.points, func(i int) bool {
				k := keyOf(g.points.Steps[i], g.points.Timestamps[i], g.points.Values[i])
				if seen[k] {
					return false
				}
				seen[k] = true
				return true
			})
		}
		if len(g.autoIdx) == 0 {
			g.chunk = series.Encode(nil, g.points)
			g.summary = series.Summarize(g.points)
		}
	}
	return groups
}

// insertMetrics appends one chunk per metric name and the records, and updates the latest
// values; skipDup leaves out the points stored already.
func (db *DB) insertMetrics(ctx context.Context, tx *txn, runID string, groups []*pointGroup, records []atelier.MetricRecord, now int64, skipDup bool) error {
	for _, g := range groups {
		l, err := db.readLatest(ctx, tx, runID, g.name)
		if err != nil {
			return err
		}
		if l.exists && l.kind != atelier.MetricScalar {
			return atelier.Errorf(atelier.ECONFLICT, "metric %q of run %s is a %s, not a scalar series", g.name, runID, l.kind)
		}
		// A point can repeat a stored one only at or below the largest step stored, which the
		// latest row tells: a batch that goes on from where the series stands reads nothing.
		if skipDup && l.exists && len(g.autoIdx) == 0 && g.summary.MinStep <= l.step {
			dropped, err := dropStored(ctx, tx, runID, g)
			if err != nil {
				return err
			}
			if len(g.points.Steps) == 0 {
				continue
			}
			if dropped {
				g.chunk = series.Encode(nil, g.points)
				g.summary = series.Summarize(g.points)
			}
		}
		if len(g.autoIdx) > 0 {
			next := int64(0)
			if l.exists {
				next = l.step + 1
			}
			// Explicit steps in the same batch come first in line: an auto step follows the
			// largest step logged before it.
			for i := range g.points.Steps {
				if len(g.autoIdx) > 0 && g.autoIdx[0] == i {
					g.points.Steps[i] = next
					g.autoIdx = g.autoIdx[1:]
				}
				next = max(next, g.points.Steps[i]+1)
			}
			g.chunk = series.Encode(nil, g.points)
			g.summary = series.Summarize(g.points)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO metric_chunks (run_id, name, seq, min_step, max_step, count, data) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			runID, g.name, l.nextSeq, g.summary.MinStep, g.summary.MaxStep, g.summary.Count, g.chunk); err != nil {
			return err
		}
		// The latest value is the one at the largest step; at equal steps the later one wins.
		for i, step := range g.points.Steps {
			if !l.exists || step >= l.step {
				l.exists, l.step, l.ts, l.value = true, step, g.points.Timestamps[i], g.points.Values[i]
			}
		}
		l.kind, l.count, l.nextSeq = atelier.MetricScalar, l.count+int64(g.summary.Count), l.nextSeq+1
		if err := writeLatest(ctx, tx, runID, g.name, l); err != nil {
			return err
		}
	}
	for i := range records {
		if err := db.appendRecord(ctx, tx, runID, &records[i], now); err != nil {
			return err
		}
	}
	return nil
}

// dropStored removes from g the points stored already in the steps g spans, and tells whether
// there were any.
func dropStored(ctx context.Context, tx *txn, runID string, g *pointGroup) (bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT data FROM metric_chunks WHERE run_id = ? AND name = ? AND max_step >= ? AND min_step <= ?`,
		runID, g.name, g.summary.MinStep, g.summary.MaxStep)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	var stored series.Points
	var data sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&data); err != nil {
			return false, err
		}
		if err := series.Decode(data, &stored); err != nil {
			return false, err
		}
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	seen := make(map[pointKey]bool, len(stored.Steps))
	for i := range stored.Steps {
		seen[keyOf(stored.Steps[i], stored.Timestamps[i], stored.Values[i])] = true
	}
	n := len(g.points.Steps)
	dropPoints(&g.points, func(i int) bool { return !seen[keyOf(g.points.Steps[i], g.points.Timestamps[i], g.points.Values[i])] })
	return len(g.points.Steps) < n, nil
}

func groupPoints(points []atelier.MetricPoint, now int64) []*pointGroup {
	var groups []*pointGroup
	byName := map[string]*pointGroup{}
	for i := range points {
		p := &points[i]
		g := byName[p.Name]
		if g == nil {
			g = &pointGroup{name: p.Name}
			byName[p.Name] = g
			groups = append(groups, g)
		}
		step := int64(0)
		if p.Step != nil {
			step = *p.Step
		} else {
			g.autoIdx = append(g.autoIdx, g.points.Len())
		}
		ts := p.Timestamp
		if ts == 0 {
			ts = now
		}
		g.points.Steps = append(g.points.Steps, step)
		g.points.Timestamps = append(g.points.Timestamps, ts)
		g.points.Values = append(g.points.Values, float64(p.Value))
	}
	return groups
}

func (db *DB) appendRecord(ctx context.Context, tx *txn, runID string, r *atelier.MetricRecord, now int64) error {
	l, err := db.readLatest(ctx, tx, runID, r.Name)
	if err != nil {
		return err
	}
	if l.exists && l.kind != r.Kind {
		return atelier.Errorf(atelier.ECONFLICT, "metric %q of run %s is a %s, not a %s", r.Name, runID, l.kind, r.Kind)
	}
	ts := r.Timestamp
	if ts == 0 {
		ts = now
	}
	value := r.Value
	if r.Kind == atelier.MetricImage && len(value) == 0 {
		value, _ = json.Marshal(r.Path)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO metric_records (run_id, name, seq, kind, timestamp, value, path) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		runID, r.Name, l.nextSeq, r.Kind, ts, string(value), r.Path); err != nil {
		return err
	}
	if l.exists {
		l.step++
	}
	l.exists, l.kind, l.ts, l.value, l.count, l.nextSeq = true, r.Kind, ts, 0, l.count+1, l.nextSeq+1
	l.last = sql.NullString{String: string(value), Valid: true}
	return writeLatest(ctx, tx, runID, r.Name, l)
}

// ListMetrics returns the latest value of each metric of a run.
func (db *DB) ListMetrics(ctx context.Context, workspace, runID string) ([]*atelier.MetricSummary, error) {
	if _, err := db.checkRun(ctx, db.read, workspace, runID); err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT m.run_id, `+summaryColumns+` FROM metric_latest m WHERE m.run_id = ? ORDER BY m.name`, runID)
	if err != nil {
		return nil, err
	}
	list := []*atelier.MetricSummary{}
	err = scanSummaries(rows, func(_ string, m *atelier.MetricSummary) { list = append(list, m) })
	return list, err
}

const summaryColumns = `m.name, m.kind, m.step, m.timestamp, m.value, m.is_nan, m.count, m.last`

// scanSummaries reads rows of run_id and summaryColumns, and closes them.
func scanSummaries(rows *sql.Rows, add func(runID string, m *atelier.MetricSummary)) error {
	defer rows.Close()
	for rows.Next() {
		var id string
		var m atelier.MetricSummary
		var v sql.NullFloat64
		var isNaN bool
		var last sql.NullString
		if err := rows.Scan(&id, &m.Name, &m.Kind, &m.Step, &m.Timestamp, &v, &isNaN, &m.Count, &last); err != nil {
			return err
		}
		if m.Kind == atelier.MetricScalar {
			m.Value = atelier.Float(fromNullFloat(v, isNaN))
		} else if last.Valid {
			m.Last = json.RawMessage(last.String)
		}
		add(id, &m)
	}
	return rows.Err()
}

// MetricHistory reads a scalar series: only the chunks overlapping the step window are decoded.
func (db *DB) MetricHistory(ctx context.Context, workspace, runID, name string, q atelier.HistoryQuery) (*atelier.Series, error) {
	if q.MaxPoints < 0 {
		return nil, atelier.Errorf(atelier.EINVALID, "max_points %d is negative", q.MaxPoints)
	}
	if _, err := db.checkRun(ctx, db.read, workspace, runID); err != nil {
		return nil, err
	}
	var kind atelier.MetricKind
	var count int64
	err := db.read.QueryRowContext(ctx, `SELECT kind, count FROM metric_latest WHERE run_id = ? AND name = ?`, runID, name).Scan(&kind, &count)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "run %s has no metric %q", runID, name)
	} else if err != nil {
		return nil, err
	}
	if kind != atelier.MetricScalar {
		return nil, atelier.Errorf(atelier.EINVALID, "metric %q is a %s: read its records, not a series", name, kind)
	}
	key := runID + "\x00" + name
	if p, ok := db.series.get(key, count); ok {
		return series.ToSeries(name, p, q), nil
	}
	// A downsampled answer is small: keeping it spares a re-read of a series too large to keep
	// whole (a chart of millions of points refreshing) a read and a pass over every point.
	var vkey string
	if q.MaxPoints > 0 {
		vkey = viewKey(key, q)
		if s, ok := db.series.getView(vkey, count); ok {
			return s, nil
		}
	}
	// Series small enough to cache are read whole and cached (charts re-read them as they
	// zoom); larger ones read only the chunks of the window.
	whole := db.series.fits(count)
	minStep, maxStep := int64(math.MinInt64), int64(math.MaxInt64)
	if q.MinStep != nil && !whole {
		minStep = *q.MinStep
	}
	if q.MaxStep != nil && !whole {
		maxStep = *q.MaxStep
	}
	const where = ` FROM metric_chunks WHERE run_id = ? AND name = ? AND max_step >= ? AND min_step <= ?`
	// Sized up front, the columns are allocated once rather than grown chunk by chunk (which
	// allocates several times the series for a large one).
	size := count
	if !whole && (q.MinStep != nil || q.MaxStep != nil) {
		var n sql.NullInt64
		if err := db.read.QueryRowContext(ctx, `SELECT sum(count)`+where, runID, name, minStep, maxStep).Scan(&n); err != nil {
			return nil, err
		}
		size = n.Int64
	}
	rows, err := db.read.QueryContext(ctx, `SELECT data`+where+` ORDER BY seq`, runID, name, minStep, maxStep)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	// Decoding every chunk into one column set lets Merge return it as is when the steps are
	// already in order (the usual case).
	p := series.Points{Steps: make([]int64, 0, size), Timestamps: make([]int64, 0, size), Values: make([]float64, 0, size)}
	var data sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		if err := series.Decode(data, &p); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	merged := series.Merge([]series.Points{p})
	if whole {
		db.series.put(key, count, merged)
	}
	s := series.ToSeries(name, merged, q)
	if s.Downsampled && !whole {
		db.series.putView(vkey, count, s)
	}
	return s, nil
}

// MetricRecords returns every record of a non-scalar metric.
func (db *DB) MetricRecords(ctx context.Context, workspace, runID, name string) ([]*atelier.MetricRecord, error) {
	if _, err := db.checkRun(ctx, db.read, workspace, runID); err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT kind, timestamp, value, path FROM metric_records WHERE run_id = ? AND name = ? ORDER BY seq`, runID, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.MetricRecord{}
	for rows.Next() {
		r := &atelier.MetricRecord{Name: name}
		var v sql.NullString
		if err := rows.Scan(&r.Kind, &r.Timestamp, &v, &r.Path); err != nil {
			return nil, err
		}
		r.Value = json.RawMessage(v.String)
		list = append(list, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "run %s has no records of metric %q", runID, name)
	}
	return list, nil
}
