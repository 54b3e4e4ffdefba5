package sqlite

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
)

// runQuery builds the SQL of a run search: the filter and ordering become WHERE and ORDER BY
// clauses over the indexed side tables, so the database does the work.
type runQuery struct {
	where  []string
	args   []any
	joins  []string
	jargs  []any
	order  []string
	nJoins int
	// inner maps a metric to the alias of its inner-joined metric_latest row: when the filter
	// requires the metric the search orders by, the search walks the (name, value) index in
	// order and stops at the page's end instead of sorting every run.
	inner map[string]string
	// from is the table the search starts from.
	from string
}

// attributeColumns maps query attributes to SQL expressions over runs r and experiments e.
var attributeColumns = map[string]string{
	"id": "r.id", "name": "r.name", "status": "r.status", "experiment": "e.name",
	"parent_id": "coalesce(r.parent_id, '')", "created_by": "r.created_by", "compute": "r.compute",
	"created_at": "r.created_at", "started_at": "r.started_at", "ended_at": "r.ended_at",
	"duration": "((coalesce(r.ended_at, CAST(unixepoch('subsec') * 1000 AS INTEGER)) - r.started_at) / 1000.0)",
}

var sideTables = map[string]string{atelier.FieldParam: "run_params", atelier.FieldTag: "run_tags", atelier.FieldProperty: "run_properties"}

func (q *runQuery) compile(e atelier.FilterExpr) (string, error) {
	switch e := e.(type) {
	case *atelier.FilterAnd:
		return q.binary(e.Left, e.Right, "AND")
	case *atelier.FilterOr:
		return q.binary(e.Left, e.Right, "OR")
	case *atelier.FilterNot:
		s, err := q.compile(e.X)
		return "NOT (" + s + ")", err
	case *atelier.FilterCompare:
		return q.compare(e)
	}
	return "", fmt.Errorf("unknown filter node %T", e)
}

func (q *runQuery) binary(l, r atelier.FilterExpr, op string) (string, error) {
	ls, err := q.compile(l)
	if err != nil {
		return "", err
	}
	rs, err := q.compile(r)
	return "(" + ls + " " + op + " " + rs + ")", err
}

func (q *runQuery) compare(c *atelier.FilterCompare) (string, error) {
	switch c.Field.Kind {
	case atelier.FieldMetric:
		if alias, ok := q.inner[c.Field.Name]; ok {
			// The joined row exists for every candidate run, so conditions apply to it directly.
			switch c.Op {
			case "is null":
				return "0", nil
			case "is not null":
				return "1", nil
			}
			cond, args, err := condition(alias+".value", c, true)
			q.args = append(q.args, args...)
			return cond, err
		}
		// NaN is stored as NULL, so comparisons never match it, as in IEEE arithmetic.
		if c.Op == "is null" || c.Op == "is not null" {
			not := ""
			if c.Op == "is null" {
				not = "NOT "
			}
			q.args = append(q.args, c.Field.Name)
			return not + "EXISTS (SELECT 1 FROM metric_latest m WHERE m.run_id = r.id AND m.name = ? AND m.kind = 'scalar')", nil
		}
		cond, args, err := condition("m.value", c, true)
		if err != nil {
			return "", err
		}
		q.args = append(append(q.args, c.Field.Name), args...)
		return "EXISTS (SELECT 1 FROM metric_latest m WHERE m.run_id = r.id AND m.name = ? AND m.kind = 'scalar' AND " + cond + ")", nil
	case atelier.FieldParam, atelier.FieldTag, atelier.FieldProperty:
		table := sideTables[c.Field.Kind]
		if c.Op == "is null" || c.Op == "is not null" {
			not := ""
			if c.Op == "is null" {
				not = "NOT "
			}
			q.args = append(q.args, c.Field.Name)
			return not + "EXISTS (SELECT 1 FROM " + table + " t WHERE t.run_id = r.id AND t.key = ?)", nil
		}
		cond, args, err := condition("t.value", c, false)
		if err != nil {
			return "", err
		}
		q.args = append(append(q.args, c.Field.Name), args...)
		return "EXISTS (SELECT 1 FROM " + table + " t WHERE t.run_id = r.id AND t.key = ? AND " + cond + ")", nil
	case atelier.FieldAttribute:
		col, ok := attributeColumns[c.Field.Name]
		if !ok {
			return "", atelier.Errorf(atelier.EINVALID, "filter: unknown attribute %q", c.Field.Name)
		}
		if c.Op == "is null" {
			return col + " IS NULL", nil
		} else if c.Op == "is not null" {
			return col + " IS NOT NULL", nil
		}
		numeric := false
		switch c.Field.Name {
		case "created_at", "started_at", "ended_at":
			numeric = true
			if err := timeValues(c); err != nil {
				return "", err
			}
		case "duration":
			numeric = true
		}
		cond, args, err := condition(col, c, numeric)
		if err != nil {
			return "", err
		}
		q.args = append(q.args, args...)
		return cond, nil
	}
	return "", atelier.Errorf(atelier.EINVALID, "filter: unknown field kind %q", c.Field.Kind)
}

// timeValues turns RFC 3339 strings into milliseconds, so created_at > '2026-01-01' works.
func timeValues(c *atelier.FilterCompare) error {
	conv := func(v *atelier.FilterValue) error {
		if v.IsNumber {
			return nil
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
			if t, err := time.Parse(layout, v.Str); err == nil {
				*v = atelier.FilterValue{Num: float64(t.UnixMilli()), IsNumber: true}
				return nil
			}
		}
		return atelier.Errorf(atelier.EINVALID, "filter: at position %d: %s wants a time in milliseconds or RFC 3339, not %q", c.Pos+1, c.Field.Name, v.Str)
	}
	if err := conv(&c.Value); err != nil {
		return err
	}
	for i := range c.Values {
		if err := conv(&c.Values[i]); err != nil {
			return err
		}
	}
	return nil
}

var sqlOps = map[string]string{"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

func condition(col string, c *atelier.FilterCompare, numeric bool) (string, []any, error) {
	val := func(v atelier.FilterValue) (any, error) {
		if numeric {
			if !v.IsNumber {
				return nil, atelier.Errorf(atelier.EINVALID, "filter: at position %d: %s compares with numbers, not %q", c.Pos+1, c.Field, v.Str)
			}
			if math.IsNaN(v.Num) {
				return nil, nil // compares false with everything, like NaN
			}
			return v.Num, nil
		}
		// Params, tags and properties are text: a number compares as it was written.
		if v.IsNumber && v.Str == "" {
			return strconv.FormatFloat(v.Num, 'f', -1, 64), nil
		}
		return v.Str, nil
	}
	switch c.Op {
	case "like", "ilike":
		if c.Value.IsNumber {
			return "", nil, atelier.Errorf(atelier.EINVALID, "filter: at position %d: %s wants a string pattern", c.Pos+1, c.Op)
		}
		if c.Op == "like" {
			// SQLite's LIKE ignores ASCII case; GLOB is case-sensitive, so translate the pattern.
			return col + " GLOB ?", []any{likeToGlob(c.Value.Str)}, nil
		}
		return col + " LIKE ? ESCAPE '\\'", []any{c.Value.Str}, nil
	case "in", "not in":
		if len(c.Values) == 0 {
			return "", nil, atelier.Errorf(atelier.EINVALID, "filter: at position %d: %s needs at least one value", c.Pos+1, c.Op)
		}
		args := make([]any, len(c.Values))
		for i, v := range c.Values {
			a, err := val(v)
			if err != nil {
				return "", nil, err
			}
			args[i] = a
		}
		op := " IN ("
		if c.Op == "not in" {
			op = " NOT IN ("
		}
		return col + op + strings.TrimSuffix(strings.Repeat("?,", len(args)), ",") + ")", args, nil
	}
	op, ok := sqlOps[c.Op]
	if !ok {
		return "", nil, atelier.Errorf(atelier.EINVALID, "filter: at position %d: unknown operator %q", c.Pos+1, c.Op)
	}
	a, err := val(c.Value)
	if err != nil {
		return "", nil, err
	}
	return col + " " + op + " ?", []any{a}, nil
}

// likeToGlob turns a SQL LIKE pattern (% and _) into a GLOB pattern, escaping GLOB's own
// metacharacters.
func likeToGlob(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '%':
			b.WriteByte('*')
		case '_':
			b.WriteByte('?')
		case '*', '?', '[', ']':
			b.WriteByte('[')
			b.WriteByte(c)
			b.WriteByte(']')
		case '\\':
			if i+1 < len(p) {
				i++
				n := p[i]
				if n == '*' || n == '?' || n == '[' || n == ']' {
					b.WriteByte('[')
					b.WriteByte(n)
					b.WriteByte(']')
				} else {
					b.WriteByte(n)
				}
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func (q *runQuery) orderBy(terms []atelier.OrderTerm) error {
	for _, t := range terms {
		dir := " ASC"
		if t.Desc {
			dir = " DESC"
		}
		switch t.Field.Kind {
		case atelier.FieldMetric:
			if alias, ok := q.inner[t.Field.Name]; ok {
				q.order = append(q.order, alias+".value"+dir)
				continue
			}
			alias := fmt.Sprintf("o%d", q.nJoins)
			q.nJoins++
			q.joins = append(q.joins, " LEFT JOIN metric_latest "+alias+" ON "+alias+".run_id = r.id AND "+alias+".name = ? AND "+alias+".kind = 'scalar'")
			q.jargs = append(q.jargs, t.Field.Name)
			// Runs without the metric (or with NaN) sort last either way.
			q.order = append(q.order, alias+".value IS NULL", alias+".value"+dir)
		case atelier.FieldParam, atelier.FieldTag, atelier.FieldProperty:
			alias := fmt.Sprintf("o%d", q.nJoins)
			q.nJoins++
			q.joins = append(q.joins, " LEFT JOIN "+sideTables[t.Field.Kind]+" "+alias+" ON "+alias+".run_id = r.id AND "+alias+".key = ?")
			q.jargs = append(q.jargs, t.Field.Name)
			q.order = append(q.order, alias+".value IS NULL", alias+".value"+dir)
		case atelier.FieldAttribute:
			col, ok := attributeColumns[t.Field.Name]
			if !ok {
				return atelier.Errorf(atelier.EINVALID, "order by: unknown attribute %q", t.Field.Name)
			}
			q.order = append(q.order, col+dir)
			if t.Field.Name == "created_at" {
				// Runs created in the same millisecond: their ids increase in creation order.
				q.order = append(q.order, "r.id"+dir)
			}
		default:
			return atelier.Errorf(atelier.EINVALID, "order by: unknown field kind %q", t.Field.Kind)
		}
	}
	return nil
}

type pageToken struct {
	Offset int `json:"o"`
}

func decodePageToken(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var t pageToken
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.Offset < 0 {
		return 0, atelier.Errorf(atelier.EINVALID, "invalid page token %q", s)
	}
	return t.Offset, nil
}

func encodePageToken(offset int) string {
	b, _ := json.Marshal(pageToken{Offset: offset})
	return base64.RawURLEncoding.EncodeToString(b)
}

// ListRuns searches runs with a filter and an ordering evaluated in the database, by one of
// three plans, so a first page costs about the same at 1,000 runs as at 1,000,000:
//   - a selective conjunct of the filter (a param, tag, property, metric or name comparison that
//     an index answers and that at most driverLimit runs of the database pass) drives the
//     search: its runs are read by the index and sorted;
//   - ordering by a metric the filter does not require reads the runs with a value by the
//     metric's (name, value) index in order, then the runs without one;
//   - otherwise the runs are walked in the order asked for (an index has the order MLflow's
//     clients ask for) and the walk stops at the page's end.
func (db *DB) ListRuns(ctx context.Context, workspace string, rq atelier.RunQuery) (*atelier.RunPage, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	limit := rq.Limit
	if limit <= 0 {
		limit = atelier.DefaultPageSize
	} else if limit > atelier.MaxPageSize {
		return nil, atelier.Errorf(atelier.EINVALID, "limit %d is above the maximum page size %d", limit, atelier.MaxPageSize)
	}
	offset, err := decodePageToken(rq.PageToken)
	if err != nil {
		return nil, err
	}
	base := &runQuery{where: []string{"r.workspace_id = ?"}, args: []any{wsID}, from: "runs r"}
	if rq.Experiment != "" {
		// The experiment's runs (by its index), not the workspace's: the experiment is in the
		// workspace, and so are its runs.
		base.where = []string{"e.workspace_id = ?", "e.name = ?"}
		base.args = append(base.args, rq.Experiment)
	}
	if rq.ParentID != "" {
		base.where = append(base.where, "r.parent_id = ?")
		base.args = append(base.args, rq.ParentID)
	}
	if rq.RootOnly {
		base.where = append(base.where, "r.parent_id IS NULL")
	}
	switch rq.Lifecycle {
	case "":
	case atelier.LifecycleActive:
		base.where = append(base.where, "r.deleted = 0")
	case atelier.LifecycleDeleted:
		base.where = append(base.where, "r.deleted = 1")
	default:
		return nil, atelier.Errorf(atelier.EINVALID, "invalid run lifecycle %q: use active or deleted", rq.Lifecycle)
	}
	expr, err := atelier.ParseFilter(rq.Filter)
	if err != nil {
		return nil, err
	}
	terms, err := atelier.ParseOrderBy(rq.OrderBy)
	if err != nil {
		return nil, err
	}
	terms = append(terms, atelier.OrderTerm{Field: atelier.FilterField{Kind: atelier.FieldAttribute, Name: "created_at"}, Desc: true})
	for i, t := range terms {
		// Run ids are unique: terms after one are never reached, and would keep the database
		// from reading the order off an index.
		if t.Field.Kind == atelier.FieldAttribute && t.Field.Name == "id" {
			terms = terms[:i+1]
			break
		}
	}
	page := &atelier.RunPage{Runs: []*atelier.Run{}}
	small, err := db.smallScope(ctx, wsID, rq.Experiment)
	var d *driver
	if err == nil && !small {
		d, err = db.chooseDriver(ctx, wsID, expr)
	}
	if err != nil {
		return nil, err
	}
	first := terms[0]
	switch {
	case small:
		page.Runs, err = db.searchRuns(ctx, base, expr, terms, limit+1, offset)
	case d != nil:
		q := base.clone()
		q.from = d.from()
		q.jargs = append(q.jargs, d.args...)
		page.Runs, err = db.searchRuns(ctx, q, expr, terms, limit+1, offset)
	case first.Field.Kind == atelier.FieldMetric && requiresMetric(expr, first.Field.Name):
		page.Runs, err = db.searchRuns(ctx, base.withMetric(first.Field.Name, false), expr, terms, limit+1, offset)
	case first.Field.Kind == atelier.FieldMetric:
		// The runs with a value first (NaN is stored as NULL and sorts with the runs without
		// the metric), then the others in the order of the remaining terms.
		q := base.withMetric(first.Field.Name, true)
		page.Runs, err = db.searchRuns(ctx, q, expr, terms, limit+1, offset)
		if err != nil || len(page.Runs) > limit {
			break
		}
		rest := offset
		if len(page.Runs) > 0 {
			rest = 0
		} else if rest > 0 {
			var with int
			if with, err = db.countRuns(ctx, base.withMetric(first.Field.Name, true), expr); err != nil {
				break
			}
			rest = max(0, offset-with)
		}
		q = base.clone()
		q.where = append(q.where, "NOT EXISTS (SELECT 1 FROM metric_latest m WHERE m.run_id = r.id AND m.name = ? AND m.kind = 'scalar' AND m.value IS NOT NULL)")
		q.args = append(q.args, first.Field.Name)
		var more []*atelier.Run
		more, err = db.searchRuns(ctx, q, expr, terms[1:], limit+1-len(page.Runs), rest)
		page.Runs = append(page.Runs, more...)
	default:
		page.Runs, err = db.searchRuns(ctx, base, expr, terms, limit+1, offset)
	}
	if err != nil {
		return nil, err
	}
	if page.Runs == nil {
		page.Runs = []*atelier.Run{} // an empty list, not null, in JSON
	}
	if len(page.Runs) > limit {
		page.Runs = page.Runs[:limit]
		page.NextPageToken = encodePageToken(offset + limit)
	}
	page.Summaries, err = db.attach(ctx, db.read, page.Runs, rq.Summaries)
	return page, err
}

func (q *runQuery) clone() *runQuery {
	return &runQuery{where: append([]string(nil), q.where...), args: append([]any(nil), q.args...),
		from: q.from, jargs: append([]any(nil), q.jargs...)}
}

// withMetric starts the search from the runs' latest values of the metric, inner-joined: the
// (name, value) index then gives the order by the metric. valued keeps only values (not NaN).
func (q *runQuery) withMetric(name string, valued bool) *runQuery {
	c := q.clone()
	c.inner = map[string]string{name: "m0"}
	c.from = "metric_latest m0 CROSS JOIN runs r ON r.id = m0.run_id AND m0.name = ? AND m0.kind = 'scalar'"
	c.jargs = append(c.jargs, name)
	if valued {
		c.where = append(c.where, "m0.value IS NOT NULL")
	}
	return c
}

// compileAll adds the filter and the ordering to a copy of q and returns its SQL and arguments
// (without the SELECT list and the page's LIMIT).
func (q *runQuery) compileAll(expr atelier.FilterExpr, terms []atelier.OrderTerm) (string, []any, error) {
	c := q.clone()
	c.inner = q.inner
	if expr != nil {
		cond, err := c.compile(expr)
		if err != nil {
			return "", nil, err
		}
		c.where = append(c.where, cond)
	}
	if err := c.orderBy(terms); err != nil {
		return "", nil, err
	}
	sql := ` FROM ` + c.from + runJoins + strings.Join(c.joins, "") + ` WHERE ` + strings.Join(c.where, " AND ")
	if len(c.order) > 0 {
		sql += ` ORDER BY ` + strings.Join(c.order, ", ")
	}
	return sql, append(append([]any{}, c.jargs...), c.args...), nil
}

func (db *DB) searchRuns(ctx context.Context, q *runQuery, expr atelier.FilterExpr, terms []atelier.OrderTerm, limit, offset int) ([]*atelier.Run, error) {
	body, args, err := q.compileAll(expr, terms)
	if err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+runColumns+body+` LIMIT ? OFFSET ?`, append(args, limit, offset)...)
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

func (db *DB) countRuns(ctx context.Context, q *runQuery, expr atelier.FilterExpr) (int, error) {
	body, args, err := q.compileAll(expr, nil)
	if err != nil {
		return 0, err
	}
	var n int
	err = db.read.QueryRowContext(ctx, `SELECT count(*)`+body, args...).Scan(&n)
	return n, err
}

// smallScope reports whether the runs searched (the experiment's, or else the workspace's)
// are at most driverLimit: then reading them all and sorting the matches is the fastest plan.
func (db *DB) smallScope(ctx context.Context, wsID int64, experiment string) (bool, error) {
	var n int
	var err error
	if experiment != "" {
		err = db.read.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM experiments e JOIN runs r ON r.experiment_id = e.id
			WHERE e.workspace_id = ? AND e.name = ? LIMIT ?)`, wsID, experiment, db.planLimit+1).Scan(&n)
	} else {
		err = db.read.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM runs WHERE workspace_id = ? LIMIT ?)`,
			wsID, db.planLimit+1).Scan(&n)
	}
	return n <= db.planLimit, err
}

// driverLimit is the most runs a driving conjunct may match: reading and sorting that many
// runs costs about what walking a few thousand runs in order does.
const driverLimit = 2000

// A driver is a part of the filter that indexes answer, as the start of a search: ids selects
// the ids of the runs that may pass it (every run that passes it, and maybe some that do not,
// as runs of other workspaces), joined to the runs r by CROSS JOIN, which keeps that order.
type driver struct {
	ids  string
	args []any
}

func (d *driver) from() string { return "(" + d.ids + ") c CROSS JOIN runs r ON r.id = c.id" }

// chooseDriver returns the driver of e that the fewest runs of the database pass, if at most
// the plan limit do; nil when none is selective.
func (db *DB) chooseDriver(ctx context.Context, wsID int64, e atelier.FilterExpr) (*driver, error) {
	var best *driver
	bestN := db.planLimit + 1
	for _, d := range drivers(e, wsID, nil) {
		var n int
		err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM (`+d.ids+` LIMIT ?)`, append(d.args, db.planLimit+1)...).Scan(&n)
		if err != nil {
			return nil, err
		}
		if n < bestN {
			best, bestN = d, n
		}
	}
	return best, nil
}

// drivers appends the drivers of e to out: each alone narrows the search to e's matches. A
// conjunction has its parts' drivers; a disjunction one, the union of a driver of each part.
func drivers(e atelier.FilterExpr, wsID int64, out []*driver) []*driver {
	switch e := e.(type) {
	case *atelier.FilterAnd:
		return drivers(e.Right, wsID, drivers(e.Left, wsID, out))
	case *atelier.FilterOr:
		l, r := drivers(e.Left, wsID, nil), drivers(e.Right, wsID, nil)
		if len(l) > 0 && len(r) > 0 {
			out = append(out, &driver{ids: l[0].ids + " UNION " + r[0].ids, args: append(append([]any{}, l[0].args...), r[0].args...)})
		}
	case *atelier.FilterCompare:
		if d := driverOf(e, wsID); d != nil {
			out = append(out, d)
		}
	}
	return out
}

// driverOf returns the driver of a comparison an index answers by a range: equality, a set, a
// prefix pattern, or an order comparison of a metric; nil for the others (and for an invalid
// comparison, which the filter's compilation reports).
func driverOf(c *atelier.FilterCompare, wsID int64) *driver {
	switch c.Op {
	case "=", "in":
	case "like":
		if p := c.Value.Str; c.Value.IsNumber || p == "" || p[0] == '%' || p[0] == '_' {
			return nil
		}
	case "<", "<=", ">", ">=":
		if c.Field.Kind != atelier.FieldMetric {
			return nil
		}
	default:
		return nil
	}
	var ids, col string
	var args []any
	numeric := false
	switch c.Field.Kind {
	case atelier.FieldParam, atelier.FieldTag, atelier.FieldProperty:
		ids, col, args = "SELECT run_id AS id FROM "+sideTables[c.Field.Kind]+" WHERE key = ? AND ", "value", []any{c.Field.Name}
	case atelier.FieldMetric:
		ids, col, args = "SELECT run_id AS id FROM metric_latest WHERE name = ? AND kind = 'scalar' AND ", "value", []any{c.Field.Name}
		numeric = true
	case atelier.FieldAttribute:
		if c.Field.Name != "name" && c.Field.Name != "status" {
			return nil
		}
		ids, col, args = "SELECT id FROM runs INDEXED BY runs_"+c.Field.Name+" WHERE workspace_id = ? AND ", c.Field.Name, []any{wsID}
	default:
		return nil
	}
	cond, cargs, err := condition(col, c, numeric)
	if err != nil {
		return nil
	}
	return &driver{ids: ids + cond, args: append(args, cargs...)}
}

// requiresMetric reports whether every run matching e has the metric: some top-level conjunct
// compares it (a comparison never matches a run without it).
func requiresMetric(e atelier.FilterExpr, name string) bool {
	switch e := e.(type) {
	case *atelier.FilterAnd:
		return requiresMetric(e.Left, name) || requiresMetric(e.Right, name)
	case *atelier.FilterCompare:
		return e.Field.Kind == atelier.FieldMetric && e.Field.Name == name && e.Op != "is null"
	}
	return false
}
