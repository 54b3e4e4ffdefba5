package atelier

import (
	"context"
	"io"
	"time"
)

// ComputeTarget is where runs execute. Every workspace has "local": this server's machine.
type ComputeTarget struct {
	Name              string `json:"name"`
	Kind              string `json:"kind"` // local, later ssh, slurm, kubernetes
	MaxConcurrentRuns int    `json:"max_concurrent_runs"`
	Queued            int    `json:"queued"`
	Running           int    `json:"running"`
	// Isolation names what keeps a run's script from the server's data on the target's
	// machine ("user+namespace+landlock-v7"), "none" when nothing does.
	Isolation string `json:"isolation,omitempty"`
}

// ComputeService lists compute targets and submits and cancels runs on them.
type ComputeService interface {
	ListComputeTargets(ctx context.Context, workspace string) ([]*ComputeTarget, error)
	// SubmitRun queues a script run on a compute target.
	SubmitRun(ctx context.Context, workspace string, s RunSubmit) (*Run, error)
	// CancelRun cancels a queued run at once and asks an active one to stop.
	CancelRun(ctx context.Context, workspace, id string) (*Run, error)
}

// Job is a run handed to an executor.
type Job struct {
	Run      *Run
	Config   RunConfig
	Snapshot *Snapshot
	// Env is the run context the script receives (server URL, workspace, run id, MLflow's
	// tracking URI and run id).
	Env map[string]string
	// Secrets are the decrypted secrets the configuration names, by name, and the run's token
	// (ATELIER_TOKEN, MLFLOW_TRACKING_TOKEN): the executor puts them in the script's
	// environment and masks their values in what it captures.
	Secrets map[string]string
}

// JobResult is how a job ended.
type JobResult struct {
	ExitCode *int
	// Status is the run's final status: Completed, Failed or Canceled.
	Status RunStatus
	Error  string
}

// JobHost is what an executor needs from the server while it runs a job.
type JobHost interface {
	OpenObject(ctx context.Context, digest string) (io.ReadCloser, error)
	// SetStatus records Preparing, Running and Finalizing.
	SetStatus(ctx context.Context, job *Job, status RunStatus) error
	AppendLog(ctx context.Context, job *Job, path string, data []byte) error
	UploadFile(ctx context.Context, job *Job, path string, r io.Reader) error

	// ListData lists the datastore files a data reference of the job names: the file at its
	// path, or else every file under it as a folder. Paths are datastore paths.
	ListData(ctx context.Context, job *Job, ref DataReference) ([]*DatastoreFile, error)
	// OpenData reads a datastore file of the reference.
	OpenData(ctx context.Context, job *Job, ref DataReference, path string) (io.ReadCloser, error)
	// WriteData stores r as the datastore file path, which must be inside the reference's folder.
	WriteData(ctx context.Context, job *Job, ref DataReference, path string, r io.Reader) error
}

// Executor runs jobs on one kind of compute target.
type Executor interface {
	// Run executes a job and blocks until it ends. Canceling ctx cancels the job (the result
	// is then Canceled); the executor leaves no process behind either way.
	Run(ctx context.Context, host JobHost, job *Job) JobResult
}

// DefaultCancelGrace is how long a canceled script gets between SIGTERM and SIGKILL.
const DefaultCancelGrace = 10 * time.Second

// ComputeDriver launches and observes jobs on one kind of compute target. A job's phases
// (snapshot, data, environment, script, logs, outputs, its end) happen in the in-job runner
// (`atelier job exec`) the driver starts where the script runs, talking to the server with the
// run's token; the driver only launches it and says what became of it. A job's handle is the
// driver's name for it (a pid and start time, a Slurm job id, a Kubernetes Job uid): it is kept
// with the run's lease and outlives the server, so a restarted server (or another replica)
// asks the driver about it. Every driver passes the computetest suite.
type ComputeDriver interface {
	// Launch starts the runner of a claimed run and returns the job's handle. An error means
	// nothing was started.
	Launch(ctx context.Context, l *JobLaunch) (handle string, err error)
	// Status says what became of a job. A handle the driver cannot read is EINVALID.
	Status(ctx context.Context, handle string) (JobState, error)
	// Cancel asks a job to stop: its runner stops the script and records the end (Canceled
	// when the run was asked to cancel). Canceling a job that has ended is not an error.
	Cancel(ctx context.Context, handle string) error
	// Logs returns the runner's own output from offset (what it said besides the run's
	// logs: why it could not start, why it stopped).
	Logs(ctx context.Context, handle string, offset int64) (io.ReadCloser, error)
	// Release forgets a job that has ended: its files on the target.
	Release(ctx context.Context, handle string) error
}

// JobLaunch is what a driver needs to start a run's runner.
type JobLaunch struct {
	Run *Run
	// Server is the URL the runner reaches the server at; Token is the run's own token.
	Server string
	Token  string
	// Secrets are the decrypted secrets the run's configuration names, by name.
	Secrets map[string]string
}

// JobPhase is where a launched job is, as its driver sees it.
type JobPhase string

const (
	JobRunning JobPhase = "Running" // the runner is alive
	JobExited  JobPhase = "Exited"  // the runner ended; ExitCode says how
	JobGone    JobPhase = "Gone"    // the job is not known to the target (vanished, or its handle names another)
)

// JobState is what a driver knows of a job.
type JobState struct {
	Phase JobPhase
	// ExitCode is the runner's exit code when Exited (0: it recorded a Completed run; see
	// `atelier job exec --help`).
	ExitCode int
	// Detail says in a sentence what the driver saw (why a job is Gone).
	Detail string
}
