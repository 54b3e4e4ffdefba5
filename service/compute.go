package service

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
)

var (
	_ atelier.ComputeService = (*Service)(nil)
	_ atelier.JobHost        = (*jobHost)(nil)
)

// Target is a compute target with its executor.
type Target struct {
	Name              string
	Kind              string
	Executor          atelier.Executor
	MaxConcurrentRuns int
	// Isolation names what confines the target's runs (see atelier.ComputeTarget).
	Isolation string
}

// scheduler hands queued runs to the executors of their compute targets, at most
// MaxConcurrentRuns at a time each, oldest first.
type scheduler struct {
	mu      sync.Mutex
	targets map[string]*Target
	running map[string]map[string]context.CancelFunc // target → run id → cancel
	secrets map[string]map[string]string             // run id → the secrets its job was given
	// workspaces names the workspace of each executing run (run id → workspace).
	workspaces map[string]string
	wake       chan struct{}
	wg         sync.WaitGroup
}

// AddComputeTarget registers a compute target (every server has "local").
func (s *Service) AddComputeTarget(t *Target) {
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	if t.MaxConcurrentRuns <= 0 {
		t.MaxConcurrentRuns = 1
	}
	s.sched.targets[t.Name] = t
	s.sched.running[t.Name] = map[string]context.CancelFunc{}
}

// ListComputeTargets lists the compute targets with their queues.
func (s *Service) ListComputeTargets(ctx context.Context, workspace string) ([]*atelier.ComputeTarget, error) {
	if err := s.authorize(ctx, workspace); err != nil {
		return nil, err
	}
	if _, err := s.store.FindWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	list := []*atelier.ComputeTarget{}
	for _, t := range s.sched.targets {
		queued, err := s.store.QueuedRuns(ctx, t.Name, 100000)
		if err != nil {
			return nil, err
		}
		list = append(list, &atelier.ComputeTarget{Name: t.Name, Kind: t.Kind, MaxConcurrentRuns: t.MaxConcurrentRuns,
			Queued: len(queued), Running: len(s.sched.running[t.Name]), Isolation: t.Isolation})
	}
	return list, nil
}

// SubmitRun queues a script on a compute target.
func (s *Service) SubmitRun(ctx context.Context, workspace string, sub atelier.RunSubmit) (*atelier.Run, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	if sub.Experiment == "" {
		sub.Experiment = sub.Config.Experiment
	}
	if sub.SnapshotID == "" {
		return nil, atelier.Errorf(atelier.EINVALID, "snapshot_id is required: upload the source directory first")
	}
	snap, err := s.store.FindSnapshot(ctx, workspace, sub.SnapshotID)
	if err != nil {
		return nil, err
	}
	if err := sub.Config.Validate(snap); err != nil {
		return nil, err
	}
	s.sched.mu.Lock()
	_, ok := s.sched.targets[sub.Config.Compute]
	s.sched.mu.Unlock()
	if !ok {
		return nil, atelier.Errorf(atelier.EINVALID, "unknown compute target %q (see 'atelier compute list')", sub.Config.Compute)
	}
	if err := s.checkRunSecrets(ctx, workspace, sub.Config.Secrets); err != nil {
		return nil, err
	}
	for _, ref := range sub.Config.Data {
		if _, err := s.findDatastore(ctx, workspace, ref.Datastore); atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return nil, atelier.Errorf(atelier.EINVALID, "run config: data %q: datastore %q not found (see 'atelier datastore list')", ref.Name, ref.Datastore)
		} else if err != nil {
			return nil, err
		}
	}
	config, err := json.Marshal(sub.Config)
	if err != nil {
		return nil, err
	}
	run, err := s.store.CreateRun(ctx, workspace, atelier.RunCreate{Experiment: sub.Experiment, Name: sub.Name,
		Status: atelier.StatusQueued, Compute: sub.Config.Compute, Config: config, SnapshotID: sub.SnapshotID,
		Git: sub.Git, Tags: sub.Tags, Params: sub.Params, Data: sub.Config.Data})
	if err != nil {
		return nil, err
	}
	s.publish(workspace, atelier.EventRunCreated, run.ID, run)
	s.runChanged(ctx, run)
	s.sched.poke()
	return run, nil
}

// CancelRun cancels a run: a queued one at once, an active one by stopping its script.
func (s *Service) CancelRun(ctx context.Context, workspace, id string) (*atelier.Run, error) {
	if err := s.authorizeWrite(ctx, workspace, id); err != nil {
		return nil, err
	}
	run, err := s.store.FindRun(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	if run.Status.Terminal() {
		return nil, atelier.Errorf(atelier.ECONFLICT, "run %s has already ended (%s)", id, run.Status)
	}
	s.sched.mu.Lock()
	cancel := s.sched.running[run.Compute][id]
	s.sched.mu.Unlock()
	if cancel == nil && (run.Compute == "" || !run.Status.Active()) {
		// A queued run, or an interactive run whose client is told by the status.
		return s.updateRunStatus(ctx, workspace, id, atelier.RunStatusUpdate{Status: atelier.StatusCanceled, Error: "canceled by request"})
	}
	// An executing run: here, its executor is told at once; on another server (replicas of
	// one store), that server's scheduler sees the status (see watchCancels).
	run, err = s.updateRunStatus(ctx, workspace, id, atelier.RunStatusUpdate{Status: atelier.StatusCancelRequested})
	if cancel != nil {
		cancel() // the executor stops the script; the scheduler records Canceled
	}
	return run, err
}

// executing reports whether a run's script is executing on this server.
func (sc *scheduler) executing(runID string) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, runs := range sc.running {
		if runs[runID] != nil {
			return true
		}
	}
	return false
}

func (sc *scheduler) poke() {
	select {
	case sc.wake <- struct{}{}:
	default:
	}
}

// RunScheduler dispatches queued runs until ctx ends, then cancels the runs it started and
// waits for them to be recorded.
func (s *Service) RunScheduler(ctx context.Context) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		s.dispatch(ctx)
		s.watchCancels(ctx)
		select {
		case <-ctx.Done():
			s.sched.mu.Lock()
			for _, runs := range s.sched.running {
				for _, cancel := range runs {
					cancel()
				}
			}
			s.sched.mu.Unlock()
			s.sched.wg.Wait()
			return
		case <-s.sched.wake:
		case <-tick.C:
		}
	}
}

// watchCancels stops the runs executing here that another server asked to cancel: the request
// is their status, CancelRequested, in the store they share.
func (s *Service) watchCancels(ctx context.Context) {
	type executing struct {
		workspace, id string
		cancel        context.CancelFunc
	}
	var list []executing
	s.sched.mu.Lock()
	for _, runs := range s.sched.running {
		for id, cancel := range runs {
			list = append(list, executing{workspace: s.sched.workspaces[id], id: id, cancel: cancel})
		}
	}
	s.sched.mu.Unlock()
	for _, r := range list {
		if run, err := s.store.FindRun(ctx, r.workspace, r.id); err == nil && run.Status == atelier.StatusCancelRequested {
			r.cancel()
		}
	}
}

func (s *Service) dispatch(ctx context.Context) {
	s.sched.mu.Lock()
	targets := make([]*Target, 0, len(s.sched.targets))
	for _, t := range s.sched.targets {
		targets = append(targets, t)
	}
	s.sched.mu.Unlock()
	for _, t := range targets {
		s.sched.mu.Lock()
		free := t.MaxConcurrentRuns - len(s.sched.running[t.Name])
		s.sched.mu.Unlock()
		if free <= 0 || ctx.Err() != nil {
			continue
		}
		runs, err := s.store.QueuedRuns(ctx, t.Name, free)
		if err != nil {
			s.log.Error("reading the queue", "compute", t.Name, "err", err)
			continue
		}
		for _, run := range runs {
			s.start(ctx, t, run)
		}
	}
}

// start claims a queued run (Queued → Preparing, so no other dispatcher takes it) and runs it.
func (s *Service) start(ctx context.Context, t *Target, run *atelier.Run) {
	run, err := s.updateRunStatus(ctx, run.Workspace, run.ID, atelier.RunStatusUpdate{Status: atelier.StatusPreparing})
	if err != nil {
		return // canceled meanwhile, or claimed by another replica
	}
	fail := func(msg string) {
		s.updateRunStatus(context.WithoutCancel(ctx), run.Workspace, run.ID, atelier.RunStatusUpdate{Status: atelier.StatusFailed, Error: msg})
	}
	var config atelier.RunConfig
	if err := json.Unmarshal(run.Config, &config); err != nil {
		fail("the stored run configuration is unreadable: " + err.Error())
		return
	}
	snap, err := s.store.FindSnapshot(ctx, run.Workspace, run.SnapshotID)
	if err != nil {
		fail("the run's snapshot is missing: " + atelier.ErrorMessage(err))
		return
	}
	secrets, err := s.openRunSecrets(ctx, run.Workspace, config.Secrets)
	if err != nil {
		fail("the run's secrets: " + atelier.ErrorMessage(err))
		return
	}
	token, err := s.createToken(ctx, &atelier.Token{Name: "run " + run.ID, Kind: atelier.PrincipalRun, Owner: run.CreatedBy,
		Workspace: run.Workspace, RunID: run.ID})
	if err != nil {
		fail("creating the run's token: " + err.Error())
		return
	}
	env := map[string]string{"ATELIER_SERVER": s.ServerURL, "ATELIER_WORKSPACE": run.Workspace,
		"ATELIER_RUN_ID": run.ID, "ATELIER_EXPERIMENT": run.Experiment}
	if secrets == nil {
		secrets = map[string]string{}
	}
	// The token travels as a secret, so the executor masks it in the run's logs too.
	secrets["ATELIER_TOKEN"] = token.Secret
	// MLflow logs into this run as it does in an Azure ML job: mlflow.start_run() (or a first
	// mlflow.log_*) attaches to MLFLOW_RUN_ID. A configuration with its own tracking URI keeps it.
	if _, own := config.Environment.Variables["MLFLOW_TRACKING_URI"]; !own && secrets["MLFLOW_TRACKING_URI"] == "" {
		env["MLFLOW_TRACKING_URI"] = s.mlflowTrackingURI(run.Workspace)
		env["MLFLOW_RUN_ID"] = run.ID
		// Nested runs go to the fluent API's current experiment, which must be the run's.
		env["MLFLOW_EXPERIMENT_NAME"] = run.Experiment
		secrets["MLFLOW_TRACKING_TOKEN"] = token.Secret
	}
	job := &atelier.Job{Run: run, Config: config, Snapshot: snap, Env: env, Secrets: secrets}
	jobCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.sched.mu.Lock()
	s.sched.running[t.Name][run.ID] = cancel
	s.sched.workspaces[run.ID] = run.Workspace
	s.sched.secrets[run.ID] = secrets // for the logs appended through the API (see logMasker)
	s.sched.mu.Unlock()
	s.sched.wg.Add(1)
	go func() {
		defer s.sched.wg.Done()
		host := &jobHost{s: s}
		res := t.Executor.Run(jobCtx, host, job)
		host.close()
		if ctx.Err() != nil && res.Status == atelier.StatusCanceled {
			res.Status, res.Error = atelier.StatusFailed, "the server shut down while the run was active"
		}
		bg := context.WithoutCancel(ctx)
		if _, err := s.updateRunStatus(bg, run.Workspace, run.ID, atelier.RunStatusUpdate{Status: res.Status, Error: res.Error, ExitCode: res.ExitCode}); err != nil {
			s.log.Error("recording the end of a run", "run", run.ID, "err", err)
		}
		s.revokeToken(bg, token.ID)
		s.log.Info("run ended", "workspace", run.Workspace, "run", run.ID, "status", res.Status)
		s.sched.mu.Lock()
		delete(s.sched.running[t.Name], run.ID)
		delete(s.sched.workspaces, run.ID)
		delete(s.sched.secrets, run.ID)
		s.sched.mu.Unlock()
		cancel()
		s.sched.poke()
	}()
}

// mlflowTrackingURI is where the MLflow client reaches a workspace: the server's root for the
// default workspace, /workspaces/{ws}/mlflow for another (see package mlflow).
func (s *Service) mlflowTrackingURI(workspace string) string {
	if workspace == atelier.DefaultWorkspace {
		return s.ServerURL
	}
	return s.ServerURL + "/workspaces/" + url.PathEscape(workspace) + "/mlflow"
}

// revokeToken revokes a token without authorization (a run's token when the run ends).
func (s *Service) revokeToken(ctx context.Context, id string) {
	if err := s.store.RevokeToken(ctx, id); err != nil {
		s.log.Error("revoking a run token", "token", id, "err", err)
	}
	s.forgetToken(id)
}

// jobHost gives executors what they need from the server, without the API's authorization:
// the scheduler already decided the job may run.
type jobHost struct {
	s *Service

	mu      sync.Mutex
	buckets map[string]atelier.DatastoreBucket // datastore name → opened for the job
}

func (h *jobHost) OpenObject(ctx context.Context, digest string) (io.ReadCloser, error) {
	return h.s.objects.OpenObject(ctx, digest)
}

func (h *jobHost) SetStatus(ctx context.Context, job *atelier.Job, status atelier.RunStatus) error {
	_, err := h.s.updateRunStatus(ctx, job.Run.Workspace, job.Run.ID, atelier.RunStatusUpdate{Status: status})
	var refused *atelier.TransitionError
	if errors.As(err, &refused) {
		switch refused.From {
		case status:
			return nil // already there (the scheduler claims runs as Preparing)
		case atelier.StatusCancelRequested:
			return nil // canceling: the executor is being told through its context
		}
	}
	return err
}

func (h *jobHost) AppendLog(ctx context.Context, job *atelier.Job, path string, data []byte) error {
	return h.s.appendLog(ctx, job.Run.Workspace, job.Run.ID, path, data)
}

func (h *jobHost) UploadFile(ctx context.Context, job *atelier.Job, path string, r io.Reader) error {
	_, err := h.s.uploadFile(ctx, job.Run.Workspace, job.Run.ID, path, r, "")
	return err
}
