package series

import (
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/atelier-ml/atelier"
)

// ToSeries returns the points of p (sorted by step) in q's step window, downsampled if
// q.MaxPoints > 0 and the window holds more points than that. Total is the number of points in the
// window. The columns are never nil, so they encode as [] rather than null.
func ToSeries(name string, p Points, q atelier.HistoryQuery) *atelier.Series {
	w := Window(p, q.MinStep, q.MaxStep)
	s := &atelier.Series{Name: name, Total: int64(w.Len())}
	if q.MaxPoints > 0 && w.Len() > q.MaxPoints {
		d := Downsample(w, q.MaxPoints)
		s.Steps, s.Timestamps, s.Values = d.Steps, d.Timestamps, floats(d.Last)
		s.Min, s.Max = floats(d.Min), floats(d.Max)
		s.Downsampled = true
		return s
	}
	// Copy rather than share p's memory: the caller may reuse p while the series is in flight.
	s.Steps = append(make([]int64, 0, w.Len()), w.Steps...)
	s.Timestamps = append(make([]int64, 0, w.Len()), w.Timestamps...)
	s.Values = floats(w.Values)
	return s
}

func floats(xs []float64) []atelier.Float {
	fs := make([]atelier.Float, len(xs))
	for i, x := range xs {
		fs[i] = atelier.Float(x)
	}
	return fs
}

// AppendJSON appends the JSON encoding of s to dst, byte for byte what encoding/json writes for
// it, without reflection: a million-point series is tens of megabytes of JSON, and this is most
// of the cost of reading one through the API.
func AppendJSON(dst []byte, s *atelier.Series) []byte {
	// Reserve roughly enough up front (steps, 13-digit timestamps, ~18-byte values) so a big
	// series is not copied by repeated growth.
	n := len(s.Steps) + len(s.Timestamps) + len(s.Values) + len(s.Min) + len(s.Max)
	dst = slices.Grow(dst, 128+len(s.Name)+n*16)

	dst = append(dst, `{"name":`...)
	dst = appendString(dst, s.Name)
	dst = append(dst, `,"steps":`...)
	dst = appendArray(dst, s.Steps, appendInt)
	dst = append(dst, `,"timestamps":`...)
	dst = appendArray(dst, s.Timestamps, appendInt)
	dst = append(dst, `,"values":`...)
	dst = appendArray(dst, s.Values, appendFloat)
	dst = append(dst, `,"downsampled":`...)
	dst = strconv.AppendBool(dst, s.Downsampled)
	if len(s.Min) > 0 { // omitempty
		dst = append(dst, `,"min":`...)
		dst = appendArray(dst, s.Min, appendFloat)
	}
	if len(s.Max) > 0 {
		dst = append(dst, `,"max":`...)
		dst = appendArray(dst, s.Max, appendFloat)
	}
	dst = append(dst, `,"total":`...)
	dst = strconv.AppendInt(dst, s.Total, 10)
	return append(dst, '}')
}

func appendInt(dst []byte, x int64) []byte { return strconv.AppendInt(dst, x, 10) }

func appendFloat(dst []byte, x atelier.Float) []byte { return atelier.AppendFloatJSON(dst, float64(x)) }

// appendArray appends xs as a JSON array, nil as null (as encoding/json does).
func appendArray[T any](dst []byte, xs []T, appendOne func([]byte, T) []byte) []byte {
	if xs == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, x := range xs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendOne(dst, x)
	}
	return append(dst, ']')
}

// appendString quotes s as encoding/json does by default: HTML-safe (<, >, & escaped), invalid
// UTF-8 replaced by U+FFFD, and U+2028 and U+2029 escaped for JSONP.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
