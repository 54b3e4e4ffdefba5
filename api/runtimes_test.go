package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

// TestRunGivenTimes: POST /runs takes started_at (the run is created Running at that time) and
// the status update takes ended_at for the update that ends the run; times out of range are 400s.
func TestRunGivenTimes(t *testing.T) {
	_, c, _ := MustServer(t)
	ctx := Ctx(t)
	start := time.Date(2023, 11, 14, 22, 13, 20, 123_000_000, time.UTC)
	run := MustRun(t, c, atelier.RunCreate{StartedAt: &start})
	if run.Status != atelier.StatusRunning || run.StartedAt == nil || !run.StartedAt.Equal(start) {
		t.Fatalf("run created with started_at %v: status %s, started %v", start, run.Status, run.StartedAt)
	}
	end := start.Add(time.Minute)
	got, err := c.UpdateRunStatus(ctx, "default", run.ID, atelier.RunStatusUpdate{Status: atelier.StatusCompleted, EndedAt: &end})
	if err != nil || got.EndedAt == nil || !got.EndedAt.Equal(end) {
		t.Fatalf("UpdateRunStatus(Completed, ended_at %v) = %v, %v", end, got, err)
	}
	if got, err := c.FindRun(ctx, "default", run.ID); err != nil || !got.StartedAt.Equal(start) || !got.EndedAt.Equal(end) {
		t.Fatalf("FindRun = %v, %v; want started %v, ended %v", got, err, start, end)
	}

	before := time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)
	_, err = c.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "exp", StartedAt: &before})
	MustCode(t, err, atelier.EINVALID)
	if !strings.Contains(atelier.ErrorMessage(err), "before 1970") {
		t.Errorf("start before 1970: %q, want a message saying so", atelier.ErrorMessage(err))
	}
	_, err = c.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "exp", Status: atelier.StatusQueued, StartedAt: &start})
	MustCode(t, err, atelier.EINVALID)
	live := MustRun(t, c, atelier.RunCreate{Status: atelier.StatusRunning})
	future := time.Now().Add(72 * time.Hour)
	_, err = c.UpdateRunStatus(ctx, "default", live.ID, atelier.RunStatusUpdate{Status: atelier.StatusFailed, EndedAt: &future})
	MustCode(t, err, atelier.EINVALID)
}
