package storetest

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// qrun is the model of one run of the query fixture: the expected results of every filter and
// ordering are computed from it.
type qrun struct {
	id, name, exp, alpha, epochs, team string // "" team: no tag
	status                             atelier.RunStatus
	rmse                               float64 // NaN when nan is set
	hasRMSE, nan                       bool
}

// queryFixture creates 30 runs with varied metrics, params, tags and statuses in workspace "q".
func queryFixture(t *testing.T, s atelier.Store) []*qrun {
	t.Helper()
	ctx := Context(t)
	MustCreateWorkspace(t, s, "q")
	statuses := []atelier.RunStatus{atelier.StatusCompleted, atelier.StatusFailed, atelier.StatusRunning,
		atelier.StatusNotStarted, atelier.StatusCompleted}
	var runs []*qrun
	for i := range 30 {
		r := &qrun{
			name:   fmt.Sprintf("run-%02d", i),
			exp:    []string{"exp-a", "exp-b"}[i%2],
			alpha:  []string{"0.1", "0.5", "1.0"}[i%3],
			epochs: "10",
			team:   []string{"vision", "nlp", "Vision", ""}[i%4],
			status: statuses[i%5],
		}
		if i%10 == 9 {
			r.name = fmt.Sprintf("Sweep-%02d", i)
		}
		if i == 7 {
			r.epochs = "10.0"
		}
		if i%7 != 6 {
			r.hasRMSE, r.rmse = true, float64(100-3*i)
		}
		if i == 12 {
			r.nan, r.rmse = true, math.NaN()
		}
		c := atelier.RunCreate{Experiment: r.exp, Name: r.name, Params: map[string]string{"alpha": r.alpha, "epochs": r.epochs}}
		if r.team != "" {
			c.Tags = map[string]string{"team": r.team}
		}
		run := MustCreateRun(t, s, "q", c)
		r.id = run.ID
		if r.status != atelier.StatusNotStarted {
			MustSetStatus(t, s, "q", run.ID, atelier.StatusRunning)
			if r.status != atelier.StatusRunning {
				MustSetStatus(t, s, "q", run.ID, r.status)
			}
		}
		if r.hasRMSE {
			// An earlier, larger step with another value: only the latest value is searched.
			MustLogMetrics(t, s, "q", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{
				{Name: "rmse", Step: step(0), Value: -1000},
				{Name: "rmse", Step: step(1), Value: atelier.Float(r.rmse)},
				{Name: "other", Step: step(0), Value: 1},
			}})
		}
		runs = append(runs, r)
	}
	// A run of another workspace must never show up.
	MustCreateWorkspace(t, s, "q-other")
	MustCreateRun(t, s, "q-other", atelier.RunCreate{Experiment: "exp-a", Name: "run-00", Params: map[string]string{"alpha": "0.1"}})
	_ = ctx
	return runs
}

// listAll lists every run matching q, asserting one page suffices.
func listAll(t *testing.T, s atelier.Store, ws string, q atelier.RunQuery) []*atelier.Run {
	t.Helper()
	q.Limit = 1000
	page, err := s.ListRuns(Context(t), ws, q)
	if err != nil {
		t.Fatalf("ListRuns(%+v): %v", q, err)
	}
	if page.NextPageToken != "" {
		t.Fatalf("ListRuns(%+v): unexpected next page", q)
	}
	return page.Runs
}

func testQueries(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	runs := queryFixture(t, s)
	byName := func(rs []*qrun) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.name)
		}
		return out
	}
	where := func(pred func(r *qrun) bool) []string {
		var out []string
		for _, r := range runs {
			if pred(r) {
				out = append(out, r.name)
			}
		}
		return sorted(out)
	}
	valid := func(r *qrun) bool { return r.hasRMSE && !r.nan }

	t.Run("Filters", func(t *testing.T) {
		for _, tc := range []struct {
			filter string
			want   func(r *qrun) bool
		}{
			{"", func(r *qrun) bool { return true }},
			{`metrics.rmse < 60 and params.alpha = '0.1' and tags.team = 'vision' and status = 'Completed'`, func(r *qrun) bool {
				return valid(r) && r.rmse < 60 && r.alpha == "0.1" && r.team == "vision" && r.status == atelier.StatusCompleted
			}},
			{`tags.team = 'vision' or tags.team = 'nlp'`, func(r *qrun) bool { return r.team == "vision" || r.team == "nlp" }},
			{`not tags.team = 'vision'`, func(r *qrun) bool { return r.team != "vision" }},
			{`(params.alpha = '0.1' or params.alpha = '0.5') and not (status = 'Failed' or status = 'Running')`, func(r *qrun) bool {
				return (r.alpha == "0.1" || r.alpha == "0.5") && r.status != atelier.StatusFailed && r.status != atelier.StatusRunning
			}},
			{`params.alpha = '0.1' or params.alpha = '0.5' and status = 'Failed'`, func(r *qrun) bool { // and binds tighter
				return r.alpha == "0.1" || (r.alpha == "0.5" && r.status == atelier.StatusFailed)
			}},
			{`params.alpha in ('0.1', '1.0')`, func(r *qrun) bool { return r.alpha == "0.1" || r.alpha == "1.0" }},
			{`params.alpha not in ('0.1', '1.0')`, func(r *qrun) bool { return r.alpha == "0.5" }},
			{`status in ('running', 'NOTSTARTED')`, func(r *qrun) bool {
				return r.status == atelier.StatusRunning || r.status == atelier.StatusNotStarted
			}},
			{`status != 'Completed'`, func(r *qrun) bool { return r.status != atelier.StatusCompleted }},
			{`tags.team like 'vis%'`, func(r *qrun) bool { return r.team == "vision" }},
			{`tags.team like 'V_sion'`, func(r *qrun) bool { return r.team == "Vision" }},
			{`tags.team ilike 'VIS%'`, func(r *qrun) bool { return r.team == "vision" || r.team == "Vision" }},
			{`tags.team ilike '%o_'`, func(r *qrun) bool { return r.team == "vision" || r.team == "Vision" }},
			{`tags.team is null`, func(r *qrun) bool { return r.team == "" }},
			{`tags.team is not null and params.alpha = '1.0'`, func(r *qrun) bool { return r.team != "" && r.alpha == "1.0" }},
			{`metrics.rmse is null`, func(r *qrun) bool { return !r.hasRMSE }},
			{`metrics.rmse is not null`, func(r *qrun) bool { return r.hasRMSE }},
			{`metrics.rmse >= 40`, func(r *qrun) bool { return valid(r) && r.rmse >= 40 }},
			{`metrics.rmse > 40 and metrics.rmse <= 70`, func(r *qrun) bool { return valid(r) && r.rmse > 40 && r.rmse <= 70 }},
			{`metrics.rmse = 58`, func(r *qrun) bool { return valid(r) && r.rmse == 58 }},
			{`metrics.rmse != 58`, func(r *qrun) bool { return valid(r) && r.rmse != 58 }},
			{`metrics.rmse <= 1e9`, valid}, // NaN never matches a comparison
			{`metrics.rmse > -inf`, valid}, // not even with infinities
			{`metrics.rmse = nan`, func(*qrun) bool { return false }},
			{`metrics.rmse in (100, 61, 13)`, func(r *qrun) bool { return valid(r) && (r.rmse == 100 || r.rmse == 61 || r.rmse == 13) }},
			{`metrics.other = 1 and metrics.rmse < 0`, func(*qrun) bool { return false }}, // -1000 is not the latest value
			{`metrics.missing > 0 or metrics.missing is not null`, func(*qrun) bool { return false }},
			{`name = 'run-05'`, func(r *qrun) bool { return r.name == "run-05" }},
			{`attributes.name like 'run-1%'`, func(r *qrun) bool { return strings.HasPrefix(r.name, "run-1") }},
			{`name like 'sweep%'`, func(*qrun) bool { return false }}, // like is case-sensitive
			{`run_name ilike 'sweep%'`, func(r *qrun) bool { return strings.HasPrefix(r.name, "Sweep") }},
			{`experiment = 'exp-b' and params.alpha = '0.5'`, func(r *qrun) bool { return r.exp == "exp-b" && r.alpha == "0.5" }},
			{`created_by = 'tester'`, func(*qrun) bool { return true }},
			{`ended_at is not null`, func(r *qrun) bool { return r.status.Terminal() }},
			{`started_at is null`, func(r *qrun) bool { return r.status == atelier.StatusNotStarted }},
			{`duration is null`, func(r *qrun) bool { return r.status == atelier.StatusNotStarted }},
		} {
			t.Run(tc.filter, func(t *testing.T) {
				got := listAll(t, s, "q", atelier.RunQuery{Filter: tc.filter})
				if diff := cmp.Diff(where(tc.want), sorted(runNames(got))); diff != "" {
					t.Errorf("ListRuns(filter %q) (-want +got):\n%s", tc.filter, diff)
				}
			})
		}
	})

	t.Run("ParamNumberComparedAsWritten", func(t *testing.T) {
		// docs/filter.md: a number compared with a param is compared as text, exactly as written.
		for _, tc := range []struct {
			filter string
			want   func(r *qrun) bool
		}{
			{`params.epochs = 10`, func(r *qrun) bool { return r.epochs == "10" }},
			{`params.epochs = 10.0`, func(r *qrun) bool { return r.epochs == "10.0" }},
			{`params.alpha = 1.0`, func(r *qrun) bool { return r.alpha == "1.0" }},
			{`params.alpha = 0.1`, func(r *qrun) bool { return r.alpha == "0.1" }},
		} {
			t.Run(tc.filter, func(t *testing.T) {
				got := listAll(t, s, "q", atelier.RunQuery{Filter: tc.filter})
				if diff := cmp.Diff(where(tc.want), sorted(runNames(got))); diff != "" {
					t.Errorf("ListRuns(filter %q) (-want +got):\n%s", tc.filter, diff)
				}
			})
		}
	})

	t.Run("ListedRunsAreComplete", func(t *testing.T) {
		for _, r := range listAll(t, s, "q", atelier.RunQuery{Filter: `name in ('run-00', 'run-12', 'run-06')`}) {
			if diff := cmp.Diff(MustFindRun(t, s, "q", r.ID), r, cmp.Comparer(func(a, b atelier.Float) bool {
				return math.Float64bits(float64(a)) == math.Float64bits(float64(b))
			})); diff != "" {
				t.Errorf("listed run %s differs from FindRun (-find +list):\n%s", r.Name, diff)
			}
		}
	})

	t.Run("OrderBy", func(t *testing.T) {
		var withRMSE, without []*qrun
		for _, r := range runs {
			if valid(r) {
				withRMSE = append(withRMSE, r)
			} else {
				without = append(without, r)
			}
		}
		asc := slices.Clone(withRMSE)
		sort.Slice(asc, func(i, j int) bool { return asc[i].rmse < asc[j].rmse })
		desc := slices.Clone(asc)
		slices.Reverse(desc)
		for _, tc := range []struct {
			orderBy string
			head    []string // the ordered runs
		}{
			{"metrics.rmse", byName(asc)},
			{"metrics.rmse asc", byName(asc)},
			{"metrics.rmse DESC", byName(desc)},
		} {
			t.Run(tc.orderBy, func(t *testing.T) {
				got := runNames(listAll(t, s, "q", atelier.RunQuery{OrderBy: tc.orderBy}))
				if len(got) != len(runs) {
					t.Fatalf("ListRuns(order by %q) returned %d runs, want %d", tc.orderBy, len(got), len(runs))
				}
				if diff := cmp.Diff(tc.head, got[:len(tc.head)]); diff != "" {
					t.Errorf("ListRuns(order by %q) head (-want +got):\n%s", tc.orderBy, diff)
				}
				// Runs without the metric (or with NaN) come last, whatever the direction.
				if diff := cmp.Diff(sorted(byName(without)), sorted(got[len(tc.head):])); diff != "" {
					t.Errorf("ListRuns(order by %q) tail (-want +got):\n%s", tc.orderBy, diff)
				}
			})
		}
		byKeys := func(less func(a, b *qrun) int) []string {
			rs := slices.Clone(runs)
			slices.SortStableFunc(rs, less)
			return byName(rs)
		}
		for _, tc := range []struct {
			orderBy string
			want    []string
		}{
			{"name", byKeys(func(a, b *qrun) int { return strings.Compare(a.name, b.name) })},
			{"attributes.name desc", byKeys(func(a, b *qrun) int { return strings.Compare(b.name, a.name) })},
			{"params.alpha desc, name", byKeys(func(a, b *qrun) int {
				if c := strings.Compare(b.alpha, a.alpha); c != 0 {
					return c
				}
				return strings.Compare(a.name, b.name)
			})},
			{"experiment, params.alpha, name desc", byKeys(func(a, b *qrun) int {
				if c := strings.Compare(a.exp, b.exp); c != 0 {
					return c
				}
				if c := strings.Compare(a.alpha, b.alpha); c != 0 {
					return c
				}
				return strings.Compare(b.name, a.name)
			})},
		} {
			t.Run(tc.orderBy, func(t *testing.T) {
				got := runNames(listAll(t, s, "q", atelier.RunQuery{OrderBy: tc.orderBy}))
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("ListRuns(order by %q) (-want +got):\n%s", tc.orderBy, diff)
				}
			})
		}
		// Filter and ordering together.
		got := runNames(listAll(t, s, "q", atelier.RunQuery{Filter: "params.alpha = '0.5'", OrderBy: "metrics.rmse desc"}))
		var want []string
		for _, r := range desc {
			if r.alpha == "0.5" {
				want = append(want, r.name)
			}
		}
		if len(got) < len(want) || !cmp.Equal(want, got[:len(want)]) {
			t.Errorf("ListRuns(filter alpha 0.5, order by rmse desc) = %v, want it to start with %v", got, want)
		}
	})

	t.Run("NoMatchIsAnEmptyList", func(t *testing.T) {
		for _, q := range []atelier.RunQuery{{Filter: "params.alpha = 'none'"}, {OrderBy: "metrics.rmse desc", Filter: "name = 'none'"},
			{Experiment: "exp-none"}} {
			page, err := s.ListRuns(ctx, "q", q)
			if err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND {
				t.Fatalf("ListRuns(%+v): %v", q, err)
			}
			if err == nil && (page.Runs == nil || len(page.Runs) != 0) {
				t.Errorf("ListRuns(%+v).Runs = %#v, want an empty list (JSON [])", q, page.Runs)
			}
		}
	})

	t.Run("Pagination", func(t *testing.T) {
		for _, q := range []atelier.RunQuery{
			{Limit: 7},
			{Limit: 1},
			{Limit: 30},
			{Limit: 4, OrderBy: "metrics.rmse desc, name"},
			{Limit: 3, Filter: "tags.team is not null", OrderBy: "params.alpha"},
		} {
			t.Run(fmt.Sprintf("%+v", q), func(t *testing.T) {
				all := runIDs(listAll(t, s, "q", atelier.RunQuery{Filter: q.Filter, OrderBy: q.OrderBy}))
				var got []string
				pages := 0
				for {
					page, err := s.ListRuns(ctx, "q", q)
					mustOK(t, err, "ListRuns(%+v)", q)
					pages++
					if len(page.Runs) > q.Limit {
						t.Fatalf("page of %d runs, limit %d", len(page.Runs), q.Limit)
					}
					got = append(got, runIDs(page.Runs)...)
					if page.NextPageToken == "" {
						break
					}
					if pages > 100 {
						t.Fatal("pagination does not end")
					}
					q.PageToken = page.NextPageToken
				}
				// Every run exactly once, in the order of the unpaginated list.
				if diff := cmp.Diff(all, got); diff != "" {
					t.Errorf("paginated ids (-unpaginated +paginated):\n%s", diff)
				}
				if wantPages := max(1, (len(all)+q.Limit-1)/q.Limit); pages < wantPages || pages > wantPages+1 {
					t.Errorf("%d pages for %d runs by %d, want %d", pages, len(all), q.Limit, wantPages)
				}
			})
		}
		page, err := s.ListRuns(ctx, "q", atelier.RunQuery{})
		mustOK(t, err, "ListRuns(no limit)")
		if len(page.Runs) != len(runs) || page.NextPageToken != "" {
			t.Errorf("default page: %d runs, next %q; want all %d runs", len(page.Runs), page.NextPageToken, len(runs))
		}
		page, err = s.ListRuns(ctx, "q", atelier.RunQuery{Limit: atelier.MaxPageSize})
		mustOK(t, err, "ListRuns(max limit)")
		if len(page.Runs) != len(runs) {
			t.Errorf("limit %d: %d runs, want %d", atelier.MaxPageSize, len(page.Runs), len(runs))
		}
	})

	t.Run("Errors", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			ws   string
			q    atelier.RunQuery
			code string
			msg  []string // substrings of the message
		}{
			{"limit above max", "q", atelier.RunQuery{Limit: atelier.MaxPageSize + 1}, atelier.EINVALID, nil},
			{"metric compared with text", "q", atelier.RunQuery{Filter: "metrics.rmse < 'low'"}, atelier.EINVALID, []string{"position 16"}},
			{"missing value", "q", atelier.RunQuery{Filter: "metrics.rmse < 60 and "}, atelier.EINVALID, []string{"position"}},
			{"unknown status", "q", atelier.RunQuery{Filter: "status = 'Done'"}, atelier.EINVALID, []string{"position 10"}},
			{"bad order by", "q", atelier.RunQuery{OrderBy: "metrics.rmse <"}, atelier.EINVALID, []string{"position"}},
			{"bad time", "q", atelier.RunQuery{Filter: "created_at > 'yesterday'"}, atelier.EINVALID, []string{"position"}},
			{"bad page token", "q", atelier.RunQuery{PageToken: "!!not a token!!"}, atelier.EINVALID, nil},
			{"missing workspace", "nope", atelier.RunQuery{}, atelier.ENOTFOUND, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := s.ListRuns(ctx, tc.ws, tc.q)
				wantCode(t, err, tc.code, "ListRuns(%+v)", tc.q)
				if msg := atelier.ErrorMessage(err); !containsAll(msg, tc.msg...) {
					t.Errorf("ListRuns(%+v) message %q, want it to contain %q", tc.q, msg, tc.msg)
				}
			})
		}
	})

	t.Run("Scoping", func(t *testing.T) {
		got := listAll(t, s, "q", atelier.RunQuery{Experiment: "exp-a"})
		if diff := cmp.Diff(where(func(r *qrun) bool { return r.exp == "exp-a" }), sorted(runNames(got))); diff != "" {
			t.Errorf("ListRuns(experiment exp-a) (-want +got):\n%s", diff)
		}
		if got := listAll(t, s, "q", atelier.RunQuery{Experiment: "nope"}); len(got) != 0 {
			t.Errorf("ListRuns(missing experiment) = %d runs, want 0", len(got))
		}
		other := listAll(t, s, "q-other", atelier.RunQuery{})
		if len(other) != 1 || other[0].Workspace != "q-other" {
			t.Errorf("ListRuns(q-other) = %v, want its one run", runNames(other))
		}

		MustCreateWorkspace(t, s, "tree")
		root := MustCreateRun(t, s, "tree", atelier.RunCreate{Experiment: "e", Name: "root"})
		lone := MustCreateRun(t, s, "tree", atelier.RunCreate{Experiment: "f", Name: "lone"})
		c1 := MustCreateRun(t, s, "tree", atelier.RunCreate{ParentID: root.ID, Name: "c1"})
		MustCreateRun(t, s, "tree", atelier.RunCreate{ParentID: root.ID, Name: "c2"})
		MustCreateRun(t, s, "tree", atelier.RunCreate{ParentID: c1.ID, Name: "g1"})
		for _, tc := range []struct {
			q    atelier.RunQuery
			want []string
		}{
			{atelier.RunQuery{ParentID: root.ID}, []string{"c1", "c2"}},
			{atelier.RunQuery{ParentID: c1.ID}, []string{"g1"}},
			{atelier.RunQuery{ParentID: lone.ID}, nil},
			{atelier.RunQuery{RootOnly: true}, []string{"lone", "root"}},
			{atelier.RunQuery{RootOnly: true, Experiment: "e"}, []string{"root"}},
			{atelier.RunQuery{Experiment: "e"}, []string{"c1", "c2", "g1", "root"}},
			{atelier.RunQuery{ParentID: root.ID, Filter: "name = 'c2'"}, []string{"c2"}},
			{atelier.RunQuery{Filter: fmt.Sprintf("parent_id = '%s'", root.ID)}, []string{"c1", "c2"}},
		} {
			got := listAll(t, s, "tree", tc.q)
			if diff := cmp.Diff(tc.want, sorted(runNames(got)), cmpEmpty); diff != "" {
				t.Errorf("ListRuns(%+v) (-want +got):\n%s", tc.q, diff)
			}
		}
		if got := listAll(t, s, "tree", atelier.RunQuery{Filter: "name = 'root'"}); len(got) != 1 || got[0].ChildCount != 2 {
			t.Errorf("listed root run: %v, want ChildCount 2", got)
		}
	})

	t.Run("Times", func(t *testing.T) {
		MustCreateWorkspace(t, s, "times")
		var created []*atelier.Run
		for i := range 3 {
			if i > 0 {
				time.Sleep(5 * time.Millisecond)
			}
			run := MustCreateRun(t, s, "times", atelier.RunCreate{Experiment: "e", Name: fmt.Sprintf("t%d", i)})
			created = append(created, MustFindRun(t, s, "times", run.ID)) // the stored times
		}
		mid := created[1].CreatedAt
		for _, tc := range []struct {
			filter string
			want   []string
		}{
			{fmt.Sprintf("created_at > '%s'", mid.Format(time.RFC3339Nano)), []string{"t2"}},
			{fmt.Sprintf("created_at >= '%s'", mid.Format(time.RFC3339Nano)), []string{"t1", "t2"}},
			{fmt.Sprintf("created_at < '%s'", mid.Format(time.RFC3339Nano)), []string{"t0"}},
			{fmt.Sprintf("created_at < %d", mid.UnixMilli()), []string{"t0"}},
			{fmt.Sprintf("created_at >= %d and created_at <= %d", mid.UnixMilli(), mid.UnixMilli()), []string{"t1"}},
			{fmt.Sprintf("created_at > '%s'", mid.Add(-time.Hour).In(time.FixedZone("X", 5*3600)).Format(time.RFC3339)), []string{"t0", "t1", "t2"}},
			{"created_at > '2000-01-01T00:00:00Z' and created_at < '2999-01-01T00:00:00Z'", []string{"t0", "t1", "t2"}},
		} {
			got := listAll(t, s, "times", atelier.RunQuery{Filter: tc.filter})
			if diff := cmp.Diff(tc.want, sorted(runNames(got)), cmpEmpty); diff != "" {
				t.Errorf("ListRuns(filter %q) (-want +got):\n%s", tc.filter, diff)
			}
		}
		got := runNames(listAll(t, s, "times", atelier.RunQuery{OrderBy: "created_at"}))
		if diff := cmp.Diff([]string{"t0", "t1", "t2"}, got); diff != "" {
			t.Errorf("ListRuns(order by created_at) (-want +got):\n%s", diff)
		}
		got = runNames(listAll(t, s, "times", atelier.RunQuery{}))
		if diff := cmp.Diff([]string{"t2", "t1", "t0"}, got); diff != "" {
			t.Errorf("ListRuns default order, newest first (-want +got):\n%s", diff)
		}
	})

	t.Run("Duration", func(t *testing.T) {
		MustCreateWorkspace(t, s, "dur")
		long := MustCreateRun(t, s, "dur", atelier.RunCreate{Experiment: "e", Name: "long", Status: atelier.StatusRunning})
		time.Sleep(1200 * time.Millisecond)
		short := MustCreateRun(t, s, "dur", atelier.RunCreate{Experiment: "e", Name: "short", Status: atelier.StatusRunning})
		MustSetStatus(t, s, "dur", short.ID, atelier.StatusCompleted)
		MustCreateRun(t, s, "dur", atelier.RunCreate{Experiment: "e", Name: "idle"})
		_ = long
		for _, tc := range []struct {
			filter string
			want   []string
		}{
			// In seconds: the live run has run about 1.2 s, the completed one a few milliseconds.
			{"duration > 1 and duration < 100", []string{"long"}},
			{"duration < 0.5", []string{"short"}},
			{"duration is not null", []string{"long", "short"}},
		} {
			got := listAll(t, s, "dur", atelier.RunQuery{Filter: tc.filter})
			if diff := cmp.Diff(tc.want, sorted(runNames(got))); diff != "" {
				t.Errorf("ListRuns(filter %q) (-want +got):\n%s", tc.filter, diff)
			}
		}
		got := runNames(listAll(t, s, "dur", atelier.RunQuery{OrderBy: "duration desc", Filter: "duration is not null"}))
		if diff := cmp.Diff([]string{"long", "short"}, got); diff != "" {
			t.Errorf("ListRuns(order by duration desc) (-want +got):\n%s", diff)
		}
	})

	t.Run("NonScalarMetricsAreNotSearched", func(t *testing.T) {
		// metrics.NAME reads the latest value of a scalar metric; a list, row, table or image
		// logged under a name has no value to compare.
		MustCreateWorkspace(t, s, "records")
		run := MustCreateRun(t, s, "records", atelier.RunCreate{Experiment: "e", Name: "with-records"})
		MustLogMetrics(t, s, "records", run.ID, &atelier.MetricBatch{Records: []atelier.MetricRecord{
			{Name: "confusion", Kind: atelier.MetricTable, Value: []byte(`{"a": [1, 2]}`)},
			{Name: "preds", Kind: atelier.MetricList, Value: []byte(`[0, 0, 0]`)},
		}})
		for _, filter := range []string{"metrics.confusion = 0", "metrics.confusion < 1", "metrics.preds >= 0", "metrics.preds in (0, 1)"} {
			if got := listAll(t, s, "records", atelier.RunQuery{Filter: filter}); len(got) != 0 {
				t.Errorf("ListRuns(filter %q) = %v, want no run: the metric is not a scalar", filter, runNames(got))
			}
		}
		if got := MustFindRun(t, s, "records", run.ID); len(got.Metrics) != 0 {
			t.Errorf("Run.Metrics = %v, want no scalar metrics", got.Metrics)
		}
	})
}

// cmpEmpty treats nil and empty slices alike.
var cmpEmpty = cmpopts.EquateEmpty()
