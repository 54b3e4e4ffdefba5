package mlflow

import (
	"github.com/atelier-ml/atelier"
	"strconv"
	"strings"
)

// The searches of logged models, registered models and model versions filter and order in
// memory, over what the store lists: a filter is comparisons joined by AND, a comparison is
// FIELD OP VALUE with FIELD an attribute or prefix.KEY (tags.k, params.k), OP one of = != < <=
// > >= LIKE ILIKE IN NOT IN, VALUE a quoted string, a number or a parenthesized list.

// cond is one comparison of a filter.
type cond struct {
	field  string // attribute name, or the prefix of a keyed field ("tags", "params")
	key    string // for keyed fields
	op     string // lower case
	values []string
}

// atelierFilter writes conds in atelier's query language; field names each condition's
// field there (an attribute, or kind.`key`) and says whether it compares numbers, or returns
// a whole comparison of its own (a field with no atelier twin).
func atelierFilter(filter string, conds []cond, field func(c cond) (expr string, numeric bool, whole string)) (string, error) {
	parts := make([]string, 0, len(conds))
	for _, c := range conds {
		f, numeric, whole := field(c)
		if whole != "" {
			parts = append(parts, whole)
			continue
		}
		vals := make([]string, len(c.values))
		for i, v := range c.values {
			if numeric {
				if _, err := strconv.ParseFloat(v, 64); err != nil {
					return "", invalidParam("filter %q: %s compares with a number, not %q", filter, f, v)
				}
				vals[i] = v
			} else {
				vals[i] = quote(v)
			}
		}
		op := c.op
		switch op {
		case "==":
			op = "="
		case "<>":
			op = "!="
		}
		var part string
		if op == "in" || op == "not in" {
			if len(vals) == 0 {
				return "", invalidParam("filter %q: %s needs at least one value", filter, strings.ToUpper(op))
			}
			part = f + " " + op + " (" + strings.Join(vals, ", ") + ")"
		} else {
			part = f + " " + op + " " + vals[0]
		}
		// As MLflow's registry: a record without the tag (param, metric) passes != and NOT IN
		// (the client's own filter tag.`mlflow.prompt.is_prompt` != 'true' relies on it).
		if strings.Contains(f, ".") && (op == "!=" || op == "not in") {
			part = "(" + part + " or " + f + " is null)"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, " and "), nil
}

// keyed is the atelier field of a keyed condition (tags.k, params.k, metrics.k).
func keyed(kind, key string) string { return atelier.FilterField{Kind: kind, Name: key}.String() }

// parseConds parses a filter; prefixes maps accepted prefixes (and their aliases) to the keyed
// field name, attrs lists the attributes (and aliases) with the name they stand for.
func parseConds(s string, attrs, prefixes map[string]string) ([]cond, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	var conds []cond
	for i := 0; i < len(toks); {
		if len(conds) > 0 {
			if !strings.EqualFold(toks[i].text, "and") {
				return nil, invalidParam("filter %q: expected AND near %q (OR is not supported)", s, toks[i].text)
			}
			i++
		}
		if i+2 >= len(toks) {
			return nil, invalidParam("filter %q: expected a comparison such as name = 'x'", s)
		}
		f := toks[i]
		i++
		var c cond
		prefix, name, dotted := strings.Cut(f.text, ".")
		lp := strings.ToLower(prefix)
		if p, ok := prefixes[lp]; ok && dotted {
			c.field, c.key = p, strings.Trim(name, "`\"")
		} else {
			attr := strings.ToLower(f.text)
			if dotted && (lp == "attributes" || lp == "attribute" || lp == "attr") {
				attr = strings.ToLower(name)
			}
			a, ok := attrs[attr]
			if !ok {
				return nil, invalidParam("filter %q: invalid field %q", s, f.text)
			}
			c.field = a
		}
		op := toks[i]
		i++
		c.op = strings.ToLower(op.text)
		if c.op == "not" && i < len(toks) && strings.EqualFold(toks[i].text, "in") {
			c.op = "not in"
			i++
		}
		switch c.op {
		case "=", "==", "!=", "<>", "<", "<=", ">", ">=", "like", "ilike":
			if i >= len(toks) {
				return nil, invalidParam("filter %q: missing value after %s", s, op.text)
			}
			v := toks[i]
			i++
			switch v.kind {
			case kString:
				c.values = []string{v.str}
			case kWord:
				if _, err := strconv.ParseFloat(v.text, 64); err != nil {
					return nil, invalidParam("filter %q: %s compares with a quoted string or a number, not %s", s, f.text, v.text)
				}
				c.values = []string{v.text}
			default:
				return nil, invalidParam("filter %q: invalid value %q", s, v.text)
			}
		case "in", "not in":
			if i >= len(toks) || toks[i].kind != kLParen {
				return nil, invalidParam("filter %q: expected a parenthesized list after IN", s)
			}
			for i++; i < len(toks) && toks[i].kind != kRParen; i++ {
				switch toks[i].kind {
				case kString:
					c.values = append(c.values, toks[i].str)
				case kWord:
					c.values = append(c.values, toks[i].text)
				}
			}
			if i >= len(toks) {
				return nil, invalidParam("filter %q: unclosed list", s)
			}
			i++
		default:
			return nil, invalidParam("filter %q: invalid comparator %q", s, op.text)
		}
		conds = append(conds, c)
	}
	return conds, nil
}

// compareValues compares as numbers when both are, else as strings.
func compareValues(a, b string) int {
	x, errA := strconv.ParseFloat(a, 64)
	y, errB := strconv.ParseFloat(b, 64)
	if errA == nil && errB == nil {
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	return strings.Compare(a, b)
}

// orderKey is one term of an ordering.
type orderKey struct {
	field string
	desc  bool
}

// parseOrder reads "field [ASC|DESC]" terms, fields among attrs (with aliases).
func parseOrder(terms []string, attrs map[string]string) ([]orderKey, error) {
	var keys []orderKey
	for _, o := range terms {
		f := strings.Fields(o)
		if len(f) == 0 {
			continue
		}
		name := strings.ToLower(f[0])
		for _, p := range []string{"attributes.", "attribute.", "attr."} {
			name = strings.TrimPrefix(name, p)
		}
		a, ok := attrs[name]
		if !ok || len(f) > 2 {
			return nil, invalidParam("invalid order_by clause %q", o)
		}
		k := orderKey{field: a}
		if len(f) == 2 {
			switch strings.ToUpper(f[1]) {
			case "DESC":
				k.desc = true
			case "ASC":
			default:
				return nil, invalidParam("invalid order_by clause %q", o)
			}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// pageOf cuts one page out of n items: the offset in token, at most limit items; it returns
// the range and the next token ("" on the last page).
func pageOf(n int, token string, limit int) (lo, hi int, next string, err error) {
	if token != "" {
		if lo, err = strconv.Atoi(token); err != nil || lo < 0 {
			return 0, 0, "", invalidParam("invalid page token %q", token)
		}
	}
	lo = min(lo, n)
	hi = min(n, lo+limit)
	if hi < n {
		next = strconv.Itoa(hi)
	}
	return lo, hi, next, nil
}

// maxResults reads max_results with a default and an upper bound.
func maxResults(v jint, def, upper int) (int, error) {
	if !v.Set {
		return def, nil
	}
	if v.V < 1 || v.V > int64(upper) {
		return 0, invalidParam("invalid value %d for parameter 'max_results': use 1 to %d", v.V, upper)
	}
	return int(v.V), nil
}
