package ui

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/atelier-ml/atelier"
)

// recordView is a non-scalar metric as the run page shows it: a table (lists, rows, tables),
// images, or texts.
type recordView struct {
	Name   string
	Kind   atelier.MetricKind
	Count  int64
	Table  *table
	Images []string // the images' paths among the run's files
	Texts  []string
	More   bool // more records than shown
}

type table struct {
	Columns []string
	Rows    [][]string
}

// Bounds of what the run page renders of non-scalar metrics.
const (
	maxRecordMetrics = 20
	maxRecordsShown  = 100
	maxTableRows     = 500
)

// recordViews reads and shapes the run's non-scalar metrics.
func (h *Handler) recordViews(q *request, runID string, metrics []*atelier.MetricSummary) ([]*recordView, error) {
	var out []*recordView
	for _, m := range metrics[:min(len(metrics), maxRecordMetrics)] {
		recs, err := h.svc.MetricRecords(q.ctx(), q.ws(), runID, m.Name)
		if err != nil {
			return nil, err
		}
		v := &recordView{Name: m.Name, Kind: m.Kind, Count: m.Count}
		if len(recs) > maxRecordsShown {
			v.More = true
			if m.Kind == atelier.MetricRow {
				recs = recs[:maxRecordsShown]
			} else {
				recs = recs[len(recs)-maxRecordsShown:]
			}
		}
		switch m.Kind {
		case atelier.MetricImage:
			for _, r := range recs {
				v.Images = append(v.Images, r.Path)
			}
		case atelier.MetricText:
			for _, r := range recs {
				var s string
				json.Unmarshal(r.Value, &s)
				v.Texts = append(v.Texts, s)
			}
		case atelier.MetricList:
			t := &table{Columns: []string{"values"}}
			for _, r := range recs {
				var xs []json.RawMessage
				if json.Unmarshal(r.Value, &xs) != nil {
					t.Rows = append(t.Rows, []string{string(r.Value)})
					continue
				}
				vals := make([]string, len(xs))
				for i, x := range xs {
					vals[i] = jsonText(x)
				}
				t.Rows = append(t.Rows, []string{strings.Join(vals, ", ")})
			}
			v.Table = t
		case atelier.MetricRow:
			v.Table = rowsTable(recs)
		case atelier.MetricTable:
			// A table is logged whole: the latest record is the table.
			v.Table = columnsTable(recs[len(recs)-1].Value)
		}
		out = append(out, v)
	}
	return out, nil
}

// jsonText is a JSON value as text: a string unquoted, anything else as written.
func jsonText(x json.RawMessage) string {
	var s string
	if len(x) > 0 && x[0] == '"' && json.Unmarshal(x, &s) == nil {
		return s
	}
	return string(x)
}

// rowsTable makes one table of row records (objects), its columns the union of their keys.
func rowsTable(recs []*atelier.MetricRecord) *table {
	t := &table{}
	seen := map[string]bool{}
	var rows []map[string]json.RawMessage
	for _, r := range recs {
		var row map[string]json.RawMessage
		if json.Unmarshal(r.Value, &row) != nil {
			continue
		}
		rows = append(rows, row)
		keys := make([]string, 0, len(row))
		for k := range row {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				t.Columns = append(t.Columns, k)
			}
		}
	}
	for _, row := range rows {
		cells := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			if x, ok := row[c]; ok {
				cells[i] = jsonText(x)
			}
		}
		t.Rows = append(t.Rows, cells)
	}
	return t
}

// columnsTable makes a table of a table record: an object of equal-length columns.
func columnsTable(value json.RawMessage) *table {
	var cols map[string][]json.RawMessage
	if json.Unmarshal(value, &cols) != nil {
		return &table{Columns: []string{"value"}, Rows: [][]string{{string(value)}}}
	}
	t := &table{}
	n := 0
	for k, c := range cols {
		t.Columns = append(t.Columns, k)
		n = max(n, len(c))
	}
	sort.Strings(t.Columns)
	for i := 0; i < min(n, maxTableRows); i++ {
		row := make([]string, len(t.Columns))
		for j, k := range t.Columns {
			if i < len(cols[k]) {
				row[j] = jsonText(cols[k][i])
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// previewBytes bounds how much of a file its preview reads.
const previewBytes = 1 << 20

type previewData struct {
	Run      *atelier.Run
	File     *atelier.File
	Download string // the file's download URL (the REST API's)
	Kind     string // image, json, csv, text or "" (no preview)
	Text     string
	Table    *table
	Cut      bool // the preview shows only the file's start
}

var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".gif": true, ".webp": true, ".svg": true, ".bmp": true}

// preview is an output file's page: text, JSON (indented), CSV as a table and images are shown;
// anything else is offered for download.
func (h *Handler) preview(q *request) error {
	ws, id, p := q.ws(), q.r.PathValue("run"), q.r.PathValue("path")
	run, err := h.svc.FindRun(q.ctx(), ws, id)
	if err != nil {
		return err
	}
	f, rc, err := h.svc.OpenFile(q.ctx(), ws, id, p)
	if err != nil {
		return err
	}
	defer rc.Close()
	d := &previewData{Run: run, File: f,
		Download: "/api/v1/workspaces/" + url.PathEscape(ws) + "/runs/" + url.PathEscape(id) + "/files/" + escapePath(p)}
	ext := strings.ToLower(path.Ext(p))
	if imageExts[ext] {
		d.Kind = "image"
		return q.show(h, "preview", p, "runs", d)
	}
	data, err := io.ReadAll(io.LimitReader(rc, previewBytes))
	if err != nil {
		return err
	}
	d.Cut = f.Size > int64(len(data))
	var indented bytes.Buffer
	switch {
	case ext == ".json" && !d.Cut && json.Indent(&indented, data, "", "  ") == nil:
		d.Kind, d.Text = "json", indented.String()
	case ext == ".csv" || ext == ".tsv":
		if d.Table = csvTable(data, ext == ".tsv"); d.Table != nil {
			d.Kind = "csv"
			break
		}
		fallthrough
	case !bytes.ContainsRune(data[:min(len(data), 8192)], 0): // text, as far as a NUL tells
		d.Kind, d.Text = "text", strings.ToValidUTF8(string(data), "\uFFFD")
	}
	return q.show(h, "preview", p, "runs", d)
}

// csvTable reads the first rows of CSV (or TSV) data, its first row the header; nil if it has none.
func csvTable(data []byte, tabs bool) *table {
	r := csv.NewReader(bytes.NewReader(data))
	if tabs {
		r.Comma = '\t'
	}
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	t := &table{}
	for len(t.Rows) < maxTableRows {
		rec, err := r.Read()
		if err != nil {
			break
		}
		if t.Columns == nil {
			t.Columns = rec
			continue
		}
		t.Rows = append(t.Rows, rec)
	}
	if t.Columns == nil {
		return nil
	}
	return t
}
