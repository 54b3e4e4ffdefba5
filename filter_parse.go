package atelier

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits that keep a hostile query from exhausting the stack, or the database's own parser.
const (
	maxFilterLen   = 10000 // bytes
	maxFilterDepth = 100   // nested parentheses and "not"s
)

// fieldKinds maps the prefixes of a field, MLflow's singular spellings included, to a Field* kind.
var fieldKinds = map[string]string{
	"metric": FieldMetric, "metrics": FieldMetric,
	"param": FieldParam, "params": FieldParam,
	"tag": FieldTag, "tags": FieldTag,
	"property": FieldProperty, "properties": FieldProperty,
	"attr": FieldAttribute, "attribute": FieldAttribute, "attributes": FieldAttribute,
}

// attributeAliases are MLflow's names for run attributes, so MLflow queries work unchanged.
var attributeAliases = map[string]string{
	"run_id": "id", "run_name": "name", "start_time": "started_at", "end_time": "ended_at",
	"user_id": "created_by",
}

// keywords cannot be attribute names; seeing one where a field belongs is a syntax error.
var keywords = map[string]bool{"and": true, "or": true, "not": true, "in": true, "like": true,
	"ilike": true, "is": true, "null": true, "asc": true, "desc": true}

// ParseFilter parses a run filter written in the query language of docs/filter.md.
// An empty filter gives a nil expression: it matches every run.
func ParseFilter(s string) (FilterExpr, error) {
	statuses := make([]string, len(RunStatuses))
	for i, s := range RunStatuses {
		statuses[i] = string(s)
	}
	return parseFilter(s, RunAttributes, statuses, attributeAliases)
}

// ParseFilterFor parses a filter over records whose attributes are attributes and whose status
// is one of statuses (logged models', say) in the same language.
func ParseFilterFor(s string, attributes, statuses []string) (FilterExpr, error) {
	return parseFilter(s, attributes, statuses, nil)
}

func parseFilter(s string, attributes, statuses []string, aliases map[string]string) (FilterExpr, error) {
	p, err := newParser("filter", s)
	if p != nil {
		p.attrs, p.statuses, p.aliases = attributes, statuses, aliases
	}
	if p == nil {
		return nil, err
	}
	x, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.errorf(p.tok, "expected and, or, or the end of the filter")
	}
	return x, nil
}

// ParseOrderBy parses an ordering: fields separated by commas, each optionally followed by asc or desc.
// An empty ordering gives nil.
func ParseOrderBy(s string) ([]OrderTerm, error) {
	return parseOrderBy(s, RunAttributes, attributeAliases)
}

// ParseOrderByFor parses an ordering over records whose attributes are attributes.
func ParseOrderByFor(s string, attributes []string) ([]OrderTerm, error) {
	return parseOrderBy(s, attributes, nil)
}

func parseOrderBy(s string, attributes []string, aliases map[string]string) ([]OrderTerm, error) {
	p, err := newParser("order by", s)
	if p != nil {
		p.attrs, p.aliases = attributes, aliases
	}
	if p == nil {
		return nil, err
	}
	var terms []OrderTerm
	for {
		f, err := p.field()
		if err != nil {
			return nil, err
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		term := OrderTerm{Field: f}
		if p.keyword("asc") || p.keyword("desc") {
			term.Desc = p.keyword("desc")
			if err := p.next(); err != nil {
				return nil, err
			}
		}
		terms = append(terms, term)
		switch p.tok.kind {
		case tEOF:
			return terms, nil
		case tComma:
			if err := p.next(); err != nil {
				return nil, err
			}
		default:
			return nil, p.errorf(p.tok, "expected asc, desc, a comma or the end")
		}
	}
}

// String returns the field as it is written in a filter: metrics.rmse, metrics.`my metric`, status.
func (f FilterField) String() string {
	if f.Kind == FieldAttribute || f.Kind == "" {
		return f.Name
	}
	if f.Name != "" && strings.IndexFunc(f.Name, func(r rune) bool { return r > unicode.MaxASCII || !isNameChar(byte(r)) }) < 0 {
		return f.Kind + "." + f.Name
	}
	return f.Kind + ".`" + strings.NewReplacer(`\`, `\\`, "`", "``").Replace(f.Name) + "`"
}

type tokenKind int

const (
	tEOF    tokenKind = iota
	tWord             // a keyword or a field; text is metrics."quoted name" when quoted is set
	tString           // str holds the unquoted value
	tNumber           // a numeric literal, signed inf included; bare nan and inf are words
	tOp               // = == != <> < <= > >=
	tLParen
	tRParen
	tComma
	tIllegal
)

type token struct {
	kind   tokenKind
	pos    int    // byte offset in the source
	text   string // as written
	str    string // the unquoted string, or the unquoted name of a quoted field
	quoted bool   // a tWord whose name was quoted
}

// parser is a recursive-descent parser over a one-token lookahead scanner.
type parser struct {
	what     string // "filter" or "order by", to prefix messages
	src      string
	pos      int
	tok      token
	depth    int
	attrs    []string          // the attributes fields may name
	statuses []string          // the values status may take
	aliases  map[string]string // other names of attributes (MLflow's, for runs)
}

// newParser returns a nil parser for an empty input, so callers return nil, nil.
func newParser(what, s string) (*parser, error) {
	if len(s) > maxFilterLen {
		return nil, Errorf(EINVALID, "%s: %d bytes long, more than the limit of %d", what, len(s), maxFilterLen)
	}
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	p := &parser{what: what, src: s}
	if err := p.next(); err != nil {
		return nil, err
	}
	return p, nil
}

// errorf reports a problem at token t with its 1-based character position and its text.
func (p *parser) errorf(t token, format string, args ...any) error {
	pos := utf8.RuneCountInString(p.src[:t.pos]) + 1
	near := "end of input"
	if t.kind != tEOF {
		text := t.text
		if len(text) > 30 {
			text = strings.ToValidUTF8(text[:30], "") + "..."
		}
		near = strconv.Quote(text)
	}
	return Errorf(EINVALID, "%s: at position %d near %s: %s", p.what, pos, near, fmt.Sprintf(format, args...))
}

// keyword reports whether the current token is the keyword kw, in any case.
func (p *parser) keyword(kw string) bool {
	return p.tok.kind == tWord && !p.tok.quoted && strings.EqualFold(p.tok.text, kw)
}

func (p *parser) parseOr() (FilterExpr, error) {
	x, err := p.parseAnd()
	for err == nil && p.keyword("or") {
		var y FilterExpr
		if err = p.next(); err == nil {
			if y, err = p.parseAnd(); err == nil {
				x = &FilterOr{Left: x, Right: y}
			}
		}
	}
	return x, err
}

func (p *parser) parseAnd() (FilterExpr, error) {
	x, err := p.parseUnary()
	for err == nil && p.keyword("and") {
		var y FilterExpr
		if err = p.next(); err == nil {
			if y, err = p.parseUnary(); err == nil {
				x = &FilterAnd{Left: x, Right: y}
			}
		}
	}
	return x, err
}

func (p *parser) parseUnary() (FilterExpr, error) {
	if !p.keyword("not") && p.tok.kind != tLParen {
		return p.parseCompare()
	}
	open := p.tok
	if p.depth++; p.depth > maxFilterDepth {
		return nil, p.errorf(open, "nested more than %d deep", maxFilterDepth)
	}
	defer func() { p.depth-- }()
	if err := p.next(); err != nil {
		return nil, err
	}
	if open.kind == tWord { // not
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return &FilterNot{X: x}, nil
	}
	if p.tok.kind == tRParen {
		return nil, p.errorf(open, "empty parentheses")
	}
	x, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tRParen {
		return nil, p.errorf(p.tok, `expected ")" to close the "(" at position %d`, utf8.RuneCountInString(p.src[:open.pos])+1)
	}
	return x, p.next()
}

func (p *parser) parseCompare() (FilterExpr, error) {
	start := p.tok
	f, err := p.field()
	if err != nil {
		return nil, err
	}
	c := &FilterCompare{Field: f, Pos: start.pos}
	if err := p.next(); err != nil {
		return nil, err
	}
	opTok := p.tok
	switch {
	case p.tok.kind == tOp:
		c.Op = map[string]string{"==": "=", "<>": "!="}[p.tok.text]
		if c.Op == "" {
			c.Op = p.tok.text
		}
	case p.keyword("like") || p.keyword("ilike") || p.keyword("in"):
		c.Op = strings.ToLower(p.tok.text)
	case p.keyword("not"):
		if err := p.next(); err != nil {
			return nil, err
		}
		if !p.keyword("in") {
			return nil, p.errorf(p.tok, `expected in after not (write not before the field to negate a condition)`)
		}
		c.Op = "not in"
	case p.keyword("is"):
		c.Op = "is null"
		if err := p.next(); err != nil {
			return nil, err
		}
		if p.keyword("not") {
			c.Op = "is not null"
			if err := p.next(); err != nil {
				return nil, err
			}
		}
		if !p.keyword("null") {
			return nil, p.errorf(p.tok, "expected null")
		}
		return c, p.next()
	default:
		return nil, p.errorf(p.tok, "expected an operator: = != < <= > >= like ilike in, not in, is null or is not null")
	}
	if err := checkOp(f, c.Op); err != "" {
		return nil, p.errorf(opTok, "%s", err)
	}
	if err := p.next(); err != nil {
		return nil, err
	}
	if c.Op != "in" && c.Op != "not in" {
		c.Value, err = p.value(f, c.Op)
		return c, err
	}
	if p.tok.kind != tLParen {
		return nil, p.errorf(p.tok, `expected "(" and a list of values after %s`, c.Op)
	}
	for {
		if err := p.next(); err != nil {
			return nil, err
		}
		v, err := p.value(f, c.Op)
		if err != nil {
			return nil, err
		}
		c.Values = append(c.Values, v)
		switch p.tok.kind {
		case tRParen:
			return c, p.next()
		case tComma:
		default:
			return nil, p.errorf(p.tok, `expected a comma or ")"`)
		}
	}
}

// field resolves the current token to a field; it does not advance.
func (p *parser) field() (FilterField, error) {
	t := p.tok
	if t.kind != tWord {
		return FilterField{}, p.errorf(t, "expected a field")
	}
	prefix, name, dotted := strings.Cut(t.text, ".")
	if t.quoted {
		name = t.str
	}
	kind := fieldKinds[strings.ToLower(prefix)]
	switch {
	case !dotted && keywords[strings.ToLower(prefix)]:
		return FilterField{}, p.errorf(t, "expected a field")
	case !dotted:
		kind, name = FieldAttribute, prefix
	case kind == "":
		return FilterField{}, p.errorf(t, "unknown field; use metrics.NAME, params.NAME, tags.NAME, properties.NAME or an attribute: %s", strings.Join(p.attrs, ", "))
	case name == "":
		return FilterField{}, p.errorf(t, "expected a name after %q (quote other names: %s.`my name`)", prefix+".", prefix)
	}
	if kind != FieldAttribute {
		return FilterField{Kind: kind, Name: name}, nil
	}
	lower := strings.ToLower(name)
	if a, ok := p.aliases[lower]; ok {
		lower = a
	}
	for _, a := range p.attrs {
		if a == lower {
			return FilterField{Kind: FieldAttribute, Name: a}, nil
		}
	}
	if !dotted && fieldKinds[lower] != "" {
		return FilterField{}, p.errorf(t, "expected a name: %s.NAME", lower)
	}
	return FilterField{}, p.errorf(t, "unknown attribute; attributes are %s", strings.Join(p.attrs, ", "))
}

// Attribute groups for the type rules.
func isTimeAttr(f FilterField) bool {
	return f.Kind == FieldAttribute && (f.Name == "created_at" || f.Name == "started_at" || f.Name == "ended_at" || f.Name == "updated_at")
}

func isNumericField(f FilterField) bool {
	return f.Kind == FieldMetric || isTimeAttr(f) || f == FilterField{FieldAttribute, "duration"}
}

// checkOp returns why op cannot apply to f, or "".
func checkOp(f FilterField, op string) string {
	switch {
	case (op == "like" || op == "ilike") && isNumericField(f):
		return fmt.Sprintf("%s applies to text, and %s is not text", op, f)
	case strings.ContainsAny(op, "<>") && f == FilterField{FieldAttribute, "status"}:
		return fmt.Sprintf("status compares with =, !=, in, not in, like or ilike, not %s", op)
	}
	return ""
}

// value parses the current token as a value for f and op, checks it and advances.
func (p *parser) value(f FilterField, op string) (FilterValue, error) {
	t := p.tok
	var v FilterValue
	switch {
	case t.kind == tString:
		v = FilterValue{Str: t.str}
	case t.kind == tNumber || p.keyword("nan") || p.keyword("inf") || p.keyword("infinity"):
		n, err := parseNumber(t.text)
		if err != nil {
			return v, p.errorf(t, "%s", err)
		}
		// Str keeps the number as written: params and tags compare it as text, where 1.0 is not 1.
		v = FilterValue{Str: t.text, Num: n, IsNumber: true}
	case p.keyword("null"):
		return v, p.errorf(t, "expected a value; test for null with is null or is not null")
	case t.kind == tWord:
		return v, p.errorf(t, "expected a value; quote strings: '%s'", t.text)
	default:
		return v, p.errorf(t, "expected a value")
	}
	num, text := v.IsNumber, !v.IsNumber
	special := num && (math.IsNaN(v.Num) || math.IsInf(v.Num, 0))
	switch {
	case special && f.Kind != FieldMetric:
		return v, p.errorf(t, "nan and inf compare only with metrics; quote them to compare text")
	case (op == "like" || op == "ilike") && num:
		return v, p.errorf(t, "%s needs a quoted pattern such as '%%abc%%'", op)
	case f.Kind == FieldMetric && text:
		return v, p.errorf(t, "%s compares with numbers, not text", f)
	case isTimeAttr(f) && text:
		if _, err := time.Parse(time.RFC3339Nano, v.Str); err != nil {
			return v, p.errorf(t, "%s compares with milliseconds since the epoch or an RFC 3339 time such as '2024-05-01T12:00:00Z'", f)
		}
	case f.Name == "duration" && f.Kind == FieldAttribute && text:
		return v, p.errorf(t, "duration compares with a number of seconds")
	case f.Kind == FieldAttribute && !isNumericField(f) && num:
		return v, p.errorf(t, "%s compares with text; quote it: '%s'", f, t.text)
	case f == FilterField{FieldAttribute, "status"} && op != "like" && op != "ilike":
		// Statuses match in any case, then take their canonical spelling.
		valid := false
		for _, s := range p.statuses {
			if strings.EqualFold(v.Str, s) {
				v.Str, valid = s, true
			}
		}
		if !valid {
			return v, p.errorf(t, "unknown status; statuses are %s", strings.Join(p.statuses, ", "))
		}
	}
	return v, p.next()
}

// parseNumber parses a numeric literal: decimal with an optional sign, fraction and exponent,
// or nan, inf and infinity in any case (inf signed).
func parseNumber(s string) (float64, error) {
	body := strings.TrimLeft(s, "+-")
	if len(s)-len(body) > 1 {
		return 0, fmt.Errorf("invalid number")
	}
	switch strings.ToLower(body) {
	case "nan":
		if body != s {
			return 0, fmt.Errorf("invalid number: nan has no sign")
		}
		return math.NaN(), nil
	case "inf", "infinity":
		if s[0] == '-' {
			return math.Inf(-1), nil
		}
		return math.Inf(1), nil
	}
	// Check the shape ourselves: strconv also takes hex, underscores and other spellings.
	i, digits := 0, 0
	for ; i < len(body) && isDigit(body[i]); i++ {
		digits++
	}
	if i < len(body) && body[i] == '.' {
		for i++; i < len(body) && isDigit(body[i]); i++ {
			digits++
		}
	}
	if digits > 0 && i < len(body) && (body[i] == 'e' || body[i] == 'E') {
		i++
		if i < len(body) && (body[i] == '+' || body[i] == '-') {
			i++
		}
		if i == len(body) || !isDigit(body[i]) {
			return 0, fmt.Errorf("invalid number")
		}
		for i < len(body) && isDigit(body[i]) {
			i++
		}
	}
	if digits == 0 || i != len(body) {
		return 0, fmt.Errorf("invalid number")
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("number out of range")
	}
	return n, nil
}

func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isLetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

// isNameChar reports whether c may appear in an unquoted name: metric names hold dots and
// slashes (val/loss, acc.top1).
func isNameChar(c byte) bool {
	return isLetter(c) || isDigit(c) || strings.IndexByte("_.-/:", c) >= 0
}

// next scans the token after the current one into p.tok.
func (p *parser) next() error {
	for p.pos < len(p.src) {
		r, n := utf8.DecodeRuneInString(p.src[p.pos:])
		if !unicode.IsSpace(r) {
			break
		}
		p.pos += n
	}
	start := p.pos
	p.tok = token{kind: tEOF, pos: start}
	if start == len(p.src) {
		return nil
	}
	c := p.src[start]
	two := p.src[start:min(start+2, len(p.src))]
	switch {
	case c == '(' || c == ')' || c == ',':
		p.tok.kind = map[byte]tokenKind{'(': tLParen, ')': tRParen, ',': tComma}[c]
		p.pos++
	case two == "==" || two == "!=" || two == "<>" || two == "<=" || two == ">=":
		p.tok.kind, p.pos = tOp, start+2
	case c == '=' || c == '<' || c == '>':
		p.tok.kind, p.pos = tOp, start+1
	case c == '\'' || c == '"':
		p.tok.kind = tString
		s, err := p.quoted()
		if err != nil {
			return err
		}
		p.tok.str = s
	case isDigit(c) || c == '.' || c == '+' || c == '-':
		p.tok.kind = tNumber
		for p.pos++; p.pos < len(p.src); p.pos++ {
			c, prev := p.src[p.pos], p.src[p.pos-1]|0x20
			if !(isLetter(c) || isDigit(c) || c == '.' || c == '_' || (c == '+' || c == '-') && prev == 'e') {
				break
			}
		}
		p.tok.text = p.src[start:p.pos]
		if _, err := parseNumber(p.tok.text); err != nil {
			return p.errorf(p.tok, "%s", err)
		}
	case isLetter(c) || c == '_':
		p.tok.kind = tWord
		for p.pos < len(p.src) && isNameChar(p.src[p.pos]) {
			p.pos++
		}
		// prefix."quoted name" or prefix.`quoted name` is one field token.
		word := p.src[start:p.pos]
		if p.pos < len(p.src) && (p.src[p.pos] == '`' || p.src[p.pos] == '"') && strings.Index(word, ".") == len(word)-1 {
			name, err := p.quoted()
			if err != nil {
				return err
			}
			if name == "" {
				p.tok.text = p.src[start:p.pos]
				return p.errorf(p.tok, "empty name")
			}
			p.tok.str, p.tok.quoted = name, true
		}
	default:
		_, n := utf8.DecodeRuneInString(p.src[start:])
		p.tok.kind, p.tok.text = tIllegal, p.src[start:start+n]
		return p.errorf(p.tok, "unexpected character")
	}
	p.tok.text = p.src[start:p.pos]
	return nil
}

// quoted scans a string quoted by the character at p.pos. The quote is escaped by doubling it or
// by a backslash; a backslash escapes itself and is kept literally before anything else.
func (p *parser) quoted() (string, error) {
	q := p.src[p.pos]
	var b strings.Builder
	for i := p.pos + 1; i < len(p.src); i++ {
		c := p.src[i]
		switch {
		case c == '\\' && i+1 < len(p.src) && (p.src[i+1] == q || p.src[i+1] == '\\'):
			i++
			b.WriteByte(p.src[i])
		case c == q && i+1 < len(p.src) && p.src[i+1] == q:
			i++
			b.WriteByte(q)
		case c == q:
			p.pos = i + 1
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
	p.tok.text = p.src[p.tok.pos:]
	return "", p.errorf(p.tok, "unterminated string: no closing %c", q)
}
