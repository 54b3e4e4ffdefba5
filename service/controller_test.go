package service_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/local"
	"github.com/atelier-ml/atelier/server"
	"github.com/atelier-ml/atelier/server/servertest"
	"github.com/atelier-ml/atelier/service"
)

// A driver that cannot start the job: the run fails with the driver's reason, its lease is
// released, and nothing is left running or held.
func TestLaunchErrorFailsTheRun(t *testing.T) {
	t.Parallel()
	s := MustComputeStack(t, "", 1, true)
	s.svc.AddComputeTarget(&service.Target{Name: "broken", Kind: "local", MaxConcurrentRuns: 1,
		Driver: &local.Driver{Command: []string{filepath.Join(t.TempDir(), "no-such-runner"), "job", "exec"}, Dir: t.TempDir()}})
	snap := s.MustSnapshot(t, map[string]string{"train.py": "print(1)\n"})
	run, err := s.svc.SubmitRun(s.ctx, "default", atelier.RunSubmit{Experiment: "exp", SnapshotID: snap.ID,
		Config: atelier.RunConfig{Script: "train.py", Compute: "broken"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.svc.RunScheduler(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	got := s.WaitRun(t, run.ID, 30*time.Second)
	if got.Status != atelier.StatusFailed || !strings.Contains(got.Error, "launching the run on broken") || !strings.Contains(got.Error, "no-such-runner") {
		t.Fatalf("run = %s %q, want Failed naming the target and the runner that could not start", got.Status, got.Error)
	}
	if leases, _ := s.db.ListLeases(s.ctx, atelier.LeaseKindRun); len(leases) != 0 {
		t.Errorf("leases left: %+v", leases)
	}
}

// A restarted server finds a lease whose job handle it cannot read: the run fails saying so,
// instead of staying Running forever.
func TestCorruptHandleFailsTheRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := MustComputeStack(t, dir, 1, true)
	run := first.MustSubmit(t, "print(1)\n", atelier.RunConfig{}, nil)
	claimed, err := first.db.ClaimRuns(first.ctx, "", "local", "a-dead-server", 1, time.Now().Add(time.Hour))
	if err != nil || len(claimed) != 1 {
		t.Fatalf("ClaimRuns: %v, %v", claimed, err)
	}
	if err := first.db.SetLeaseHandle(first.ctx, atelier.LeaseKindRun, run.ID, "a-dead-server", "{not json"); err != nil {
		t.Fatal(err)
	}
	first.Close()
	restarted := MustComputeStack(t, dir, 1, true)
	restarted.svc.OwnerDead = func(o string) bool { return o == "a-dead-server" }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { restarted.svc.RunScheduler(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	got := restarted.WaitRun(t, run.ID, 30*time.Second)
	if got.Status != atelier.StatusFailed || !strings.Contains(got.Error, "handle is unreadable") {
		t.Fatalf("run = %s %q, want Failed saying its job handle is unreadable", got.Status, got.Error)
	}
}

// Two servers recover the runs of a dead one at the same time: each run is taken by exactly
// one of them, and its end is recorded once.
func TestRecoveryTakesEachRunOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := MustComputeStack(t, dir, 10, true)
	var runs []*atelier.Run
	for range 6 {
		runs = append(runs, first.MustSubmit(t, "print(1)\n", atelier.RunConfig{}, nil))
	}
	claimed, err := first.db.ClaimRuns(first.ctx, "", "local", "ghost", 10, time.Now().Add(time.Hour))
	if err != nil || len(claimed) != len(runs) {
		t.Fatalf("ClaimRuns: %d, %v", len(claimed), err)
	}
	for _, r := range claimed {
		// Handles of an in-process driver of a server that is gone.
		if err := first.db.SetLeaseHandle(first.ctx, atelier.LeaseKindRun, r.ID, "ghost", `{"inproc":"`+r.ID+`","instance":"gone"}`); err != nil {
			t.Fatal(err)
		}
	}
	var stacks []*computeStack
	logs := &lockedBuffer{}
	for range 2 {
		st := servertest.New(t, servertest.WithDir(dir), servertest.WithoutScheduler(),
			servertest.WithLog(slog.New(slog.NewTextHandler(logs, nil))),
			servertest.WithLocalCompute(func(context.Context, server.Machine) (*service.Target, error) {
				return &service.Target{Name: "local", Kind: "local", MaxConcurrentRuns: 10, Executor: first.exec}, nil
			}),
			servertest.WithConfig(func(c *server.Config) { c.OwnerDead = func(o string) bool { return o == "ghost" } }))
		stacks = append(stacks, &computeStack{db: st.DB, svc: st.Service})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, st := range stacks {
		wg.Add(1)
		go func() { defer wg.Done(); st.svc.RunScheduler(ctx) }()
	}
	for _, r := range runs {
		got := first.WaitRun(t, r.ID, 30*time.Second)
		if got.Status != atelier.StatusFailed || !strings.Contains(got.Error, "gone") {
			t.Errorf("run %s = %s %q, want Failed: its job is gone", r.ID, got.Status, got.Error)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for stacks[0].svc.HeldRuns()+stacks[1].svc.HeldRuns() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if leases, _ := first.db.ListLeases(first.ctx, atelier.LeaseKindRun); len(leases) != 0 {
		t.Errorf("leases left after recovery: %+v", leases)
	}
	// Each run was taken over, and its end recorded, by exactly one of the two servers.
	out := logs.String()
	recovered := 0
	for _, m := range regexp.MustCompile(`msg="runs recovered" count=(\d+)`).FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		recovered += n
	}
	if ended := strings.Count(out, "run ended without its runner recording it"); recovered != len(runs) || ended != len(runs) {
		t.Errorf("the two servers recovered %d runs and recorded %d ends, want %d each:\n%s", recovered, ended, len(runs), out)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
