package storetest

import (
	"testing"

	"github.com/atelier-ml/atelier"
)

// testRunLifecycle: a deleted run is kept and readable, refuses params, tags and metrics (in
// the store, not only at the edge), lists apart from active runs, and may be restored.
func testRunLifecycle(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")
	kept := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "e"})
	run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "e", Tags: map[string]string{"t": "1"}})
	if run.Deleted {
		t.Fatalf("a new run is deleted")
	}
	got, err := s.SetRunLifecycle(ctx, "ws", run.ID, atelier.LifecycleDeleted)
	mustOK(t, err, "SetRunLifecycle(deleted)")
	if !got.Deleted || got.Tags["t"] != "1" {
		t.Errorf("deleted run = %+v, want Deleted with its tags", got)
	}
	if r := MustFindRun(t, s, "ws", run.ID); !r.Deleted {
		t.Errorf("FindRun of a deleted run: Deleted = false")
	}
	point := &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "loss", Value: 1}}}
	for name, err := range map[string]error{
		"LogParams":     s.LogParams(ctx, "ws", run.ID, map[string]string{"p": "1"}),
		"SetTags":       s.SetTags(ctx, "ws", run.ID, map[string]string{"t": "2"}),
		"DeleteTag":     s.DeleteTag(ctx, "ws", run.ID, "t"),
		"AddProperties": s.AddProperties(ctx, "ws", run.ID, map[string]string{"p": "1"}),
		"LogMetrics":    s.LogMetrics(ctx, "ws", run.ID, point),
		"LogBatch":      s.LogBatch(ctx, "ws", run.ID, &atelier.RunBatch{Tags: map[string]string{"t": "3"}}),
	} {
		wantCode(t, err, atelier.ECONFLICT, "%s on a deleted run", name)
	}
	if r := MustFindRun(t, s, "ws", run.ID); r.Tags["t"] != "1" || len(r.Params) != 0 || len(r.Metrics) != 0 || len(r.Properties) != 0 {
		t.Errorf("refused writes changed the deleted run: %+v", r)
	}
	for _, tc := range []struct {
		l    atelier.RunLifecycle
		want []string
	}{
		{atelier.LifecycleActive, []string{kept.ID}},
		{atelier.LifecycleDeleted, []string{run.ID}},
		{"", []string{run.ID, kept.ID}},
	} {
		page, err := s.ListRuns(ctx, "ws", atelier.RunQuery{Lifecycle: tc.l})
		mustOK(t, err, "ListRuns(%q)", tc.l)
		if got := runIDs(page.Runs); len(got) != len(tc.want) || (len(got) > 0 && sorted(got)[0] != sorted(tc.want)[0]) {
			t.Errorf("ListRuns(lifecycle %q) = %v, want %v", tc.l, got, tc.want)
		}
	}
	_, err = s.ListRuns(ctx, "ws", atelier.RunQuery{Lifecycle: "gone"})
	wantCode(t, err, atelier.EINVALID, "ListRuns(bad lifecycle)")
	// A run ended while deleted: the status still moves (its controller ends it).
	_, err = s.UpdateRunStatus(ctx, "ws", run.ID, atelier.RunStatusUpdate{Status: atelier.StatusFailed})
	mustOK(t, err, "UpdateRunStatus of a deleted run")

	got, err = s.SetRunLifecycle(ctx, "ws", run.ID, atelier.LifecycleActive)
	mustOK(t, err, "SetRunLifecycle(active)")
	if got.Deleted {
		t.Errorf("restored run is still deleted")
	}
	mustOK(t, s.SetTags(ctx, "ws", run.ID, map[string]string{"t": "2"}), "SetTags after restore")
	_, err = s.SetRunLifecycle(ctx, "other", run.ID, atelier.LifecycleDeleted)
	wantCode(t, err, atelier.ENOTFOUND, "SetRunLifecycle from another workspace")
	_, err = s.SetRunLifecycle(ctx, "ws", run.ID, "gone")
	wantCode(t, err, atelier.EINVALID, "SetRunLifecycle(bad lifecycle)")
}
