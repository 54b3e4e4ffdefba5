// Package storetest is the conformance suite of atelier.Store: every metadata store (sqlite/,
// later postgres/) runs TestStore against a fresh, empty store and must pass all of it.
//
// The suite asserts behaviour through the Store interface only. It never assumes an
// implementation's clock, id generator or ordering where the contract leaves them open.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

// TestStore runs the whole conformance suite; it is the one entry point, so a new store cannot
// pass while forgetting a part. Run one part with -run, e.g. 'TestStore/Models/Aliases'.
//
// open must return a fresh, empty store and arrange (with t.Cleanup) for it to be closed; it is
// called once per subtest. When now is not nil the store must read the time from it instead of
// the wall clock: the suite pins time to check what happens within one millisecond.
func TestStore(t *testing.T, open func(t *testing.T, now func() time.Time) atelier.Store) {
	fresh := func(t *testing.T) atelier.Store { return open(t, nil) }
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) atelier.Store)
	}{
		{"Workspaces", testWorkspaces},
		{"Experiments", testExperiments},
		{"CreateExperiments", testCreateExperiments},
		{"RunLifecycle", testRunLifecycle},
		{"Runs", testRuns},
		{"QueuedRuns", testQueuedRuns},
		{"RunStatuses", testRunStatuses},
		{"QueuedRunsSameMillisecond", func(t *testing.T, _ func(t *testing.T) atelier.Store) { testQueuedRunsSameMillisecond(t, open) }},
		{"PendingAudit", testPendingAudit},
		{"RunStatus", testRunStatus},
		{"ReconcileRuns", testReconcileRuns},
		{"Queries", testQueries},
		{"Metrics", testMetrics},
		{"Files", testFiles},
		{"Logs", testLogs},
		{"Snapshots", testSnapshots},
		{"Objects", testObjects},
		{"Activities", testActivities},
		{"Tokens", testTokens},
		{"Users", testUsers},
		{"Members", testMembers},
		{"Audit", testAudit},
		{"Models", testModels},
		{"Datastores", testDatastores},
		{"DatastoreLineage", testDatastoreLineage},
		{"Secrets", testSecrets},
		{"ComputeTargets", testComputeTargets},
		{"ClaimRuns", testClaimRuns},
		{"Leases", testLeases},
		{"Images", testImages},
		{"WebServices", testWebServices},
		{"LoggedModels", testLoggedModels},
		{"RecordSearch", testRecordSearch},
		{"Datasets", testDatasets},
		{"Environments", testEnvironments},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, fresh) })
	}
}

// TestQueries runs the run-search part of the suite alone, for a store that chooses between
// several query plans: run it once for each plan (TestStore covers the store's default one).
func TestQueries(t *testing.T, open func(t *testing.T) atelier.Store) { testQueries(t, open) }

// Context returns the test's context carrying an admin principal named "tester", which stores
// record as created_by.
func Context(tb testing.TB) context.Context {
	tb.Helper()
	return atelier.NewContextWithPrincipal(tb.Context(), &atelier.Principal{Kind: atelier.PrincipalAdmin, Name: "tester"})
}

// MustCreateWorkspace creates a workspace or fails the test.
func MustCreateWorkspace(tb testing.TB, s atelier.Store, name string) *atelier.Workspace {
	tb.Helper()
	ws := &atelier.Workspace{Name: name, Description: "workspace " + name}
	if err := s.CreateWorkspace(Context(tb), ws); err != nil {
		tb.Fatalf("CreateWorkspace(%q): %v", name, err)
	}
	return ws
}

// MustCreateRun creates a run or fails the test.
func MustCreateRun(tb testing.TB, s atelier.Store, workspace string, c atelier.RunCreate) *atelier.Run {
	tb.Helper()
	run, err := s.CreateRun(Context(tb), workspace, c)
	if err != nil {
		tb.Fatalf("CreateRun(%q, %+v): %v", workspace, c, err)
	}
	return run
}

// MustFindRun reads a run or fails the test.
func MustFindRun(tb testing.TB, s atelier.Store, workspace, id string) *atelier.Run {
	tb.Helper()
	run, err := s.FindRun(Context(tb), workspace, id)
	if err != nil {
		tb.Fatalf("FindRun(%q, %s): %v", workspace, id, err)
	}
	return run
}

// MustSetStatus moves a run to status or fails the test.
func MustSetStatus(tb testing.TB, s atelier.Store, workspace, id string, status atelier.RunStatus) *atelier.Run {
	tb.Helper()
	run, err := s.UpdateRunStatus(Context(tb), workspace, id, atelier.RunStatusUpdate{Status: status})
	if err != nil {
		tb.Fatalf("UpdateRunStatus(%s → %s): %v", id, status, err)
	}
	return run
}

// MustLogMetrics logs a batch or fails the test.
func MustLogMetrics(tb testing.TB, s atelier.Store, workspace, id string, b *atelier.MetricBatch) {
	tb.Helper()
	if err := s.LogMetrics(Context(tb), workspace, id, b); err != nil {
		tb.Fatalf("LogMetrics(%s): %v", id, err)
	}
}

// MustHistory reads a whole series (or a window) or fails the test.
func MustHistory(tb testing.TB, s atelier.Store, workspace, id, name string, q atelier.HistoryQuery) *atelier.Series {
	tb.Helper()
	ser, err := s.MetricHistory(Context(tb), workspace, id, name, q)
	if err != nil {
		tb.Fatalf("MetricHistory(%s, %q): %v", id, name, err)
	}
	return ser
}

// wantCode fails the test unless err carries the error code want ("" for no error).
func wantCode(tb testing.TB, err error, want string, what string, args ...any) {
	tb.Helper()
	if got := atelier.ErrorCode(err); got != want {
		tb.Errorf("%s: error code %q (err %v), want %q", fmt.Sprintf(what, args...), got, err, want)
	}
}

// mustOK fails the test now if err is not nil.
func mustOK(tb testing.TB, err error, what string, args ...any) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}

func ptr[T any](v T) *T { return &v }

// step returns a *int64 for MetricPoint.Step.
func step(n int64) *int64 { return &n }

// bits returns the IEEE bits of values, so NaN compares equal to NaN and -0 differs from +0.
func bits[F ~float64](vs []F) []uint64 {
	out := make([]uint64, len(vs))
	for i, v := range vs {
		out[i] = math.Float64bits(float64(v))
	}
	return out
}

// jsonEqual reports whether a and b are the same JSON value, whatever their formatting: a store
// may keep JSON as text or re-encode it (PostgreSQL's jsonb).
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func runIDs(runs []*atelier.Run) []string {
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	return ids
}

func runNames(runs []*atelier.Run) []string {
	names := make([]string, len(runs))
	for i, r := range runs {
		names[i] = r.Name
	}
	return names
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
