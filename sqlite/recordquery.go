package sqlite

import (
	"fmt"
	"sort"
	"strings"

	"github.com/atelier-ml/atelier"
)

// recordQuery compiles a filter and an ordering of the query language (filter.go) over a record
// other than a run — an experiment, a model, a version, a logged model — to SQL: attributes
// are columns, tags, params and properties EXISTS tests on indexed key/value side tables.
type recordQuery struct {
	// attrs maps attributes to SQL expressions; times are in milliseconds.
	attrs map[string]string
	times map[string]bool
	// sides maps a field kind to its key/value table and the condition tying a row x of it
	// to the record.
	sides map[string]side
	// metric, when set, is the SQL value of a metric of the record (it appends its args).
	metric func(q *recordQuery, name string) string
	args   []any
}

type side struct{ table, link string }

func (q *recordQuery) compile(e atelier.FilterExpr) (string, error) {
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

func (q *recordQuery) binary(l, r atelier.FilterExpr, op string) (string, error) {
	ls, err := q.compile(l)
	if err != nil {
		return "", err
	}
	rs, err := q.compile(r)
	return "(" + ls + " " + op + " " + rs + ")", err
}

func nullTest(expr, op string) string {
	if op == "is null" {
		return expr + " IS NULL"
	}
	return expr + " IS NOT NULL"
}

func (q *recordQuery) compare(c *atelier.FilterCompare) (string, error) {
	isNull := c.Op == "is null" || c.Op == "is not null"
	switch s, ok := q.sides[c.Field.Kind]; {
	case c.Field.Kind == atelier.FieldMetric && q.metric != nil:
		col := q.metric(q, c.Field.Name)
		if isNull {
			return nullTest(col, c.Op), nil
		}
		cond, args, err := condition(col, c, true)
		q.args = append(q.args, args...)
		return cond, err
	case ok:
		q.args = append(q.args, c.Field.Name)
		exists := "EXISTS (SELECT 1 FROM " + s.table + " x WHERE " + s.link + " AND x.key = ?"
		if isNull {
			if c.Op == "is null" {
				return "NOT " + exists + ")", nil
			}
			return exists + ")", nil
		}
		cond, args, err := condition("x.value", c, false)
		q.args = append(q.args, args...)
		return exists + " AND " + cond + ")", err
	case c.Field.Kind == atelier.FieldAttribute:
		col, ok := q.attrs[c.Field.Name]
		if !ok {
			return "", atelier.Errorf(atelier.EINVALID, "filter: unknown attribute %q", c.Field.Name)
		}
		if isNull {
			return nullTest(col, c.Op), nil
		}
		numeric := q.times[c.Field.Name]
		if numeric {
			if err := timeValues(c); err != nil {
				return "", err
			}
		}
		cond, args, err := condition(col, c, numeric)
		q.args = append(q.args, args...)
		return cond, err
	}
	return "", atelier.Errorf(atelier.EINVALID, "filter: at position %d: %s cannot be searched here", c.Pos+1, c.Field)
}

// order compiles an ordering; its args are returned apart, since ORDER BY follows WHERE.
func (q *recordQuery) order(terms []atelier.OrderTerm) ([]string, []any, error) {
	saved := q.args
	q.args = nil
	defer func() { q.args = saved }()
	var out []string
	for _, t := range terms {
		dir := " ASC"
		if t.Desc {
			dir = " DESC"
		}
		switch s, ok := q.sides[t.Field.Kind]; {
		case t.Field.Kind == atelier.FieldMetric && q.metric != nil:
			// Records without the metric (or with NaN) sort last either way.
			out = append(out, q.metric(q, t.Field.Name)+" IS NULL", q.metric(q, t.Field.Name)+dir)
		case ok:
			v := "(SELECT x.value FROM " + s.table + " x WHERE " + s.link + " AND x.key = ?)"
			out = append(out, v+" IS NULL", v+dir)
			q.args = append(q.args, t.Field.Name, t.Field.Name)
		case t.Field.Kind == atelier.FieldAttribute:
			col, ok := q.attrs[t.Field.Name]
			if !ok {
				return nil, nil, atelier.Errorf(atelier.EINVALID, "order by: unknown attribute %q", t.Field.Name)
			}
			out = append(out, col+dir)
		default:
			return nil, nil, atelier.Errorf(atelier.EINVALID, "order by: %s cannot order here", t.Field)
		}
	}
	return out, q.args, nil
}

// where compiles a filter string (nil SQL for an empty one).
func (q *recordQuery) where(filter string, attributes, statuses []string) (string, error) {
	e, err := atelier.ParseFilterFor(filter, attributes, statuses)
	if err != nil || e == nil {
		return "", err
	}
	return q.compile(e)
}

// keysOf lists a map's keys, for the parser's attribute list.
func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// inList is "(?, ?, ...)" for n values.
func inList(n int) string { return "(" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")" }
