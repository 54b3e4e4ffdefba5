package atelier_test

import (
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

func TestValidateJSONText(t *testing.T) {
	for _, doc := range []string{
		`{"name":"diabetes ridge (v2)","tags":{"k":"é 日本 😀"}}`,
		`{"name":"\u00e9\u65e5 \ud83d\ude00","path":"C:\\ud800"}`, // a pair; an escaped backslash, not an escape
		`{"value":"\uD83D\uDE00"}`,
		`not JSON at all, but UTF-8`,
		``,
	} {
		if err := atelier.ValidateJSONText([]byte(doc)); err != nil {
			t.Errorf("ValidateJSONText(%q) = %v", doc, err)
		}
	}
	for _, tt := range []struct{ doc, want string }{
		{"{\"tags\":{\"k\":\"v\xff\"}}", `invalid JSON body at byte 15: tags.k is not valid UTF-8 (the byte 0xff)`},
		{"{\"tags\":{\"ok\":\"x\",\"k\xc3\":\"v\"}}", `at byte 20: a key of tags is not valid UTF-8`},
		{"{\"params\":[{\"key\":\"a\",\"value\":\"1\"},{\"key\":\"b\",\"value\":\"\xe2\x82\"}]}", `params[1].value is not valid UTF-8`},
		{"{\"tags\":{\"my.key\":[\"x\",{\"deep\":\"\xc0\xaf\"}]}}", `tags["my.key"][1].deep is not valid UTF-8`},
		{`{"run_name":"a\udcff"}`, `at byte 14: run_name is not valid UTF-8 (an unpaired surrogate \udcff)`},
		{`{"run_name":"\ud83d"}`, `run_name is not valid UTF-8 (an unpaired surrogate \ud83d)`},
		{`{"run_name":"\ud83d\u0041"}`, `run_name is not valid UTF-8`},
		{`{"\uDC80":1}`, `a key is not valid UTF-8`},
		{"\"\xff\"", `the body is not valid UTF-8`},
		{"{\"broken\": \"\xff", `at byte 12: the body is not valid UTF-8`},
	} {
		err := atelier.ValidateJSONText([]byte(tt.doc))
		if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), tt.want) {
			t.Errorf("ValidateJSONText(%q) = %v, want EINVALID with %q", tt.doc, err, tt.want)
		}
	}
}

// TestValidateRefusesInvalidUTF8: every kind of text the domain keeps refuses bytes that are
// not UTF-8, naming the field, rather than storing them changed.
func TestValidateRefusesInvalidUTF8(t *testing.T) {
	bad, desc := "bad\xff", "bad\xffdescription"
	for _, tt := range []struct {
		what string
		err  error
		want string
	}{
		{"experiment name", atelier.ValidateExperimentName(bad), `experiment name "bad\xff" is not valid UTF-8`},
		{"experiment rename", (&atelier.ExperimentUpdate{Name: &bad}).Validate(), `experiment name "bad\xff" is not valid UTF-8`},
		{"experiment description", (&atelier.ExperimentUpdate{Description: &desc}).Validate(), `the experiment's description is not valid UTF-8`},
		{"run name", (&atelier.RunCreate{Experiment: "e", Name: bad}).Validate(), `run name "bad\xff" is not valid UTF-8`},
		{"tag value", (&atelier.RunCreate{Experiment: "e", Tags: map[string]string{"k": bad}}).Validate(), `tag "k": value is not valid UTF-8`},
		{"tag key", (&atelier.RunCreate{Experiment: "e", Tags: map[string]string{bad: "v"}}).Validate(), `tag name "bad\xff" is not valid UTF-8`},
		{"param value", (&atelier.RunBatch{Params: map[string]string{"lr": bad}}).Validate(), `param "lr": value is not valid UTF-8`},
		{"metric name", (&atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: bad}}}).Validate(), `metric name "bad\xff" is not valid UTF-8`},
		{"model name", atelier.ValidateModelName(bad), `invalid model name "bad\xff"`},
		{"model description", (&atelier.ModelVersionUpdate{Description: &desc}).Validate(), `the model's description is not valid UTF-8`},
		{"model tag", (&atelier.ModelVersionUpdate{Tags: map[string]string{"stage": bad}}).Validate(), `tag "stage": value is not valid UTF-8`},
		{"workspace description", (&atelier.Workspace{Name: "w", Description: desc}).Validate(), `the workspace's description is not valid UTF-8`},
		{"datastore name", (&atelier.DatastoreSpec{Name: bad, Kind: atelier.DatastoreFiles, Path: "/data"}).Validate(), `invalid datastore name "bad\xff"`},
	} {
		if atelier.ErrorCode(tt.err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(tt.err), tt.want) {
			t.Errorf("%s: %v, want EINVALID with %q", tt.what, tt.err, tt.want)
		}
	}
}
