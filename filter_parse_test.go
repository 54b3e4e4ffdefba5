package atelier

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func metricF(name string) FilterField { return FilterField{Kind: FieldMetric, Name: name} }
func paramF(name string) FilterField  { return FilterField{Kind: FieldParam, Name: name} }
func tagF(name string) FilterField    { return FilterField{Kind: FieldTag, Name: name} }
func attrF(name string) FilterField   { return FilterField{Kind: FieldAttribute, Name: name} }

func numV(text string, n float64) FilterValue { return FilterValue{Str: text, Num: n, IsNumber: true} }
func strV(s string) FilterValue               { return FilterValue{Str: s} }

func cmpAt(pos int, f FilterField, op string, v FilterValue) *FilterCompare {
	return &FilterCompare{Field: f, Op: op, Value: v, Pos: pos}
}

func inAt(pos int, f FilterField, op string, vs ...FilterValue) *FilterCompare {
	return &FilterCompare{Field: f, Op: op, Values: vs, Pos: pos}
}

var validFilters = []struct {
	in   string
	want FilterExpr
}{
	{"", nil},
	{" \t\n ", nil},
	{"metrics.rmse < 60", cmpAt(0, metricF("rmse"), "<", numV("60", 60))},
	{"metrics.rmse<60", cmpAt(0, metricF("rmse"), "<", numV("60", 60))},
	{"\t metrics.rmse>=-1\n", cmpAt(2, metricF("rmse"), ">=", numV("-1", -1))},
	{"metrics.rmse == 1.5e3", cmpAt(0, metricF("rmse"), "=", numV("1.5e3", 1500))},
	{"metrics.val/loss <> -0.5", cmpAt(0, metricF("val/loss"), "!=", numV("-0.5", -0.5))},
	{"metric.acc.top1 >= .9", cmpAt(0, metricF("acc.top1"), ">=", numV(".9", 0.9))},
	{"metrics.epoch:3 <= 2E-2", cmpAt(0, metricF("epoch:3"), "<=", numV("2E-2", 0.02))},
	{"metrics.`my metric` > +2", cmpAt(0, metricF("my metric"), ">", numV("+2", 2))},
	{"metrics.`a``b\\`c` = 1", cmpAt(0, metricF("a`b`c"), "=", numV("1", 1))},
	{`metrics."my ""x"" metric" <= 3`, cmpAt(0, metricF(`my "x" metric`), "<=", numV("3", 3))},
	{"metrics.loss = nan", cmpAt(0, metricF("loss"), "=", numV("nan", math.NaN()))},
	{"metrics.loss != -inf", cmpAt(0, metricF("loss"), "!=", numV("-inf", math.Inf(-1)))},
	{"metrics.loss < Infinity", cmpAt(0, metricF("loss"), "<", numV("Infinity", math.Inf(1)))},
	{"metrics.a=-1", cmpAt(0, metricF("a"), "=", numV("-1", -1))},
	{"metrics.a is null", &FilterCompare{Field: metricF("a"), Op: "is null"}},
	{"metrics.a IS NOT NULL", &FilterCompare{Field: metricF("a"), Op: "is not null"}},
	{"metrics.rmse in (1, 2.5,-3)", inAt(0, metricF("rmse"), "in", numV("1", 1), numV("2.5", 2.5), numV("-3", -3))},
	{"params.alpha = '0.1'", cmpAt(0, paramF("alpha"), "=", strV("0.1"))},
	{"params.alpha = 0.10", cmpAt(0, paramF("alpha"), "=", numV("0.10", 0.1))},
	{"param.opt not in ('adam', \"sgd\")", inAt(0, paramF("opt"), "not in", strV("adam"), strV("sgd"))},
	{"params.opt NOT IN('adam')", inAt(0, paramF("opt"), "not in", strV("adam"))},
	{`tags.team = "vision"`, cmpAt(0, tagF("team"), "=", strV("vision"))},
	{`tag.note = 'it''s'`, cmpAt(0, tagF("note"), "=", strV("it's"))},
	{`tags.note = 'it\'s'`, cmpAt(0, tagF("note"), "=", strV("it's"))},
	{`tags.note = "say ""hi"" \"x\""`, cmpAt(0, tagF("note"), "=", strV(`say "hi" "x"`))},
	{`tags.path = 'C:\dir'`, cmpAt(0, tagF("path"), "=", strV(`C:\dir`))},
	{`tags.path = 'a\\'`, cmpAt(0, tagF("path"), "=", strV(`a\`))},
	{`tags.note = ''`, cmpAt(0, tagF("note"), "=", strV(""))},
	{`tags.note = 'héllo'`, cmpAt(0, tagF("note"), "=", strV("héllo"))},
	{"tags.mlflow.runName = 'x'", cmpAt(0, tagF("mlflow.runName"), "=", strV("x"))},
	{"tags.team like 'vis%'", cmpAt(0, tagF("team"), "like", strV("vis%"))},
	{"tags.team ILIKE '%Vis%'", cmpAt(0, tagF("team"), "ilike", strV("%Vis%"))},
	{"properties.azureml.git = 'x'", cmpAt(0, FilterField{FieldProperty, "azureml.git"}, "=", strV("x"))},
	{"property.p != 'y'", cmpAt(0, FilterField{FieldProperty, "p"}, "!=", strV("y"))},
	{"status = 'Completed'", cmpAt(0, attrF("status"), "=", strV("Completed"))},
	{"Status = 'completed'", cmpAt(0, attrF("status"), "=", strV("Completed"))},
	{"attributes.status in ('Running', 'queued')", inAt(0, attrF("status"), "in", strV("Running"), strV("Queued"))},
	{"attribute.status not in ('Failed')", inAt(0, attrF("status"), "not in", strV("Failed"))},
	{"status like 'run%'", cmpAt(0, attrF("status"), "like", strV("run%"))},
	{"run_id = 'abc'", cmpAt(0, attrF("id"), "=", strV("abc"))},
	{"attr.run_name = 'x'", cmpAt(0, attrF("name"), "=", strV("x"))},
	{"attributes.`status` = 'Failed'", cmpAt(0, attrF("status"), "=", strV("Failed"))},
	{"start_time > 1700000000000", cmpAt(0, attrF("started_at"), ">", numV("1700000000000", 1.7e12))},
	{"end_time is null", &FilterCompare{Field: attrF("ended_at"), Op: "is null"}},
	{"user_id = 'alice'", cmpAt(0, attrF("created_by"), "=", strV("alice"))},
	{"created_at >= '2024-05-01T12:00:00Z'", cmpAt(0, attrF("created_at"), ">=", strV("2024-05-01T12:00:00Z"))},
	{"ended_at < '2024-05-01T12:00:00.5+02:00'", cmpAt(0, attrF("ended_at"), "<", strV("2024-05-01T12:00:00.5+02:00"))},
	{"duration > 3600", cmpAt(0, attrF("duration"), ">", numV("3600", 3600))},
	{"experiment = 'mnist'", cmpAt(0, attrF("experiment"), "=", strV("mnist"))},
	{"parent_id is not null", &FilterCompare{Field: attrF("parent_id"), Op: "is not null"}},
	{"compute = 'local'", cmpAt(0, attrF("compute"), "=", strV("local"))},
	{"name < 'b'", cmpAt(0, attrF("name"), "<", strV("b"))},
	{
		"metrics.rmse < 60 and params.alpha = '0.1' and tags.team = 'vision' and status = 'Completed'",
		&FilterAnd{
			Left: &FilterAnd{
				Left:  &FilterAnd{Left: cmpAt(0, metricF("rmse"), "<", numV("60", 60)), Right: cmpAt(22, paramF("alpha"), "=", strV("0.1"))},
				Right: cmpAt(47, tagF("team"), "=", strV("vision")),
			},
			Right: cmpAt(72, attrF("status"), "=", strV("Completed")),
		},
	},
	{
		"metrics.a > 1 or metrics.b > 2 and metrics.c > 3",
		&FilterOr{
			Left:  cmpAt(0, metricF("a"), ">", numV("1", 1)),
			Right: &FilterAnd{Left: cmpAt(17, metricF("b"), ">", numV("2", 2)), Right: cmpAt(35, metricF("c"), ">", numV("3", 3))},
		},
	},
	{
		"metrics.a > 1 or metrics.b > 2 or metrics.c > 3",
		&FilterOr{
			Left:  &FilterOr{Left: cmpAt(0, metricF("a"), ">", numV("1", 1)), Right: cmpAt(17, metricF("b"), ">", numV("2", 2))},
			Right: cmpAt(34, metricF("c"), ">", numV("3", 3)),
		},
	},
	{
		"(metrics.a > 1 or metrics.b > 2) and metrics.c > 3",
		&FilterAnd{
			Left:  &FilterOr{Left: cmpAt(1, metricF("a"), ">", numV("1", 1)), Right: cmpAt(18, metricF("b"), ">", numV("2", 2))},
			Right: cmpAt(37, metricF("c"), ">", numV("3", 3)),
		},
	},
	{
		"not metrics.a > 1 and metrics.b > 2",
		&FilterAnd{Left: &FilterNot{X: cmpAt(4, metricF("a"), ">", numV("1", 1))}, Right: cmpAt(22, metricF("b"), ">", numV("2", 2))},
	},
	{
		"NOT (metrics.a > 1 OR metrics.b > 2)",
		&FilterNot{X: &FilterOr{Left: cmpAt(5, metricF("a"), ">", numV("1", 1)), Right: cmpAt(22, metricF("b"), ">", numV("2", 2))}},
	},
	{"not not(((metrics.a>1)))", &FilterNot{X: &FilterNot{X: cmpAt(10, metricF("a"), ">", numV("1", 1))}}},
	{"tags.x = 'é' and metrics.`ü` = 1", &FilterAnd{Left: cmpAt(0, tagF("x"), "=", strV("é")), Right: cmpAt(18, metricF("ü"), "=", numV("1", 1))}},
	{strings.Repeat("(", 100) + "metrics.a>1" + strings.Repeat(")", 100), cmpAt(100, metricF("a"), ">", numV("1", 1))},
}

type invalidCase struct {
	in   string
	pos  int    // 1-based character position in the message; 0 when the message has none
	near string // token text; "" for the end of input
	msg  string
}

var invalidFilters = []invalidCase{
	{"metrics.rmse <= ", 17, "", "expected a value"},
	{"metrics.rmse <= and status = 'Running'", 17, "and", "expected a value"},
	{"metrics.rmse 60", 14, "60", "expected an operator"},
	{"metrics.rmse", 13, "", "expected an operator"},
	{"tags.x = 'abc", 10, "'abc", "unterminated string"},
	{`tags.x = "abc\"`, 10, `"abc\"`, "unterminated string"},
	{`tags.path = 'C:\dir\'`, 13, `'C:\dir\'`, "unterminated string"},
	{"tags.`abc = 1", 1, "tags.`abc = 1", "unterminated string"},
	{"foo.bar = 1", 1, "foo.bar", "unknown field"},
	{"bogus = 'x'", 1, "bogus", "unknown attribute; attributes are id, name, status"},
	{"attributes.bogus = 'x'", 1, "attributes.bogus", "unknown attribute"},
	{"metrics = 1", 1, "metrics", "expected a name: metrics.NAME"},
	{"metrics. = 1", 1, "metrics.", "expected a name after"},
	{"metrics.ü = 1", 1, "metrics.", "quote other names: metrics.`my name`"},
	{"metrics.`` = 1", 1, "metrics.``", "empty name"},
	{"status = 'Done'", 10, "'Done'", "unknown status; statuses are NotStarted, Queued"},
	{"status in ('Running', 'Done')", 23, "'Done'", "unknown status"},
	{"status = Running", 10, "Running", "quote strings: 'Running'"},
	{"status < 'Running'", 8, "<", "status compares with =, !=, in, not in, like or ilike"},
	{"metrics.rmse = 'low'", 16, "'low'", "metrics.rmse compares with numbers"},
	{"metrics.`my m` in (1, '2')", 23, "'2'", "metrics.`my m` compares with numbers"},
	{"metrics.rmse like '1%'", 14, "like", "like applies to text"},
	{"duration ilike '1%'", 10, "ilike", "ilike applies to text"},
	{"created_at like '2024%'", 12, "like", "like applies to text"},
	{"tags.x like 1", 13, "1", "like needs a quoted pattern"},
	{"params.x = nan", 12, "nan", "nan and inf compare only with metrics"},
	{"duration > inf", 12, "inf", "nan and inf compare only with metrics"},
	{"name = 5", 8, "5", "name compares with text"},
	{"created_at > 'yesterday'", 14, "'yesterday'", "RFC 3339"},
	{"duration > '1h'", 12, "'1h'", "duration compares with a number of seconds"},
	{"()", 1, "(", "empty parentheses"},
	{"(metrics.a > 1", 15, "", `expected ")" to close the "(" at position 1`},
	{"metrics.a > 1)", 14, ")", "expected and, or, or the end"},
	{"metrics.a > 1 tags.b = 'x'", 15, "tags.b", "expected and, or, or the end"},
	{"metrics.a > 1 and", 18, "", "expected a field"},
	{"metrics.a > 1 or", 17, "", "expected a field"},
	{"and metrics.a > 1", 1, "and", "expected a field"},
	{"not", 4, "", "expected a field"},
	{"'status' = 'x'", 1, "'status'", "expected a field"},
	{"metrics.a in ()", 15, ")", "expected a value"},
	{"metrics.a in (1,)", 17, ")", "expected a value"},
	{"metrics.a in 1", 14, "1", `expected "(" and a list of values after in`},
	{"metrics.a in (1 2)", 17, "2", `expected a comma or ")"`},
	{"metrics.a in (1", 16, "", `expected a comma or ")"`},
	{"metrics.a is 1", 14, "1", "expected null"},
	{"metrics.a is not", 17, "", "expected null"},
	{"tags.a not like 'x'", 12, "like", "expected in after not"},
	{"metrics.a = 1.2.3", 13, "1.2.3", "invalid number"},
	{"metrics.a = 0x10", 13, "0x10", "invalid number"},
	{"metrics.a = 1_000", 13, "1_000", "invalid number"},
	{"metrics.a = 1e", 13, "1e", "invalid number"},
	{"metrics.a = 1and metrics.b = 1", 13, "1and", "invalid number"},
	{"metrics.a = 1e400", 13, "1e400", "number out of range"},
	{"metrics.a = -nan", 13, "-nan", "nan has no sign"},
	{"metrics.a > - 1", 13, "-", "invalid number"},
	{"metrics.a > --1", 13, "-", "invalid number"},
	{"metrics.a ! 1", 11, "!", "unexpected character"},
	{"metrics.a = 1 && metrics.b = 2", 15, "&", "unexpected character"},
	{"metrics.a = null", 13, "null", "is null"},
	{"tags.x = 'é' and ü = 1", 18, "ü", "unexpected character"},
	{"tags.x = 'é' and metrics.y = 'ü'", 30, "'ü'", "compares with numbers"},
	{strings.Repeat("(", 101) + "metrics.a>1" + strings.Repeat(")", 101), 101, "(", "nested more than 100 deep"},
	{strings.Repeat("not ", 101) + "metrics.a>1", 401, "not", "nested more than 100 deep"},
	{"metrics.a = '" + strings.Repeat("x", 40) + "'", 13, "'" + strings.Repeat("x", 29) + "...", "compares with numbers"},
	{"metrics.a > " + strings.Repeat("1", maxFilterLen), 0, "", "more than the limit of 10000"},
}

func TestParseFilter(t *testing.T) {
	for _, tt := range validFilters {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFilter(tt.in)
			if err != nil {
				t.Fatalf("ParseFilter(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateNaNs()); diff != "" {
				t.Errorf("ParseFilter(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseFilterErrors(t *testing.T) {
	for _, tt := range invalidFilters {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFilter(tt.in)
			if err == nil {
				t.Fatalf("ParseFilter(%q) = %#v, want an error", tt.in, got)
			}
			assertFilterError(t, "filter", err, tt)
		})
	}
}

func assertFilterError(t *testing.T, what string, err error, tt invalidCase) {
	t.Helper()
	if code := ErrorCode(err); code != EINVALID {
		t.Fatalf("code = %q, want %q (%v)", code, EINVALID, err)
	}
	msg := ErrorMessage(err)
	want := what + ": "
	if tt.pos > 0 {
		near := "near end of input: "
		if tt.near != "" {
			near = "near " + strconv.Quote(tt.near) + ": "
		}
		want += "at position " + strconv.Itoa(tt.pos) + " " + near
	}
	if !strings.HasPrefix(msg, want) || !strings.Contains(msg, tt.msg) {
		t.Errorf("message = %q\nwant prefix %q and %q", msg, want, tt.msg)
	}
}

var validOrders = []struct {
	in   string
	want []OrderTerm
}{
	{"", nil},
	{"  ", nil},
	{"metrics.rmse", []OrderTerm{{Field: metricF("rmse")}}},
	{"metrics.rmse asc, created_at desc", []OrderTerm{{Field: metricF("rmse")}, {Field: attrF("created_at"), Desc: true}}},
	{"metrics.rmse DESC,start_time", []OrderTerm{{Field: metricF("rmse"), Desc: true}, {Field: attrF("started_at")}}},
	{"params.`lr x` desc , attributes.status ASC", []OrderTerm{{Field: paramF("lr x"), Desc: true}, {Field: attrF("status")}}},
	{"tags.val/loss", []OrderTerm{{Field: tagF("val/loss")}}},
}

var invalidOrders = []invalidCase{
	{"metrics.rmse < 3", 14, "<", "expected asc, desc, a comma or the end"},
	{"metrics.rmse asc desc", 18, "desc", "expected asc, desc, a comma or the end"},
	{"metrics.rmse,", 14, "", "expected a field"},
	{", metrics.rmse", 1, ",", "expected a field"},
	{"metrics.rmse asc,, name", 18, ",", "expected a field"},
	{"bogus", 1, "bogus", "unknown attribute"},
	{"desc", 1, "desc", "expected a field"},
	{"'x'", 1, "'x'", "expected a field"},
	{"metrics.`x", 1, "metrics.`x", "unterminated string"},
}

func TestParseOrderBy(t *testing.T) {
	for _, tt := range validOrders {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseOrderBy(tt.in)
			if err != nil {
				t.Fatalf("ParseOrderBy(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseOrderBy(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
	for _, tt := range invalidOrders {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseOrderBy(tt.in)
			if err == nil {
				t.Fatalf("ParseOrderBy(%q) = %v, want an error", tt.in, got)
			}
			assertFilterError(t, "order by", err, tt)
		})
	}
}

func TestFilterFieldString(t *testing.T) {
	for _, tt := range []struct {
		f    FilterField
		want string
	}{
		{metricF("rmse"), "metrics.rmse"},
		{metricF("val/loss"), "metrics.val/loss"},
		{metricF("acc.top1"), "metrics.acc.top1"},
		{metricF("my metric"), "metrics.`my metric`"},
		{metricF("a`b"), "metrics.`a``b`"},
		{metricF(`a\b`), "metrics.`a\\\\b`"},
		{metricF("héllo"), "metrics.`héllo`"},
		{metricF("-x"), "metrics.-x"},
		{paramF("lr"), "params.lr"},
		{tagF("mlflow.runName"), "tags.mlflow.runName"},
		{FilterField{FieldProperty, "p"}, "properties.p"},
		{attrF("status"), "status"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.f.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
			terms, err := ParseOrderBy(tt.f.String())
			if err != nil {
				t.Fatalf("ParseOrderBy(%q): %v", tt.f.String(), err)
			}
			if diff := cmp.Diff([]OrderTerm{{Field: tt.f}}, terms); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// formatFilter renders x in canonical form, with only the parentheses its shape needs.
func formatFilter(x FilterExpr) string {
	paren := func(x FilterExpr, need bool) string {
		if need {
			return "(" + formatFilter(x) + ")"
		}
		return formatFilter(x)
	}
	switch x := x.(type) {
	case *FilterOr:
		_, rightOr := x.Right.(*FilterOr)
		return formatFilter(x.Left) + " or " + paren(x.Right, rightOr)
	case *FilterAnd:
		_, leftOr := x.Left.(*FilterOr)
		_, rightOr := x.Right.(*FilterOr)
		_, rightAnd := x.Right.(*FilterAnd)
		return paren(x.Left, leftOr) + " and " + paren(x.Right, rightOr || rightAnd)
	case *FilterNot:
		_, isCmp := x.X.(*FilterCompare)
		_, isNot := x.X.(*FilterNot)
		return "not " + paren(x.X, !isCmp && !isNot)
	case *FilterCompare:
		s := x.Field.String() + " " + x.Op
		switch x.Op {
		case "is null", "is not null":
		case "in", "not in":
			vs := make([]string, len(x.Values))
			for i, v := range x.Values {
				vs[i] = formatValue(v)
			}
			s += " (" + strings.Join(vs, ", ") + ")"
		default:
			s += " " + formatValue(x.Value)
		}
		return s
	}
	return ""
}

func formatValue(v FilterValue) string {
	if v.IsNumber && v.Str != "" {
		return v.Str
	} else if v.IsNumber {
		return strconv.FormatFloat(v.Num, 'g', -1, 64)
	}
	return "'" + strings.NewReplacer(`\`, `\\`, "'", "''").Replace(v.Str) + "'"
}

func FuzzParseFilter(f *testing.F) {
	for _, tt := range validFilters {
		f.Add(tt.in)
	}
	for _, tt := range invalidFilters {
		f.Add(tt.in)
	}
	for _, tt := range validOrders {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkCode := func(err error) {
			var e *Error
			if err != nil && (!errors.As(err, &e) || e.Code != EINVALID) {
				t.Fatalf("error %v is not an EINVALID *Error", err)
			}
		}
		_, err := ParseOrderBy(s)
		checkCode(err)
		x, err := ParseFilter(s)
		checkCode(err)
		if err != nil {
			return
		}
		text := formatFilter(x)
		if len(text) > maxFilterLen { // the canonical form can be longer than the input
			return
		}
		y, err := ParseFilter(text)
		if err != nil {
			t.Fatalf("ParseFilter(%q) = %v; reparsing %q: %v", s, formatFilter(x), text, err)
		}
		if diff := cmp.Diff(x, y, cmpopts.EquateNaNs(), cmpopts.IgnoreFields(FilterCompare{}, "Pos")); diff != "" {
			t.Fatalf("ParseFilter(%q) then %q: mismatch (-first +second):\n%s", s, text, diff)
		}
	})
}

// The examples of docs/filter.md must parse.
func TestFilterDocExamples(t *testing.T) {
	for _, s := range []string{
		"metrics.rmse < 60 and params.alpha = '0.1' and tags.team = 'vision' and status = 'Completed'",
		"metrics.val/loss < 0.2 and tags.mlflow.runName = 'baseline'",
		"metrics.`my metric` > 0.9",
		`params."learning rate" = '0.01'`,
		"(metrics.acc > 0.9 or metrics.f1 > 0.8) and not tags.stage in ('dev', 'test')",
		"ended_at is null and started_at > '2024-05-01T00:00:00Z'",
		"status in ('Running', 'Queued') and name like 'sweep-%'",
		"params.epochs = 10 and params.lr < '0.1' and status = 'completed' and started_at > 1714521600000 and duration > 3600",
		`tags.x = 'it''s' or tags.x = 'it\'s' or tags.path = 'C:\data'`,
	} {
		if _, err := ParseFilter(s); err != nil {
			t.Errorf("ParseFilter(%q): %v", s, err)
		}
	}
	for _, s := range []string{"metrics.rmse", "metrics.rmse asc, created_at desc", "params.`batch size` desc, name"} {
		if _, err := ParseOrderBy(s); err != nil {
			t.Errorf("ParseOrderBy(%q): %v", s, err)
		}
	}
}
