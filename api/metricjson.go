package api

import (
	"errors"
	"strconv"

	"github.com/atelier-ml/atelier"
)

// The metric batch endpoint is the hottest path of the server (the goal is a million points a
// second), and encoding/json spends most of that budget on reflection. fastMetricBatch parses
// the common shape by hand: {"metrics": [{"name", "step", "timestamp", "value"}, ...]}, each
// point with the fields the OpenAPI document requires of it. Anything else (records, escapes in
// names, unknown or missing fields, errors) falls back to the strict decoder (Server.decodeJSON),
// so results and error messages are exactly those of encoding/json and the document's checks.

var errSlowPath = errors.New("metric batch: not the fast shape")

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) expect(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads a string without escapes (escapes send the batch to the slow path).
func (s *scanner) str() ([]byte, bool) {
	if !s.expect('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c == '"' {
			s.i++
			return s.b[start : s.i-1], true
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// number returns the bytes of a JSON number.
func (s *scanner) number() ([]byte, bool) {
	s.ws()
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			s.i++
			continue
		}
		break
	}
	return s.b[start:s.i], s.i > start
}

func (s *scanner) int64() (int64, bool) {
	n, ok := s.number()
	if !ok || !validJSONNumber(n) {
		return 0, false
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	return v, err == nil
}

func fastMetricBatch(data []byte) (*atelier.MetricBatch, error) {
	s := &scanner{b: data}
	if !s.expect('{') {
		return nil, errSlowPath
	}
	batch := &atelier.MetricBatch{}
	if s.expect('}') {
		return nil, errSlowPath
	}
	for {
		key, ok := s.str()
		if !ok || string(key) != "metrics" || !s.expect(':') {
			return nil, errSlowPath
		}
		if err := s.points(batch); err != nil {
			return nil, err
		}
		if s.expect('}') {
			break
		}
		return nil, errSlowPath
	}
	if s.ws(); s.i != len(s.b) {
		return nil, errSlowPath
	}
	return batch, nil
}

func (s *scanner) points(batch *atelier.MetricBatch) error {
	if s.peek() == 'n' {
		return errSlowPath // null
	}
	if !s.expect('[') {
		return errSlowPath
	}
	if s.expect(']') {
		batch.Points = []atelier.MetricPoint{}
		return nil
	}
	// Points with a step point into one array, instead of one allocation per point.
	steps := make([]int64, 0, 1024)
	var name string
	for {
		if !s.expect('{') {
			return errSlowPath
		}
		var p atelier.MetricPoint
		var hasStep, hasName, hasTimestamp, hasValue bool
		var step int64
		for {
			key, ok := s.str()
			if !ok || !s.expect(':') {
				return errSlowPath
			}
			switch string(key) {
			case "name":
				if hasName {
					return errSlowPath
				}
				n, ok := s.str()
				if !ok {
					return errSlowPath
				}
				if string(n) != name { // names repeat: allocate each once a run of them
					name = string(n)
				}
				p.Name, hasName = name, true
			case "step":
				if s.peek() == 'n' || hasStep {
					return errSlowPath
				}
				if step, ok = s.int64(); !ok {
					return errSlowPath
				}
				hasStep = true
			case "timestamp":
				if p.Timestamp, ok = s.int64(); !ok {
					return errSlowPath
				}
				hasTimestamp = true
			case "value":
				hasValue = true
				if s.peek() == '"' {
					v, ok := s.str()
					if !ok {
						return errSlowPath
					}
					f, err := atelier.ParseFloatJSON(append(append([]byte{'"'}, v...), '"'))
					if err != nil {
						return errSlowPath
					}
					p.Value = atelier.Float(f)
					break
				}
				n, ok := s.number()
				if !ok {
					return errSlowPath
				}
				f, err := strconv.ParseFloat(string(n), 64)
				if err != nil || !validJSONNumber(n) {
					return errSlowPath
				}
				p.Value = atelier.Float(f)
			default:
				return errSlowPath
			}
			if s.expect(',') {
				continue
			}
			if s.expect('}') {
				break
			}
			return errSlowPath
		}
		if !hasName || !hasTimestamp || !hasValue {
			return errSlowPath // the strict decoder names what is missing
		}
		if hasStep {
			if len(steps) == cap(steps) {
				steps = make([]int64, 0, 2*cap(steps))
			}
			steps = append(steps, step)
			p.Step = &steps[len(steps)-1]
		}
		batch.Points = append(batch.Points, p)
		if s.expect(',') {
			continue
		}
		if s.expect(']') {
			return nil
		}
		return errSlowPath
	}
}

// validJSONNumber checks the JSON number grammar, which is stricter than ParseFloat's
// (no leading '+', no leading zeros, no "1." or ".5").
func validJSONNumber(n []byte) bool {
	i := 0
	if i < len(n) && n[i] == '-' {
		i++
	}
	if i >= len(n) {
		return false
	}
	if n[i] == '0' {
		i++
	} else if n[i] >= '1' && n[i] <= '9' {
		for i < len(n) && n[i] >= '0' && n[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(n) && n[i] == '.' {
		i++
		start := i
		for i < len(n) && n[i] >= '0' && n[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(n) && (n[i] == 'e' || n[i] == 'E') {
		i++
		if i < len(n) && (n[i] == '+' || n[i] == '-') {
			i++
		}
		start := i
		for i < len(n) && n[i] >= '0' && n[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(n)
}
