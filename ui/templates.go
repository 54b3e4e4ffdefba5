package ui

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
)

// pageNames are the templates of templates/, each executed within layout.html.
var pageNames = []string{"error", "login", "workspaces", "home", "experiments", "runs", "run", "preview", "snapshot", "compare", "parallel", "models", "model", "version", "compute", "activities", "datastores", "datastore", "members", "audit", "images", "services", "service"}

func parsePages() map[string]*template.Template {
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t := template.New(name).Funcs(funcs)
		pages[name] = template.Must(t.ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return pages
}

var funcs = template.FuncMap{
	"ago":           ago,
	"when":          when,
	"dur":           runDuration,
	"num":           formatFloat,
	"bytes":         formatBytes,
	"sorted":        sortedKeys,
	"terminal":      func(s atelier.RunStatus) bool { return s.Terminal() },
	"lower":         strings.ToLower,
	"short":         func(id string) string { return shortID(id) },
	"pathesc":       escapePath,
	"pct":           func(f float64) string { return strconv.FormatFloat(math.Max(0, math.Min(100, f)), 'f', 0, 64) },
	"add":           func(a, b int) int { return a + b },
	"dict":          dict,
	"ms":            func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) },
	"resubmittable": resubmittable,
	"caret":         func(pos int) string { return strings.Repeat(" ", max(0, pos-1)) + "^" },
}

// dict makes a map of key, value pairs, to pass several values to a template.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// escapePath escapes each element of a slash-separated path for a URL path.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

func ago(t any) string {
	var tt time.Time
	switch v := t.(type) {
	case time.Time:
		tt = v
	case *time.Time:
		if v == nil {
			return ""
		}
		tt = *v
	default:
		return ""
	}
	if tt.IsZero() {
		return ""
	}
	d := time.Since(tt)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return tt.UTC().Format("2006-01-02")
}

func when(t any) string {
	switch v := t.(type) {
	case time.Time:
		if v.IsZero() {
			return ""
		}
		return v.UTC().Format("2006-01-02 15:04:05Z")
	case *time.Time:
		if v == nil {
			return ""
		}
		return v.UTC().Format("2006-01-02 15:04:05Z")
	}
	return ""
}

func runDuration(r *atelier.Run) string {
	d := r.Duration(time.Now())
	if d <= 0 {
		return ""
	}
	return formatDuration(d)
}

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func formatFloat(f any) string {
	var x float64
	switch v := f.(type) {
	case atelier.Float:
		x = float64(v)
	case float64:
		x = v
	default:
		return fmt.Sprint(f)
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	// Six significant digits, without an exponent between 1e-4 and 1e7.
	s := strconv.FormatFloat(x, 'g', 6, 64)
	if strings.Contains(s, "e") && math.Abs(x) >= 1e-4 && math.Abs(x) < 1e7 {
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	return s
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func sortedKeys(m any) []string {
	var keys []string
	switch v := m.(type) {
	case map[string]string:
		for k := range v {
			keys = append(keys, k)
		}
	case map[string]atelier.Float:
		for k := range v {
			keys = append(keys, k)
		}
	case map[string]int64:
		for k := range v {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}
