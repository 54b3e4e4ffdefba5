package serving

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// TemplateReadyLine starts the line a template prints on stdout once it imported score.py.
const TemplateReadyLine = "atelier scoring template ready on "

// TemplateSocketIn is a template's control socket as the template sees it: in its socket
// directory, which its replicas share (replica n listens on /run/atelier/<n>.sock).
const TemplateSocketIn = "/run/atelier/template.sock"

// TemplateImportedLine starts the line a template prints once it imported the modules init()
// imports (learnt from its first replica, or those of an earlier template of the image); it
// lists them in learnt.json in its socket directory.
const TemplateImportedLine = "atelier scoring template imported "

// Imports remembers, by image, the modules a template learnt that the replicas' init() import,
// so that the next template of the image (a new pool, a template restarted) imports them before
// it is ready.
type Imports struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (i *Imports) get(key string) []byte {
	if i == nil {
		return nil
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.m[key]
}

func (i *Imports) set(key string, b []byte) {
	if i == nil {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.m == nil {
		i.m = map[string][]byte{}
	}
	i.m[key] = b
}

// Template is a scoring runtime that imported an image's score.py once (the libraries it
// imports: scikit-learn, numpy...) and forks the pool's replicas: each fork runs init() and
// serves on its own socket, so a replica's cold start is a fork and its init() rather than a
// Python start and score.py's imports (oci/build/runtime's Template). The template process
// starts with the first replica asked for and again when it died (its replicas die with it: they
// are in its PID namespace); Close stops it.
type Template struct {
	command func(sockDir string) *exec.Cmd
	log     io.Writer
	imports *Imports
	key     string

	mu      sync.Mutex
	proc    *process
	sockDir string
	closed  bool
}

// NewTemplate makes the template of a pool: command(sockDir) is the scoring runtime told to be a
// template (ATELIER_TEMPLATE_SOCKET=TemplateSocketIn) with sockDir at /run/atelier; log gets its
// output (what score.py prints at import). imports (nil for none) keeps what it learns under
// key (the image) for the next template of the image, and gives it what an earlier one learnt.
func NewTemplate(command func(sockDir string) *exec.Cmd, log io.Writer, imports *Imports, key string) *Template {
	if log == nil {
		log = io.Discard
	}
	return &Template{command: command, log: log, imports: imports, key: key}
}

// running returns the template process, started if it is not running; its socket directory.
func (t *Template) running(ctx context.Context) (*process, string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, "", ErrClosed
	}
	if t.proc != nil {
		select {
		case <-t.proc.done:
			fmt.Fprintf(t.log, "the template exited (%v); starting another\n", t.proc.err)
			t.proc = nil
		default:
			return t.proc, t.sockDir, nil
		}
	}
	dir, err := os.MkdirTemp("", "atelier-replica-")
	if err != nil {
		return nil, "", err
	}
	if b := t.imports.get(t.key); b != nil {
		os.WriteFile(filepath.Join(dir, "preload.json"), b, 0o644)
	}
	log := &lineHook{w: t.log, prefix: TemplateImportedLine, f: func() {
		if b, err := os.ReadFile(filepath.Join(dir, "learnt.json")); err == nil {
			t.imports.set(t.key, b)
		}
	}}
	p, err := startProcess(ctx, t.command(dir), filepath.Join(dir, "template.sock"), log, TemplateReadyLine)
	if err != nil {
		os.RemoveAll(dir)
		if errors.Is(err, ErrInitFailed) {
			return nil, "", fmt.Errorf("%w (importing it in the template)", err)
		}
		return nil, "", fmt.Errorf("the replicas' template: %w", err)
	}
	go func() { <-p.done; os.RemoveAll(dir) }()
	t.proc, t.sockDir = p, dir
	return p, dir, nil
}

// Start forks replica n from the template (started first if it is not running) and returns once
// it is ready: its init() ran and it listens on its socket. Its output goes to log line by line.
func (t *Template) Start(ctx context.Context, n int, log io.Writer) (Replica, error) {
	if log == nil {
		log = io.Discard
	}
	tp, dir, err := t.running(ctx)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", filepath.Join(dir, "template.sock"))
	if err != nil {
		return nil, fmt.Errorf("asking the template for a replica: %w", err)
	}
	ctl := c.(*net.UnixConn)
	pr, pw, err := os.Pipe()
	if err != nil {
		ctl.Close()
		return nil, err
	}
	name := strconv.Itoa(n) + ".sock"
	socket := filepath.Join(dir, name)
	os.Remove(socket)
	req, _ := json.Marshal(map[string]any{"n": n, "socket": filepath.Join(filepath.Dir(TemplateSocketIn), name)})
	_, _, err = ctl.WriteMsgUnix(append(req, '\n'), syscall.UnixRights(int(pw.Fd())), nil)
	pw.Close()
	if err != nil {
		ctl.Close()
		pr.Close()
		return nil, fmt.Errorf("asking the template for a replica: %w", err)
	}
	f := &forked{ctl: ctl, unixReplica: unixReplica{socket: socket, done: make(chan struct{})}, template: tp, tail: &tail{max: 40}, nspid: make(chan int, 1)}
	ready := make(chan struct{})
	var readyOnce sync.Once
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		defer pr.Close()
		copyOutput(pr, log, f.tail, ReadyLine, func() { readyOnce.Do(func() { close(ready) }) })
	}()
	go func() {
		// The template's answers: {"pid": N}, then {"exit": CODE} once the replica exited.
		err := errors.New("the template exited")
		sc := bufio.NewScanner(ctl)
		for sc.Scan() {
			var m struct {
				Pid   *int    `json:"pid"`
				Exit  *int    `json:"exit"`
				Error *string `json:"error"`
			}
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			switch {
			case m.Pid != nil:
				f.nspid <- *m.Pid
			case m.Exit != nil && *m.Exit < 0:
				err = fmt.Errorf("signal: %v", syscall.Signal(-*m.Exit))
			case m.Exit != nil:
				err = &exitError{code: *m.Exit}
			case m.Error != nil:
				err = fmt.Errorf("the template refused the replica: %s", *m.Error)
			}
		}
		ctl.Close()
		<-copied
		f.err = err
		close(f.done)
		os.Remove(socket)
	}()
	select {
	case <-ready:
		return f, nil
	case <-f.done:
		var ee *exitError
		if errors.As(f.err, &ee) && ee.code == InitFailedExit {
			return nil, fmt.Errorf("%w:\n%s", ErrInitFailed, f.tail.String())
		}
		return nil, fmt.Errorf("the replica exited before it was ready (%v):\n%s", f.err, f.tail.String())
	case <-ctx.Done():
		f.signal("kill")
		<-f.done
		return nil, ctx.Err()
	}
}

// Close stops the template (SIGTERM, then SIGKILL after StopGrace); the replicas forked from it
// die with it. The pool's Close stops them first.
func (t *Template) Close() {
	t.mu.Lock()
	t.closed = true
	p := t.proc
	t.mu.Unlock()
	if p != nil {
		p.Stop()
	}
}

// Pid is the template process's id (the bubblewrap process on the local target), 0 when it is
// not running.
func (t *Template) Pid() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.proc == nil {
		return 0
	}
	return t.proc.Pid()
}

// lineHook passes the lines written to it on to w and calls f after a line that starts with
// prefix (copyOutput writes a line at a time).
type lineHook struct {
	w      io.Writer
	prefix string
	f      func()
}

func (h *lineHook) Write(b []byte) (int, error) {
	n, err := h.w.Write(b)
	if bytes.HasPrefix(b, []byte(h.prefix)) {
		h.f()
	}
	return n, err
}

type exitError struct{ code int }

func (e *exitError) Error() string { return "exit status " + strconv.Itoa(e.code) }

// forked is a replica forked from a template: the template signals and reaps it.
type forked struct {
	unixReplica
	ctl      *net.UnixConn
	template *process
	nspid    chan int // its pid in the template's PID namespace (once)
	pid      int
	pidOnce  sync.Once
	tail     *tail
	stopOnce sync.Once
}

// signal asks the template to send SIGTERM ("term") or SIGKILL ("kill") to the replica.
func (f *forked) signal(what string) {
	f.ctl.Write([]byte(what + "\n"))
}

// Stop sends SIGTERM to the replica, SIGKILL after StopGrace, and waits for it.
func (f *forked) Stop() {
	f.stopOnce.Do(func() {
		f.signal("term")
		select {
		case <-f.done:
		case <-time.After(StopGrace):
			f.signal("kill")
		}
	})
	<-f.done
}

// Pid is the replica's process id as this process sees it (tests kill it); 0 if not found.
func (f *forked) Pid() int {
	f.pidOnce.Do(func() {
		select {
		case ns := <-f.nspid:
			f.pid = hostPid(f.template.Pid(), ns)
		case <-f.done:
		}
	})
	return f.pid
}

// hostPid finds, among the descendants of root, the process whose pid in its own (innermost)
// PID namespace is nspid.
func hostPid(root, nspid int) int {
	entries, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	inner := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				parent[pid], _ = strconv.Atoi(strings.TrimSpace(v))
			} else if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					inner[pid], _ = strconv.Atoi(f[len(f)-1])
				}
			}
		}
	}
	for pid, ns := range inner {
		if ns != nspid || pid == root {
			continue
		}
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == root {
				return pid
			}
		}
	}
	return 0
}
