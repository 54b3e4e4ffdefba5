// Package local is the compute target "local": it runs scripts as processes of this machine,
// each in its own process group and working directory, with Python environments cached by
// the hash of their specification.
package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/atelier-ml/atelier"
)

var _ atelier.Executor = (*Executor)(nil)

// Executor runs jobs as local processes.
type Executor struct {
	// WorkDir holds one working directory per run, removed when the run ends.
	WorkDir string
	// Envs caches Python environments.
	Envs *EnvCache
	// SDKPath is put on PYTHONPATH so scripts import the atelier SDK without installing it.
	SDKPath string
	// CancelGrace is the time between SIGTERM and SIGKILL.
	CancelGrace time.Duration
	// MaxLogBytes caps what is captured of a script's output; beyond it the output is drained
	// and dropped with a note, so a runaway script cannot fill the server's disk.
	MaxLogBytes int64
	// KeepWorkDirs keeps working directories after runs (for debugging).
	KeepWorkDirs bool
	// NoOverlay copies every snapshot instead of mounting an overlay of a shared template.
	NoOverlay bool
	// Isolation confines scripts to their own run (nil: scripts can do what the server can).
	Isolation *Isolation
	// Timer starts the timer of a run's timeout (time.NewTimer's channel when nil): tests
	// fire it when the script is known to run, not after a duration that races its start-up.
	Timer func(d time.Duration) (c <-chan time.Time, stop func())

	overlayOnce sync.Once
	overlayOK   bool
	templateMu  sync.Mutex
	Log         *slog.Logger
}

// Log paths of a run.
const (
	StdLogPath     = "logs/std_log.txt"
	PrepareLogPath = "logs/prepare_log.txt"
)

// Run prepares the working directory and environment, runs the script and uploads its outputs.
func (e *Executor) Run(ctx context.Context, host atelier.JobHost, job *atelier.Job) atelier.JobResult {
	// Host calls must outlive a cancellation of ctx: a canceled run still records its logs.
	hostCtx := context.WithoutCancel(ctx)
	runDir := filepath.Join(e.WorkDir, job.Run.ID)
	dir := filepath.Join(runDir, "wd")
	if !e.KeepWorkDirs {
		defer os.RemoveAll(runDir)
	}
	fail := func(format string, args ...any) atelier.JobResult {
		if ctx.Err() != nil {
			return atelier.JobResult{Status: atelier.StatusCanceled, Error: "canceled while preparing"}
		}
		return atelier.JobResult{Status: atelier.StatusFailed, Error: fmt.Sprintf(format, args...)}
	}
	// failWith fails the run saying what failed; the user reads the error's message, the
	// server's log gets an internal error's cause.
	failWith := func(what string, err error) atelier.JobResult {
		if atelier.ErrorCode(err) == atelier.EINTERNAL && ctx.Err() == nil {
			e.logger().Error("a run failed on the server's side", "workspace", job.Run.Workspace, "run", job.Run.ID, "step", what, "err", err)
		}
		return fail("%s: %s", what, atelier.ErrorMessage(err))
	}
	if err := host.SetStatus(hostCtx, job, atelier.StatusPreparing); err != nil {
		return failWith("recording the Preparing status", err)
	}
	unmount, err := e.workingDir(ctx, host, job, runDir, dir)
	if err != nil {
		return failWith("extracting the snapshot", err)
	}
	defer unmount()
	prepLog := &hostWriter{ctx: hostCtx, host: host, job: job, path: PrepareLogPath}
	data, err := e.prepareData(ctx, host, job, runDir, prepLog)
	defer data.unmount()
	if err != nil {
		prepLog.Close()
		return failWith("preparing data", err)
	}
	// A home and a temporary directory of the run's own: the server's are not the script's.
	home, tmp := filepath.Join(runDir, "home"), filepath.Join(runDir, "tmp")
	for _, d := range []string{home, tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			prepLog.Close()
			return failWith("preparing the working directory", err)
		}
	}
	if err := e.handOver(runDir, data.mounts...); err != nil {
		prepLog.Close()
		return failWith("preparing the working directory", err)
	}
	python, err := e.Envs.Python(ctx, job.Config.Environment, dir, prepLog)
	prepLog.Close()
	if err != nil {
		return failWith("preparing the environment", err)
	}
	if ctx.Err() != nil {
		return fail("canceled")
	}

	argv := append([]string{python, job.Config.Script}, job.Config.Arguments...)
	var distEnv []string
	if job.Config.Processes() > 1 {
		if argv, distEnv, err = distributed(job.Config, argv); err != nil {
			return failWith("starting a distributed run", err)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = e.environ(job)
	cmd.Env = append(cmd.Env, data.env...)
	cmd.Env = append(cmd.Env, distEnv...)
	cmd.Env = append(cmd.Env, "HOME="+home, "TMPDIR="+tmp)
	// A process group of its own, so cancel and cleanup reach every process the script forks.
	// Pdeathsig: if the server is killed, its scripts do not run on unwatched.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := e.Isolation.wrap(cmd, []string{runDir}, []string{e.Envs.Dir, e.SDKPath}); err != nil {
		return failWith("confining the script", err)
	}
	out := &capture{w: &hostWriter{ctx: hostCtx, host: host, job: job, path: StdLogPath}, max: e.maxLog(), mask: atelier.NewMasker(job.Secrets)}
	pr, pw, err := os.Pipe()
	if err != nil {
		return failWith("creating the output pipe", err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := host.SetStatus(hostCtx, job, atelier.StatusRunning); err != nil {
		pr.Close()
		pw.Close()
		return failWith("recording the Running status", err)
	}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fail("starting %s: %v", argv[0], err)
	}
	// A confined script has a mount namespace of its own, which none of its processes can
	// leave: at the end it names them all, even one that dropped the run's environment.
	ns, pin := runNamespace(cmd.Process.Pid)
	if pin != nil {
		defer pin.Close()
	}
	pw.Close()
	copied := make(chan struct{})
	go func() {
		out.copyLines(pr)
		close(copied)
	}()
	logsDone := make(chan struct{})
	logsStopped := make(chan struct{})
	go func() {
		e.syncLogs(hostCtx, host, job, dir, logsDone)
		close(logsStopped)
	}()

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var timeout <-chan time.Time
	if job.Config.Timeout > 0 {
		c, stop := e.timer(time.Duration(job.Config.Timeout * float64(time.Second)))
		defer stop()
		timeout = c
	}
	var reason atelier.RunStatus
	var waitErr error
	select {
	case waitErr = <-waited:
	case <-ctx.Done():
		reason = atelier.StatusCanceled
		waitErr = e.stop(cmd, waited)
	case <-timeout:
		reason = atelier.StatusFailed
		waitErr = e.stop(cmd, waited)
	}
	// The script may have left children behind (forked workers, daemons that left its process
	// group): end them all, or they would run on unwatched and hold the output pipe open.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	killStragglers(job.Env["ATELIER_RUN_ID"], ns)
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
		pr.Close() // something we could not find still holds the pipe: stop reading it
		<-copied
	}
	pr.Close()
	out.Close()

	host.SetStatus(hostCtx, job, atelier.StatusFinalizing)
	close(logsDone)
	<-logsStopped
	uploadErr := e.uploadDir(hostCtx, host, job, dir, "outputs")
	if uploadErr != nil {
		uploadErr = atelier.Errorf(atelier.ErrorCode(uploadErr), "uploading outputs: %s", atelier.ErrorMessage(uploadErr))
	}
	if err := e.uploadData(hostCtx, host, job, runDir); err != nil && uploadErr == nil {
		uploadErr = err
	}

	res := atelier.JobResult{}
	var exit *exec.ExitError
	switch {
	case waitErr == nil:
		code := 0
		res.ExitCode = &code
	case errors.As(waitErr, &exit):
		code := exit.ExitCode()
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		res.ExitCode = &code
	default:
		res.Error = waitErr.Error()
	}
	switch {
	case reason == atelier.StatusCanceled:
		res.Status, res.Error = atelier.StatusCanceled, "canceled by request"
	case reason == atelier.StatusFailed:
		res.Status, res.Error = atelier.StatusFailed, fmt.Sprintf("timed out after %s", time.Duration(job.Config.Timeout*float64(time.Second)))
	case res.ExitCode != nil && *res.ExitCode == 0 && uploadErr == nil:
		res.Status = atelier.StatusCompleted
	case res.ExitCode != nil && *res.ExitCode == 0:
		res.Status, res.Error = atelier.StatusFailed, atelier.ErrorMessage(uploadErr)
	default:
		res.Status = atelier.StatusFailed
		msg := "the script failed"
		if res.ExitCode != nil {
			msg = fmt.Sprintf("the script exited with code %d", *res.ExitCode)
		}
		if tail := out.tail(); tail != "" {
			msg += "; its last output lines:\n" + tail
		}
		res.Error = msg
	}
	return res
}

// stop sends SIGTERM to the process group, then SIGKILL after the grace period.
func (e *Executor) stop(cmd *exec.Cmd, waited <-chan error) error {
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	grace := e.CancelGrace
	if grace <= 0 {
		grace = atelier.DefaultCancelGrace
	}
	select {
	case err := <-waited:
		return err
	case <-time.After(grace):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return <-waited
	}
}

func (e *Executor) timer(d time.Duration) (<-chan time.Time, func()) {
	if e.Timer != nil {
		return e.Timer(d)
	}
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

func (e *Executor) logger() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (e *Executor) maxLog() int64 {
	if e.MaxLogBytes > 0 {
		return e.MaxLogBytes
	}
	return 100 << 20
}

// serverEnviron is the server's environment less its own settings (ATELIER_*) and the
// directories of its user (XDG_*: in the server's home, which runs do not see; a run's
// programs find theirs under the run's own $HOME).
func serverEnviron() []string {
	var list []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ATELIER_") && !strings.HasPrefix(kv, "XDG_") {
			list = append(list, kv)
		}
	}
	return list
}

// handOver gives a run's directory to the user its script runs as: the working directory
// (of an overlay, its upper layer: the template stays the server's), its data and home.
func (e *Executor) handOver(runDir string, mounts ...string) error {
	wd := filepath.Join(runDir, "wd")
	overlay := fileExists(filepath.Join(runDir, "upper"))
	abs, _ := filepath.Abs(runDir)
	return e.Isolation.handOver(func(p string) bool {
		if overlay && (p == wd || p == filepath.Join(runDir, "ovwork")) {
			return true
		}
		if a, err := filepath.Abs(p); err == nil && abs != "" {
			return slices.Contains(mounts, a)
		}
		return false
	}, runDir)
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// environ is the script's environment: the server's, the configured variables, the run's
// secrets, the run context and the SDK on PYTHONPATH.
func (e *Executor) environ(job *atelier.Job) []string {
	env := map[string]string{}
	for _, kv := range serverEnviron() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	for k, v := range job.Config.Environment.Variables {
		env[k] = v
	}
	for k, v := range job.Secrets {
		env[k] = v
	}
	for k, v := range job.Env {
		env[k] = v
	}
	env["PYTHONUNBUFFERED"] = "1"
	if e.SDKPath != "" {
		if p := env["PYTHONPATH"]; p != "" {
			env["PYTHONPATH"] = e.SDKPath + string(os.PathListSeparator) + p
		} else {
			env["PYTHONPATH"] = e.SDKPath
		}
	}
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	return list
}

// syncLogs uploads the files the script writes under ./logs every few seconds while it runs,
// and once more at the end.
func (e *Executor) syncLogs(ctx context.Context, host atelier.JobHost, job *atelier.Job, dir string, done <-chan struct{}) {
	seen := map[string]time.Time{}
	sync := func() {
		root := filepath.Join(dir, "logs")
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			fi, err := d.Info()
			if err != nil || seen[p].Equal(fi.ModTime()) {
				return nil
			}
			rel, _ := filepath.Rel(dir, p)
			rel = filepath.ToSlash(rel)
			if rel == StdLogPath || rel == PrepareLogPath {
				return nil // those names belong to the captured output
			}
			f, err := os.Open(p)
			if err != nil {
				return nil
			}
			defer f.Close()
			if err := host.UploadFile(ctx, job, rel, f); err == nil {
				seen[p] = fi.ModTime()
			}
			return nil
		})
	}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			sync()
			return
		case <-tick.C:
			sync()
		}
	}
}

// uploadDir uploads every regular file under dir/sub as a run file with the same path.
func (e *Executor) uploadDir(ctx context.Context, host atelier.JobHost, job *atelier.Job, dir, sub string) error {
	var first error
	root := filepath.Join(dir, sub)
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) && first == nil {
				first = err
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // symlinks could point anywhere on this machine: not uploaded
		}
		rel, _ := filepath.Rel(dir, p)
		f, err := os.Open(p)
		if err != nil {
			if first == nil {
				first = err
			}
			return nil
		}
		defer f.Close()
		if err := host.UploadFile(ctx, job, filepath.ToSlash(rel), f); err != nil && first == nil {
			first = fmt.Errorf("%s: %w", rel, err)
		}
		return nil
	})
	return first
}

// hostWriter sends what is written to a run's log, in chunks.
type hostWriter struct {
	ctx  context.Context
	host atelier.JobHost
	job  *atelier.Job
	path string
	mu   sync.Mutex
	buf  []byte
	last time.Time
}

func (w *hostWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) >= 64<<10 || time.Since(w.last) > 200*time.Millisecond {
		w.flushLocked()
	}
	return len(p), nil
}

func (w *hostWriter) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	w.host.AppendLog(w.ctx, w.job, w.path, w.buf)
	w.buf, w.last = w.buf[:0], time.Now()
}

func (w *hostWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	return nil
}

// capture copies a script's output line by line to the log, keeping the last lines for the
// error message and dropping what exceeds the cap. Secret values are masked in both.
type capture struct {
	w       *hostWriter
	mask    *atelier.Masker
	max     int64
	written int64
	lines   []string
	mu      sync.Mutex
}

const tailLines = 20

func (c *capture) copyLines(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // flush partial output of a quiet script now and then
		for {
			select {
			case <-stop:
				return
			case <-ticker.C:
				c.w.mu.Lock()
				c.w.flushLocked()
				c.w.mu.Unlock()
			}
		}
	}()
	truncated := false
	var carry []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(carry) > 0 {
			line, carry = append(carry, line...), nil
		}
		line = c.mask.Mask(line)
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer comes in pieces: an end that may begin a secret
			// waits for the next piece, so the value is masked whole.
			if k := c.mask.Pending(line); k > 0 {
				carry = append([]byte(nil), line[len(line)-k:]...)
				line = line[:len(line)-k]
			}
		}
		if len(line) > 0 {
			c.remember(line)
			if !truncated && c.written+int64(len(line)) <= c.max {
				c.w.Write(line)
				c.written += int64(len(line))
			} else if !truncated {
				truncated = true
				c.w.Write([]byte(fmt.Sprintf("\n[atelier: output truncated after %d bytes; the rest was discarded]\n", c.written)))
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (c *capture) remember(line []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.TrimRight(string(line), "\r\n")
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	c.lines = append(c.lines, s)
	if len(c.lines) > tailLines {
		c.lines = c.lines[len(c.lines)-tailLines:]
	}
}

func (c *capture) tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

func (c *capture) Close() error { return c.w.Close() }

// runNamespace returns the mount namespace of the process pid when it is not the server's
// own, else "", and the open namespace: while it is open the namespace lives on, so its name
// cannot pass to another run's (namespaces' numbers are reused) before the run's end is done.
func runNamespace(pid int) (string, *os.File) {
	path := fmt.Sprintf("/proc/%d/ns/mnt", pid)
	pin, err := os.Open(path)
	if err != nil {
		return "", nil
	}
	ns, err := os.Readlink(path)
	if own, _ := os.Readlink("/proc/self/ns/mnt"); err != nil || ns == own {
		pin.Close()
		return "", nil
	}
	// The process may have ended between the two: the pinned namespace must be the one named.
	var st syscall.Stat_t
	if syscall.Fstat(int(pin.Fd()), &st) != nil || ns != fmt.Sprintf("mnt:[%d]", st.Ino) {
		pin.Close()
		return "", nil
	}
	return ns, pin
}

// killStragglers kills every process of the run: those in its mount namespace (ns, when it has
// one of its own) and those whose environment marks them as the run's. A daemon that called
// setsid left the process group, but it keeps the namespace and the environment it was started
// with (unless it replaced the environment: the namespace still names it).
func killStragglers(runID, ns string) {
	if runID == "" && ns == "" {
		return
	}
	marker := []byte("ATELIER_RUN_ID=" + runID + "\x00")
	self := os.Getpid()
	for round := 0; round < 5; round++ {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return // not Linux: the process group kill is all there is
		}
		found := false
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			ours := false
			if ns != "" {
				link, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt")
				ours = err == nil && link == ns
			}
			if !ours && runID != "" {
				env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
				ours = err == nil && bytes.Contains(env, marker)
			}
			if !ours {
				continue
			}
			syscall.Kill(pid, syscall.SIGKILL)
			found = true
		}
		if !found {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
