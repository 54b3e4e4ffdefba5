package main

import (
	"io"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
)

// runColumn is one column of the runs table (run list, run children).
type runColumn struct {
	header string
	// field is what the column shows: an attribute, metrics.NAME, params.NAME, tags.NAME or
	// properties.NAME; for a summary column (every metric as k=v, say), Kind alone.
	field   atelier.FilterField
	summary bool
}

// runAttributeColumns are the attribute columns, by the name --columns takes.
var runAttributeColumns = map[string]struct {
	header string
	value  func(r *atelier.Run, now time.Time) any
}{
	"id":         {"ID", func(r *atelier.Run, _ time.Time) any { return r.ID }},
	"experiment": {"EXPERIMENT", func(r *atelier.Run, _ time.Time) any { return r.Experiment }},
	"name":       {"NAME", func(r *atelier.Run, _ time.Time) any { return r.Name }},
	"status": {"STATUS", func(r *atelier.Run, _ time.Time) any {
		if r.Deleted {
			return string(r.Status) + " (deleted)"
		}
		return r.Status
	}},
	"parent_id":  {"PARENT", func(r *atelier.Run, _ time.Time) any { return r.ParentID }},
	"created_by": {"CREATED BY", func(r *atelier.Run, _ time.Time) any { return r.CreatedBy }},
	"compute":    {"COMPUTE", func(r *atelier.Run, _ time.Time) any { return r.Compute }},
	"created_at": {"CREATED", func(r *atelier.Run, _ time.Time) any { return r.CreatedAt }},
	"started_at": {"STARTED", func(r *atelier.Run, _ time.Time) any { return r.StartedAt }},
	"ended_at":   {"ENDED", func(r *atelier.Run, _ time.Time) any { return r.EndedAt }},
	"duration":   {"DURATION", func(r *atelier.Run, now time.Time) any { return r.Duration(now) }},
}

// runColumnAliases are the attribute names as the table's headers show them, and MLflow's.
var runColumnAliases = map[string]string{"created": "created_at", "started": "started_at",
	"ended": "ended_at", "parent": "parent_id", "run_id": "id", "run_name": "name",
	"start_time": "started_at", "end_time": "ended_at", "user_id": "created_by"}

// runSummaryKinds are the columns that show all of a run's metrics, params, tags or
// properties as k=v pairs.
var runSummaryKinds = map[string]string{"metrics": atelier.FieldMetric, "params": atelier.FieldParam,
	"tags": atelier.FieldTag, "properties": atelier.FieldProperty}

// defaultRunColumns is what run list shows without --columns.
const defaultRunColumns = "id,experiment,name,status,created,duration,metrics"

const columnsHelp = `columns of the table, comma-separated: attributes (id, experiment, name, status, parent, created_by, compute, created, started, ended, duration), metrics.NAME, params.NAME, tags.NAME, properties.NAME, or metrics, params, tags, properties for all of them as k=v (default "` + defaultRunColumns + `")`

// parseRunColumns reads --columns. An unknown column is bad usage (exit 2).
func parseRunColumns(spec string) ([]runColumn, error) {
	if strings.TrimSpace(spec) == "" {
		spec = defaultRunColumns
	}
	var cols []runColumn
	for _, item := range splitColumns(spec) {
		name := strings.TrimSpace(item)
		lower := strings.ToLower(name)
		if a, ok := runColumnAliases[lower]; ok {
			lower = a
		}
		if a, ok := runAttributeColumns[lower]; ok {
			cols = append(cols, runColumn{header: a.header, field: atelier.FilterField{Kind: atelier.FieldAttribute, Name: lower}})
			continue
		}
		if kind, ok := runSummaryKinds[lower]; ok {
			cols = append(cols, runColumn{header: strings.ToUpper(lower), field: atelier.FilterField{Kind: kind}, summary: true})
			continue
		}
		// metrics.rmse, metric.rmse, params.`learning rate`: read as the query language reads a field.
		terms, err := atelier.ParseOrderBy(name)
		if err != nil || len(terms) != 1 || terms[0].Field.Kind == atelier.FieldAttribute || len(strings.Fields(unquoted(name))) != 1 {
			return nil, usagef("--columns: unknown column %q; the columns are %s", name, strings.TrimPrefix(columnsHelp, "columns of the table, comma-separated: "))
		}
		f := terms[0].Field
		cols = append(cols, runColumn{header: f.String(), field: f})
	}
	return cols, nil
}

// unquoted is s without its backquoted parts (a name in backquotes may hold spaces; "metrics.rmse
// asc" is no column).
func unquoted(s string) string {
	var b strings.Builder
	quoted := false
	for _, r := range s {
		if r == '`' {
			quoted = !quoted
		} else if !quoted {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// splitColumns splits a --columns list at the commas outside backquotes.
func splitColumns(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '`':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// withOrderColumns adds a column for each field the runs are ordered by that no column shows
// (ordered by metrics.rmse, the rmse column is there however many metrics the runs have): before
// the metrics summary when there is one, else at the end.
func withOrderColumns(cols []runColumn, orderBy string) []runColumn {
	terms, err := atelier.ParseOrderBy(orderBy)
	if err != nil {
		return cols // the server says what is wrong with it
	}
	for _, t := range terms {
		shown := false
		for _, c := range cols {
			shown = shown || c.field == t.Field
		}
		if shown {
			continue
		}
		col := runColumn{header: t.Field.String(), field: t.Field}
		if t.Field.Kind == atelier.FieldAttribute {
			a, ok := runAttributeColumns[t.Field.Name]
			if !ok {
				continue
			}
			col.header = a.header
		}
		at := len(cols)
		for i, c := range cols {
			if c.summary && c.field.Kind == atelier.FieldMetric {
				at = i
				break
			}
		}
		cols = append(cols[:at], append([]runColumn{col}, cols[at:]...)...)
	}
	return cols
}

// printRuns prints runs as a table of cols, each child run right under its parent (indented,
// when both are in the list), the others in the order given.
func printRuns(w io.Writer, runs []*atelier.Run, cols []runColumn) error {
	header := make([]string, len(cols))
	own := map[atelier.FilterField]bool{} // keys with a column of their own, left out of the summaries
	for i, c := range cols {
		header[i] = c.header
		own[c.field] = true
	}
	t := newTable(w, header...)
	now := time.Now()
	ordered, depths := runTree(runs)
	for i, r := range ordered {
		row := make([]any, len(cols))
		for j, c := range cols {
			row[j] = runCell(r, c, now, own)
		}
		if d := depths[i]; d > 0 {
			row[0] = strings.Repeat("  ", d-1) + "└ " + cell(row[0])
		}
		t.row(row...)
	}
	return t.flush()
}

func runCell(r *atelier.Run, c runColumn, now time.Time, own map[atelier.FilterField]bool) any {
	switch c.field.Kind {
	case atelier.FieldAttribute:
		return runAttributeColumns[c.field.Name].value(r, now)
	case atelier.FieldMetric:
		return keyCell(r.Metrics, c, own)
	case atelier.FieldParam:
		return keyCell(r.Params, c, own)
	case atelier.FieldTag:
		return keyCell(r.Tags, c, own)
	}
	return keyCell(r.Properties, c, own)
}

// keyCell is a run's value of the column's key (nil, printed -, when it has none), or for a
// summary column its keys as k=v, less those with a column of their own.
func keyCell[V any](m map[string]V, c runColumn, own map[atelier.FilterField]bool) any {
	if !c.summary {
		if v, ok := m[c.field.Name]; ok {
			return v
		}
		return nil
	}
	rest := make(map[string]V, len(m))
	for k, v := range m {
		if !own[atelier.FilterField{Kind: c.field.Kind, Name: k}] {
			rest[k] = v
		}
	}
	return truncate(kvString(rest), 60)
}

// runTree orders runs so that each run whose parent is in the list comes right after it (after
// its earlier siblings and their children), with its depth under the first such ancestor; the
// others keep their order.
func runTree(runs []*atelier.Run) ([]*atelier.Run, []int) {
	inList := make(map[string]bool, len(runs))
	for _, r := range runs {
		inList[r.ID] = true
	}
	children := map[string][]*atelier.Run{}
	var roots []*atelier.Run
	for _, r := range runs {
		if r.ParentID != "" && r.ParentID != r.ID && inList[r.ParentID] {
			children[r.ParentID] = append(children[r.ParentID], r)
		} else {
			roots = append(roots, r)
		}
	}
	ordered := make([]*atelier.Run, 0, len(runs))
	depths := make([]int, 0, len(runs))
	seen := make(map[string]bool, len(runs))
	var walk func(r *atelier.Run, depth int)
	walk = func(r *atelier.Run, depth int) {
		if seen[r.ID] {
			return
		}
		seen[r.ID] = true
		ordered = append(ordered, r)
		depths = append(depths, depth)
		for _, c := range children[r.ID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	// A cycle of parents (which the server does not allow) would leave runs out: they come last.
	for _, r := range runs {
		if !seen[r.ID] {
			walk(r, 0)
		}
	}
	return ordered, depths
}
