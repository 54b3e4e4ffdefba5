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

// ListRuns searches runs with a filter and an ordering evaluated in the database.
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
	q := &runQuery{where: []string{"r.workspace_id = ?"}, args: []any{wsID}}
	if rq.Experiment != "" {
		q.where = append(q.where, "e.name = ?")
		q.args = append(q.args, rq.Experiment)
	}
	if rq.ParentID != "" {
		q.where = append(q.where, "r.parent_id = ?")
		q.args = append(q.args, rq.ParentID)
	}
	if rq.RootOnly {
		q.where = append(q.where, "r.parent_id IS NULL")
	}
	switch rq.Lifecycle {
	case "":
	case atelier.LifecycleActive:
		q.where = append(q.where, "r.deleted = 0")
	case atelier.LifecycleDeleted:
		q.where = append(q.where, "r.deleted = 1")
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
	q.from = "runs r"
	if len(terms) > 0 && terms[0].Field.Kind == atelier.FieldMetric && requiresMetric(expr, terms[0].Field.Name) {
		q.inner = map[string]string{terms[0].Field.Name: "m0"}
		q.from = "metric_latest m0 JOIN runs r ON r.id = m0.run_id AND m0.name = ? AND m0.kind = 'scalar'"
		q.jargs = append(q.jargs, terms[0].Field.Name)
	}
	if expr != nil {
		cond, err := q.compile(expr)
		if err != nil {
			return nil, err
		}
		q.where = append(q.where, cond)
	}
	if err := q.orderBy(terms); err != nil {
		return nil, err
	}
	q.order = append(q.order, "r.created_at DESC", "r.id DESC")

	query := `SELECT ` + runColumns + ` FROM ` + q.from + runJoins + strings.Join(q.joins, "") +
		` WHERE ` + strings.Join(q.where, " AND ") + ` ORDER BY ` + strings.Join(q.order, ", ") + ` LIMIT ? OFFSET ?`
	args := append(append(append([]any{}, q.jargs...), q.args...), limit+1, offset)
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	page := &atelier.RunPage{Runs: []*atelier.Run{}}
	for rows.Next() {
		run, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		page.Runs = append(page.Runs, run)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(page.Runs) > limit {
		page.Runs = page.Runs[:limit]
		page.NextPageToken = encodePageToken(offset + limit)
	}
	page.Summaries, err = db.attach(ctx, db.read, page.Runs, rq.Summaries)
	return page, err
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
