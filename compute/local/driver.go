package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/internal/atomicfile"
)

var _ atelier.ComputeDriver = (*Driver)(nil)

// Files in a job's directory.
const (
	// RunnerLog is the runner's own output (stdout and stderr).
	RunnerLog = "runner.log"
	// ExitFile holds the runner's exit code, written by the runner just before it exits: a
	// server that did not start the runner (it restarted) cannot wait for it.
	ExitFile = "exit-code"
	// HandleFile holds the job's handle, written once its runner started: a server that
	// launches the run again (it stopped before it recorded the handle) adopts that runner.
	HandleFile = "handle.json"
)

// Driver runs jobs on this machine: each run's in-job runner (`atelier job exec`) is a process
// of its own session, detached from the server, so it outlives a server that stops or crashes;
// the server that starts again asks the driver what became of it by its handle (the process id
// and its start time, so a reused pid is not taken for the runner).
type Driver struct {
	// Command is the runner's command line before its arguments (the atelier binary and "job",
	// "exec"); Args are added after the run's.
	Command []string
	Args    []string
	// Env is the runner's environment besides the run's (ATELIER_SERVER, ATELIER_TOKEN,
	// ATELIER_WORKSPACE, ATELIER_SECRET_*): PATH and what the runner needs, never the
	// server's own credentials.
	Env []string
	// Dir holds one directory per job (<Dir>/<run id>): the runner's log and exit code, and
	// its working directory.
	Dir string

	mu       sync.Mutex
	children map[int]chan struct{} // runners this process started, closed when reaped
}

// handle is what the driver stores of a job.
type handle struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // the process's start time (clock ticks after boot)
	Dir   string `json:"dir"`
}

func (d *Driver) parse(h string) (*handle, error) {
	var j handle
	if err := json.Unmarshal([]byte(h), &j); err != nil || j.PID <= 0 || j.Dir == "" {
		return nil, atelier.Errorf(atelier.EINVALID, "local job handle %q is not one this driver wrote", h)
	}
	return &j, nil
}

// Launch starts the runner of a claimed run in a session of its own.
func (d *Driver) Launch(ctx context.Context, l *atelier.JobLaunch) (string, error) {
	if len(d.Command) == 0 {
		return "", errors.New("local driver: no runner command")
	}
	dir := filepath.Join(d.Dir, l.Run.ID)
	// A runner started for this run before (a server that stopped before it recorded the
	// handle, whose successor launches the run again) is the run's job: adopted, not started a
	// second time. Its runner keeps the earlier tokens.
	if b, err := os.ReadFile(filepath.Join(dir, HandleFile)); err == nil {
		if j, err := d.parse(string(b)); err == nil && j.Dir == dir {
			return string(b), nil
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	logf, err := os.OpenFile(filepath.Join(dir, RunnerLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	defer logf.Close()
	args := append(append(d.Command[1:len(d.Command):len(d.Command)], "--run", l.Run.ID, "--work-dir", filepath.Join(dir, "job"),
		"--exit-file", filepath.Join(dir, ExitFile)), d.Args...)
	cmd := exec.Command(d.Command[0], args...)
	env := append([]string{}, d.Env...)
	env = append(env, "ATELIER_SERVER="+l.Server, "ATELIER_TOKEN="+l.Token, "ATELIER_WORKSPACE="+l.Run.Workspace)
	if l.ScriptToken != "" {
		env = append(env, "ATELIER_SCRIPT_TOKEN="+l.ScriptToken)
	}
	for name, value := range l.Secrets {
		env = append(env, "ATELIER_SECRET_"+name+"="+value)
	}
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// A session of its own: the runner outlives the server and its terminal (Ctrl-C on the
	// server does not reach it); the server cancels it through Cancel.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		// The operator's to fix, and the run's error says it: an atelier error, shown.
		return "", atelier.Errorf(atelier.EUNAVAILABLE, "starting the job runner: %v", err)
	}
	start, _, err := procStart(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return "", fmt.Errorf("reading the job runner's start time: %w", err)
	}
	reaped := make(chan struct{})
	d.mu.Lock()
	if d.children == nil {
		d.children = map[int]chan struct{}{}
	}
	d.children[cmd.Process.Pid] = reaped
	d.mu.Unlock()
	go func() {
		cmd.Wait() // the runner writes its exit code in ExitFile
		close(reaped)
		d.mu.Lock()
		delete(d.children, cmd.Process.Pid)
		d.mu.Unlock()
	}()
	b, _ := json.Marshal(handle{PID: cmd.Process.Pid, Start: start, Dir: dir})
	if err := atomicfile.WriteFile(filepath.Join(dir, HandleFile), b, 0o600); err != nil {
		// Not to be adopted, not to be watched: stopped, so that nothing runs without a handle.
		syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		return "", fmt.Errorf("recording the job runner's handle: %w", err)
	}
	return string(b), nil
}

// Status tells whether the runner still runs, how it exited, or that it is gone.
func (d *Driver) Status(ctx context.Context, h string) (atelier.JobState, error) {
	j, err := d.parse(h)
	if err != nil {
		return atelier.JobState{}, err
	}
	if d.alive(j) {
		return atelier.JobState{Phase: atelier.JobRunning}, nil
	}
	b, err := os.ReadFile(filepath.Join(j.Dir, ExitFile))
	if err == nil {
		if code, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return atelier.JobState{Phase: atelier.JobExited, ExitCode: code}, nil
		}
	}
	return atelier.JobState{Phase: atelier.JobGone,
		Detail: fmt.Sprintf("the job runner (pid %d) is no longer running and left no exit code (killed, or the machine restarted)", j.PID)}, nil
}

// alive reports whether the handle's process runs (a zombie has ended).
func (d *Driver) alive(j *handle) bool {
	d.mu.Lock()
	reaped, mine := d.children[j.PID]
	d.mu.Unlock()
	if mine {
		select {
		case <-reaped:
			return false
		default:
		}
	}
	start, state, err := procStart(j.PID)
	return err == nil && start == j.Start && state != 'Z' && state != 'X'
}

// Cancel sends the runner SIGTERM: it stops the script (SIGTERM, then SIGKILL after the grace)
// and records the run's end.
func (d *Driver) Cancel(ctx context.Context, h string) error {
	j, err := d.parse(h)
	if err != nil {
		return err
	}
	if !d.alive(j) {
		return nil
	}
	if err := syscall.Kill(j.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping the job runner (pid %d): %w", j.PID, err)
	}
	return nil
}

// Logs reads the runner's own output from offset.
func (d *Driver) Logs(ctx context.Context, h string, offset int64) (io.ReadCloser, error) {
	j, err := d.parse(h)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(j.Dir, RunnerLog))
	if os.IsNotExist(err) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "the job's runner log is gone (released)")
	} else if err != nil {
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Release removes the job's directory; the runner must have ended.
func (d *Driver) Release(ctx context.Context, h string) error {
	j, err := d.parse(h)
	if err != nil {
		return err
	}
	if d.alive(j) {
		return atelier.Errorf(atelier.ECONFLICT, "the job runner (pid %d) is still running", j.PID)
	}
	if filepath.Dir(j.Dir) != filepath.Clean(d.Dir) {
		return atelier.Errorf(atelier.EINVALID, "local job handle names a directory outside %s", d.Dir)
	}
	return os.RemoveAll(j.Dir)
}

// procStart reads a process's start time and state from /proc/<pid>/stat.
func procStart(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold anything: fields after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is the state (field 3); the start time is field 22.
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	return start, fields[0][0], err
}

// ProcessAlive reports whether the process pid runs and started at start (clock ticks after
// boot; 0 matches any start): how a server tells whether the owner of a lease on this machine
// is alive.
func ProcessAlive(pid int, start uint64) bool {
	s, state, err := procStart(pid)
	return err == nil && (start == 0 || s == start) && state != 'Z' && state != 'X'
}

// ProcessStart returns the start time of process pid (see ProcessAlive).
func ProcessStart(pid int) (uint64, error) {
	s, _, err := procStart(pid)
	return s, err
}

var _ atelier.ComputeChecker = (*Driver)(nil)

// Check checks that this machine can run a local target's jobs: the runner can be started and
// a Python interpreter is on the PATH.
func (d *Driver) Check(ctx context.Context, t *atelier.ComputeTarget, _ atelier.ComputeCredentials) error {
	if len(d.Command) == 0 {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: this server has no job runner to start", t.Name)
	}
	if fi, err := os.Stat(d.Command[0]); err != nil || fi.Mode()&0o111 == 0 {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: the job runner %s cannot be started", t.Name, d.Command[0])
	}
	if _, err := exec.LookPath("python3"); err != nil {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: no python3 on this machine's PATH", t.Name)
	}
	return nil
}
