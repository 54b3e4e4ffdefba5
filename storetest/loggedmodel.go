package storetest

import (
	"math"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

// testLoggedModels: logged models are records of their own (not runs), with params, tags,
// metrics per data set, files, a status that finalizing may move either way, run links, and a
// search evaluated by the store.
func testLoggedModels(t *testing.T, open func(t *testing.T) atelier.Store) {
	t.Run("Lifecycle", func(t *testing.T) {
		s, ctx := open(t), Context(t)
		MustCreateWorkspace(t, s, "ws")
		run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "train"})
		m, err := s.CreateLoggedModel(ctx, "ws", atelier.LoggedModelCreate{Experiment: "train", Name: "my model", ModelType: "sklearn",
			SourceRunID: run.ID, Params: map[string]string{"alpha": "0.5"}, Tags: map[string]string{"t": "1"}}, "alice")
		mustOK(t, err, "CreateLoggedModel")
		if len(m.ID) < 3 || m.ID[:2] != atelier.LoggedModelIDPrefix || m.Status != atelier.LoggedModelPending || m.Experiment != "train" ||
			m.SourceRunID != run.ID || m.CreatedBy != "alice" || m.Params["alpha"] != "0.5" || m.Tags["t"] != "1" || m.Name != "my model" {
			t.Fatalf("created %+v", m)
		}
		// A logged model is not a run: runs and run counts do not see it.
		page, err := s.ListRuns(ctx, "ws", atelier.RunQuery{})
		mustOK(t, err, "ListRuns")
		if len(page.Runs) != 1 {
			t.Fatalf("runs after creating a logged model: %v", runIDs(page.Runs))
		}
		_, err = s.FindRun(ctx, "ws", m.ID)
		wantCode(t, err, atelier.ENOTFOUND, "FindRun(logged model id)")

		ready, failed := atelier.LoggedModelReady, atelier.LoggedModelFailed
		got, err := s.UpdateLoggedModel(ctx, "ws", m.ID, atelier.LoggedModelUpdate{Status: &ready, Params: map[string]string{"beta": "2"},
			Tags: map[string]string{"u": "2"}, DeleteTags: []string{"t"}})
		mustOK(t, err, "UpdateLoggedModel")
		if got.Status != ready || got.Params["beta"] != "2" || got.Tags["u"] != "2" || got.Tags["t"] != "" || len(got.Tags) != 1 {
			t.Fatalf("updated %+v", got)
		}
		// MLflow lets finalizing move a Ready model to Failed.
		msg := "upload failed"
		got, err = s.UpdateLoggedModel(ctx, "ws", m.ID, atelier.LoggedModelUpdate{Status: &failed, StatusMessage: &msg})
		mustOK(t, err, "UpdateLoggedModel(Failed)")
		if got.Status != failed || got.StatusMessage != msg {
			t.Fatalf("after Ready then Failed: %s %q", got.Status, got.StatusMessage)
		}
		_, err = s.UpdateLoggedModel(ctx, "ws", m.ID, atelier.LoggedModelUpdate{Params: map[string]string{"alpha": "9"}})
		wantCode(t, err, atelier.ECONFLICT, "changing a param")
		_, err = s.UpdateLoggedModel(ctx, "ws", m.ID, atelier.LoggedModelUpdate{DeleteTags: []string{"nope"}})
		wantCode(t, err, atelier.ENOTFOUND, "deleting a missing tag")
		bad := atelier.LoggedModelStatus("Done")
		_, err = s.UpdateLoggedModel(ctx, "ws", m.ID, atelier.LoggedModelUpdate{Status: &bad})
		wantCode(t, err, atelier.EINVALID, "unknown status")

		// Another workspace does not see it.
		MustCreateWorkspace(t, s, "other")
		_, err = s.FindLoggedModel(ctx, "other", m.ID)
		wantCode(t, err, atelier.ENOTFOUND, "FindLoggedModel from another workspace")

		mustOK(t, s.DeleteLoggedModel(ctx, "ws", m.ID), "DeleteLoggedModel")
		got, err = s.FindLoggedModel(ctx, "ws", m.ID)
		mustOK(t, err, "FindLoggedModel(deleted)")
		if !got.Deleted {
			t.Fatal("a deleted model is not marked deleted")
		}
		_, err = s.UpdateLoggedModel(ctx, "ws", m.ID, atelier.LoggedModelUpdate{Tags: map[string]string{"x": "y"}})
		wantCode(t, err, atelier.ENOTFOUND, "updating a deleted model")
		wantCode(t, s.DeleteLoggedModel(ctx, "ws", m.ID), atelier.ENOTFOUND, "deleting twice")
		list, err := s.ListLoggedModels(ctx, "ws", atelier.LoggedModelQuery{})
		mustOK(t, err, "ListLoggedModels")
		if len(list.Models) != 0 {
			t.Fatalf("a deleted model is listed: %v", list.Models)
		}
		_, err = s.CreateLoggedModel(ctx, "ws", atelier.LoggedModelCreate{Experiment: "train", Name: "a/b"}, "")
		wantCode(t, err, atelier.EINVALID, "a name with '/'")
		// A source run kept elsewhere is recorded as given, as MLflow does.
		far, err := s.CreateLoggedModel(ctx, "ws", atelier.LoggedModelCreate{Experiment: "new exp", Name: "m", SourceRunID: "0123abcd"}, "")
		mustOK(t, err, "CreateLoggedModel(unknown source run)")
		if far.SourceRunID != "0123abcd" {
			t.Fatalf("source run %q", far.SourceRunID)
		}
		if _, err := s.FindExperiment(ctx, "ws", "new exp"); err != nil {
			t.Fatalf("the model's experiment was not created: %v", err)
		}
	})

	t.Run("MetricsFilesLinks", func(t *testing.T) {
		s, ctx := open(t), Context(t)
		MustCreateWorkspace(t, s, "ws")
		run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "e"})
		m, err := s.CreateLoggedModel(ctx, "ws", atelier.LoggedModelCreate{Experiment: "e", Name: "m", SourceRunID: run.ID}, "")
		mustOK(t, err, "CreateLoggedModel")
		at := time.UnixMilli(1_700_000_000_000).UTC()
		mustOK(t, s.LogLoggedModelMetrics(ctx, "ws", m.ID, []*atelier.LoggedModelMetric{
			{Name: "acc", Value: 0.9, Step: 1, Timestamp: at, RunID: run.ID, DatasetName: "eval", DatasetDigest: "d1"},
			{Name: "loss", Value: math.NaN(), Timestamp: at},
		}), "LogLoggedModelMetrics")
		got, err := s.FindLoggedModel(ctx, "ws", m.ID)
		mustOK(t, err, "FindLoggedModel")
		if len(got.Metrics) != 2 || *got.Metrics[0] != (atelier.LoggedModelMetric{Name: "acc", Value: 0.9, Step: 1, Timestamp: at, RunID: run.ID,
			DatasetName: "eval", DatasetDigest: "d1"}) || !math.IsNaN(got.Metrics[1].Value) {
			t.Fatalf("metrics %+v", got.Metrics)
		}

		obj := atelier.Object{Digest: "aa00000000000000000000000000000000000000000000000000000000000001", Size: 3}
		mustOK(t, s.HoldObjects(ctx, "ws", []atelier.Object{obj}), "HoldObjects")
		for _, p := range []string{"MLmodel", "data/model.pkl"} {
			mustOK(t, s.PutLoggedModelFile(ctx, "ws", m.ID, &atelier.File{Path: p, Digest: obj.Digest, Size: 3}), "PutLoggedModelFile(%s)", p)
		}
		wantCode(t, s.PutLoggedModelFile(ctx, "ws", m.ID, &atelier.File{Path: "data", Digest: obj.Digest, Size: 3}), atelier.ECONFLICT, "a file named like a folder")
		wantCode(t, s.PutLoggedModelFile(ctx, "ws", m.ID, &atelier.File{Path: "MLmodel/x", Digest: obj.Digest, Size: 3}), atelier.ECONFLICT, "a folder named like a file")
		files, err := s.ListLoggedModelFiles(ctx, "ws", m.ID, "")
		mustOK(t, err, "ListLoggedModelFiles")
		if len(files) != 2 || files[0].Path != "MLmodel" || files[1].Path != "data/model.pkl" || files[1].Digest != obj.Digest {
			t.Fatalf("files %+v", files)
		}
		files, err = s.ListLoggedModelFiles(ctx, "ws", m.ID, "data")
		mustOK(t, err, "ListLoggedModelFiles(data)")
		if len(files) != 1 || files[0].Path != "data/model.pkl" {
			t.Fatalf("files under data: %+v", files)
		}
		f, err := s.FindLoggedModelFile(ctx, "ws", m.ID, "MLmodel")
		mustOK(t, err, "FindLoggedModelFile")
		if f.Size != 3 || f.Digest != obj.Digest {
			t.Fatalf("file %+v", f)
		}
		_, err = s.FindLoggedModelFile(ctx, "ws", m.ID, "nope")
		wantCode(t, err, atelier.ENOTFOUND, "a missing file")

		other, err := s.CreateLoggedModel(ctx, "ws", atelier.LoggedModelCreate{Experiment: "e", Name: "base"}, "")
		mustOK(t, err, "CreateLoggedModel")
		links := []atelier.RunModel{{RunID: run.ID, ModelID: m.ID, Step: 3}, {RunID: run.ID, ModelID: other.ID, Input: true}}
		mustOK(t, s.AddRunModels(ctx, "ws", links), "AddRunModels")
		mustOK(t, s.AddRunModels(ctx, "ws", links[:1]), "AddRunModels again")
		got2, err := s.ListRunModels(ctx, "ws", run.ID)
		mustOK(t, err, "ListRunModels")
		if !reflect.DeepEqual(got2, links) {
			t.Fatalf("links %+v, want %+v", got2, links)
		}
		wantCode(t, s.AddRunModels(ctx, "ws", []atelier.RunModel{{RunID: run.ID, ModelID: "m-nope"}}), atelier.ENOTFOUND, "linking a missing model")
		wantCode(t, s.AddRunModels(ctx, "ws", []atelier.RunModel{{RunID: "nope", ModelID: m.ID}}), atelier.ENOTFOUND, "linking a missing run")
	})

	t.Run("Search", func(t *testing.T) {
		s, ctx := open(t), Context(t)
		MustCreateWorkspace(t, s, "ws")
		var ids []string
		for i, spec := range []struct {
			exp, name, alpha string
			acc              float64
			dataset          string
		}{{"a", "m0", "1", 0.5, "eval"}, {"a", "m1", "2", 0.9, "test"}, {"b", "m2", "1", 0.7, "eval"}, {"b", "m3", "3", math.NaN(), ""}} {
			m, err := s.CreateLoggedModel(ctx, "ws", atelier.LoggedModelCreate{Experiment: spec.exp, Name: spec.name,
				Params: map[string]string{"alpha": spec.alpha}, Tags: map[string]string{"i": string(rune('0' + i))}}, "")
			mustOK(t, err, "CreateLoggedModel")
			ids = append(ids, m.ID)
			if spec.dataset != "" {
				mustOK(t, s.LogLoggedModelMetrics(ctx, "ws", m.ID, []*atelier.LoggedModelMetric{{Name: "acc", Value: spec.acc, DatasetName: spec.dataset}}), "log")
			}
		}
		names := func(q atelier.LoggedModelQuery) []string {
			t.Helper()
			page, err := s.ListLoggedModels(ctx, "ws", q)
			mustOK(t, err, "ListLoggedModels(%+v)", q)
			out := []string{}
			for _, m := range page.Models {
				out = append(out, m.Name)
			}
			return out
		}
		for _, tc := range []struct {
			q    atelier.LoggedModelQuery
			want []string
		}{
			{atelier.LoggedModelQuery{}, []string{"m3", "m2", "m1", "m0"}},
			{atelier.LoggedModelQuery{Experiments: []string{"a"}}, []string{"m1", "m0"}},
			{atelier.LoggedModelQuery{Filter: "params.alpha = '1'", OrderBy: "name"}, []string{"m0", "m2"}},
			{atelier.LoggedModelQuery{Filter: "metrics.acc > 0.6", OrderBy: "metrics.acc desc"}, []string{"m1", "m2"}},
			{atelier.LoggedModelQuery{OrderBy: "metrics.acc"}, []string{"m0", "m2", "m1", "m3"}},
			{atelier.LoggedModelQuery{Datasets: []atelier.LoggedModelDataset{{Name: "eval"}}, OrderBy: "name"}, []string{"m0", "m2"}},
			{atelier.LoggedModelQuery{Datasets: []atelier.LoggedModelDataset{{Name: "eval"}}, Filter: "metrics.acc > 0.8"}, []string{}},
			{atelier.LoggedModelQuery{Filter: "name like 'm%' and tags.i in ('1', '3')", OrderBy: "name desc"}, []string{"m3", "m1"}},
			{atelier.LoggedModelQuery{Filter: "status = 'Pending' and experiment = 'b' and id = '" + ids[2] + "'"}, []string{"m2"}},
			{atelier.LoggedModelQuery{Filter: "params.nope = 'x'"}, []string{}},
		} {
			if got := names(tc.q); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ListLoggedModels(%+v) = %v, want %v", tc.q, got, tc.want)
			}
		}
		// Pages follow one another without gaps or repeats.
		var all []string
		q := atelier.LoggedModelQuery{Limit: 3, OrderBy: "name"}
		for {
			page, err := s.ListLoggedModels(ctx, "ws", q)
			mustOK(t, err, "ListLoggedModels(page)")
			for _, m := range page.Models {
				all = append(all, m.Name)
			}
			if page.NextPageToken == "" {
				break
			}
			q.PageToken = page.NextPageToken
		}
		if !reflect.DeepEqual(all, []string{"m0", "m1", "m2", "m3"}) {
			t.Fatalf("paged: %v", all)
		}
		for _, bad := range []atelier.LoggedModelQuery{{Filter: "properties.x = '1'"}, {Filter: "duration > 1"}, {OrderBy: "nope"}, {PageToken: "zz"}} {
			_, err := s.ListLoggedModels(ctx, "ws", bad)
			wantCode(t, err, atelier.EINVALID, "ListLoggedModels(%+v)", bad)
		}
	})

	t.Run("ConcurrentParams", func(t *testing.T) {
		// Of 20 concurrent logs of one param with different values exactly one is kept.
		s, ctx := open(t), Context(t)
		MustCreateWorkspace(t, s, "ws")
		m, err := s.CreateLoggedModel(ctx, "ws", atelier.LoggedModelCreate{Experiment: "e", Name: "m"}, "")
		mustOK(t, err, "CreateLoggedModel")
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.UpdateLoggedModel(ctx, "ws", m.ID, atelier.LoggedModelUpdate{Params: map[string]string{"p": string(rune('a' + i))}})
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					won++
				} else if atelier.ErrorCode(err) != atelier.ECONFLICT {
					t.Errorf("concurrent param: %v", err)
				}
			}()
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("%d of 20 concurrent param values were kept, want 1", won)
		}
	})
}
