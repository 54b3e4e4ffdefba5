package storetest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// testRecordSearch: experiments, models and versions are searched by the store with the query
// language of runs: filters on attributes, tags and properties, orderings, stable pages.
func testRecordSearch(t *testing.T, open func(t *testing.T) atelier.Store) {
	t.Run("Experiments", func(t *testing.T) {
		s, ctx := open(t), Context(t)
		MustCreateWorkspace(t, s, "ws")
		for i, name := range []string{"alpha", "beta", "gamma one", "delta"} {
			_, err := s.CreateExperiment(ctx, "ws", atelier.ExperimentCreate{Name: name, Tags: map[string]string{"i": string(rune('0' + i)), "team": []string{"a", "b"}[i%2]}})
			mustOK(t, err, "CreateExperiment(%s)", name)
		}
		yes := true
		_, err := s.UpdateExperiment(ctx, "ws", "delta", atelier.ExperimentUpdate{Archived: &yes})
		mustOK(t, err, "archive")
		names := func(q atelier.ExperimentQuery) []string {
			t.Helper()
			page, err := s.SearchExperiments(ctx, "ws", q)
			mustOK(t, err, "SearchExperiments(%+v)", q)
			out := []string{}
			for _, e := range page.Experiments {
				out = append(out, e.Name)
			}
			return out
		}
		no := false
		for _, tc := range []struct {
			q    atelier.ExperimentQuery
			want []string
		}{
			{atelier.ExperimentQuery{OrderBy: "name"}, []string{"alpha", "beta", "delta", "gamma one"}},
			{atelier.ExperimentQuery{Archived: &no, OrderBy: "name desc"}, []string{"gamma one", "beta", "alpha"}},
			{atelier.ExperimentQuery{Archived: &yes}, []string{"delta"}},
			{atelier.ExperimentQuery{Filter: "tags.team = 'a'", OrderBy: "name"}, []string{"alpha", "gamma one"}},
			{atelier.ExperimentQuery{Filter: "name like '%a' and tags.i != '0'", OrderBy: "name"}, []string{"beta", "delta"}},
			{atelier.ExperimentQuery{Filter: "tags.nope is null and name ilike 'GAMMA%'"}, []string{"gamma one"}},
			{atelier.ExperimentQuery{Filter: "created_at > 0", OrderBy: "tags.i desc"}, []string{"delta", "gamma one", "beta", "alpha"}},
			{atelier.ExperimentQuery{Filter: "tags.team = 'z'"}, []string{}},
		} {
			if got := names(tc.q); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SearchExperiments(%+v) = %v, want %v", tc.q, got, tc.want)
			}
		}
		page, err := s.SearchExperiments(ctx, "ws", atelier.ExperimentQuery{Filter: "name = 'alpha'"})
		mustOK(t, err, "SearchExperiments")
		if len(page.Experiments) != 1 || page.Experiments[0].Tags["team"] != "a" {
			t.Fatalf("found %+v, want alpha with its tags", page.Experiments)
		}
		var all []string
		q := atelier.ExperimentQuery{Limit: 3, OrderBy: "name"}
		for {
			page, err := s.SearchExperiments(ctx, "ws", q)
			mustOK(t, err, "SearchExperiments(page)")
			for _, e := range page.Experiments {
				all = append(all, e.Name)
			}
			if page.NextPageToken == "" {
				break
			}
			q.PageToken = page.NextPageToken
		}
		if strings.Join(all, ",") != "alpha,beta,delta,gamma one" {
			t.Fatalf("paged: %v", all)
		}
		for _, bad := range []atelier.ExperimentQuery{{Filter: "params.x = '1'"}, {Filter: "status = 'x'"}, {OrderBy: "metrics.m"}, {PageToken: "!"}} {
			_, err := s.SearchExperiments(ctx, "ws", bad)
			wantCode(t, err, atelier.EINVALID, "SearchExperiments(%+v)", bad)
		}
	})

	t.Run("ModelsAndVersions", func(t *testing.T) {
		s, ctx := open(t), Context(t)
		MustCreateWorkspace(t, s, "ws")
		run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "e"})
		files := []atelier.ModelFile{{Path: "m.pkl", Digest: strings.Repeat("c", 64), Size: 1}}
		mustOK(t, s.HoldObjects(ctx, "ws", []atelier.Object{{Digest: files[0].Digest, Size: 1}}), "HoldObjects")
		for _, spec := range []struct {
			name  string
			tags  map[string]string
			props map[string]string
			run   string
		}{
			{"iris", map[string]string{"stage": "dev"}, map[string]string{"src": "a"}, run.ID},
			{"iris", map[string]string{"stage": "prod"}, nil, ""},
			{"wine", nil, map[string]string{"src": "b"}, ""},
		} {
			v := &atelier.ModelVersion{Name: spec.name, Files: files, Tags: spec.tags, Properties: spec.props, RunID: spec.run}
			mustOK(t, s.CreateModelVersion(ctx, "ws", v), "CreateModelVersion(%s)", spec.name)
		}
		_, err := s.CreateModel(ctx, "ws", atelier.ModelCreate{Name: "empty", Tags: map[string]string{"team": "x"}})
		mustOK(t, err, "CreateModel")
		_, err = s.UpdateModel(ctx, "ws", "wine", atelier.ModelUpdate{Tags: map[string]string{"team": "y"}})
		mustOK(t, err, "UpdateModel")
		models := func(q atelier.ModelQuery) []string {
			t.Helper()
			page, err := s.ListModels(ctx, "ws", q)
			mustOK(t, err, "ListModels(%+v)", q)
			out := []string{}
			for _, m := range page.Models {
				out = append(out, m.Name)
			}
			return out
		}
		for _, tc := range []struct {
			q    atelier.ModelQuery
			want []string
		}{
			{atelier.ModelQuery{}, []string{"empty", "iris", "wine"}},
			{atelier.ModelQuery{Filter: "tags.team is not null", Sort: "name desc"}, []string{"wine", "empty"}},
			{atelier.ModelQuery{Filter: "name in ('iris', 'wine')", Sort: "name desc"}, []string{"wine", "iris"}},
			{atelier.ModelQuery{Filter: "name like 'i%'"}, []string{"iris"}},
		} {
			if got := models(tc.q); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ListModels(%+v) = %v, want %v", tc.q, got, tc.want)
			}
		}
		versions := func(q atelier.ModelQuery) []string {
			t.Helper()
			page, err := s.ListModelVersions(ctx, "ws", q)
			mustOK(t, err, "ListModelVersions(%+v)", q)
			out := []string{}
			for _, v := range page.Versions {
				out = append(out, v.Ref().String())
			}
			return out
		}
		for _, tc := range []struct {
			q    atelier.ModelQuery
			want []string
		}{
			{atelier.ModelQuery{Sort: "name"}, []string{"iris:2", "iris:1", "wine:1"}},
			{atelier.ModelQuery{Filter: "tags.stage = 'prod'"}, []string{"iris:2"}},
			{atelier.ModelQuery{Filter: "properties.src is not null", Sort: "properties.src desc"}, []string{"wine:1", "iris:1"}},
			{atelier.ModelQuery{Filter: "run_id = '" + run.ID + "'"}, []string{"iris:1"}},
			{atelier.ModelQuery{Filter: "name = 'iris' and version >= '2'"}, []string{"iris:2"}},
			{atelier.ModelQuery{Filter: "experiment = 'e' or tags.stage = 'prod'", Sort: "version desc, name"}, []string{"iris:2", "iris:1"}},
		} {
			if got := versions(tc.q); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ListModelVersions(%+v) = %v, want %v", tc.q, got, tc.want)
			}
		}
		for _, bad := range []atelier.ModelQuery{{Filter: "params.x = '1'"}, {Filter: "nope = 1"}, {Sort: "metrics.m"}} {
			_, err := s.ListModelVersions(ctx, "ws", bad)
			wantCode(t, err, atelier.EINVALID, "ListModelVersions(%+v)", bad)
		}
		_, err = s.ListModels(ctx, "ws", atelier.ModelQuery{Filter: "version = '1'"})
		wantCode(t, err, atelier.EINVALID, "ListModels by version")
	})
}
