package sqlite

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/atelier-ml/atelier"
)

// recordQuery compiles a filter and an ordering of the query language (filter.go) over a record
// other than a run — an experiment, a model, a version, a logged model — to SQL: attributes
// are columns; a tag, param or property test is "id IN (the ids whose key/value matches)", a
// subquery that does not depend on the row, run once on the side table's (key, value) index:
// the record's own index walk (in the page's order) then only probes that list, and stops after
// the page, instead of running a correlated EXISTS for every record it passes.
type recordQuery struct {
	// attrs maps attributes to SQL expressions; times are in milliseconds.
	attrs map[string]string
	times map[string]bool
	// sides maps a field kind to its key/value table.
	sides map[string]side
	// metric, when set, is the SQL value of a metric of the record (it appends its args).
	metric func(q *recordQuery, name string) string
	args   []any
	// nested counts the ORs and NOTs around the test being compiled: drivers are the side-table
	// tests at the top, which every record found must pass.
	nested  int
	drivers []sideTest
}

// sideTest is a side-table test that every record found passes: when it lists few records, the
// search looks those up and sorts them (see few) rather than walking every record in order.
type sideTest struct {
	table string
	where string // the WHERE of x, after its key
	args  []any
}

// side is a key/value table whose column col holds the id of the record, outer in the query.
type side struct{ table, col, outer string }

// link ties a row x of the side table to the record.
func (s side) link() string { return "x." + s.col + " = " + s.outer }

// ids is the subquery of the records whose key (the first arg) passes cond.
func (s side) ids(cond string) string {
	return "(SELECT x." + s.col + " FROM " + s.table + " x WHERE x.key = ?" + cond + ")"
}

func (q *recordQuery) compile(e atelier.FilterExpr) (string, error) {
	switch e := e.(type) {
	case *atelier.FilterAnd:
		return q.binary(e.Left, e.Right, "AND")
	case *atelier.FilterOr:
		q.nested++
		defer func() { q.nested-- }()
		return q.binary(e.Left, e.Right, "OR")
	case *atelier.FilterNot:
		q.nested++
		defer func() { q.nested-- }()
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
		// Ids and side-table ids are never NULL, so NOT IN is NOT EXISTS.
		q.args = append(q.args, c.Field.Name)
		if isNull {
			if c.Op == "is null" {
				return s.outer + " NOT IN " + s.ids(""), nil
			}
			if q.nested == 0 {
				q.drivers = append(q.drivers, sideTest{s.table, "", []any{c.Field.Name}})
			}
			return s.outer + " IN " + s.ids(""), nil
		}
		cond, args, err := condition("x.value", c, false)
		q.args = append(q.args, args...)
		if q.nested == 0 && err == nil {
			q.drivers = append(q.drivers, sideTest{s.table, " AND " + cond, append([]any{c.Field.Name}, args...)})
		}
		return s.outer + " IN " + s.ids(" AND "+cond), err
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

// few tells whether a driver of the compiled filter lists few enough records that looking them
// up and sorting them costs less than walking the records of table (in the page's order, each
// checked against the driver's list) until page of them are found. Walking visits about
// page × total / n records for a driver listing n of total; looking up costs about 10 times a
// step of the walk each, n of them: so when n² × 10 < page × total. n is counted off the side
// table's (key, value) index, up to that bound; total is the table's largest rowid, an
// estimate that costs one index step. A filter that matches nothing so costs two index steps,
// not a walk of every record.
func (q *recordQuery) few(ctx context.Context, db querier, table string, page int) (bool, error) {
	if len(q.drivers) == 0 {
		return false, nil
	}
	switch recordPlan.Load() {
	case planWalk:
		return false, nil
	case planDrive:
		return true, nil
	}
	var total int64
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(rowid), 0) FROM `+table).Scan(&total); err != nil {
		return false, err
	}
	bound := int64(math.Sqrt(float64(page)*float64(total)/10)) + 1
	for _, d := range q.drivers {
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+d.table+` x WHERE x.key = ?`+d.where+` LIMIT ?)`,
			append(d.args, bound+1)...).Scan(&n); err != nil {
			return false, err
		}
		if n <= bound {
			return true, nil
		}
	}
	return false, nil
}

// recordPlan makes few always answer no (planWalk) or yes (planDrive), for tests: both plans
// must find the same records in the same order.
var recordPlan atomic.Int32

const (
	planWalk = iota + 1
	planDrive
)

// unindexed marks SQL terms so that the planner uses no index for them (SQLite's unary +):
// with few, the search is driven by the drivers' lists instead.
func unindexed(terms []string) []string {
	out := make([]string, len(terms))
	for i, t := range terms {
		out[i] = "+" + t
	}
	return out
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
			// Records without the metric (or with NaN) sort last either way; the value is
			// computed once a record (an "IS NULL" term before it would compute it again).
			out = append(out, q.metric(q, t.Field.Name)+dir+" NULLS LAST")
		case ok:
			out = append(out, "(SELECT x.value FROM "+s.table+" x WHERE "+s.link()+" AND x.key = ?)"+dir+" NULLS LAST")
			q.args = append(q.args, t.Field.Name)
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
