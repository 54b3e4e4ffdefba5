package storetest

import (
	"sync"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
)

// testCreateExperiments covers experiments made before their first run (the MLflow API's
// experiments/create): unique by name under concurrency, with tags and an artifact location.
func testCreateExperiments(t *testing.T, open func(t *testing.T) atelier.Store) {
	t.Run("ConcurrentCreateOneWins", func(t *testing.T) {
		s := open(t)
		ctx := Context(t)
		MustCreateWorkspace(t, s, "ws")
		const n = 20
		var wg sync.WaitGroup
		errs := make([]error, n)
		ids := make([]int64, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, err := s.CreateExperiment(ctx, "ws", atelier.ExperimentCreate{Name: "race"})
				errs[i] = err
				if err == nil {
					ids[i] = e.ID
				}
			}()
		}
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch atelier.ErrorCode(err) {
			case "":
				wins++
			case atelier.ECONFLICT:
			default:
				t.Errorf("create %d: %v, want success or ECONFLICT", i, err)
			}
		}
		if wins != 1 {
			t.Errorf("%d of %d concurrent creates of one name succeeded, want exactly 1", wins, n)
		}
		list, err := s.ListExperiments(ctx, "ws", atelier.ExperimentFilter{Name: "race"})
		mustOK(t, err, "ListExperiments")
		if len(list) != 1 {
			t.Errorf("ListExperiments(race) = %d experiments, want 1", len(list))
		}
	})

	t.Run("TagsAndArtifactLocation", func(t *testing.T) {
		s := open(t)
		ctx := Context(t)
		MustCreateWorkspace(t, s, "ws")
		MustCreateWorkspace(t, s, "other")
		e, err := s.CreateExperiment(ctx, "ws", atelier.ExperimentCreate{Name: "made", Description: "about",
			ArtifactLocation: "s3://bucket/made", Tags: map[string]string{"team": "a", "stage": "dev"}})
		mustOK(t, err, "CreateExperiment")
		if e.ID == 0 || e.Name != "made" || e.Workspace != "ws" || e.Description != "about" || e.ArtifactLocation != "s3://bucket/made" ||
			e.RunCount != 0 || e.Archived || e.CreatedAt.IsZero() {
			t.Errorf("CreateExperiment = %+v, want it with its description, location, no runs", e)
		}
		want := map[string]string{"team": "a", "stage": "dev"}
		if diff := cmp.Diff(want, e.Tags); diff != "" {
			t.Errorf("created tags (-want +got):\n%s", diff)
		}
		_, err = s.CreateExperiment(ctx, "ws", atelier.ExperimentCreate{Name: "made"})
		wantCode(t, err, atelier.ECONFLICT, "CreateExperiment(taken)")
		_, err = s.CreateExperiment(ctx, "other", atelier.ExperimentCreate{Name: "made"})
		mustOK(t, err, "CreateExperiment(same name, other workspace)")
		for _, tc := range []struct {
			name string
			c    atelier.ExperimentCreate
			code string
		}{
			{"slash", atelier.ExperimentCreate{Name: "a/b"}, atelier.EINVALID},
			{"empty", atelier.ExperimentCreate{}, atelier.EINVALID},
			{"bad tag", atelier.ExperimentCreate{Name: "x", Tags: map[string]string{"": "v"}}, atelier.EINVALID},
		} {
			_, err := s.CreateExperiment(ctx, "ws", tc.c)
			wantCode(t, err, tc.code, "CreateExperiment(%s)", tc.name)
		}
		_, err = s.CreateExperiment(ctx, "missing", atelier.ExperimentCreate{Name: "x"})
		wantCode(t, err, atelier.ENOTFOUND, "CreateExperiment(missing workspace)")

		// A run joins the created experiment rather than making another.
		MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "made"})
		got, err := s.FindExperiment(ctx, "ws", "made")
		mustOK(t, err, "FindExperiment")
		if got.ID != e.ID || got.RunCount != 1 || got.ArtifactLocation != "s3://bucket/made" {
			t.Errorf("FindExperiment after a run = %+v, want the same experiment with 1 run and its location", got)
		}

		got, err = s.UpdateExperiment(ctx, "ws", "made", atelier.ExperimentUpdate{Tags: map[string]string{"team": "b", "new": "1"},
			DeleteTags: []string{"stage"}})
		mustOK(t, err, "UpdateExperiment(tags)")
		want = map[string]string{"team": "b", "new": "1"}
		if diff := cmp.Diff(want, got.Tags); diff != "" {
			t.Errorf("updated tags (-want +got):\n%s", diff)
		}
		_, err = s.UpdateExperiment(ctx, "ws", "made", atelier.ExperimentUpdate{DeleteTags: []string{"stage"}})
		wantCode(t, err, atelier.ENOTFOUND, "UpdateExperiment(delete a missing tag)")
		// The refused update changed nothing, not even the tags set beside it.
		_, err = s.UpdateExperiment(ctx, "ws", "made", atelier.ExperimentUpdate{Tags: map[string]string{"team": "c"}, DeleteTags: []string{"nope"}})
		wantCode(t, err, atelier.ENOTFOUND, "UpdateExperiment(set and delete a missing tag)")
		list, err := s.ListExperiments(ctx, "ws", atelier.ExperimentFilter{})
		mustOK(t, err, "ListExperiments")
		if len(list) != 1 || list[0].Tags["team"] != "b" || list[0].ArtifactLocation != "s3://bucket/made" {
			t.Errorf("ListExperiments = %+v, want made with team=b and its location", list)
		}
		if o, err := s.FindExperiment(ctx, "other", "made"); err != nil || len(o.Tags) != 0 {
			t.Errorf("other workspace's experiment = %+v, %v; want no tags", o, err)
		}
		// Tags follow a renamed experiment.
		got, err = s.UpdateExperiment(ctx, "ws", "made", atelier.ExperimentUpdate{Name: ptr("renamed")})
		mustOK(t, err, "UpdateExperiment(rename)")
		if diff := cmp.Diff(want, got.Tags); diff != "" {
			t.Errorf("renamed experiment's tags (-want +got):\n%s", diff)
		}
	})
}
