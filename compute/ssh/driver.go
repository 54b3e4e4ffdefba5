// Package ssh is the driver of ssh compute targets: a Linux machine reached over SSH with a
// key, where each run's in-job runner (`atelier job exec`, the server's own binary, uploaded
// once per version) runs detached from the session that started it.
package ssh

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"runtime"
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

// Files in a job's directory on the machine (as the local driver's).
const (
	RunnerLog = "runner.log"
	ExitFile  = "exit-code"
	envFile   = "env" // the runner's environment, removed once it started
	// startedFile holds the started runner's pid and /proc stat line: a launch of the same
	// run finds it and adopts that runner.
	startedFile = "started"
)

// DefaultRoot is where the driver keeps its files on a machine, under the account's home:
// bin/atelier-<hash> (the runner's binary), jobs/<run id> (a job's log, exit code and working
// directory) and envs (the Python environments the runners share).
const DefaultRoot = ".cache/atelier"

// Lookup returns a workspace's stored compute target with its decrypted credentials: Status,
// Cancel, Logs and Release receive only a job's handle and connect again with them.
type Lookup func(ctx context.Context, workspace, name string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error)

// Driver runs jobs on ssh compute targets. It serves every ssh target of every workspace: a
// job's handle names its target, and the driver keeps one connection per machine and key for
// a while (IdleTimeout), so watching many jobs does not open a connection per look.
type Driver struct {
	// Binary is the atelier binary the runners run (the server's own): uploaded to a machine
	// once per content (~/<Root>/bin/atelier-<hash>), so the machine must be of the server's
	// OS and architecture (Check verifies it).
	Binary string
	Lookup Lookup
	// Args are added after the runner's own arguments (--cancel-grace, --server-wait).
	Args []string
	// Root is the driver's directory on machines, relative to the account's home; DefaultRoot
	// when empty.
	Root string
	Log  *slog.Logger
	// IdleTimeout closes a connection unused that long (2 minutes when zero); DialTimeout
	// bounds connecting and the SSH handshake (20 s when zero).
	IdleTimeout time.Duration
	DialTimeout time.Duration

	mu      sync.Mutex
	clients map[string]*client

	hashOnce sync.Once
	hash     string
	hashErr  error
}

// New returns the driver of ssh targets, which uploads binary (the server's own) to the
// machines and finds targets' credentials with lookup.
func New(binary string, lookup Lookup, args ...string) *Driver {
	return &Driver{Binary: binary, Lookup: lookup, Args: args}
}

func (d *Driver) root() string {
	if d.Root != "" {
		return strings.Trim(d.Root, "/")
	}
	return DefaultRoot
}

func (d *Driver) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.New(slog.DiscardHandler)
}

// handle is what the driver stores of a job: enough to reach the machine again.
type handle struct {
	Workspace string `json:"workspace"`
	Target    string `json:"target"`
	Host      string `json:"host"`
	Port      int    `json:"port"`
	User      string `json:"user"`
	// HostKey is the key the machine presented at launch when the target names none: later
	// connections for the job insist on it.
	HostKey string `json:"host_key,omitempty"`
	PID     int    `json:"pid"`
	Start   uint64 `json:"start"` // the runner's start time (clock ticks after boot)
	Dir     string `json:"dir"`
}

var (
	runIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	envName      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (d *Driver) parse(h string) (*handle, error) {
	var j handle
	if err := json.Unmarshal([]byte(h), &j); err != nil || j.PID <= 0 || j.Dir == "" || j.Target == "" || j.Host == "" || j.User == "" ||
		!strings.HasPrefix(j.Dir, "/") || strings.Contains(j.Dir, "/../") || strings.ContainsAny(j.Dir, "\x00\n") {
		return nil, atelier.Errorf(atelier.EINVALID, "ssh job handle %q is not one this driver wrote", h)
	}
	return &j, nil
}

// endpoint finds the handle's target again; gone is non-empty when the target no longer
// names the handle's machine (detached, or attached again elsewhere).
func (d *Driver) endpoint(ctx context.Context, j *handle) (e endpoint, gone string, err error) {
	if d.Lookup == nil {
		return e, "", atelier.Errorf(atelier.EUNAVAILABLE, "the ssh driver has no way to find compute targets")
	}
	t, creds, err := d.Lookup(ctx, j.Workspace, j.Target)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return e, fmt.Sprintf("the compute target %s of workspace %s was detached", j.Target, j.Workspace), nil
	} else if err != nil {
		return e, "", err
	}
	port := func(p int) int {
		if p == 0 {
			return 22
		}
		return p
	}
	if t.SSH == nil || t.SSH.Host != j.Host || port(t.SSH.Port) != port(j.Port) || t.SSH.User != j.User {
		return e, fmt.Sprintf("the compute target %s now names another machine than %s@%s", j.Target, j.User, j.Host), nil
	}
	return newEndpoint(t, creds, j.HostKey), "", nil
}

// binaryHash is the content hash naming the runner's binary on machines.
func (d *Driver) binaryHash() (string, error) {
	d.hashOnce.Do(func() {
		f, err := os.Open(d.Binary)
		if err != nil {
			d.hashErr = err
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			d.hashErr = err
			return
		}
		d.hash = hex.EncodeToString(h.Sum(nil))[:16]
	})
	return d.hash, d.hashErr
}

// unameOf is what `uname -sm` says on a machine of this server's OS and architecture.
func unameOf(goos, goarch string) string {
	m := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "arm": "armv7l", "ppc64le": "ppc64le",
		"s390x": "s390x", "riscv64": "riscv64", "loong64": "loongarch64"}[goarch]
	if m == "" {
		m = goarch
	}
	s := map[string]string{"linux": "Linux", "darwin": "Darwin", "freebsd": "FreeBSD"}[goos]
	if s == "" {
		s = goos
	}
	return s + " " + m
}

// sameMachineKind compares `uname -sm` with this server's OS and architecture.
func sameMachineKind(uname string) bool {
	want := unameOf(runtime.GOOS, runtime.GOARCH)
	got := strings.TrimSpace(uname)
	if runtime.GOARCH == "386" && (got == "Linux i386" || got == "Linux i586") {
		return true
	}
	if runtime.GOARCH == "arm" && strings.HasPrefix(got, "Linux armv") {
		return true
	}
	return got == want
}

// Launch starts the runner of a claimed run on its target's machine.
func (d *Driver) Launch(ctx context.Context, l *atelier.JobLaunch) (string, error) {
	t := l.Target
	if t == nil || t.SSH == nil {
		return "", atelier.Errorf(atelier.EINVALID, "the ssh driver runs jobs of stored ssh compute targets only")
	}
	if !runIDPattern.MatchString(l.Run.ID) {
		return "", atelier.Errorf(atelier.EINVALID, "run id %q cannot name a job directory", l.Run.ID)
	}
	hash, err := d.binaryHash()
	if err != nil {
		return "", fmt.Errorf("reading the runner's binary %s: %w", d.Binary, err)
	}
	env := []string{"ATELIER_SERVER=" + l.Server, "ATELIER_TOKEN=" + l.Token, "ATELIER_WORKSPACE=" + l.Run.Workspace}
	if l.ScriptToken != "" {
		env = append(env, "ATELIER_SCRIPT_TOKEN="+l.ScriptToken)
	}
	for name, value := range l.Secrets {
		if !envName.MatchString(name) || strings.ContainsRune(value, 0) {
			return "", atelier.Errorf(atelier.EINVALID, "secret %q cannot be passed in an environment variable", name)
		}
		env = append(env, "ATELIER_SECRET_"+name+"="+value)
	}
	var envText strings.Builder
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&envText, "%s=%s\n", k, quote(v))
	}

	e := newEndpoint(t, l.Credentials, "")
	c, err := d.get(ctx, e)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	seen := c.seen
	c.mu.Unlock()
	root, bin := `"$HOME"/`+quote(d.root()), "atelier-"+hash
	// One look: the job's directory made anew, the home (handles name absolute paths), the
	// machine's kind and whether this binary is there already. A runner started for this run
	// before (a server that stopped before it recorded the handle, whose successor launches the
	// run again) is the run's job: its pid and start are printed instead, and it is adopted,
	// not started a second time (it keeps the earlier tokens).
	res, err := d.run(ctx, e, `set -e
root=`+root+`
mkdir -p "$root/bin" "$root/jobs" "$root/envs"
chmod 700 "$root"
dir="$root/jobs/"`+quote(l.Run.ID)+`
if [ -s "$dir/`+startedFile+`" ]; then printf 'started\n%s\n' "$dir"; cat "$dir/`+startedFile+`"; exit 0; fi
rm -rf "$dir"
mkdir -m 700 "$dir"
printf '%s\n' "$dir"
uname -sm
if [ -x "$root/bin/`+bin+`" ]; then echo present; else echo absent; fi
`, nil)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimRight(string(res.stdout), "\n"), "\n")
	if res.code == 0 && len(lines) == 4 && lines[0] == "started" {
		pid, err := strconv.Atoi(lines[2])
		start, _, serr := parseStat(lines[3])
		if err == nil && serr == nil {
			j := handle{Workspace: l.Run.Workspace, Target: t.Name, Host: t.SSH.Host, Port: t.SSH.Port, User: t.SSH.User, PID: pid, Start: start, Dir: lines[1]}
			if e.hostKey == "" {
				j.HostKey = seen
			}
			b, _ := json.Marshal(j)
			d.log().Info("ssh job adopted: the run's runner was started before", "compute", t.Name, "host", e.addr, "run", l.Run.ID, "pid", pid)
			return string(b), nil
		}
	}
	if res.code != 0 || len(lines) != 3 {
		return "", atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: preparing the job's directory failed: %s", t.Name, strings.TrimSpace(string(res.stderr)))
	}
	dir := lines[0]
	if !sameMachineKind(lines[1]) {
		return "", atelier.Errorf(atelier.EINVALID, "compute target %s is a %q machine; this server's runner needs %q", t.Name, lines[1], unameOf(runtime.GOOS, runtime.GOARCH))
	}
	if lines[2] != "present" {
		if err := d.upload(ctx, e, root, bin); err != nil {
			return "", err
		}
	}

	note := ""
	if e.hostKey == "" {
		note = fmt.Sprintf("atelier: the host key of %s was not checked (compute target %s has no ssh.host_key): accepted %s (%s) and kept for this job\n",
			e.addr, t.Name, seen, fingerprint(seen))
	}
	args := []string{"$root/bin/" + bin, "job", "exec", "--run", l.Run.ID, "--work-dir", "$dir/job", "--exit-file", "$dir/" + ExitFile,
		"--envs-dir", "$root/envs"}
	args = append(args, d.Args...)
	var cmdline strings.Builder
	for i, a := range args {
		if i > 0 {
			cmdline.WriteByte(' ')
		}
		if strings.HasPrefix(a, "$root/") || strings.HasPrefix(a, "$dir/") {
			// A path under the job's directory: expanded, its fixed part quoted.
			v, rest, _ := strings.Cut(a, "/")
			cmdline.WriteString(`"` + v + `"/` + quote(rest))
		} else {
			cmdline.WriteString(quote(a))
		}
	}
	// The environment comes on stdin into a file only the account reads, and is removed as
	// soon as the runner started: no secret on a command line. setsid: the runner is a session
	// of its own, which outlives this SSH session (no SIGHUP when it closes).
	res, err = d.run(ctx, e, `set -e
root=`+root+`
dir=`+quote(dir)+`
umask 077
cat > "$dir/`+envFile+`"
cd "$dir"
printf '%s' `+quote(note)+` >> "$dir/`+RunnerLog+`"
set -a
. "$dir/`+envFile+`"
set +a
setsid `+cmdline.String()+` </dev/null >>"$dir/`+RunnerLog+`" 2>&1 &
pid=$!
set +e
rm -f "$dir/`+envFile+`"
{ echo "$pid"; cat "/proc/$pid/stat"; } > "$dir/`+startedFile+`.tmp" && mv "$dir/`+startedFile+`.tmp" "$dir/`+startedFile+`"
echo "$pid"
cat "/proc/$pid/stat"
`, strings.NewReader(envText.String()))
	if err != nil {
		return "", err
	}
	out := strings.SplitN(string(res.stdout), "\n", 2)
	pid, perr := strconv.Atoi(strings.TrimSpace(out[0]))
	if res.code != 0 && perr != nil {
		return "", atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: starting the job runner failed: %s", t.Name, strings.TrimSpace(string(res.stderr)))
	}
	var start uint64
	if len(out) == 2 {
		start, _, err = parseStat(out[1])
	}
	if perr != nil || len(out) < 2 || err != nil {
		// Started, but not to be watched: stopped, so that nothing runs without a handle.
		if perr == nil && len(out) == 2 && strings.TrimSpace(out[1]) != "" {
			d.run(context.WithoutCancel(ctx), e, fmt.Sprintf("kill -KILL %d 2>/dev/null", pid), nil)
		}
		return "", atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: reading the started job runner's pid and start time failed: %s", t.Name, strings.TrimSpace(string(res.stderr)))
	}
	j := handle{Workspace: l.Run.Workspace, Target: t.Name, Host: t.SSH.Host, Port: t.SSH.Port, User: t.SSH.User, PID: pid, Start: start, Dir: dir}
	if e.hostKey == "" {
		j.HostKey = seen
	}
	b, _ := json.Marshal(j)
	d.log().Info("ssh job launched", "compute", t.Name, "host", e.addr, "run", l.Run.ID, "pid", pid)
	return string(b), nil
}

// upload copies the runner's binary to the machine, through a temporary file renamed into
// place so that a concurrent launch never runs half a binary.
func (d *Driver) upload(ctx context.Context, e endpoint, root, bin string) error {
	f, err := os.Open(d.Binary)
	if err != nil {
		return fmt.Errorf("reading the runner's binary: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	res, err := d.run(ctx, e, `set -e
f=`+root+`/bin/`+bin+`
tmp="$f.tmp.$$"
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
test "$(wc -c < "$tmp")" -eq `+strconv.FormatInt(fi.Size(), 10)+`
chmod 755 "$tmp"
mv -f "$tmp" "$f"
`, f)
	if err != nil {
		return err
	}
	if res.code != 0 {
		return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: uploading the job runner (%d bytes) failed: %s (is the account's disk full?)",
			e.target, fi.Size(), strings.TrimSpace(string(res.stderr)))
	}
	d.log().Info("uploaded the job runner to an ssh target", "compute", e.target, "host", e.addr, "binary", bin)
	return nil
}

// aliveFn is a shell function: whether process $1 runs and started at $2 (a zombie has ended).
const aliveFn = `alive() { s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; want=$2; set -- ${s##*\) }; [ "$1" != Z ] && [ "$1" != X ] && [ "${20}" = "$want" ]; }
`

func (j *handle) vars() string {
	return fmt.Sprintf("pid=%d\nstart=%d\ndir=%s\n", j.PID, j.Start, quote(j.Dir))
}

// Status tells whether the runner still runs, how it exited, or that it is gone. A machine
// that cannot be reached is an error (the controller asks again), not Gone.
func (d *Driver) Status(ctx context.Context, h string) (atelier.JobState, error) {
	j, err := d.parse(h)
	if err != nil {
		return atelier.JobState{}, err
	}
	e, gone, err := d.endpoint(ctx, j)
	if err != nil {
		return atelier.JobState{}, err
	} else if gone != "" {
		return atelier.JobState{Phase: atelier.JobGone, Detail: gone}, nil
	}
	// The exit file is read after the process is seen gone: the runner writes it before it exits.
	res, err := d.run(ctx, e, j.vars()+aliveFn+`if alive "$pid" "$start"; then echo running; exit 0; fi
if [ -f "$dir/`+ExitFile+`" ]; then echo "exit $(cat "$dir/`+ExitFile+`")"; exit 0; fi
echo gone
`, nil)
	if err != nil {
		return atelier.JobState{}, err
	}
	out := strings.TrimSpace(string(res.stdout))
	switch {
	case out == "running":
		return atelier.JobState{Phase: atelier.JobRunning}, nil
	case strings.HasPrefix(out, "exit "):
		if code, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(out, "exit "))); err == nil {
			return atelier.JobState{Phase: atelier.JobExited, ExitCode: code}, nil
		}
	case out != "gone":
		return atelier.JobState{}, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: reading the job's state on %s failed: %s", j.Target, e.addr, strings.TrimSpace(string(res.stderr)))
	}
	return atelier.JobState{Phase: atelier.JobGone,
		Detail: fmt.Sprintf("the job runner (pid %d on %s) is no longer running and left no exit code (killed, or the machine restarted)", j.PID, e.addr)}, nil
}

// Cancel sends the runner SIGTERM: it stops the script and records the run's end.
func (d *Driver) Cancel(ctx context.Context, h string) error {
	j, err := d.parse(h)
	if err != nil {
		return err
	}
	e, gone, err := d.endpoint(ctx, j)
	if err != nil || gone != "" {
		return err
	}
	res, err := d.run(ctx, e, j.vars()+aliveFn+`alive "$pid" "$start" || exit 0
if ! kill -TERM "$pid" 2>/dev/null; then alive "$pid" "$start" && exit 1; fi
exit 0
`, nil)
	if err != nil {
		return err
	}
	if res.code != 0 {
		return fmt.Errorf("compute target %s: stopping the job runner (pid %d): %s", j.Target, j.PID, strings.TrimSpace(string(res.stderr)))
	}
	return nil
}

// Logs reads the runner's own output from offset.
func (d *Driver) Logs(ctx context.Context, h string, offset int64) (io.ReadCloser, error) {
	j, err := d.parse(h)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, atelier.Errorf(atelier.EINVALID, "offset %d is negative", offset)
	}
	e, gone, err := d.endpoint(ctx, j)
	if err != nil {
		return nil, err
	} else if gone != "" {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "the job's runner log is gone: %s", gone)
	}
	s, release, err := d.session(ctx, e)
	if err != nil {
		return nil, err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		release()
		return nil, err
	}
	script := j.vars() + `f="$dir/` + RunnerLog + `"
[ -f "$f" ] || { echo missing; exit 0; }
echo ok
exec tail -c +` + strconv.FormatInt(offset+1, 10) + ` "$f"
`
	if err := s.Start("sh -c " + quote(script)); err != nil {
		release()
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: reading the runner's log on %s: %v", j.Target, e.addr, err)
	}
	r := bufio.NewReader(stdout)
	first, err := r.ReadString('\n')
	if err != nil {
		release()
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: reading the runner's log on %s: %v", j.Target, e.addr, err)
	}
	if first != "ok\n" {
		release()
		return nil, atelier.Errorf(atelier.ENOTFOUND, "the job's runner log is gone (released)")
	}
	return &logReader{r: r, close: func() error { release(); return nil }}, nil
}

type logReader struct {
	r     io.Reader
	close func() error
}

func (l *logReader) Read(p []byte) (int, error) { return l.r.Read(p) }
func (l *logReader) Close() error               { return l.close() }

// Release removes the job's directory; the runner must have ended.
func (d *Driver) Release(ctx context.Context, h string) error {
	j, err := d.parse(h)
	if err != nil {
		return err
	}
	e, gone, err := d.endpoint(ctx, j)
	if err != nil || gone != "" {
		return err // nothing to remove where the target no longer leads
	}
	res, err := d.run(ctx, e, j.vars()+aliveFn+`case "$dir" in "$HOME"/`+quote(d.root())+`/jobs/*/*|*/..|*/../*) exit 3;; "$HOME"/`+quote(d.root())+`/jobs/?*) ;; *) exit 3;; esac
alive "$pid" "$start" && exit 4
rm -rf "$dir"
`, nil)
	if err != nil {
		return err
	}
	switch res.code {
	case 0:
		return nil
	case 3:
		return atelier.Errorf(atelier.EINVALID, "ssh job handle names a directory outside ~/%s/jobs", d.root())
	case 4:
		return atelier.Errorf(atelier.ECONFLICT, "the job runner (pid %d) is still running", j.PID)
	}
	return fmt.Errorf("compute target %s: removing the job's directory: %s", j.Target, strings.TrimSpace(string(res.stderr)))
}

// parseStat reads a process's start time and state from a /proc/<pid>/stat line.
func parseStat(line string) (start uint64, state byte, err error) {
	// The command name (field 2) is in parentheses and may hold anything: fields after the last ')'.
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/<pid>/stat: unexpected format")
	}
	fields := strings.Fields(line[i+1:])
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("/proc/<pid>/stat: unexpected format")
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	return start, fields[0][0], err
}

// Check checks that a target can run jobs: the machine answers, presents ssh.host_key (when
// given), accepts the key, is of this server's OS and architecture, and has setsid and python3.
func (d *Driver) Check(ctx context.Context, t *atelier.ComputeTarget, creds atelier.ComputeCredentials) error {
	if t.SSH == nil {
		return atelier.Errorf(atelier.EINVALID, "compute target %s has no ssh configuration", t.Name)
	}
	e := newEndpoint(t, creds, "")
	// A connection of its own, not kept: the target is not stored yet.
	c, _, err := dial(ctx, e, d.dialTimeout())
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: opening an SSH session on %s: %v", t.Name, e.addr, err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	out, err := s.Output("sh -c " + quote(`uname -sm
command -v setsid >/dev/null 2>&1 && echo setsid || echo no-setsid
python3 --version 2>&1 || echo no-python3
`))
	if err != nil && ctx.Err() != nil {
		return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: %s did not answer in time", t.Name, e.addr)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 3 {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: %s did not run a POSIX shell command for user %q (%v): the account needs a login shell", t.Name, e.addr, t.SSH.User, err)
	}
	if !sameMachineKind(lines[0]) {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: the machine is %q (uname -sm); this server's job runner needs %q: attach a machine of the server's OS and architecture",
			t.Name, lines[0], unameOf(runtime.GOOS, runtime.GOARCH))
	}
	if lines[1] != "setsid" {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: the machine has no setsid (util-linux) on the PATH of user %q: install util-linux", t.Name, t.SSH.User)
	}
	if last := lines[len(lines)-1]; last == "no-python3" || !strings.HasPrefix(last, "Python 3") {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: `python3 --version` fails for user %q on %s: install Python 3 on the machine (or put python3 on the account's PATH)", t.Name, t.SSH.User, e.addr)
	}
	return nil
}
