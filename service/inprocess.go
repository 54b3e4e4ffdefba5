package service

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"

	"github.com/atelier-ml/atelier"
)

// inProcessDriver runs jobs with an executor inside this process (a Target with an Executor
// and no Driver): the job's phases are the executor's, its host is the service itself. Its
// jobs do not outlive the process: a handle of another process's jobs is Gone.
type inProcessDriver struct {
	s        *Compute
	executor atelier.Executor
	instance string // tells this process's handles from a previous one's

	mu   sync.Mutex
	jobs map[string]*inProcessJob // run id → job
}

type inProcessJob struct {
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	// shutdown is set when the process stops the job: the run fails rather than cancels.
	shutdown bool
}

type inProcessHandle struct {
	Run      string `json:"inproc"`
	Instance string `json:"instance"`
}

func newInProcessDriver(s *Compute, e atelier.Executor) *inProcessDriver {
	return &inProcessDriver{s: s, executor: e, instance: newSecret()[:16], jobs: map[string]*inProcessJob{}}
}

func (d *inProcessDriver) Launch(ctx context.Context, l *atelier.JobLaunch) (string, error) {
	s, run := d.s, l.Run
	var config atelier.RunConfig
	if err := json.Unmarshal(run.Config, &config); err != nil {
		return "", atelier.Errorf(atelier.EINVALID, "the stored run configuration is unreadable: %v", err)
	}
	snap, err := s.store.FindSnapshot(ctx, run.Workspace, run.SnapshotID)
	if err != nil {
		return "", err
	}
	secrets := map[string]string{}
	for k, v := range l.Secrets {
		secrets[k] = v
	}
	token := l.ScriptToken
	if token == "" {
		token = l.Token
	}
	env := map[string]string{"ATELIER_SERVER": l.Server, "ATELIER_WORKSPACE": run.Workspace,
		"ATELIER_RUN_ID": run.ID, "ATELIER_EXPERIMENT": run.Experiment}
	// The token travels as a secret, so the executor masks it in the run's logs too.
	secrets["ATELIER_TOKEN"] = token
	// MLflow logs into this run as it does in an Azure ML job: mlflow.start_run() (or a first
	// mlflow.log_*) attaches to MLFLOW_RUN_ID. A configuration with its own tracking URI keeps it.
	if _, own := config.Environment.Variables["MLFLOW_TRACKING_URI"]; !own && secrets["MLFLOW_TRACKING_URI"] == "" {
		env["MLFLOW_TRACKING_URI"] = s.mlflowTrackingURI(run.Workspace)
		env["MLFLOW_RUN_ID"] = run.ID
		// Nested runs go to the fluent API's current experiment, which must be the run's.
		env["MLFLOW_EXPERIMENT_NAME"] = run.Experiment
		secrets["MLFLOW_TRACKING_TOKEN"] = token
	}
	job := &atelier.Job{Run: run, Config: config, Snapshot: snap, Env: env, Secrets: secrets}
	jobCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	j := &inProcessJob{cancel: cancel, done: make(chan struct{})}
	d.mu.Lock()
	d.jobs[run.ID] = j
	d.mu.Unlock()
	s.sched.mu.Lock()
	s.sched.secrets[run.ID] = secrets // for the logs appended through the API (see logMasker)
	s.sched.mu.Unlock()
	s.sched.wg.Add(1)
	go func() {
		defer s.sched.wg.Done()
		defer close(j.done)
		host := &jobHost{s: s}
		res := d.executor.Run(jobCtx, host, job)
		host.close()
		bg := context.WithoutCancel(ctx)
		d.mu.Lock()
		shutdown := j.shutdown
		d.mu.Unlock()
		if shutdown && res.Status == atelier.StatusCanceled {
			res.Status, res.Error = atelier.StatusFailed, "the server shut down while the run was active"
		}
		// Recorded as the runner records it: the run's end is the job's word.
		end := atelier.RunStatusUpdate{Status: res.Status, Error: res.Error, ExitCode: res.ExitCode}
		if now, err := s.store.FindRun(bg, run.Workspace, run.ID); err == nil {
			end = asRequested(now, end)
		}
		if _, err := s.runs.updateRunStatus(bg, run.Workspace, run.ID, end); err != nil {
			s.log.Error("recording the end of a run", "run", run.ID, "err", err)
		}
		s.sched.mu.Lock()
		delete(s.sched.secrets, run.ID)
		s.sched.mu.Unlock()
		j.code = 7
		if res.Status == atelier.StatusCompleted {
			j.code = 0
		}
		cancel()
		s.sched.poke()
	}()
	b, _ := json.Marshal(inProcessHandle{Run: run.ID, Instance: d.instance})
	return string(b), nil
}

func (d *inProcessDriver) job(h string) (*inProcessJob, error) {
	var ph inProcessHandle
	if err := json.Unmarshal([]byte(h), &ph); err != nil || ph.Run == "" {
		return nil, atelier.Errorf(atelier.EINVALID, "in-process job handle %q is not one this driver wrote", h)
	}
	if ph.Instance != d.instance {
		return nil, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.jobs[ph.Run], nil
}

func (d *inProcessDriver) Status(ctx context.Context, h string) (atelier.JobState, error) {
	j, err := d.job(h)
	if err != nil {
		return atelier.JobState{}, err
	}
	if j == nil {
		return atelier.JobState{Phase: atelier.JobGone, Detail: "it ran inside a server process that stopped"}, nil
	}
	select {
	case <-j.done:
		return atelier.JobState{Phase: atelier.JobExited, ExitCode: j.code}, nil
	default:
		return atelier.JobState{Phase: atelier.JobRunning}, nil
	}
}

func (d *inProcessDriver) Cancel(ctx context.Context, h string) error {
	j, err := d.job(h)
	if err != nil || j == nil {
		return err
	}
	j.cancel()
	return nil
}

func (d *inProcessDriver) Logs(ctx context.Context, h string, offset int64) (io.ReadCloser, error) {
	if _, err := d.job(h); err != nil {
		return nil, err
	}
	return io.NopCloser(strings.NewReader("")), nil // the executor says everything in the run's logs
}

func (d *inProcessDriver) Release(ctx context.Context, h string) error {
	var ph inProcessHandle
	if err := json.Unmarshal([]byte(h), &ph); err != nil {
		return atelier.Errorf(atelier.EINVALID, "in-process job handle %q is not one this driver wrote", h)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if j := d.jobs[ph.Run]; j != nil && ph.Instance == d.instance {
		select {
		case <-j.done:
		default:
			return atelier.Errorf(atelier.ECONFLICT, "the run's job is still running")
		}
		delete(d.jobs, ph.Run)
	}
	return nil
}

// shutdown stops the jobs of this process, which cannot outlive it; they are recorded Failed.
func (d *inProcessDriver) shutdown() {
	d.mu.Lock()
	jobs := make([]*inProcessJob, 0, len(d.jobs))
	for _, j := range d.jobs {
		j.shutdown = true
		j.cancel()
		jobs = append(jobs, j)
	}
	d.mu.Unlock()
	for _, j := range jobs {
		<-j.done
	}
}
