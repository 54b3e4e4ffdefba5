package api_test

import (
	"encoding/json"
	"testing"

	"github.com/atelier-ml/atelier"
)

// TestTextMetrics: Azure ML v1's run.log("name", "some text") is a text metric, a record of
// kind text whose value is a JSON string, stored and read back through the real stack; a
// name with leading and trailing spaces is kept as it is (issue 24).
func TestTextMetrics(t *testing.T) {
	s := MustStack(t)
	ctx := Ctx(t)
	run := MustRun(t, s.Client, atelier.RunCreate{Status: atelier.StatusRunning})
	err := s.Client.LogMetrics(ctx, "default", run.ID, &atelier.MetricBatch{Records: []atelier.MetricRecord{
		{Name: "note", Kind: atelier.MetricText, Value: json.RawMessage(`"first é"`)},
		{Name: " spaced note ", Kind: atelier.MetricText, Value: json.RawMessage(`"kept"`)},
		{Name: "note", Kind: atelier.MetricText, Value: json.RawMessage(`"second"`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.Client.ListMetrics(ctx, "default", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*atelier.MetricSummary{}
	for _, m := range list {
		got[m.Name] = m
	}
	if m := got["note"]; m == nil || m.Kind != atelier.MetricText || m.Count != 2 || string(m.Last) != `"second"` {
		t.Errorf("summary of note = %+v", m)
	}
	if m := got[" spaced note "]; m == nil || m.Kind != atelier.MetricText || string(m.Last) != `"kept"` {
		t.Errorf("summary of ' spaced note ' = %+v (all: %v)", m, got)
	}
	recs, err := s.Client.MetricRecords(ctx, "default", run.ID, "note")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Kind != atelier.MetricText || string(recs[0].Value) != `"first é"` || string(recs[1].Value) != `"second"` {
		t.Errorf("records of note = %+v", recs)
	}

	// A scalar cannot become text, nor text a scalar's record kind.
	if err := s.Client.LogMetrics(ctx, "default", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "acc", Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	err = s.Client.LogMetrics(ctx, "default", run.ID, &atelier.MetricBatch{Records: []atelier.MetricRecord{{Name: "acc", Kind: atelier.MetricText, Value: json.RawMessage(`"x"`)}}})
	MustCode(t, err, atelier.ECONFLICT)

	// A text record whose value is not a string, or that names a file, is refused with its reason.
	r := "/api/v1/workspaces/default/runs/" + run.ID + "/metrics"
	for body, want := range map[string]string{
		`{"metrics":[],"records":[{"name":"t","kind":"text","timestamp":1,"value":1}]}`:                          "not a JSON string",
		`{"metrics":[],"records":[{"name":"t","kind":"text","timestamp":1,"value":["a"]}]}`:                      "not a JSON string",
		`{"metrics":[],"records":[{"name":"t","kind":"text","timestamp":1}]}`:                                    "not a JSON string",
		`{"metrics":[],"records":[{"name":"t","kind":"text","timestamp":1,"value":"a","path":"outputs/a.png"}]}`: "has a path",
	} {
		MustAPIError(t, s.MustDo(t, Request{Method: "POST", Path: r, Body: body}), 400, want)
	}
}
