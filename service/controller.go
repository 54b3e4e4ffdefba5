package service

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
)

// Target is a compute target of this server.
type Target struct {
	Name string
	Kind string
	// Driver launches and observes the target's jobs: they outlive the server, which finds
	// them again by their handles when it starts (see RunScheduler).
	Driver atelier.ComputeDriver
	// Executor runs the target's jobs inside this process instead (when there is no Driver):
	// for embedding and tests. Its runs end with the process, as Failed.
	Executor          atelier.Executor
	MaxConcurrentRuns int
	// Isolation names what confines the target's runs (see atelier.ComputeTarget).
	Isolation string
	// Stored is the workspace's stored target this is (nil for a built-in target).
	Stored *atelier.ComputeTarget
}

// DefaultLeaseTTL is how long a server's lease on a run lasts without being renewed: another
// server takes the run over when it expires (sooner when the owner is known to be dead).
const DefaultLeaseTTL = 30 * time.Second

// scheduler is the controller of runs on compute targets: it claims queued runs with a lease,
// launches them through their targets' drivers, renews the leases while it watches the jobs,
// tells drivers of cancel requests, and records runs whose jobs ended without saying how.
type scheduler struct {
	mu      sync.Mutex
	targets map[string]*Target
	jobs    map[string]*watchedJob       // run id → a job this server holds the lease of
	secrets map[string]map[string]string // run id → the secrets an in-process job was given
	wake    chan struct{}
	wg      sync.WaitGroup
}

// watchedJob is a launched run this server watches.
type watchedJob struct {
	workspace, id string
	target        *Target
	handle        string
	tokens        []string // the run's tokens, revoked when it ends (nil: look them up)
	canceled      bool     // the driver was told to cancel
	endedSeen     bool     // the driver said the job ended while the run was still active
	// endedAt is when the run was seen ended; the job is released once its runner exited.
	endedAt time.Time
	// queued is the Detail of the driver's last Queued state written to the run's log.
	queued string
	// unreachableSince is when the driver first failed to tell the job's state, since it
	// last did (zero while it answers).
	unreachableSince time.Time
}

// DefaultUnreachableAfter is how long a run's compute target may not answer before the run
// fails (see Service.UnreachableAfter): long enough for a machine's reboot or an apiserver's
// restart, short enough that nobody waits on a run that will never report.
const DefaultUnreachableAfter = 10 * time.Minute

func newScheduler() *scheduler {
	return &scheduler{targets: map[string]*Target{}, jobs: map[string]*watchedJob{},
		secrets: map[string]map[string]string{}, wake: make(chan struct{}, 1)}
}

// AddComputeTarget registers a compute target (every server has "local").
func (s *Compute) AddComputeTarget(t *Target) {
	if t.MaxConcurrentRuns <= 0 {
		t.MaxConcurrentRuns = 1
	}
	if t.Driver == nil && t.Executor != nil {
		t.Driver = newInProcessDriver(s, t.Executor)
	}
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	s.sched.targets[t.Name] = t
}

func (sc *scheduler) poke() {
	select {
	case sc.wake <- struct{}{}:
	default:
	}
}

// RunScheduler recovers the runs whose leases this server may take (its own from before a
// restart, those of dead servers), then claims, launches and watches runs until ctx ends. Jobs
// of drivers outlive it: it leaves them running, for the next server to recover.
func (s *Service) RunScheduler(ctx context.Context) {
	s.recoverJobs(ctx)
	s.recoverBuilds(ctx)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastRenew := s.now()
	for {
		s.dispatch(ctx)
		s.watch(ctx)
		s.dispatchBuilds(ctx)
		s.reconcileServices(ctx)
		if ttl := s.leaseTTL(); s.now().Sub(lastRenew) >= ttl/3 {
			lastRenew = s.now()
			for _, kind := range []string{atelier.LeaseKindRun, atelier.LeaseKindBuild, atelier.LeaseKindService} {
				if _, err := s.store.RenewLeases(ctx, kind, s.owner(), lastRenew.Add(ttl)); err != nil && ctx.Err() == nil {
					s.log.Error("renewing leases", "kind", kind, "err", err)
				}
			}
			s.recoverJobs(ctx) // the work of servers that died meanwhile
			s.recoverBuilds(ctx)
		}
		select {
		case <-ctx.Done():
			s.sched.mu.Lock()
			var drivers []atelier.ComputeDriver
			for _, t := range s.sched.targets {
				drivers = append(drivers, t.Driver)
			}
			s.sched.mu.Unlock()
			for _, d := range drivers {
				if d, ok := d.(interface{ shutdown() }); ok {
					d.shutdown()
				}
			}
			s.stopBuilds()
			s.stopDeployments()
			s.sched.wg.Wait()
			return
		case <-s.sched.wake:
		case <-tick.C:
		}
	}
}

// servedTarget is a target the scheduler serves: a built-in one (every workspace's), or a
// workspace's stored one, run by the driver of its kind.
type servedTarget struct {
	workspace string // "" for a built-in target
	*Target
}

// servedTargets lists the built-in targets and every workspace's stored targets this server
// has a driver for.
func (s *Compute) servedTargets(ctx context.Context) []servedTarget {
	s.sched.mu.Lock()
	list := make([]servedTarget, 0, len(s.sched.targets))
	for _, t := range s.sched.targets {
		list = append(list, servedTarget{Target: t})
	}
	s.sched.mu.Unlock()
	stored, err := s.store.ListComputeTargets(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("reading the compute targets", "err", err)
		}
		return list
	}
	for _, ct := range stored {
		if t := s.storedTarget(ct); t != nil {
			list = append(list, servedTarget{workspace: ct.Workspace, Target: t})
		}
	}
	return list
}

// storedTarget is a stored compute target as the scheduler runs it (nil without a driver).
func (s *Compute) storedTarget(ct *atelier.ComputeTarget) *Target {
	d := s.Drivers[ct.Kind]
	if d == nil {
		return nil
	}
	return &Target{Name: ct.Name, Kind: ct.Kind, Driver: d, MaxConcurrentRuns: max(ct.MaxConcurrentRuns, 1), Stored: ct}
}

// targetOf returns the target a run executes on (nil when this server cannot run it).
func (s *Compute) targetOf(ctx context.Context, run *atelier.Run) *Target {
	s.sched.mu.Lock()
	t := s.sched.targets[run.Compute]
	s.sched.mu.Unlock()
	if t != nil {
		return t
	}
	ct, err := s.store.FindComputeTarget(ctx, run.Workspace, run.Compute)
	if err != nil {
		return nil
	}
	return s.storedTarget(ct)
}

// dispatch claims the queued runs each target has room for and launches them.
func (s *Compute) dispatch(ctx context.Context) {
	for _, t := range s.servedTargets(ctx) {
		if ctx.Err() != nil {
			return
		}
		if t.Driver == nil {
			continue // a target runs are submitted to, run elsewhere (a test claims them itself)
		}
		_, active, err := s.store.ComputeTargetRuns(ctx, t.workspace, t.Name)
		if err != nil {
			s.log.Error("counting the active runs", "compute", t.Name, "err", err)
			continue
		}
		free := t.MaxConcurrentRuns - active
		if free <= 0 {
			continue
		}
		runs, err := s.store.ClaimRuns(ctx, t.workspace, t.Name, s.owner(), free, s.now().Add(s.leaseTTL()))
		if err != nil {
			s.log.Error("claiming queued runs", "compute", t.Name, "err", err)
			continue
		}
		for _, run := range runs {
			s.publish(run.Workspace, atelier.EventRunStatus, run.ID, run)
			s.runs.runChanged(ctx, run)
			s.launch(ctx, t.Target, run, false)
		}
	}
}

// launch starts a claimed run through its target's driver. again says it was claimed before a
// restart: its job may have been started then (the handle not recorded), and a driver that
// finds it adopts it, with the tokens it was given; those of the run are all revoked at its end.
func (s *Compute) launch(ctx context.Context, t *Target, run *atelier.Run, again bool) {
	bg := context.WithoutCancel(ctx)
	var tokens []string
	// A run that could not be launched: its tokens and lease go first, so a client that sees it
	// Failed finds nothing of it left (a server that dies in between leaves a run without a
	// lease, which the next start fails: see ReconcileRuns).
	fail := func(msg string) {
		for _, id := range tokens {
			s.accounts.revokeToken(bg, id)
		}
		if err := s.store.ReleaseLease(bg, atelier.LeaseKindRun, run.ID, s.owner()); err != nil {
			s.log.Error("releasing a run's lease", "run", run.ID, "err", err)
		}
		s.runs.updateRunStatus(bg, run.Workspace, run.ID, atelier.RunStatusUpdate{Status: atelier.StatusFailed, Error: msg})
	}
	var config atelier.RunConfig
	if err := json.Unmarshal(run.Config, &config); err != nil {
		fail("the stored run configuration is unreadable: " + err.Error())
		return
	}
	if _, err := s.store.FindSnapshot(ctx, run.Workspace, run.SnapshotID); err != nil {
		fail("the run's snapshot is missing: " + atelier.ErrorMessage(err))
		return
	}
	secrets, err := s.data.openRunSecrets(ctx, run.Workspace, config.Secrets)
	if err != nil {
		fail("the run's secrets: " + atelier.ErrorMessage(err))
		return
	}
	// Two tokens: the runner's, whose word ends the run, and the script's, which cannot end
	// its own run early (see UpdateRunStatus).
	runner, err := s.accounts.createToken(ctx, &atelier.Token{Name: atelier.RunnerTokenPrefix + run.ID, Kind: atelier.PrincipalRun,
		Owner: run.CreatedBy, Workspace: run.Workspace, RunID: run.ID})
	if err != nil {
		fail("creating the run's token: " + err.Error())
		return
	}
	tokens = append(tokens, runner.ID)
	script, err := s.accounts.createToken(ctx, &atelier.Token{Name: "run " + run.ID, Kind: atelier.PrincipalRun,
		Owner: run.CreatedBy, Workspace: run.Workspace, RunID: run.ID})
	if err != nil {
		fail("creating the run's token: " + err.Error())
		return
	}
	tokens = append(tokens, script.ID)
	l := &atelier.JobLaunch{Run: run, Server: s.ServerURL, Token: runner.Secret, ScriptToken: script.Secret, Secrets: secrets, Target: t.Stored}
	if t.Stored != nil {
		if l.Credentials, err = s.ComputeTargetCredentials(ctx, t.Stored); err != nil {
			fail(fmt.Sprintf("the credentials of compute target %s: %s", t.Name, atelier.ErrorMessage(err)))
			return
		}
	}
	handle, err := t.Driver.Launch(ctx, l)
	if err != nil {
		s.log.Error("launching a run", "run", run.ID, "compute", t.Name, "err", err)
		fail(fmt.Sprintf("launching the run on %s: %s", t.Name, atelier.ErrorMessage(err)))
		return
	}
	if err := s.store.SetLeaseHandle(bg, atelier.LeaseKindRun, run.ID, s.owner(), handle); err != nil {
		// Another server took the lease (this one was thought dead): it watches the run, and
		// learns of the job when the runner records its end.
		s.log.Error("recording a run's job handle", "run", run.ID, "err", err)
	}
	s.log.Info("run launched", "workspace", run.Workspace, "run", run.ID, "compute", t.Name)
	s.sched.mu.Lock()
	if again {
		tokens = nil // looked up at the end: an adopted job holds the earlier ones
	}
	s.sched.jobs[run.ID] = &watchedJob{workspace: run.Workspace, id: run.ID, target: t, handle: handle, tokens: tokens}
	s.sched.mu.Unlock()
}

// watch looks at every job this server holds: runs that ended are released, cancel requests
// are passed on to drivers, and a job that ended without recording its run's end fails it.
func (s *Compute) watch(ctx context.Context) {
	s.sched.mu.Lock()
	jobs := make([]*watchedJob, 0, len(s.sched.jobs))
	for _, j := range s.sched.jobs {
		jobs = append(jobs, j)
	}
	s.sched.mu.Unlock()
	if len(jobs) == 0 {
		return
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.id
	}
	statuses, err := s.store.RunStatuses(ctx, ids)
	if err != nil {
		s.log.Warn("reading the statuses of the runs this server executes", "runs", len(ids), "err", err)
		return
	}
	for _, j := range jobs {
		if ctx.Err() != nil {
			return
		}
		status, ok := statuses[j.id]
		s.watchJob(ctx, j, status, ok)
	}
}

// watchJob looks at one job whose run's status is status (exists false: the run is gone, with
// its workspace).
func (s *Compute) watchJob(ctx context.Context, j *watchedJob, status atelier.RunStatus, exists bool) {
	if !j.endedAt.IsZero() {
		s.finish(ctx, j) // waiting for the runner to exit
		return
	}
	if !exists || status.Terminal() {
		s.finish(ctx, j)
		return
	}
	if status == atelier.StatusCancelRequested && !j.canceled {
		if err := j.target.Driver.Cancel(ctx, j.handle); err != nil {
			s.log.Error("canceling a run's job", "run", j.id, "err", err)
		} else {
			j.canceled = true
		}
	}
	st, err := j.target.Driver.Status(ctx, j.handle)
	if err != nil {
		if atelier.ErrorCode(err) == atelier.EINVALID {
			st = atelier.JobState{Phase: atelier.JobGone, Detail: "its job handle is unreadable: " + atelier.ErrorMessage(err)}
		} else {
			if ctx.Err() == nil {
				s.unreachable(ctx, j, status, err)
			}
			return
		}
	} else {
		j.unreachableSince = time.Time{}
	}
	if st.Phase == atelier.JobRunning {
		s.noteQueued(ctx, j, st)
		return
	}
	if !j.endedSeen {
		// The runner records the run's end before it exits: look again at the next tick.
		j.endedSeen = true
		return
	}
	upd := atelier.RunStatusUpdate{Status: atelier.StatusFailed}
	switch st.Phase {
	case atelier.JobExited:
		upd.Error = fmt.Sprintf("the job runner exited with code %d without recording how the run ended%s", st.ExitCode, s.runnerTail(ctx, j))
	default:
		upd.Error = "the run's job is gone: " + st.Detail
	}
	if status == atelier.StatusCancelRequested {
		upd = atelier.RunStatusUpdate{Status: atelier.StatusCanceled, Error: "canceled by request"}
	}
	if _, err := s.runs.updateRunStatus(context.WithoutCancel(ctx), j.workspace, j.id, upd); err != nil && atelier.ErrorCode(err) != atelier.ECONFLICT {
		s.log.Error("recording the end of a run", "run", j.id, "err", err)
		return
	}
	s.log.Warn("run ended without its runner recording it", "workspace", j.workspace, "run", j.id, "status", upd.Status, "reason", upd.Error)
	s.finish(ctx, j)
}

// unreachable notes that the run's target did not say how its job is. The next tick asks
// again, until the target has not answered for UnreachableAfter; then the run fails with the
// target's last error, the job is told to stop (best effort: the target may be gone for
// good), and the server stops watching it.
func (s *Compute) unreachable(ctx context.Context, j *watchedJob, status atelier.RunStatus, err error) {
	now := s.now()
	if j.unreachableSince.IsZero() {
		j.unreachableSince = now
		s.log.Warn("a run's compute target does not answer; retrying", "run", j.id, "compute", j.target.Name, "err", err)
		return
	}
	limit := s.UnreachableAfter
	if limit <= 0 {
		limit = DefaultUnreachableAfter
	}
	if now.Sub(j.unreachableSince) < limit {
		return
	}
	upd := atelier.RunStatusUpdate{Status: atelier.StatusFailed, Error: fmt.Sprintf(
		"compute target %s has not answered since %s (%s): %s; the run's job may still be running there, and was asked to stop",
		j.target.Name, j.unreachableSince.UTC().Format(time.RFC3339), now.Sub(j.unreachableSince).Round(time.Second), atelier.ErrorMessage(err))}
	if status == atelier.StatusCancelRequested {
		upd = atelier.RunStatusUpdate{Status: atelier.StatusCanceled, Error: "canceled by request; compute target " + j.target.Name + " did not answer: " + atelier.ErrorMessage(err)}
	}
	if _, err := s.runs.updateRunStatus(context.WithoutCancel(ctx), j.workspace, j.id, upd); err != nil && atelier.ErrorCode(err) != atelier.ECONFLICT {
		s.log.Error("recording the end of a run", "run", j.id, "err", err)
		return
	}
	if err := j.target.Driver.Cancel(ctx, j.handle); err != nil {
		s.log.Warn("telling an unreachable target to stop a run's job", "run", j.id, "compute", j.target.Name, "err", err)
	}
	s.log.Error("run failed: its compute target does not answer", "workspace", j.workspace, "run", j.id, "compute", j.target.Name, "since", j.unreachableSince, "err", err)
	s.finish(ctx, j)
}

// prepareLogPath is the run's preparation log, which `run submit --wait` shows while the run
// is Queued or Preparing (the runner writes its own preparation there next).
const prepareLogPath = "logs/prepare_log.txt"

// noteQueued writes to the run's preparation log why its job waits in the target's queue (a
// driver's Queued state: a Slurm job PENDING, with Slurm's reason) each time that changes, and
// what the driver says once it has left the queue. The run stays Preparing meanwhile: it was
// claimed, and a status never goes back to Queued.
func (s *Compute) noteQueued(ctx context.Context, j *watchedJob, st atelier.JobState) {
	var line string
	switch {
	case st.Queued && st.Detail != j.queued:
		line = st.Detail
	case !st.Queued && j.queued != "":
		line = "left the queue"
		if st.Detail != "" {
			line += ": " + st.Detail
		}
	default:
		return
	}
	text := s.now().UTC().Format(time.RFC3339) + " " + line + "\n"
	if err := s.runs.appendLog(context.WithoutCancel(ctx), j.workspace, j.id, prepareLogPath, []byte(text)); err != nil {
		s.log.Warn("writing a queued run's reason to its log", "run", j.id, "err", err)
		return
	}
	j.queued = ""
	if st.Queued {
		j.queued = st.Detail
	}
}

// runnerTail is the end of what the runner said, for the run's error.
func (s *Compute) runnerTail(ctx context.Context, j *watchedJob) string {
	r, err := j.target.Driver.Logs(ctx, j.handle, 0)
	if err != nil {
		return ""
	}
	defer r.Close()
	b, _ := io.ReadAll(io.LimitReader(r, 1<<20))
	text := strings.TrimSpace(string(b))
	if len(text) > 1000 {
		text = "…" + text[len(text)-1000:]
	}
	if text == "" {
		return ""
	}
	return ": " + text
}

// finish forgets a job whose run ended: its tokens at once; its files on the target and its
// lease once its runner has exited (it records the run's end just before), which finish, called
// again by watch, waits for.
func (s *Compute) finish(ctx context.Context, j *watchedJob) {
	bg := context.WithoutCancel(ctx)
	if j.endedAt.IsZero() {
		j.endedAt = s.now()
		tokens := j.tokens
		if tokens == nil {
			all, err := s.store.ListTokens(bg)
			if err == nil {
				for _, t := range all {
					if t.Kind == atelier.PrincipalRun && t.RunID == j.id && t.RevokedAt == nil {
						tokens = append(tokens, t.ID)
					}
				}
			}
		}
		for _, id := range tokens {
			s.accounts.revokeToken(bg, id)
		}
	}
	if j.handle != "" {
		if err := j.target.Driver.Release(bg, j.handle); atelier.ErrorCode(err) == atelier.ECONFLICT {
			// Its runner has not exited yet; one that lingers long after the end is stopped.
			if s.now().Sub(j.endedAt) > runnerExitGrace && !j.canceled {
				j.canceled = j.target.Driver.Cancel(bg, j.handle) == nil
			}
			return
		} else if err != nil {
			s.log.Warn("releasing a run's job", "run", j.id, "err", err)
		}
	}
	if err := s.store.ReleaseLease(bg, atelier.LeaseKindRun, j.id, s.owner()); err != nil {
		s.log.Error("releasing a run's lease", "run", j.id, "err", err)
	}
	s.sched.mu.Lock()
	delete(s.sched.jobs, j.id)
	s.sched.mu.Unlock()
	s.log.Info("run ended", "workspace", j.workspace, "run", j.id)
	s.sched.poke()
}

// runnerExitGrace is how long a runner may linger after its run ended before it is stopped.
const runnerExitGrace = 30 * time.Second

// recoverJobs takes over the leases of runs no live server holds — this server's own from
// before a restart, a dead server's, expired ones — and watches their jobs again: a job still
// running is reattached, one that ended is recorded, one never launched is launched.
func (s *Compute) recoverJobs(ctx context.Context) {
	leases, err := s.store.ListLeases(ctx, atelier.LeaseKindRun)
	if err != nil {
		s.log.Error("reading the leases of runs", "err", err)
		return
	}
	now := s.now()
	recovered := 0
	defer func() {
		if recovered > 0 {
			s.log.Info("runs recovered", "count", recovered, "took", s.now().Sub(now).String())
		}
	}()
	for _, l := range leases {
		s.sched.mu.Lock()
		_, held := s.sched.jobs[l.ID]
		s.sched.mu.Unlock()
		if held || ctx.Err() != nil {
			continue
		}
		if !s.takeable(l, now) {
			continue // a live server holds it
		}
		run, err := s.store.FindRun(ctx, l.Workspace, l.ID)
		if err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND {
			continue
		}
		var t *Target
		if run != nil {
			if t = s.targetOf(ctx, run); t == nil || t.Driver == nil {
				continue // a target this server has no driver for: another server's to recover
			}
		}
		got, err := s.takeLease(ctx, l, now)
		if err != nil {
			continue // taken by another server first
		}
		if run == nil {
			s.store.ReleaseLease(ctx, atelier.LeaseKindRun, l.ID, s.owner())
			continue
		}
		j := &watchedJob{workspace: run.Workspace, id: run.ID, target: t, handle: got.Handle}
		recovered++
		switch {
		case run.Status.Terminal():
			s.finish(ctx, j)
		case got.Handle == "":
			// Claimed, but the server stopped before its job was launched.
			if run.Status == atelier.StatusCancelRequested {
				s.runs.updateRunStatus(ctx, run.Workspace, run.ID, atelier.RunStatusUpdate{Status: atelier.StatusCanceled, Error: "canceled by request"})
				s.finish(ctx, j)
				continue
			}
			s.log.Info("launching a run claimed before a restart", "run", run.ID)
			s.launch(ctx, t, run, true)
		default:
			s.log.Debug("run recovered", "workspace", run.Workspace, "run", run.ID, "compute", t.Name, "previous_owner", l.Owner)
			s.sched.mu.Lock()
			s.sched.jobs[run.ID] = j
			s.sched.mu.Unlock()
		}
	}
}

// leasedRuns returns the ids of the runs with a lease (whose tokens must survive a restart).
func (s *Compute) leasedRuns(ctx context.Context) (map[string]bool, error) {
	leases, err := s.store.ListLeases(ctx, atelier.LeaseKindRun)
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, l := range leases {
		ids[l.ID] = true
	}
	return ids, nil
}

// HeldRuns counts the runs whose jobs this server watches (it holds their leases): a run that
// ended is held until its tokens are revoked and its job is released.
func (s *Compute) HeldRuns() int {
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	return len(s.sched.jobs)
}
