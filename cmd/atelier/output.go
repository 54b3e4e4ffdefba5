package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/atelier-ml/atelier"
)

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints aligned columns.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(toAny(header)...)
	return t
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func (t *table) row(cols ...any) {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = cell(c)
	}
	fmt.Fprintln(t.tw, strings.Join(parts, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

func cell(v any) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		if v == "" {
			return "-"
		}
		return printable(strings.ReplaceAll(v, "\t", " "))
	case time.Time:
		if v.IsZero() {
			return "-"
		}
		return v.Local().Format("2006-01-02 15:04:05")
	case *time.Time:
		if v == nil {
			return "-"
		}
		return cell(*v)
	case time.Duration:
		return v.Round(time.Millisecond).String()
	case float64:
		return formatMetric(v)
	case atelier.Float:
		return formatMetric(float64(v))
	}
	return printable(fmt.Sprint(v))
}

// printable escapes what a terminal acts on rather than shows: C0 and C1 control characters,
// DEL, bidirectional controls, line and paragraph separators, and bytes that are not UTF-8. The
// names, paths and messages the CLI prints come from whoever could write them (a run's name,
// the path of a refused request in the audit log): printed raw, they could clear the screen,
// move the cursor to rewrite what is above, or reorder what the reader sees. Every human table
// and line goes through it; JSON output (-o json) stays exact.
func printable(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, needsEscape) < 0 {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, "\\x%02x", s[0])
		case needsEscape(r):
			q := strconv.QuoteRune(r) // '\x1b', '\n', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

func needsEscape(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029'
}

// printableLines is printable for multi-line text (an error message): its lines stay lines.
func printableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = printable(l)
	}
	return strings.Join(lines, "\n")
}

// kvString renders a map as k=v pairs in key order.
func kvString[V any](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := fmt.Sprint(m[k])
		if f, ok := any(m[k]).(atelier.Float); ok {
			v = formatMetric(float64(f)) // a metric at the tables' precision
		}
		parts[i] = k + "=" + v
	}
	return strings.Join(parts, " ")
}

// formatMetric prints a metric value as every table shows it (run list, run metrics, run show,
// run compare): a whole number as it is (70, 1234567), others to 6 significant digits
// (50.123456789 is 50.1235, 0.000123456789 is 0.000123457) but without an exponent up to 10^15
// (1234567.891 is 1234568), NaN and the infinities by name. JSON output keeps the full value.
func formatMetric(v float64) string {
	switch a := math.Abs(v); {
	case v == math.Trunc(v) && a < 1e15:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case a >= 1e6 && a < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// plural picks the word for n things.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
