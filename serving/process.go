package serving

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ReadyLine starts the line the scoring runtime prints on stdout once init() ran.
const ReadyLine = "atelier scoring runtime ready on "

// InitFailedExit is the scoring runtime's exit code when importing score.py or its init()
// failed.
const InitFailedExit = 3

// ErrInitFailed is the error of a replica whose score.py could not be imported or whose
// init() raised: starting another would fail the same way.
var ErrInitFailed = errors.New("score.py's init() failed")

// StopGrace is how long a stopping replica has between SIGTERM and SIGKILL.
const StopGrace = 5 * time.Second

// process is a replica running as a child process, listening on a unix socket.
type process struct {
	unixReplica
	cmd      *exec.Cmd
	tail     *tail
	stopOnce sync.Once
}

// unixReplica is what the replicas listening on a Unix socket share (a process of their own
// or a fork of a template): where to reach them, and how they ended.
type unixReplica struct {
	socket string
	done   chan struct{}
	err    error // set before done is closed
}

func (u *unixReplica) Dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", u.socket)
}

func (u *unixReplica) Done() <-chan struct{} { return u.done }

func (u *unixReplica) Err() error {
	select {
	case <-u.done:
		return u.err
	default:
		return nil
	}
}

// StartProcess starts cmd (a scoring runtime told to listen on socket) and waits for it to be
// ready: its ready line on stdout. Its output goes to log, line by line; the last lines are
// kept for the error of a replica that could not start. It returns when the replica is ready,
// exited, or ctx ended (the process is then killed).
func StartProcess(ctx context.Context, cmd *exec.Cmd, socket string, log io.Writer) (Replica, error) {
	p, err := startProcess(ctx, cmd, socket, log, ReadyLine)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// startProcess starts cmd and waits for the line starting with readyLine on its output.
func startProcess(ctx context.Context, cmd *exec.Cmd, socket string, log io.Writer, readyLine string) (*process, error) {
	if log == nil {
		log = io.Discard
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout // one stream, in order
	os.Remove(socket)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the replica: %w", err)
	}
	p := &process{cmd: cmd, unixReplica: unixReplica{socket: socket, done: make(chan struct{})}, tail: &tail{max: 40}}
	ready := make(chan struct{})
	var readyOnce sync.Once
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		copyOutput(stdout, log, p.tail, readyLine, func() { readyOnce.Do(func() { close(ready) }) })
	}()
	go func() {
		<-copied
		err := cmd.Wait()
		if err == nil {
			err = errors.New("exited with code 0")
		}
		p.err = err
		close(p.done)
	}()
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.err, &ee) && ee.ExitCode() == InitFailedExit {
			return nil, fmt.Errorf("%w:\n%s", ErrInitFailed, p.tail.String())
		}
		return nil, fmt.Errorf("the replica exited before it was ready (%v):\n%s", p.err, p.tail.String())
	case <-ctx.Done():
		p.kill()
		<-p.done
		return nil, ctx.Err()
	}
}

func (p *process) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// Stop sends SIGTERM to the replica's process group, SIGKILL after StopGrace, and waits.
func (p *process) Stop() {
	p.stopOnce.Do(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(StopGrace):
			p.kill()
		}
	})
	<-p.done
}

// Pid is the replica process's id (tests kill it).
func (p *process) Pid() int { return p.cmd.Process.Pid }

// copyOutput copies a replica's output to log line by line, keeping the last lines in tail,
// and calls ready at the line that starts with readyLine; it returns at the output's end.
func copyOutput(r io.Reader, log io.Writer, tail *tail, readyLine string, ready func()) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		tail.add(line)
		fmt.Fprintln(log, line)
		if strings.HasPrefix(line, readyLine) {
			ready()
		}
	}
	io.Copy(io.Discard, r)
}

// tail keeps the last lines of a replica's output.
type tail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// BwrapCommand runs an image's entrypoint in its unpacked filesystem with bubblewrap: the
// rootfs read-only as /, a private /tmp and /run, the replica's socket directory at
// /run/atelier (the socket is /run/atelier/score.sock), binds (host path -> image path) for
// writable directories, the image's environment plus env, in its own PID namespace, killed
// with its parent.
func BwrapCommand(bwrap, rootfs string, entrypoint, imageEnv []string, workdir, sockDir string, binds map[string]string, env []string) *exec.Cmd {
	args := []string{"--ro-bind", rootfs, "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/run",
		"--bind", sockDir, "/run/atelier", "--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf",
		"--unshare-pid", "--unshare-ipc", "--die-with-parent", "--clearenv"}
	for host, inImage := range binds {
		args = append(args, "--bind", host, inImage)
	}
	if workdir == "" {
		workdir = "/"
	}
	args = append(args, "--chdir", workdir)
	for _, kv := range append(append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/tmp"}, imageEnv...), env...) {
		k, v, _ := strings.Cut(kv, "=")
		args = append(args, "--setenv", k, v)
	}
	args = append(args, "--")
	args = append(args, entrypoint...)
	return exec.Command(bwrap, args...)
}

// SocketIn is the replica's socket inside its socket directory, as the replica sees it.
const SocketIn = "/run/atelier/score.sock"

// HostSocket is where the replica's socket is on the host.
func HostSocket(sockDir string) string { return filepath.Join(sockDir, "score.sock") }
