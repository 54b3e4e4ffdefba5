package storetest

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
)

func testRuns(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")

	t.Run("CreateFind", func(t *testing.T) {
		c := atelier.RunCreate{
			Experiment: "exp", Name: "first run", Compute: "local",
			Config:     json.RawMessage(`{"script": "train.py", "args": ["--lr", "0.1"]}`),
			SnapshotID: "abc123", Git: &atelier.GitInfo{Commit: "deadbeef", Branch: "main", Dirty: true},
			Params:     map[string]string{"lr": "0.1", "layers": "3"},
			Tags:       map[string]string{"team": "vision", "mlflow.runName": "x"},
			Properties: map[string]string{"azureml.runsource": "script"},
		}
		created := MustCreateRun(t, s, "ws", c)
		if created.ID == "" || created.Status != atelier.StatusNotStarted || created.StartedAt != nil || created.EndedAt != nil {
			t.Errorf("CreateRun = %+v, want an id, NotStarted, no start or end", created)
		}
		got := MustFindRun(t, s, "ws", created.ID)
		want := &atelier.Run{
			ID: created.ID, Workspace: "ws", Experiment: "exp", Name: "first run", Status: atelier.StatusNotStarted,
			CreatedAt: created.CreatedAt, CreatedBy: "tester", Compute: "local", Config: c.Config, SnapshotID: "abc123",
			Git:    &atelier.GitInfo{Commit: "deadbeef", Branch: "main", Dirty: true},
			Params: map[string]string{"lr": "0.1", "layers": "3"}, Tags: map[string]string{"team": "vision", "mlflow.runName": "x"},
			Properties: map[string]string{"azureml.runsource": "script"}, Metrics: map[string]atelier.Float{},
		}
		opts := cmp.Options{approxTime, cmp.Comparer(func(a, b json.RawMessage) bool { return jsonEqual(a, b) })}
		if diff := cmp.Diff(want, got, opts); diff != "" {
			t.Errorf("FindRun (-want +got):\n%s", diff)
		}
		if time.Since(got.CreatedAt) > time.Minute || time.Since(got.CreatedAt) < -time.Minute {
			t.Errorf("CreatedAt = %v, want about now", got.CreatedAt)
		}
		// Created active, a run has started.
		live := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "exp", Status: atelier.StatusRunning})
		if got := MustFindRun(t, s, "ws", live.ID); got.Status != atelier.StatusRunning || got.StartedAt == nil {
			t.Errorf("run created Running = %s, StartedAt %v; want Running with StartedAt", got.Status, got.StartedAt)
		}
	})

	t.Run("ReturnedRunMatchesStored", func(t *testing.T) {
		// What a write returns is what a read returns afterwards, times included: callers hand the
		// returned run to clients, who filter on its times (created_at >= ...).
		created := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "exp", Params: map[string]string{"a": "1"}})
		if diff := cmp.Diff(MustFindRun(t, s, "ws", created.ID), created); diff != "" {
			t.Errorf("CreateRun result differs from FindRun (-find +create):\n%s", diff)
		}
		started := MustSetStatus(t, s, "ws", created.ID, atelier.StatusRunning)
		if diff := cmp.Diff(MustFindRun(t, s, "ws", created.ID), started); diff != "" {
			t.Errorf("UpdateRunStatus(Running) result differs from FindRun (-find +update):\n%s", diff)
		}
		ended := MustSetStatus(t, s, "ws", created.ID, atelier.StatusCompleted)
		if diff := cmp.Diff(MustFindRun(t, s, "ws", created.ID), ended); diff != "" {
			t.Errorf("UpdateRunStatus(Completed) result differs from FindRun (-find +update):\n%s", diff)
		}
		ws := &atelier.Workspace{Name: "returned"}
		mustOK(t, s.CreateWorkspace(ctx, ws), "CreateWorkspace")
		found, err := s.FindWorkspace(ctx, "returned")
		mustOK(t, err, "FindWorkspace")
		if diff := cmp.Diff(found, ws); diff != "" {
			t.Errorf("CreateWorkspace result differs from FindWorkspace (-find +create):\n%s", diff)
		}
	})

	t.Run("CreateErrors", func(t *testing.T) {
		long := string(make([]byte, atelier.MaxKeyLength+1))
		for _, tc := range []struct {
			name string
			ws   string
			c    atelier.RunCreate
			code string
		}{
			{"no experiment", "ws", atelier.RunCreate{}, atelier.EINVALID},
			{"experiment with slash", "ws", atelier.RunCreate{Experiment: "a/b"}, atelier.EINVALID},
			{"terminal status", "ws", atelier.RunCreate{Experiment: "e", Status: atelier.StatusCompleted}, atelier.EINVALID},
			{"unknown status", "ws", atelier.RunCreate{Experiment: "e", Status: "Done"}, atelier.EINVALID},
			{"empty param key", "ws", atelier.RunCreate{Experiment: "e", Params: map[string]string{"": "x"}}, atelier.EINVALID},
			{"long tag key", "ws", atelier.RunCreate{Experiment: "e", Tags: map[string]string{long: "x"}}, atelier.EINVALID},
			{"bad config", "ws", atelier.RunCreate{Experiment: "e", Config: json.RawMessage(`{`)}, atelier.EINVALID},
			{"missing workspace", "nope", atelier.RunCreate{Experiment: "e"}, atelier.ENOTFOUND},
			{"missing parent", "ws", atelier.RunCreate{Experiment: "e", ParentID: "0123456789abcdef0123456789abcdef"}, atelier.ENOTFOUND},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := s.CreateRun(ctx, tc.ws, tc.c)
				wantCode(t, err, tc.code, "CreateRun(%+v)", tc.c)
			})
		}
		if _, err := s.FindExperiment(ctx, "ws", "e"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
			t.Errorf("refused CreateRun left experiment e behind (FindExperiment err %v)", err)
		}
	})

	t.Run("Children", func(t *testing.T) {
		parent := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "sweep"})
		c1 := MustCreateRun(t, s, "ws", atelier.RunCreate{ParentID: parent.ID, Name: "c1"})
		c2 := MustCreateRun(t, s, "ws", atelier.RunCreate{ParentID: parent.ID, Experiment: "elsewhere"})
		grandchild := MustCreateRun(t, s, "ws", atelier.RunCreate{ParentID: c1.ID})
		for _, tc := range []struct {
			run            *atelier.Run
			parent, exp    string
			wantChildCount int64
		}{
			{parent, "", "sweep", 2},
			{c1, parent.ID, "sweep", 1},
			{c2, parent.ID, "elsewhere", 0},
			{grandchild, c1.ID, "sweep", 0},
		} {
			got := MustFindRun(t, s, "ws", tc.run.ID)
			if got.ParentID != tc.parent || got.Experiment != tc.exp || got.ChildCount != tc.wantChildCount {
				t.Errorf("run %s: parent %q, experiment %q, %d children; want %q, %q, %d",
					tc.run.Name, got.ParentID, got.Experiment, got.ChildCount, tc.parent, tc.exp, tc.wantChildCount)
			}
		}
		if c1.Experiment != "sweep" {
			t.Errorf("CreateRun of a child without experiment returned experiment %q, want the parent's", c1.Experiment)
		}
		_, err := s.CreateRun(ctx, "other", atelier.RunCreate{ParentID: parent.ID})
		wantCode(t, err, atelier.ENOTFOUND, "CreateRun(parent in another workspace)")
		_, err = s.CreateRun(ctx, "other", atelier.RunCreate{Experiment: "x", ParentID: parent.ID})
		wantCode(t, err, atelier.ENOTFOUND, "CreateRun(parent in another workspace, with experiment)")
		if got := MustFindRun(t, s, "ws", parent.ID); got.ChildCount != 2 {
			t.Errorf("refused cross-workspace child counted: ChildCount %d, want 2", got.ChildCount)
		}
	})

	t.Run("OtherWorkspace", func(t *testing.T) {
		run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "exp", Status: atelier.StatusRunning,
			Tags: map[string]string{"t": "1"}})
		for _, tc := range []struct {
			name string
			call func(ws string) error
		}{
			{"FindRun", func(ws string) error { _, err := s.FindRun(ctx, ws, run.ID); return err }},
			{"UpdateRunStatus", func(ws string) error {
				_, err := s.UpdateRunStatus(ctx, ws, run.ID, atelier.RunStatusUpdate{Status: atelier.StatusCompleted})
				return err
			}},
			{"LogParams", func(ws string) error { return s.LogParams(ctx, ws, run.ID, map[string]string{"p": "1"}) }},
			{"SetTags", func(ws string) error { return s.SetTags(ctx, ws, run.ID, map[string]string{"t": "2"}) }},
			{"DeleteTag", func(ws string) error { return s.DeleteTag(ctx, ws, run.ID, "t") }},
			{"AddProperties", func(ws string) error { return s.AddProperties(ctx, ws, run.ID, map[string]string{"p": "1"}) }},
			{"LogMetrics", func(ws string) error {
				return s.LogMetrics(ctx, ws, run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "m", Value: 1}}})
			}},
			{"ListMetrics", func(ws string) error { _, err := s.ListMetrics(ctx, ws, run.ID); return err }},
			{"MetricHistory", func(ws string) error {
				_, err := s.MetricHistory(ctx, ws, run.ID, "m", atelier.HistoryQuery{})
				return err
			}},
			{"PutFile", func(ws string) error {
				return s.PutFile(ctx, ws, run.ID, &atelier.File{Path: "outputs/x", Digest: digestOf("x"), Size: 1})
			}},
			{"ListFiles", func(ws string) error { _, err := s.ListFiles(ctx, ws, run.ID, ""); return err }},
			{"AppendLog", func(ws string) error { _, err := s.AppendLog(ctx, ws, run.ID, "logs/x.txt", []byte("x")); return err }},
			{"ReadLog", func(ws string) error { _, err := s.ReadLog(ctx, ws, run.ID, "logs/x.txt", 0, 0); return err }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantCode(t, tc.call("other"), atelier.ENOTFOUND, "%s in another workspace", tc.name)
				wantCode(t, tc.call("missing"), atelier.ENOTFOUND, "%s in a missing workspace", tc.name)
			})
		}
		got := MustFindRun(t, s, "ws", run.ID)
		if got.Status != atelier.StatusRunning || len(got.Params) != 0 || len(got.Properties) != 0 || len(got.Metrics) != 0 ||
			got.Tags["t"] != "1" {
			t.Errorf("writes through another workspace changed the run: %+v", got)
		}
		files, err := s.ListFiles(ctx, "ws", run.ID, "")
		mustOK(t, err, "ListFiles")
		if len(files) != 0 {
			t.Errorf("writes through another workspace stored files: %v", files)
		}
		_, err = s.FindRun(ctx, "ws", "0123456789abcdef0123456789abcdef")
		wantCode(t, err, atelier.ENOTFOUND, "FindRun(missing id)")
	})

	t.Run("Params", func(t *testing.T) {
		run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "exp", Params: map[string]string{"lr": "0.1"}})
		mustOK(t, s.LogParams(ctx, "ws", run.ID, map[string]string{"lr": "0.1", "epochs": "10"}), "LogParams(same value + new key)")
		wantCode(t, s.LogParams(ctx, "ws", run.ID, map[string]string{"lr": "0.2"}), atelier.ECONFLICT, "LogParams(changed value)")
		// One conflicting key fails the whole call: none of the other keys of that call are written,
		// whatever order the store visits them in.
		batch := map[string]string{"lr": "0.3"}
		for i := range 50 {
			batch[fmt.Sprintf("new%02d", i)] = "v"
		}
		wantCode(t, s.LogParams(ctx, "ws", run.ID, batch), atelier.ECONFLICT, "LogParams(batch with one conflict)")
		wantCode(t, s.LogParams(ctx, "ws", run.ID, map[string]string{"": "x"}), atelier.EINVALID, "LogParams(empty key)")
		wantCode(t, s.LogParams(ctx, "ws", run.ID, map[string]string{"big": string(make([]byte, atelier.MaxParamValue+1))}),
			atelier.EINVALID, "LogParams(value too long)")
		got := MustFindRun(t, s, "ws", run.ID)
		if diff := cmp.Diff(map[string]string{"lr": "0.1", "epochs": "10"}, got.Params); diff != "" {
			t.Errorf("params (-want +got):\n%s", diff)
		}
	})

	t.Run("Tags", func(t *testing.T) {
		run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "exp", Tags: map[string]string{"stage": "dev"}})
		mustOK(t, s.SetTags(ctx, "ws", run.ID, map[string]string{"stage": "prod", "owner": "ana"}), "SetTags")
		if got := MustFindRun(t, s, "ws", run.ID).Tags; !cmp.Equal(got, map[string]string{"stage": "prod", "owner": "ana"}) {
			t.Errorf("tags after SetTags = %v, want stage=prod owner=ana", got)
		}
		mustOK(t, s.DeleteTag(ctx, "ws", run.ID, "stage"), "DeleteTag")
		if got := MustFindRun(t, s, "ws", run.ID).Tags; !cmp.Equal(got, map[string]string{"owner": "ana"}) {
			t.Errorf("tags after DeleteTag = %v, want owner=ana", got)
		}
		wantCode(t, s.DeleteTag(ctx, "ws", run.ID, "stage"), atelier.ENOTFOUND, "DeleteTag(deleted tag)")
		wantCode(t, s.DeleteTag(ctx, "ws", run.ID, "never"), atelier.ENOTFOUND, "DeleteTag(missing tag)")
		wantCode(t, s.SetTags(ctx, "ws", run.ID, map[string]string{" x": "1"}), atelier.EINVALID, "SetTags(leading space)")
	})

	t.Run("GivenStartTime", func(t *testing.T) {
		// A run created with its start time (an import, MLflow's start_time) keeps it, to the
		// millisecond, and is Running unless an active status is given.
		start := time.Date(2023, 11, 14, 22, 13, 20, 123456789, time.UTC)
		want := start.Truncate(time.Millisecond)
		created := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "started", StartedAt: &start})
		for _, got := range []*atelier.Run{created, MustFindRun(t, s, "ws", created.ID)} {
			if got.Status != atelier.StatusRunning || got.StartedAt == nil || !got.StartedAt.Equal(want) || got.EndedAt != nil {
				t.Errorf("run created with start %v = %s, StartedAt %v, EndedAt %v; want Running, StartedAt %v, not ended",
					start, got.Status, got.StartedAt, got.EndedAt, want)
			}
		}
		if time.Since(created.CreatedAt) > time.Minute {
			t.Errorf("CreatedAt = %v, want now (the start time is not the creation time)", created.CreatedAt)
		}
		prep := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "started", Status: atelier.StatusPreparing, StartedAt: &start})
		if prep.Status != atelier.StatusPreparing || prep.StartedAt == nil || !prep.StartedAt.Equal(want) {
			t.Errorf("Preparing run created with start %v = %s, StartedAt %v", start, prep.Status, prep.StartedAt)
		}
		epoch := time.Unix(0, 0)
		if r := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "started", StartedAt: &epoch}); r.StartedAt == nil || !r.StartedAt.Equal(epoch) {
			t.Errorf("run started at the epoch has StartedAt %v", r.StartedAt)
		}
		before, future := time.Unix(0, 0).Add(-time.Millisecond), time.Now().Add(atelier.MaxRunTimeAhead+time.Hour)
		for name, c := range map[string]atelier.RunCreate{
			"before 1970":    {Experiment: "refused-start", StartedAt: &before},
			"far in future":  {Experiment: "refused-start", StartedAt: &future},
			"not started":    {Experiment: "refused-start", Status: atelier.StatusNotStarted, StartedAt: &start},
			"queued started": {Experiment: "refused-start", Status: atelier.StatusQueued, StartedAt: &start},
		} {
			_, err := s.CreateRun(ctx, "ws", c)
			wantCode(t, err, atelier.EINVALID, "CreateRun(%s)", name)
		}
		if _, err := s.FindExperiment(ctx, "ws", "refused-start"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
			t.Errorf("refused CreateRun left its experiment behind (FindExperiment err %v)", err)
		}
	})

	t.Run("EqualStartTimesOrderByID", func(t *testing.T) {
		// MLflow's order: start time descending, then run id ascending; runs that share a start
		// time keep one order on every page.
		start := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
		later := start.Add(time.Second)
		var ids []string
		for range 5 {
			ids = append(ids, MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "ties", StartedAt: &start}).ID)
		}
		first := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "ties", StartedAt: &later}).ID
		sort.Strings(ids)
		want := append([]string{first}, ids...)
		var got []string
		q := atelier.RunQuery{Experiment: "ties", OrderBy: "started_at desc, id", Limit: 2}
		for {
			page, err := s.ListRuns(ctx, "ws", q)
			mustOK(t, err, "ListRuns(%+v)", q)
			for _, r := range page.Runs {
				got = append(got, r.ID)
			}
			if page.NextPageToken == "" || len(got) > len(want) {
				break
			}
			q.PageToken = page.NextPageToken
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("runs by started_at desc, id in pages of 2 (-want +got):\n%s", diff)
		}
	})

	t.Run("Properties", func(t *testing.T) {
		run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "exp", Properties: map[string]string{"source": "cli"}})
		mustOK(t, s.AddProperties(ctx, "ws", run.ID, map[string]string{"source": "cli", "hash": "h"}), "AddProperties")
		wantCode(t, s.AddProperties(ctx, "ws", run.ID, map[string]string{"source": "ui", "other": "o"}), atelier.ECONFLICT,
			"AddProperties(changed value)")
		if got := MustFindRun(t, s, "ws", run.ID).Properties; !cmp.Equal(got, map[string]string{"source": "cli", "hash": "h"}) {
			t.Errorf("properties = %v, want source=cli hash=h", got)
		}
	})
}

func testRunStatus(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")

	// newRunIn returns a run in status from, reached by a legal path.
	newRunIn := func(t *testing.T, from atelier.RunStatus) *atelier.Run {
		t.Helper()
		if !from.Terminal() {
			return MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "lifecycle", Status: from})
		}
		run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "lifecycle", Status: atelier.StatusRunning})
		return MustSetStatus(t, s, "ws", run.ID, from)
	}
	const (
		NotStarted      = atelier.StatusNotStarted
		Queued          = atelier.StatusQueued
		Preparing       = atelier.StatusPreparing
		Running         = atelier.StatusRunning
		Finalizing      = atelier.StatusFinalizing
		CancelRequested = atelier.StatusCancelRequested
		Completed       = atelier.StatusCompleted
		Failed          = atelier.StatusFailed
		Canceled        = atelier.StatusCanceled
	)
	for _, tc := range []struct {
		from, to atelier.RunStatus
		code     string
	}{
		{NotStarted, Queued, ""},
		{NotStarted, Running, ""},
		{NotStarted, Completed, ""},
		{Queued, Preparing, ""},
		{Queued, Canceled, ""},
		{Preparing, Running, ""},
		{Running, Finalizing, ""},
		{Running, CancelRequested, ""},
		{Running, Failed, ""},
		{Finalizing, Completed, ""},
		{CancelRequested, Canceled, ""},
		{CancelRequested, Failed, ""},
		{Running, Running, atelier.ECONFLICT},
		{Running, Queued, atelier.ECONFLICT},
		{Running, NotStarted, atelier.ECONFLICT},
		{Finalizing, Running, atelier.ECONFLICT},
		{CancelRequested, Running, atelier.ECONFLICT},
		{Completed, Running, atelier.ECONFLICT},
		{Completed, Failed, atelier.ECONFLICT},
		{Failed, Completed, atelier.ECONFLICT},
		{Canceled, Queued, atelier.ECONFLICT},
		{Running, "Done", atelier.EINVALID},
	} {
		t.Run(fmt.Sprintf("%s→%s", tc.from, tc.to), func(t *testing.T) {
			run := newRunIn(t, tc.from)
			_, err := s.UpdateRunStatus(ctx, "ws", run.ID, atelier.RunStatusUpdate{Status: tc.to})
			wantCode(t, err, tc.code, "UpdateRunStatus(%s → %s)", tc.from, tc.to)
			want := tc.to
			if tc.code != "" {
				want = tc.from
			}
			if got := MustFindRun(t, s, "ws", run.ID); got.Status != want {
				t.Errorf("status after %s → %s is %s, want %s", tc.from, tc.to, got.Status, want)
			}
		})
	}

	t.Run("Times", func(t *testing.T) {
		run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "lifecycle"})
		queued := MustSetStatus(t, s, "ws", run.ID, Queued)
		if queued.StartedAt != nil || queued.EndedAt != nil {
			t.Errorf("Queued run has StartedAt %v, EndedAt %v; want neither", queued.StartedAt, queued.EndedAt)
		}
		MustSetStatus(t, s, "ws", run.ID, Running)
		got := MustFindRun(t, s, "ws", run.ID)
		if got.StartedAt == nil || got.EndedAt != nil {
			t.Fatalf("Running run has StartedAt %v, EndedAt %v; want StartedAt only", got.StartedAt, got.EndedAt)
		}
		if got.StartedAt.Before(got.CreatedAt) {
			t.Errorf("StartedAt %v before CreatedAt %v", got.StartedAt, got.CreatedAt)
		}
		startedAt := *got.StartedAt
		time.Sleep(5 * time.Millisecond)
		MustSetStatus(t, s, "ws", run.ID, Finalizing)
		MustSetStatus(t, s, "ws", run.ID, Completed)
		got = MustFindRun(t, s, "ws", run.ID)
		if got.StartedAt == nil || !got.StartedAt.Equal(startedAt) {
			t.Errorf("StartedAt changed from %v to %v on later transitions", startedAt, got.StartedAt)
		}
		if got.EndedAt == nil || got.EndedAt.Before(startedAt.Add(time.Millisecond)) {
			t.Errorf("Completed run has EndedAt %v, want set after StartedAt %v (5ms earlier)", got.EndedAt, startedAt)
		}
		if d := got.Duration(time.Now()); d <= 0 || d > time.Minute {
			t.Errorf("Duration = %v, want a few milliseconds", d)
		}
	})

	t.Run("GivenEndTime", func(t *testing.T) {
		// An update that ends a run with its end time (MLflow's end_time) keeps it, even before
		// the start (clients' clocks differ); one that does not end the run ignores it.
		start := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
		end := start.Add(90*time.Second + 500*time.Microsecond)
		run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "lifecycle", StartedAt: &start})
		fin, err := s.UpdateRunStatus(ctx, "ws", run.ID, atelier.RunStatusUpdate{Status: Finalizing, EndedAt: &end})
		mustOK(t, err, "UpdateRunStatus(Finalizing, end)")
		if fin.EndedAt != nil {
			t.Errorf("Finalizing run has EndedAt %v, want none (the end time is for an update that ends the run)", fin.EndedAt)
		}
		upd, err := s.UpdateRunStatus(ctx, "ws", run.ID, atelier.RunStatusUpdate{Status: Completed, EndedAt: &end})
		mustOK(t, err, "UpdateRunStatus(Completed, end)")
		for _, got := range []*atelier.Run{upd, MustFindRun(t, s, "ws", run.ID)} {
			if got.EndedAt == nil || !got.EndedAt.Equal(end.Truncate(time.Millisecond)) || got.StartedAt == nil || !got.StartedAt.Equal(start) {
				t.Errorf("run ended at %v = StartedAt %v, EndedAt %v; want %v, %v", end, got.StartedAt, got.EndedAt, start, end.Truncate(time.Millisecond))
			}
			if d := got.Duration(time.Now()); d != 90*time.Second {
				t.Errorf("Duration = %v, want 1m30s", d)
			}
		}
		early := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "lifecycle", Status: Running})
		upd, err = s.UpdateRunStatus(ctx, "ws", early.ID, atelier.RunStatusUpdate{Status: Failed, EndedAt: &start})
		mustOK(t, err, "UpdateRunStatus(Failed, end before start)")
		if upd.EndedAt == nil || !upd.EndedAt.Equal(start) {
			t.Errorf("run ended before its start has EndedAt %v, want %v as given", upd.EndedAt, start)
		}
		before, future := time.Unix(0, 0).Add(-time.Second), time.Now().Add(atelier.MaxRunTimeAhead+time.Hour)
		for _, bad := range []time.Time{before, future} {
			r := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "lifecycle", Status: Running})
			_, err := s.UpdateRunStatus(ctx, "ws", r.ID, atelier.RunStatusUpdate{Status: Completed, EndedAt: &bad})
			wantCode(t, err, atelier.EINVALID, "UpdateRunStatus(Completed, end %v)", bad)
			if got := MustFindRun(t, s, "ws", r.ID); got.Status != Running || got.EndedAt != nil {
				t.Errorf("refused end left the run %s, EndedAt %v", got.Status, got.EndedAt)
			}
		}
	})

	t.Run("FailedKeepsErrorAndExitCode", func(t *testing.T) {
		run := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "lifecycle", Status: Running})
		upd, err := s.UpdateRunStatus(ctx, "ws", run.ID, atelier.RunStatusUpdate{Status: Failed, Error: "Traceback: boom", ExitCode: ptr(3)})
		mustOK(t, err, "UpdateRunStatus(Failed)")
		for _, got := range []*atelier.Run{upd, MustFindRun(t, s, "ws", run.ID)} {
			if got.Status != Failed || got.Error != "Traceback: boom" || got.ExitCode == nil || *got.ExitCode != 3 || got.EndedAt == nil {
				t.Errorf("failed run = status %s, error %q, exit code %v, ended %v; want Failed, the error, 3, ended",
					got.Status, got.Error, got.ExitCode, got.EndedAt)
			}
		}
		// A refused transition changes nothing, not even the error.
		_, err = s.UpdateRunStatus(ctx, "ws", run.ID, atelier.RunStatusUpdate{Status: Completed, Error: "other", ExitCode: ptr(0)})
		wantCode(t, err, atelier.ECONFLICT, "UpdateRunStatus(Failed → Completed)")
		if got := MustFindRun(t, s, "ws", run.ID); got.Error != "Traceback: boom" || got.ExitCode == nil || *got.ExitCode != 3 {
			t.Errorf("refused transition changed error %q / exit code %v", got.Error, got.ExitCode)
		}
		// An exit code of 0 is kept too (it is not "no exit code").
		ok := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "lifecycle", Status: Running})
		_, err = s.UpdateRunStatus(ctx, "ws", ok.ID, atelier.RunStatusUpdate{Status: Completed, ExitCode: ptr(0)})
		mustOK(t, err, "UpdateRunStatus(Completed, exit 0)")
		if got := MustFindRun(t, s, "ws", ok.ID); got.ExitCode == nil || *got.ExitCode != 0 || got.Error != "" {
			t.Errorf("completed run exit code %v, error %q; want 0 and no error", got.ExitCode, got.Error)
		}
	})
}

func testReconcileRuns(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "a")
	MustCreateWorkspace(t, s, "b")
	status := map[string]atelier.RunStatus{} // run id → status expected after reconciling
	var active []string
	// Runs a server executed (a compute target), the child runs their scripts made, and
	// interactive runs, which clients drive and reconciling must leave alone.
	for _, compute := range []string{"local", ""} {
		for i, st := range atelier.RunStatuses {
			ws := []string{"a", "b"}[i%2]
			create := func(parent string, st atelier.RunStatus) *atelier.Run {
				c := atelier.RunCreate{Experiment: "e", Status: st, ParentID: parent}
				if parent == "" {
					c.Compute = compute
				}
				if !st.Terminal() {
					return MustCreateRun(t, s, ws, c)
				}
				c.Status = atelier.StatusRunning
				run := MustCreateRun(t, s, ws, c)
				_, err := s.UpdateRunStatus(ctx, ws, run.ID, atelier.RunStatusUpdate{Status: st, Error: "own error"})
				mustOK(t, err, "UpdateRunStatus")
				return run
			}
			run := create("", st)
			child := create(run.ID, atelier.StatusRunning)
			status[run.ID], status[child.ID] = st, atelier.StatusRunning
			if compute != "" && st.Active() { // a script the dead server ran, and its child
				status[run.ID], status[child.ID] = atelier.StatusFailed, atelier.StatusFailed
				active = append(active, run.ID, child.ID)
			}
		}
	}
	// A leased run (its controller recovers it through its driver) and its child stay as they are.
	MustCreateRun(t, s, "a", atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "leased"})
	claimed, err := s.ClaimRuns(ctx, "", "leased", "server-1", 1, time.Now().Add(time.Minute))
	mustOK(t, err, "ClaimRuns")
	leasedChild := MustCreateRun(t, s, "a", atelier.RunCreate{Experiment: "e", Status: atelier.StatusRunning, ParentID: claimed[0].ID})
	status[claimed[0].ID], status[leasedChild.ID] = atelier.StatusPreparing, atelier.StatusRunning

	failed, err := s.ReconcileRuns(ctx, "the server restarted")
	mustOK(t, err, "ReconcileRuns")
	if diff := cmp.Diff(sorted(active), sorted(runIDs(failed))); diff != "" {
		t.Errorf("ReconcileRuns returned (-want +got):\n%s", diff)
	}
	for _, r := range failed {
		if r.Status != atelier.StatusFailed || r.Error != "the server restarted" || r.EndedAt == nil {
			t.Errorf("reconciled run %s returned as %s, error %q, ended %v", r.ID, r.Status, r.Error, r.EndedAt)
		}
	}
	for _, ws := range []string{"a", "b"} {
		page, err := s.ListRuns(ctx, ws, atelier.RunQuery{})
		mustOK(t, err, "ListRuns")
		for _, r := range page.Runs {
			if r.Status != status[r.ID] {
				t.Errorf("after ReconcileRuns run %s is %s, want %s", r.ID, r.Status, status[r.ID])
			}
			wantErr := ""
			switch {
			case sortedContains(active, r.ID):
				wantErr = "the server restarted"
			case r.Status.Terminal():
				wantErr = "own error"
			}
			if r.Error != wantErr {
				t.Errorf("after ReconcileRuns run %s (%s) has error %q, want %q", r.ID, r.Status, r.Error, wantErr)
			}
			if sortedContains(active, r.ID) && r.EndedAt == nil {
				t.Errorf("reconciled run %s has no EndedAt", r.ID)
			}
		}
	}
	again, err := s.ReconcileRuns(ctx, "twice")
	mustOK(t, err, "ReconcileRuns again")
	if len(again) != 0 {
		t.Errorf("second ReconcileRuns failed %d runs, want 0", len(again))
	}
}

func sortedContains(list []string, s string) bool {
	list = sorted(list)
	i := sort.SearchStrings(list, s)
	return i < len(list) && list[i] == s
}

// testRunStatuses: the statuses of many runs in one read, whatever their workspace; runs that
// do not exist are absent, not errors.
func testRunStatuses(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "a")
	running := MustCreateRun(t, s, "a", atelier.RunCreate{Experiment: "e", Status: atelier.StatusRunning, Compute: "gpu"})
	MustCreateWorkspace(t, s, "b")
	queued := MustCreateRun(t, s, "b", atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "gpu"})
	ended := MustCreateRun(t, s, "a", atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "gpu"})
	MustSetStatus(t, s, "a", ended.ID, atelier.StatusCanceled)
	got, err := s.RunStatuses(ctx, []string{running.ID, queued.ID, ended.ID, "no-such-run"})
	mustOK(t, err, "RunStatuses")
	want := map[string]atelier.RunStatus{running.ID: atelier.StatusRunning, queued.ID: atelier.StatusQueued, ended.ID: atelier.StatusCanceled}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RunStatuses (-want +got):\n%s", diff)
	}
	if got, err := s.RunStatuses(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("RunStatuses(nil) = %v, %v; want none", got, err)
	}
}

// testQueuedRuns: the scheduler's queue of a compute target holds only its Queued runs, from
// every workspace, oldest (created_at, then id) first, so runs start in the order they were
// submitted.
func testQueuedRuns(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "a")
	MustCreateWorkspace(t, s, "b")

	var want []*atelier.Run // the runs queued on "gpu", in creation order
	queue := func(ws string) {
		want = append(want, MustCreateRun(t, s, ws, atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "gpu"}))
	}
	// Created first, queued last: the queue is ordered by creation, not by when a run was queued.
	late := MustCreateRun(t, s, "b", atelier.RunCreate{Experiment: "e", Compute: "gpu"})
	want = append(want, late)
	for i := range 4 {
		ws := []string{"a", "b"}[i%2]
		queue(ws)
		// Not in the queue: other targets, interactive runs, runs not yet queued or already
		// taken from the queue, or canceled while queued.
		MustCreateRun(t, s, ws, atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "gpu-2"})
		MustCreateRun(t, s, ws, atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued})
		MustCreateRun(t, s, ws, atelier.RunCreate{Experiment: "e", Compute: "gpu"})
		MustCreateRun(t, s, ws, atelier.RunCreate{Experiment: "e", Status: atelier.StatusRunning, Compute: "gpu"})
		taken := MustCreateRun(t, s, ws, atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "gpu"})
		MustSetStatus(t, s, ws, taken.ID, atelier.StatusPreparing)
		canceled := MustCreateRun(t, s, ws, atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "gpu"})
		MustSetStatus(t, s, ws, canceled.ID, atelier.StatusCanceled)
	}
	want[0] = MustSetStatus(t, s, "b", late.ID, atelier.StatusQueued)

	got, err := s.QueuedRuns(ctx, "gpu", 1000)
	mustOK(t, err, "QueuedRuns(gpu)")
	if diff := cmp.Diff(runIDs(want), runIDs(got)); diff != "" {
		t.Fatalf("QueuedRuns(gpu) in creation order (-want +got):\n%s", diff)
	}
	for i, r := range got {
		// Whole runs, each with its own workspace, as a read of it returns.
		if diff := cmp.Diff(MustFindRun(t, s, want[i].Workspace, r.ID), r); diff != "" {
			t.Errorf("QueuedRuns(gpu)[%d] differs from FindRun (-find +queued):\n%s", i, diff)
		}
		if i > 0 {
			p := got[i-1]
			if p.CreatedAt.After(r.CreatedAt) || (p.CreatedAt.Equal(r.CreatedAt) && p.ID > r.ID) {
				t.Errorf("QueuedRuns(gpu): %s (created %v) before %s (created %v), want created_at then id order",
					p.ID, p.CreatedAt, r.ID, r.CreatedAt)
			}
		}
	}

	for _, limit := range []int{1, 3} {
		got, err := s.QueuedRuns(ctx, "gpu", limit)
		mustOK(t, err, "QueuedRuns(gpu, %d)", limit)
		if diff := cmp.Diff(runIDs(want[:limit]), runIDs(got)); diff != "" {
			t.Errorf("QueuedRuns(gpu, %d): want the oldest (-want +got):\n%s", limit, diff)
		}
	}
	if got, err := s.QueuedRuns(ctx, "gpu-2", 1000); err != nil || len(got) != 4 {
		t.Errorf("QueuedRuns(gpu-2) = %d runs, %v; want 4", len(got), err)
	}
	if got, err := s.QueuedRuns(ctx, "nowhere", 10); err != nil || len(got) != 0 {
		t.Errorf("QueuedRuns(nowhere) = %v, %v; want none", runIDs(got), err)
	}
}

// testQueuedRunsSameMillisecond: runs created within one millisecond (the precision of
// created_at) still leave the queue in the order they were created, whatever their workspace.
func testQueuedRunsSameMillisecond(t *testing.T, open func(t *testing.T, now func() time.Time) atelier.Store) {
	instant := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	s := open(t, func() time.Time { return instant })
	ctx := Context(t)
	MustCreateWorkspace(t, s, "a")
	MustCreateWorkspace(t, s, "b")
	var want []string
	for i := range 20 {
		ws := []string{"a", "b", "b", "a", "a"}[i%5]
		r := MustCreateRun(t, s, ws, atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "gpu"})
		if !r.CreatedAt.Equal(instant) {
			t.Fatalf("run created at %v with the clock pinned to %v: the store must read the clock it is given", r.CreatedAt, instant)
		}
		want = append(want, r.ID)
		MustCreateRun(t, s, ws, atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "cpu"})
	}
	got, err := s.QueuedRuns(ctx, "gpu", 1000)
	mustOK(t, err, "QueuedRuns(gpu)")
	if diff := cmp.Diff(want, runIDs(got)); diff != "" {
		t.Errorf("QueuedRuns(gpu) of runs created in one millisecond, in creation order (-want +got):\n%s", diff)
	}
	got, err = s.QueuedRuns(ctx, "gpu", 7)
	mustOK(t, err, "QueuedRuns(gpu, 7)")
	if diff := cmp.Diff(want[:7], runIDs(got)); diff != "" {
		t.Errorf("QueuedRuns(gpu, 7) of runs created in one millisecond (-want +got):\n%s", diff)
	}
}
