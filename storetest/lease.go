package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

// testClaimRuns: queued runs are claimed oldest first, each by exactly one of several
// concurrent claimers, and come with their leases.
func testClaimRuns(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")
	var want []string
	for i := range 20 {
		ws := "ws"
		if i%3 == 0 {
			ws = "other"
		}
		run := MustCreateRun(t, s, ws, atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "local"})
		want = append(want, run.ID)
	}
	MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "elsewhere"})
	MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "e", Status: atelier.StatusRunning})

	expires := time.Now().Add(time.Minute)
	first, err := s.ClaimRuns(ctx, "", "local", "a", 3, expires)
	mustOK(t, err, "ClaimRuns")
	if len(first) != 3 {
		t.Fatalf("ClaimRuns(limit 3) claimed %d runs", len(first))
	}
	for i, run := range first {
		if run.ID != want[i] || run.Status != atelier.StatusPreparing || run.StartedAt == nil {
			t.Errorf("claim %d: run %s %s (started %v), want %s Preparing and started", i, run.ID, run.Status, run.StartedAt, want[i])
		}
	}

	// Four claimers race for the other 17: each run goes to exactly one.
	owners := []string{"b", "c", "d", "e"}
	var mu sync.Mutex
	claimedBy := map[string]string{}
	var wg sync.WaitGroup
	for _, owner := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				runs, err := s.ClaimRuns(ctx, "", "local", owner, 2, expires)
				if err != nil {
					t.Errorf("ClaimRuns(%s): %v", owner, err)
					return
				}
				if len(runs) == 0 {
					return
				}
				mu.Lock()
				for _, r := range runs {
					if prev, ok := claimedBy[r.ID]; ok {
						t.Errorf("run %s claimed by %s and %s", r.ID, prev, owner)
					}
					claimedBy[r.ID] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(claimedBy) != 17 {
		t.Errorf("the racing claimers claimed %d runs, want 17", len(claimedBy))
	}
	leases, err := s.ListLeases(ctx, atelier.LeaseKindRun)
	mustOK(t, err, "ListLeases")
	if len(leases) != 20 {
		t.Fatalf("%d run leases, want 20", len(leases))
	}
	for _, l := range leases {
		owner := claimedBy[l.ID]
		if owner == "" {
			owner = "a"
		}
		ws := "ws"
		if slices.Index(want, l.ID)%3 == 0 {
			ws = "other"
		}
		if l.Owner != owner || l.Handle != "" || l.Workspace != ws || !l.Expires.Equal(expires.UTC().Truncate(time.Millisecond)) {
			t.Errorf("lease %+v, want owner %s, no handle, expiring %v", l, owner, expires)
		}
	}
	// Nothing is left queued on local; the other target's run was not touched.
	left, err := s.QueuedRuns(ctx, "local", 100)
	mustOK(t, err, "QueuedRuns")
	if len(left) != 0 {
		t.Errorf("%d runs left queued on local", len(left))
	}
	// A workspace's target: only its runs are claimed.
	mine := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "gpu"})
	theirs := MustCreateRun(t, s, "other", atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "gpu"})
	got, err := s.ClaimRuns(ctx, "ws", "gpu", "a", 10, expires)
	mustOK(t, err, "ClaimRuns of a workspace")
	if len(got) != 1 || got[0].ID != mine.ID {
		t.Errorf("ClaimRuns(ws, gpu) = %v, want only %s (not %s of another workspace)", runIDs(got), mine.ID, theirs.ID)
	}
	if other, _ := s.QueuedRuns(ctx, "elsewhere", 100); len(other) != 1 {
		t.Errorf("%d runs queued on elsewhere, want 1", len(other))
	}
}

// testLeases: a lease is changed only by its owner, taken over once it expired or from an
// owner named dead, and keeps its handle across a take-over.
func testLeases(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	l, err := s.AcquireLease(ctx, &atelier.Lease{Kind: "build", ID: "b1", Workspace: "ws", Owner: "a", Expires: now.Add(time.Minute)}, now, "")
	mustOK(t, err, "AcquireLease")
	if l.Owner != "a" || l.Handle != "" {
		t.Errorf("AcquireLease returned %+v", l)
	}
	mustOK(t, s.SetLeaseHandle(ctx, "build", "b1", "a", `{"pid":1}`), "SetLeaseHandle")
	if err := s.SetLeaseHandle(ctx, "build", "b1", "b", "x"); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("SetLeaseHandle by another owner: %v, want ECONFLICT", err)
	}
	if err := s.SetLeaseHandle(ctx, "build", "nope", "a", "x"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("SetLeaseHandle of no lease: %v, want ENOTFOUND", err)
	}
	// Held and not expired: another owner is refused, and the lease is unchanged.
	if _, err := s.AcquireLease(ctx, &atelier.Lease{Kind: "build", ID: "b1", Owner: "b", Expires: now.Add(time.Hour)}, now.Add(59*time.Second), ""); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("AcquireLease of a held lease: %v, want ECONFLICT", err)
	}
	// The owner renews; a dead owner's lease is taken at once, with its handle.
	n, err := s.RenewLeases(ctx, "build", "a", now.Add(2*time.Minute))
	mustOK(t, err, "RenewLeases")
	if n != 1 {
		t.Errorf("RenewLeases renewed %d, want 1", n)
	}
	if n, _ := s.RenewLeases(ctx, "run", "a", now.Add(2*time.Minute)); n != 0 {
		t.Errorf("RenewLeases of another kind renewed %d", n)
	}
	l, err = s.AcquireLease(ctx, &atelier.Lease{Kind: "build", ID: "b1", Owner: "b", Expires: now.Add(3 * time.Minute)}, now, "a")
	mustOK(t, err, "AcquireLease from a dead owner")
	if l.Owner != "b" || l.Handle != `{"pid":1}` || l.Workspace != "ws" {
		t.Errorf("taken-over lease %+v, want owner b and the handle kept", l)
	}
	// Expired: anyone takes it.
	l, err = s.AcquireLease(ctx, &atelier.Lease{Kind: "build", ID: "b1", Owner: "c", Expires: now.Add(time.Hour)}, now.Add(4*time.Minute), "")
	mustOK(t, err, "AcquireLease of an expired lease")
	if l.Owner != "c" {
		t.Errorf("lease %+v, want owner c", l)
	}
	if err := s.ReleaseLease(ctx, "build", "b1", "a"); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("ReleaseLease by a former owner: %v, want ECONFLICT", err)
	}
	mustOK(t, s.ReleaseLease(ctx, "build", "b1", "c"), "ReleaseLease")
	mustOK(t, s.ReleaseLease(ctx, "build", "b1", "c"), "ReleaseLease again")
	if list, _ := s.ListLeases(ctx, "build"); len(list) != 0 {
		t.Errorf("leases after release: %+v", list)
	}
	if _, err := s.AcquireLease(ctx, &atelier.Lease{Kind: "build", ID: "b1"}, now, ""); atelier.ErrorCode(err) != atelier.EINVALID {
		t.Errorf("AcquireLease without an owner: %v, want EINVALID", err)
	}
}
