package storetest

import (
	"sort"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// approxTime tolerates the precision a store keeps times at (milliseconds, microseconds).
var approxTime = cmpopts.EquateApproxTime(time.Millisecond)

func testWorkspaces(t *testing.T, open func(t *testing.T) atelier.Store) {
	t.Run("CreateFindList", func(t *testing.T) {
		s := open(t)
		ctx := Context(t)
		before := time.Now().Add(-time.Second)
		a := MustCreateWorkspace(t, s, "alpha")
		b := MustCreateWorkspace(t, s, "beta.2_x-y")
		if a.ID == 0 || b.ID == 0 || a.ID == b.ID {
			t.Errorf("workspace ids %d and %d: want distinct and non-zero", a.ID, b.ID)
		}
		if a.CreatedBy != "tester" {
			t.Errorf("CreatedBy = %q, want the principal's name %q", a.CreatedBy, "tester")
		}
		got, err := s.FindWorkspace(ctx, "alpha")
		mustOK(t, err, "FindWorkspace")
		want := &atelier.Workspace{ID: a.ID, Name: "alpha", Description: "workspace alpha", CreatedAt: a.CreatedAt, CreatedBy: "tester"}
		if diff := cmp.Diff(want, got, approxTime); diff != "" {
			t.Errorf("FindWorkspace (-want +got):\n%s", diff)
		}
		if got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now().Add(time.Second)) {
			t.Errorf("CreatedAt = %v, want about now", got.CreatedAt)
		}
		list, err := s.ListWorkspaces(ctx)
		mustOK(t, err, "ListWorkspaces")
		var names []string
		for _, w := range list {
			names = append(names, w.Name)
		}
		sort.Strings(names)
		if diff := cmp.Diff([]string{"alpha", "beta.2_x-y"}, names); diff != "" {
			t.Errorf("ListWorkspaces names (-want +got):\n%s", diff)
		}
		_, err = s.FindWorkspace(ctx, "gamma")
		wantCode(t, err, atelier.ENOTFOUND, "FindWorkspace(missing)")
	})

	t.Run("CreateErrors", func(t *testing.T) {
		s := open(t)
		MustCreateWorkspace(t, s, "taken")
		for _, tc := range []struct {
			name, ws, code string
		}{
			{"duplicate", "taken", atelier.ECONFLICT},
			{"empty", "", atelier.EINVALID},
			{"space", "bad name", atelier.EINVALID},
			{"slash", "a/b", atelier.EINVALID},
			{"leading dash", "-x", atelier.EINVALID},
			{"too long", string(make([]byte, 129)), atelier.EINVALID},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := s.CreateWorkspace(Context(t), &atelier.Workspace{Name: tc.ws})
				wantCode(t, err, tc.code, "CreateWorkspace(%q)", tc.ws)
			})
		}
		list, err := s.ListWorkspaces(Context(t))
		mustOK(t, err, "ListWorkspaces")
		if len(list) != 1 {
			t.Errorf("ListWorkspaces after refused creates: %d workspaces, want 1", len(list))
		}
	})

	t.Run("RunCountAndDelete", func(t *testing.T) {
		s := open(t)
		ctx := Context(t)
		MustCreateWorkspace(t, s, "keep")
		MustCreateWorkspace(t, s, "full")
		MustCreateWorkspace(t, s, "empty")
		r1 := MustCreateRun(t, s, "full", atelier.RunCreate{Experiment: "e"})
		child := MustCreateRun(t, s, "full", atelier.RunCreate{ParentID: r1.ID})
		MustLogMetrics(t, s, "full", child.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "m", Value: 1}}})
		mustOK(t, s.PutFile(ctx, "full", r1.ID, &atelier.File{Path: "outputs/a", Size: 1, Digest: digestOf("a")}), "PutFile")
		kept := MustCreateRun(t, s, "keep", atelier.RunCreate{Experiment: "e"})

		ws, err := s.FindWorkspace(ctx, "full")
		mustOK(t, err, "FindWorkspace")
		if ws.RunCount != 2 {
			t.Errorf("FindWorkspace RunCount = %d, want 2", ws.RunCount)
		}
		list, err := s.ListWorkspaces(ctx)
		mustOK(t, err, "ListWorkspaces")
		counts := map[string]int64{}
		for _, w := range list {
			counts[w.Name] = w.RunCount
		}
		if diff := cmp.Diff(map[string]int64{"keep": 1, "full": 2, "empty": 0}, counts); diff != "" {
			t.Errorf("ListWorkspaces run counts (-want +got):\n%s", diff)
		}

		wantCode(t, s.DeleteWorkspace(ctx, "full", false), atelier.ECONFLICT, "DeleteWorkspace(with runs, no force)")
		MustFindRun(t, s, "full", r1.ID) // refused delete removed nothing
		wantCode(t, s.DeleteWorkspace(ctx, "nope", false), atelier.ENOTFOUND, "DeleteWorkspace(missing)")
		mustOK(t, s.DeleteWorkspace(ctx, "empty", false), "DeleteWorkspace(empty)")
		_, err = s.FindWorkspace(ctx, "empty")
		wantCode(t, err, atelier.ENOTFOUND, "FindWorkspace(deleted)")

		// A read of the workspace before its deletion (a store may remember what it resolved).
		if page, err := s.ListRuns(ctx, "full", atelier.RunQuery{}); err != nil || len(page.Runs) == 0 {
			t.Fatalf("ListRuns(full) = %v, want its runs", err)
		}
		mustOK(t, s.DeleteWorkspace(ctx, "full", true), "DeleteWorkspace(force)")
		_, err = s.FindWorkspace(ctx, "full")
		wantCode(t, err, atelier.ENOTFOUND, "FindWorkspace(force-deleted)")
		// Recreate the name: the old runs, experiments and their data must be gone, not revived.
		// (Another workspace first, so the new one cannot reuse the old one's id.)
		MustCreateWorkspace(t, s, "spacer")
		MustCreateWorkspace(t, s, "full")
		for _, id := range []string{r1.ID, child.ID} {
			_, err = s.FindRun(ctx, "full", id)
			wantCode(t, err, atelier.ENOTFOUND, "FindRun(run of force-deleted workspace)")
			_, err = s.ListMetrics(ctx, "full", id)
			wantCode(t, err, atelier.ENOTFOUND, "ListMetrics(run of force-deleted workspace)")
		}
		page, err := s.ListRuns(ctx, "full", atelier.RunQuery{})
		mustOK(t, err, "ListRuns")
		if len(page.Runs) != 0 {
			t.Errorf("recreated workspace lists %d runs, want 0", len(page.Runs))
		}
		exps, err := s.ListExperiments(ctx, "full", atelier.ExperimentFilter{IncludeArchived: true})
		mustOK(t, err, "ListExperiments")
		if len(exps) != 0 {
			t.Errorf("recreated workspace lists %d experiments, want 0", len(exps))
		}
		if ws, _ := s.FindWorkspace(ctx, "full"); ws == nil || ws.RunCount != 0 {
			t.Errorf("recreated workspace = %+v, want RunCount 0", ws)
		}
		MustFindRun(t, s, "keep", kept.ID) // other workspaces are untouched
		// The recreated workspace is a new one to every read (no cached id of the old one).
		fresh := MustCreateRun(t, s, "full", atelier.RunCreate{Experiment: "again"})
		page, err = s.ListRuns(ctx, "full", atelier.RunQuery{})
		mustOK(t, err, "ListRuns(recreated)")
		if len(page.Runs) != 1 || page.Runs[0].ID != fresh.ID {
			t.Errorf("recreated workspace lists %d runs, want its new run", len(page.Runs))
		}
		if exps, err := s.ListExperiments(ctx, "full", atelier.ExperimentFilter{}); err != nil || len(exps) != 1 || exps[0].RunCount != 1 {
			t.Errorf("recreated workspace experiments = %v, %v; want again with 1 run", experimentNames(exps), err)
		}
		MustFindRun(t, s, "full", fresh.ID)
	})
}

func testExperiments(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")

	_, err := s.FindExperiment(ctx, "ws", "diabetes ridge (v2)")
	wantCode(t, err, atelier.ENOTFOUND, "FindExperiment before any run")

	r1 := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "diabetes ridge (v2)"})
	MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "diabetes ridge (v2)"})
	r3 := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "second"})
	MustCreateRun(t, s, "other", atelier.RunCreate{Experiment: "second"})

	t.Run("AutoCreated", func(t *testing.T) {
		e, err := s.FindExperiment(ctx, "ws", "diabetes ridge (v2)")
		mustOK(t, err, "FindExperiment")
		if e.Name != "diabetes ridge (v2)" || e.Workspace != "ws" || e.RunCount != 2 || e.Archived || e.LastRunAt == nil || e.ID == 0 {
			t.Errorf("FindExperiment = %+v, want name, workspace ws, 2 runs, not archived, LastRunAt set", e)
		}
		if e.LastRunAt != nil && e.LastRunAt.Before(r1.CreatedAt.Add(-time.Millisecond)) {
			t.Errorf("LastRunAt %v is before the first run's creation %v", e.LastRunAt, r1.CreatedAt)
		}
		list, err := s.ListExperiments(ctx, "ws", atelier.ExperimentFilter{})
		mustOK(t, err, "ListExperiments")
		if diff := cmp.Diff([]string{"diabetes ridge (v2)", "second"}, sorted(experimentNames(list))); diff != "" {
			t.Errorf("ListExperiments (-want +got):\n%s", diff)
		}
		list, err = s.ListExperiments(ctx, "ws", atelier.ExperimentFilter{Name: "second"})
		mustOK(t, err, "ListExperiments(name)")
		if len(list) != 1 || list[0].Name != "second" || list[0].RunCount != 1 {
			t.Errorf("ListExperiments(Name: second) = %v, want the one experiment with 1 run", experimentNames(list))
		}
		byID, err := s.ListExperiments(ctx, "ws", atelier.ExperimentFilter{ID: list[0].ID})
		mustOK(t, err, "ListExperiments(id)")
		if len(byID) != 1 || byID[0].Name != "second" || byID[0].ID != list[0].ID || byID[0].RunCount != 1 {
			t.Errorf("ListExperiments(ID: %d) = %v, want the experiment second", list[0].ID, experimentNames(byID))
		}
		other, err := s.FindExperiment(ctx, "other", "second")
		mustOK(t, err, "FindExperiment(other)")
		if other.ID == list[0].ID || other.RunCount != 1 {
			t.Errorf("experiment %q of two workspaces: ids %d and %d, run count %d; want separate experiments", "second", other.ID, list[0].ID, other.RunCount)
		}
		// An id is a workspace's own: another workspace's experiment is not found by it.
		if list, err := s.ListExperiments(ctx, "ws", atelier.ExperimentFilter{ID: other.ID}); err != nil || len(list) != 0 {
			t.Errorf("ListExperiments(ws, ID of other's experiment) = %v, %v; want none", experimentNames(list), err)
		}
		_, err = s.ListExperiments(ctx, "missing", atelier.ExperimentFilter{})
		wantCode(t, err, atelier.ENOTFOUND, "ListExperiments(missing workspace)")
	})

	t.Run("Rename", func(t *testing.T) {
		e, err := s.UpdateExperiment(ctx, "ws", "second", atelier.ExperimentUpdate{Name: ptr("renamed"), Description: ptr("about")})
		mustOK(t, err, "UpdateExperiment(rename)")
		if e.Name != "renamed" || e.Description != "about" {
			t.Errorf("UpdateExperiment = %+v, want name renamed, description about", e)
		}
		_, err = s.FindExperiment(ctx, "ws", "second")
		wantCode(t, err, atelier.ENOTFOUND, "FindExperiment(old name)")
		if got, err := s.FindExperiment(ctx, "ws", "renamed"); err != nil || got.Description != "about" || got.RunCount != 1 {
			t.Errorf("FindExperiment(renamed) = %+v, %v; want description about and 1 run", got, err)
		}
		if run := MustFindRun(t, s, "ws", r3.ID); run.Experiment != "renamed" {
			t.Errorf("run of renamed experiment has experiment %q, want renamed", run.Experiment)
		}
		if o, err := s.FindExperiment(ctx, "other", "second"); err != nil || o.Name != "second" {
			t.Errorf("renaming in ws touched the other workspace: %+v, %v", o, err)
		}
		for _, tc := range []struct {
			name, from, to, code string
		}{
			{"taken", "renamed", "diabetes ridge (v2)", atelier.ECONFLICT},
			{"slash", "renamed", "a/b", atelier.EINVALID},
			{"empty", "renamed", "", atelier.EINVALID},
			{"missing", "nope", "x", atelier.ENOTFOUND},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := s.UpdateExperiment(ctx, "ws", tc.from, atelier.ExperimentUpdate{Name: ptr(tc.to)})
				wantCode(t, err, tc.code, "UpdateExperiment(%q → %q)", tc.from, tc.to)
			})
		}
		if got, err := s.FindExperiment(ctx, "ws", "renamed"); err != nil || got.Name != "renamed" {
			t.Errorf("refused rename changed the experiment: %+v, %v", got, err)
		}
	})

	t.Run("ArchiveRestore", func(t *testing.T) {
		e, err := s.UpdateExperiment(ctx, "ws", "renamed", atelier.ExperimentUpdate{Archived: ptr(true)})
		mustOK(t, err, "UpdateExperiment(archive)")
		if !e.Archived || e.Description != "about" {
			t.Errorf("archived experiment = %+v, want Archived and the description kept", e)
		}
		list, err := s.ListExperiments(ctx, "ws", atelier.ExperimentFilter{})
		mustOK(t, err, "ListExperiments")
		if diff := cmp.Diff([]string{"diabetes ridge (v2)"}, experimentNames(list)); diff != "" {
			t.Errorf("ListExperiments hides archived (-want +got):\n%s", diff)
		}
		list, err = s.ListExperiments(ctx, "ws", atelier.ExperimentFilter{IncludeArchived: true})
		mustOK(t, err, "ListExperiments(IncludeArchived)")
		if diff := cmp.Diff([]string{"diabetes ridge (v2)", "renamed"}, sorted(experimentNames(list))); diff != "" {
			t.Errorf("ListExperiments(IncludeArchived) (-want +got):\n%s", diff)
		}
		if got, err := s.FindExperiment(ctx, "ws", "renamed"); err != nil || !got.Archived {
			t.Errorf("FindExperiment(archived) = %+v, %v; want it found and Archived", got, err)
		}
		_, err = s.UpdateExperiment(ctx, "ws", "renamed", atelier.ExperimentUpdate{Archived: ptr(false)})
		mustOK(t, err, "UpdateExperiment(restore)")
		list, err = s.ListExperiments(ctx, "ws", atelier.ExperimentFilter{})
		mustOK(t, err, "ListExperiments")
		if diff := cmp.Diff([]string{"diabetes ridge (v2)", "renamed"}, sorted(experimentNames(list))); diff != "" {
			t.Errorf("ListExperiments after restore (-want +got):\n%s", diff)
		}
	})
}

func experimentNames(list []*atelier.Experiment) []string {
	names := make([]string, len(list))
	for i, e := range list {
		names[i] = e.Name
	}
	return names
}
