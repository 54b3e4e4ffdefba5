// Package slurm is the driver of slurm compute targets: a Slurm cluster reached through
// slurmrestd's REST API with a JWT. Each run is one batch job whose script executes the in-job
// runner (`atelier job exec`, the atelier binary on the cluster's nodes); the job's id is the
// run's handle, so a restarted server asks slurmctld about it again.
package slurm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
)

var (
	_ atelier.ComputeDriver  = (*Driver)(nil)
	_ atelier.ComputeChecker = (*Driver)(nil)
)

// Files in a job's directory (as the local and ssh drivers').
const (
	RunnerLog = "runner.log"
	ExitFile  = "exit-code"
)

// DefaultPath is the PATH a job's runner gets (Slurm is given no environment of the server's).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Lookup returns a workspace's stored compute target with its decrypted credentials (the
// token of slurm.token_secret too): Status, Cancel, Logs and Release receive only a job's
// handle and ask slurmrestd again with them.
type Lookup func(ctx context.Context, workspace, name string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error)

// Driver runs jobs on slurm compute targets. It serves every slurm target of every workspace:
// a job's handle names its target.
type Driver struct {
	// Binary is the runner's binary on the cluster's nodes for a target that names none
	// (slurm.runner): the server's own, which a node sees when the server runs on the cluster
	// (a login node with the shared filesystem, or a one-machine cluster).
	Binary string
	// WorkDir holds one directory per job (<WorkDir>/<run id>: the runner's log, exit code and
	// working directory) and the runners' shared Python environments (<WorkDir>/envs), for a
	// target that names none (slurm.work_dir). It must be on a filesystem the nodes share.
	WorkDir string
	Lookup  Lookup
	// Args are added after the runner's own arguments (--cancel-grace, --server-wait).
	Args []string
	// Path is the jobs' PATH (DefaultPath when empty).
	Path string
	// HTTP reaches slurmrestd (a client with a 30 s timeout when nil).
	HTTP *http.Client
	Log  *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	views sync.Map // a *jobsView by slurmrestd and user
}

// JobsEvery is how old the jobs read from a slurmrestd may be when a job's status is asked.
const JobsEvery = time.Second

// jobsView is what the last read of a cluster's jobs said: the Status of every run on it is
// answered from one read a second, not one request a run: a thousand queued runs cost
// slurmrestd one request a second. (A read with slurmctld's update time would be empty while
// nothing changed, but a pending job's reason changes without one: reads are whole.)
type jobsView struct {
	mu   sync.Mutex
	read time.Time // when it was read; zero: never
	jobs map[int]jobInfo
}

// job is a job's state, from the cluster's jobs read at most JobsEvery ago, or, when it is not
// among them (submitted since, or forgotten by slurmctld), read alone.
func (d *Driver) job(ctx context.Context, r *rest, id int) (*jobInfo, error) {
	v, _ := d.views.LoadOrStore(r.base+"\x00"+r.user, &jobsView{})
	view := v.(*jobsView)
	view.mu.Lock()
	defer view.mu.Unlock()
	if now := d.now(); now.Sub(view.read) >= JobsEvery {
		list, err := r.jobs(ctx)
		if err != nil {
			return nil, err
		}
		view.jobs = make(map[int]jobInfo, len(list))
		for _, j := range list {
			view.jobs[j.JobID] = j
		}
		view.read = now
	}
	if j, ok := view.jobs[id]; ok {
		return &j, nil
	}
	return r.job(ctx, id)
}

// New returns the driver of slurm targets.
func New(binary, workDir string, lookup Lookup, args ...string) *Driver {
	return &Driver{Binary: binary, WorkDir: workDir, Lookup: lookup, Args: args}
}

func (d *Driver) client() *http.Client {
	if d.HTTP != nil {
		return d.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (d *Driver) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (d *Driver) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// handle is what the driver stores of a job: its target and its Slurm job id.
type handle struct {
	Workspace string `json:"workspace"`
	Target    string `json:"target"`
	URL       string `json:"url"`
	JobID     int    `json:"job_id"`
	Dir       string `json:"dir"`
}

var (
	runIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	envName      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (d *Driver) parse(h string) (*handle, error) {
	var j handle
	if err := json.Unmarshal([]byte(h), &j); err != nil || j.JobID <= 0 || j.Target == "" || j.URL == "" || !cleanAbs(j.Dir) {
		return nil, atelier.Errorf(atelier.EINVALID, "slurm job handle %q is not one this driver wrote", h)
	}
	return &j, nil
}

// cleanAbs reports whether p is an absolute path without '..', NUL or newlines.
func cleanAbs(p string) bool {
	return strings.HasPrefix(p, "/") && filepath.Clean(p) == p && !strings.ContainsAny(p, "\x00\n")
}

// quote quotes s for a POSIX shell.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// connect finds the handle's target again: its client, or gone when the target no longer
// leads to the handle's slurmrestd (detached, or attached again elsewhere).
func (d *Driver) connect(ctx context.Context, j *handle) (r *rest, gone string, err error) {
	if d.Lookup == nil {
		return nil, "", atelier.Errorf(atelier.EUNAVAILABLE, "the slurm driver has no way to find compute targets")
	}
	t, creds, err := d.Lookup(ctx, j.Workspace, j.Target)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return nil, fmt.Sprintf("the compute target %s of workspace %s was detached", j.Target, j.Workspace), nil
	} else if err != nil {
		return nil, "", err
	}
	if t.Slurm == nil || strings.TrimRight(t.Slurm.URL, "/") != strings.TrimRight(j.URL, "/") {
		return nil, fmt.Sprintf("the compute target %s now names another cluster than %s", j.Target, j.URL), nil
	}
	r, err = newREST(d.client(), t, creds.Token)
	return r, "", err
}

// targetPaths are the runner's binary and the work directory of a target.
func (d *Driver) targetPaths(t *atelier.ComputeTarget) (runner, workDir string, err error) {
	runner, workDir = t.Slurm.Runner, t.Slurm.WorkDir
	if runner == "" {
		runner = d.Binary
	}
	if workDir == "" {
		workDir = d.WorkDir
	}
	if runner == "" || workDir == "" {
		return "", "", atelier.Errorf(atelier.EINVALID, "compute target %s names no runner binary or work directory on the cluster (slurm.runner, slurm.work_dir)", t.Name)
	}
	return runner, filepath.Clean(workDir), nil
}

// Launch submits a claimed run's batch job: its script runs the runner, which does the run's
// phases on the node Slurm gives it. The runner's token and the run's secrets go in the job's
// environment (which slurmrestd does not show), never in its script.
func (d *Driver) Launch(ctx context.Context, l *atelier.JobLaunch) (string, error) {
	t := l.Target
	if t == nil || t.Slurm == nil {
		return "", atelier.Errorf(atelier.EINVALID, "the slurm driver runs jobs of stored slurm compute targets only")
	}
	if !runIDPattern.MatchString(l.Run.ID) {
		return "", atelier.Errorf(atelier.EINVALID, "run id %q cannot name a job directory", l.Run.ID)
	}
	r, err := newREST(d.client(), t, l.Credentials.Token)
	if err != nil {
		return "", err
	}
	if err := d.checkExpiry(t, r, l.Credentials.Token); err != nil {
		return "", err
	}
	runner, workDir, err := d.targetPaths(t)
	if err != nil {
		return "", err
	}
	var config atelier.RunConfig
	if len(l.Run.Config) > 0 {
		if err := json.Unmarshal(l.Run.Config, &config); err != nil {
			return "", atelier.Errorf(atelier.EINVALID, "the run's configuration is unreadable: %v", err)
		}
	}
	env := map[string]string{"PATH": d.Path, "ATELIER_SERVER": l.Server, "ATELIER_TOKEN": l.Token, "ATELIER_WORKSPACE": l.Run.Workspace}
	if env["PATH"] == "" {
		env["PATH"] = DefaultPath
	}
	if l.ScriptToken != "" {
		env["ATELIER_SCRIPT_TOKEN"] = l.ScriptToken
	}
	for name, value := range l.Secrets {
		if !envName.MatchString(name) || strings.ContainsRune(value, 0) {
			return "", atelier.Errorf(atelier.EINVALID, "secret %q cannot be passed in an environment variable", name)
		}
		env["ATELIER_SECRET_"+name] = value
	}
	dir := filepath.Join(workDir, l.Run.ID)
	args := []string{runner, "job", "exec", "--run", l.Run.ID, "--work-dir", dir + "/job", "--exit-file", dir + "/" + ExitFile,
		"--envs-dir", filepath.Join(workDir, "envs")}
	args = append(args, d.Args...)
	for i, a := range args {
		args[i] = quote(a)
	}
	// The job's directory is made by the job, on the node: the server need not see it.
	script := "#!/bin/sh\numask 077\ndir=" + quote(dir) + "\n" +
		`mkdir -p "$dir" || exit 1` + "\n" +
		`rm -f "$dir/` + ExitFile + `"` + "\n" +
		"exec " + strings.Join(args, " ") + ` >>"$dir/` + RunnerLog + `" 2>&1` + "\n"
	job := map[string]any{
		"name":                      "atelier-" + l.Run.ID,
		"comment":                   "atelier run " + l.Run.Workspace + "/" + l.Run.ID,
		"current_working_directory": "/tmp", // the runner's paths are absolute; the work dir may not exist yet
		"standard_output":           "/dev/null",
		"standard_error":            "/dev/null",
		"environment":               env,
	}
	if t.Slurm.Partition != "" {
		job["partition"] = t.Slurm.Partition
	}
	if t.Slurm.Account != "" {
		job["account"] = t.Slurm.Account
	}
	if n := config.NodeCount; n > 1 {
		job["nodes"] = []int{n, n}
	}
	if n := config.Processes(); n > 1 { // the runner starts them with srun (compute/local)
		job["tasks"] = n
		job["tasks_per_node"] = max(config.ProcessCountPerNode, 1)
	}
	if config.GPUs > 0 {
		job["gres"] = "gpu:" + strconv.Itoa(config.GPUs)
	}
	var resp struct {
		JobID int `json:"job_id"`
	}
	err = r.do(ctx, http.MethodPost, "job/submit", map[string]any{"script": script, "job": job}, &resp)
	var ae *apiError
	if errors.As(err, &ae) {
		return "", atelier.Errorf(atelier.EINVALID, "compute target %s: Slurm refused the run's job: %s", t.Name, ae.Error())
	} else if err != nil {
		return "", err
	}
	if resp.JobID <= 0 {
		return "", atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: slurmrestd accepted the job but named no job id", t.Name)
	}
	b, _ := json.Marshal(handle{Workspace: l.Run.Workspace, Target: t.Name, URL: t.Slurm.URL, JobID: resp.JobID, Dir: dir})
	d.log().Info("slurm job submitted", "compute", t.Name, "run", l.Run.ID, "job", resp.JobID)
	return string(b), nil
}

// readExit reads the runner's exit code from the job's directory, when the server sees it
// (a filesystem shared with the nodes).
func readExit(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, ExitFile))
	if err != nil {
		return 0, false
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return code, err == nil
}

// active reports whether a job's state is one it can still run from (pending, running,
// being set up, suspended or requeued, or finishing: COMPLETING, when the batch script has
// exited but the job's epilog or processes are still being cleaned up).
func active(state string) bool {
	switch strings.SplitN(state, "+", 2)[0] {
	case "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
		"RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT", "POWER_UP_NODE", "UPDATE_DB":
		return true
	}
	return false
}

// queueReasons says in words what the commonest reasons Slurm gives for a pending job mean
// (squeue's NODELIST(REASON); the reasons are those of slurm's job_reason_string).
var queueReasons = map[string]string{
	"None":            "Slurm's scheduler has not looked at it yet",
	"Resources":       "the nodes, CPUs or GPUs it asks for are in use",
	"Priority":        "jobs of higher priority are ahead of it",
	"BeginTime":       "its start time has not come",
	"Dependency":      "it waits for the jobs it depends on",
	"JobHeldUser":     "it is held (scontrol release releases it)",
	"JobHeldAdmin":    "an administrator holds it",
	"PartitionConfig": "it asks for more than its partition allows",
	"ReqNodeNotAvail": "the nodes it needs are down, drained or reserved",
}

// activeState is the state of a job Slurm holds in an active state: Running, and Queued while
// it is PENDING in Slurm's queue, with Slurm's reason (state_reason) in the Detail.
func activeState(jobID int, info *jobInfo) atelier.JobState {
	state := strings.SplitN(info.JobState, "+", 2)[0]
	reason := info.StateReason
	if reason == "None" {
		reason = ""
	}
	if state == "PENDING" {
		if reason == "" {
			reason = "None"
		}
		detail := "waiting in Slurm's queue: " + reason
		// ReqNodeNotAvail comes with the nodes: "ReqNodeNotAvail, UnavailableNodes:node[1-2]".
		if words := queueReasons[strings.SplitN(reason, ",", 2)[0]]; words != "" {
			detail += " (" + words + ")"
		}
		detail += "; Slurm job " + strconv.Itoa(jobID) + " is PENDING"
		return atelier.JobState{Phase: atelier.JobRunning, Queued: true, Detail: detail}
	}
	detail := "Slurm job " + strconv.Itoa(jobID) + " is " + state
	if reason != "" {
		detail += " (" + reason + ")"
	}
	if info.BatchHost != "" {
		detail += " on " + info.BatchHost
	}
	return atelier.JobState{Phase: atelier.JobRunning, Detail: detail}
}

// Status asks slurmctld about the job. A PENDING job is Running and Queued, its Detail saying
// Slurm's reason ("waiting in Slurm's queue: Resources (...)"); RUNNING and the other active
// states are Running (the Detail says which, with Slurm's reason); COMPLETED and FAILED are
// Exited with the batch script's (the runner's) exit code; a job Slurm ended itself
// (CANCELLED, TIMEOUT, NODE_FAIL, PREEMPTED, OUT_OF_MEMORY, ...) or no longer knows is Gone
// with what Slurm says, unless the runner's exit code is readable in the job's directory.
// slurmrestd that cannot be reached is an error (the controller asks again), not Gone.
func (d *Driver) Status(ctx context.Context, h string) (atelier.JobState, error) {
	j, err := d.parse(h)
	if err != nil {
		return atelier.JobState{}, err
	}
	r, gone, err := d.connect(ctx, j)
	if err != nil {
		return atelier.JobState{}, err
	} else if gone != "" {
		return atelier.JobState{Phase: atelier.JobGone, Detail: gone}, nil
	}
	info, err := d.job(ctx, r, j.JobID)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return atelier.JobState{}, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: reading Slurm job %d: %s", j.Target, j.JobID, ae.Error())
		}
		return atelier.JobState{}, err
	}
	if info == nil {
		if code, ok := readExit(j.Dir); ok {
			return atelier.JobState{Phase: atelier.JobExited, ExitCode: code}, nil
		}
		return atelier.JobState{Phase: atelier.JobGone,
			Detail: fmt.Sprintf("Slurm no longer knows job %d (it ended longer ago than the cluster's MinJobAge, or was purged)", j.JobID)}, nil
	}
	state := strings.SplitN(info.JobState, "+", 2)[0]
	if active(state) {
		return activeState(j.JobID, info), nil
	}
	if code, ok := readExit(j.Dir); ok {
		return atelier.JobState{Phase: atelier.JobExited, ExitCode: code}, nil
	}
	switch state {
	case "COMPLETED", "FAILED":
		return atelier.JobState{Phase: atelier.JobExited, ExitCode: exitCode(info.ExitCode)}, nil
	}
	detail := fmt.Sprintf("Slurm ended job %d: %s", j.JobID, state)
	if info.StateReason != "" && info.StateReason != "None" {
		detail += " (" + info.StateReason + ")"
	}
	if info.StartTime == 0 || state == "CANCELLED" && info.BatchHost == "" {
		detail += ", before it started"
	}
	return atelier.JobState{Phase: atelier.JobGone, Detail: detail}, nil
}

// CancelGraceMinutes is how long, in minutes, a canceled running job has (the runner stops
// its script and records the run's end meanwhile) before Slurm ends it (see Cancel).
const CancelGraceMinutes = 2

// Cancel stops a job. A pending job is canceled in Slurm at once (scancel). A running job's
// runner stops its script by itself: it watches its run and sees the cancel request (Slurm's
// own cancel would signal every process of the job at once, the script with the runner, so the
// script could end before the runner knew it was canceled). In case the runner cannot do so,
// the job's time limit is cut to CancelGraceMinutes from now, after which Slurm ends it.
func (d *Driver) Cancel(ctx context.Context, h string) error {
	j, err := d.parse(h)
	if err != nil {
		return err
	}
	r, gone, err := d.connect(ctx, j)
	if err != nil || gone != "" {
		return err
	}
	info, err := r.job(ctx, j.JobID)
	if err != nil || info == nil || !active(info.JobState) {
		return err
	}
	var ae *apiError
	if state := strings.SplitN(info.JobState, "+", 2)[0]; state == "PENDING" || info.StartTime == 0 || info.StartTime > d.now().Unix() {
		err = r.do(ctx, http.MethodDelete, fmt.Sprintf("job/%d", j.JobID), nil, nil)
		if errors.As(err, &ae) && (ae.has(errAlreadyDone) || ae.has(errInvalidJobID)) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("compute target %s: canceling Slurm job %d: %w", j.Target, j.JobID, err)
		}
		d.log().Info("slurm job canceled", "compute", j.Target, "job", j.JobID)
		return nil
	}
	elapsed := int(d.now().Unix()-info.StartTime+59) / 60
	limit := elapsed + CancelGraceMinutes
	if info.TimeLimit > 0 && info.TimeLimit <= limit {
		return nil
	}
	err = r.do(ctx, http.MethodPost, fmt.Sprintf("job/%d", j.JobID), map[string]any{"time_limit": limit}, nil)
	if errors.As(err, &ae) && (ae.has(errAlreadyDone) || ae.has(errInvalidJobID)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("compute target %s: cutting Slurm job %d's time limit for its cancel: %w", j.Target, j.JobID, err)
	}
	return nil
}

// Logs reads the runner's own output from offset: the job's runner.log, which the server reads
// where the nodes write it (a shared filesystem).
func (d *Driver) Logs(ctx context.Context, h string, offset int64) (io.ReadCloser, error) {
	j, err := d.parse(h)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, atelier.Errorf(atelier.EINVALID, "offset %d is negative", offset)
	}
	f, err := os.Open(filepath.Join(j.Dir, RunnerLog))
	if errors.Is(err, os.ErrNotExist) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "the runner log of Slurm job %d is not at %s on this server: the job has not started, was released, or its work directory is not shared with the server",
			j.JobID, filepath.Join(j.Dir, RunnerLog))
	} else if err != nil {
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Release removes the job's directory (where the server sees it); the job must have ended.
func (d *Driver) Release(ctx context.Context, h string) error {
	j, err := d.parse(h)
	if err != nil {
		return err
	}
	r, gone, err := d.connect(ctx, j)
	if err != nil {
		return err
	}
	if gone == "" {
		info, err := r.job(ctx, j.JobID)
		if err != nil {
			return err
		}
		if info != nil && active(info.JobState) {
			return atelier.Errorf(atelier.ECONFLICT, "Slurm job %d is still %s", j.JobID, info.JobState)
		}
	}
	// Only a run's directory the driver made: <work dir>/<run id> holding a runner log or an
	// exit code (or nothing left).
	if !runIDPattern.MatchString(filepath.Base(j.Dir)) {
		return atelier.Errorf(atelier.EINVALID, "slurm job handle names a directory %s that is not a run's", j.Dir)
	}
	if entries, err := os.ReadDir(j.Dir); err == nil {
		for _, e := range entries {
			if n := e.Name(); n != RunnerLog && n != ExitFile && n != "job" {
				return atelier.Errorf(atelier.EINVALID, "%s holds %s: it is not a job directory of the slurm driver", j.Dir, n)
			}
		}
	}
	return os.RemoveAll(j.Dir)
}

// checkExpiry refuses a token whose exp has passed, saying how to replace it.
func (d *Driver) checkExpiry(t *atelier.ComputeTarget, r *rest, token string) error {
	_, exp, _ := claims(token)
	if exp.IsZero() || exp.After(d.now()) {
		return nil
	}
	how := "attach the target again with a new one"
	if t.Slurm.TokenSecret != "" {
		how = "set a new one in the workspace secret " + t.Slurm.TokenSecret
	}
	return atelier.Errorf(atelier.EINVALID, "compute target %s: the token for user %q expired at %s: make a new one (scontrol token username=%s lifespan=SECONDS) and %s",
		t.Name, r.user, exp.Format(time.RFC3339), r.user, how)
}

// Check checks that a target can run jobs: slurmrestd answers at its URL and serves APIVersion,
// the token is a JWT naming a user and not expired, slurmctld accepts it, and the partition (when
// given) exists. Each failure says which.
func (d *Driver) Check(ctx context.Context, t *atelier.ComputeTarget, creds atelier.ComputeCredentials) error {
	if t.Slurm == nil {
		return atelier.Errorf(atelier.EINVALID, "compute target %s has no slurm configuration", t.Name)
	}
	if _, _, err := d.targetPaths(t); err != nil {
		return err
	}
	r, err := newREST(d.client(), t, creds.Token)
	if err != nil {
		return err
	}
	if err := d.checkExpiry(t, r, creds.Token); err != nil {
		return err
	}
	var ping struct {
		Pings []struct {
			Hostname string `json:"hostname"`
			Ping     string `json:"ping"`
			Mode     string `json:"mode"`
		} `json:"pings"`
	}
	err = r.do(ctx, http.MethodGet, "ping", nil, &ping)
	var ae *apiError
	if errors.As(err, &ae) {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: slurmrestd at %s answered, but slurmctld did not accept the request for user %q (%s): the token is not signed with the cluster's jwt_key (AuthAltParameters), its user is unknown, or slurmctld is down",
			t.Name, r.base, r.user, ae.Error())
	} else if err != nil {
		return err
	}
	up := false
	for _, p := range ping.Pings {
		up = up || p.Ping == "UP"
	}
	if !up {
		return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: slurmrestd at %s answers, but no slurmctld is UP (%+v)", t.Name, r.base, ping.Pings)
	}
	if p := t.Slurm.Partition; p != "" {
		err := r.do(ctx, http.MethodGet, "partition/"+p, nil, nil)
		if errors.As(err, &ae) && ae.has(errInvalidPartition) {
			var all struct {
				Partitions []struct {
					Name string `json:"name"`
				} `json:"partitions"`
			}
			names := []string{}
			if r.do(ctx, http.MethodGet, "partitions", nil, &all) == nil {
				for _, p := range all.Partitions {
					names = append(names, p.Name)
				}
			}
			return atelier.Errorf(atelier.EINVALID, "compute target %s: the cluster has no partition %q (it has: %s): fix --partition",
				t.Name, p, strings.Join(names, ", "))
		} else if errors.As(err, &ae) {
			return atelier.Errorf(atelier.EINVALID, "compute target %s: reading partition %q: %s", t.Name, p, ae.Error())
		} else if err != nil {
			return err
		}
	}
	return nil
}
