package ui

import (
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
)

// The parallel-coordinates chart: a filter's runs (up to maxParallel) as lines across one axis
// a param and a last axis the chosen metric, coloured by the metric. It is drawn on the server
// as SVG, so it needs no script.

const (
	maxParallel       = 1000
	maxParallelParams = 8
	parallelWidth     = 1100
	parallelHeight    = 420
	parallelPad       = 60
)

type axis struct {
	Name    string
	X       float64
	Numeric bool
	Min     float64
	Max     float64
	Cats    []string // a categorical axis's values, bottom to top
	Ticks   []tick
}

type tick struct {
	Y     float64
	Label string
}

type parallelLine struct {
	Points string // the SVG polyline's points
	Color  string
	Title  string
	Href   string
}

type parallelData struct {
	Filter  string
	Metric  string
	Metrics []string
	Axes    []*axis
	Lines   []parallelLine
	Width   int
	Height  int
	Count   int
	More    bool
	Error   string
}

// y maps a value to the axis's height (top is high).
func (a *axis) y(v string) (float64, bool) {
	top, bottom := float64(parallelPad), float64(parallelHeight-parallelPad)
	if a.Numeric {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, false
		}
		if a.Max == a.Min {
			return (top + bottom) / 2, true
		}
		return bottom - (f-a.Min)/(a.Max-a.Min)*(bottom-top), true
	}
	i := sort.SearchStrings(a.Cats, v)
	if i >= len(a.Cats) || a.Cats[i] != v {
		return 0, false
	}
	if len(a.Cats) == 1 {
		return (top + bottom) / 2, true
	}
	return bottom - float64(i)/float64(len(a.Cats)-1)*(bottom-top), true
}

// newAxis makes an axis of values: numeric when they all are numbers.
func newAxis(name string, values []string) *axis {
	a := &axis{Name: name, Numeric: len(values) > 0, Min: math.Inf(1), Max: math.Inf(-1)}
	seen := map[string]bool{}
	for _, v := range values {
		if !seen[v] {
			seen[v] = true
			a.Cats = append(a.Cats, v)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			a.Numeric = false
			continue
		}
		a.Min, a.Max = math.Min(a.Min, f), math.Max(a.Max, f)
	}
	sort.Strings(a.Cats)
	if a.Numeric {
		a.Cats = nil
		for i := 0; i <= 4; i++ {
			v := a.Min + (a.Max-a.Min)*float64(i)/4
			y, _ := a.y(strconv.FormatFloat(v, 'g', -1, 64))
			a.Ticks = append(a.Ticks, tick{Y: y, Label: formatFloat(v)})
		}
		return a
	}
	step := max(1, len(a.Cats)/10) // at most about 10 labels
	for i := 0; i < len(a.Cats); i += step {
		y, _ := a.y(a.Cats[i])
		label := a.Cats[i]
		if len(label) > 16 {
			label = label[:15] + "…"
		}
		a.Ticks = append(a.Ticks, tick{Y: y, Label: label})
	}
	return a
}

// color is a blue (low) to red (high) colour of t in [0, 1].
func color(t float64) string {
	if math.IsNaN(t) {
		t = 0.5
	}
	r := int(40 + 200*t)
	b := int(220 - 180*t)
	return fmt.Sprintf("rgb(%d,90,%d)", r, b)
}

func (h *Handler) parallel(q *request) error {
	qs := q.r.URL.Query()
	d := &parallelData{Filter: qs.Get("filter"), Metric: qs.Get("metric"), Width: parallelWidth, Height: parallelHeight}
	order := ""
	if d.Metric != "" {
		order = atelier.FilterField{Kind: atelier.FieldMetric, Name: d.Metric}.String() + " asc"
	}
	page, err := h.svc.ListRuns(q.ctx(), q.ws(), atelier.RunQuery{Filter: d.Filter, OrderBy: order, Limit: maxParallel})
	if err != nil {
		if atelier.ErrorCode(err) != atelier.EINVALID {
			return err
		}
		d.Error = atelier.ErrorMessage(err)
		q.status = 400
		return q.show(h, "parallel", "Parallel coordinates", "runs", d)
	}
	d.More = page.NextPageToken != ""
	runs := page.Runs
	metrics, params := map[string]bool{}, map[string]int{}
	for _, r := range runs {
		for k := range r.Metrics {
			metrics[k] = true
		}
		for k := range r.Params {
			params[k]++
		}
	}
	for k := range metrics {
		d.Metrics = append(d.Metrics, k)
	}
	sort.Strings(d.Metrics)
	if d.Metric == "" && len(d.Metrics) > 0 {
		d.Metric = d.Metrics[0]
	}
	// The params most runs have, by name.
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if params[names[i]] != params[names[j]] {
			return params[names[i]] > params[names[j]]
		}
		return names[i] < names[j]
	})
	names = names[:min(len(names), maxParallelParams)]
	sort.Strings(names)
	var kept []*atelier.Run
	for _, r := range runs {
		if _, ok := r.Metrics[d.Metric]; ok || d.Metric == "" {
			kept = append(kept, r)
		}
	}
	d.Count = len(kept)
	n := len(names) + 1
	value := func(r *atelier.Run, i int) string {
		if i < len(names) {
			return r.Params[names[i]]
		}
		return strconv.FormatFloat(float64(r.Metrics[d.Metric]), 'g', -1, 64)
	}
	for i := 0; i < n; i++ {
		vals := make([]string, 0, len(kept))
		for _, r := range kept {
			if v := value(r, i); v != "" || i == len(names) {
				vals = append(vals, v)
			}
		}
		name := d.Metric
		if i < len(names) {
			name = "params." + names[i]
		} else {
			name = "metrics." + name
		}
		a := newAxis(name, vals)
		if n > 1 {
			a.X = float64(parallelPad) + float64(i)*float64(parallelWidth-2*parallelPad)/float64(n-1)
		} else {
			a.X = parallelWidth / 2
		}
		d.Axes = append(d.Axes, a)
	}
	if d.Metric == "" {
		return q.show(h, "parallel", "Parallel coordinates", "runs", d)
	}
	m := d.Axes[len(d.Axes)-1]
	for _, r := range kept {
		var pts []string
		for i, a := range d.Axes {
			if y, ok := a.y(value(r, i)); ok {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", a.X, y))
			}
		}
		t := 0.5
		if m.Max > m.Min {
			t = (float64(r.Metrics[d.Metric]) - m.Min) / (m.Max - m.Min)
		}
		name := r.Name
		if name == "" {
			name = shortID(r.ID)
		}
		d.Lines = append(d.Lines, parallelLine{Points: strings.Join(pts, " "), Color: color(t),
			Title: fmt.Sprintf("%s: %s = %s", name, d.Metric, formatFloat(r.Metrics[d.Metric])),
			Href:  "/w/" + url.PathEscape(q.ws()) + "/runs/" + url.PathEscape(r.ID)})
	}
	return q.show(h, "parallel", "Parallel coordinates", "runs", d)
}
