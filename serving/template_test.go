package serving_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atelier-ml/atelier/python"
	"github.com/atelier-ml/atelier/serving"
)

// countingScore records its module level (once per import) and each init() (once per replica
// process) in files of the directory it runs in; init() prints, so its replica's log has it.
const countingScore = `import os
HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "imports"), "a") as f:
    f.write("%d\n" % os.getpid())

def init():
    with open(os.path.join(HERE, "inits"), "a") as f:
        f.write("%d\n" % os.getpid())
    print("init in", os.getpid())

def run(raw):
    return {"pid": os.getpid()}
`

// syncBuffer is a log the test reads while the replicas write it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// templateStarter runs the real scoring runtime as a template under real bubblewrap (the host's
// filesystem read-only as the image's, the score.py directory bound writable), as the local
// target does; each replica's log is its own buffer.
func templateStarter(t *testing.T, score string) (*serving.Template, serving.StartFunc, string, func(n int) string, func() []serving.Replica) {
	t.Helper()
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		t.Skip("bubblewrap is not installed")
	}
	py, _, err := python.Resolve(context.Background(), "python3")
	if err != nil {
		t.Skipf("no python3: %v", err)
	}
	_, file, _, _ := runtime.Caller(0)
	rt, _ := filepath.Abs(filepath.Join(filepath.Dir(file), "..", "oci", "build", "runtime", "atelier_runtime.py"))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "score.py"), []byte(score), 0o644); err != nil {
		t.Fatal(err)
	}
	tlog := &syncBuffer{}
	tmpl := serving.NewTemplate(func(sockDir string) *exec.Cmd {
		// The runtime's directory is bound too: the sandbox's /tmp is its own, and the checkout
		// may be under /tmp.
		return serving.BwrapCommand(bwrap, "/", []string{py, rt}, nil, dir, sockDir, map[string]string{dir: dir, filepath.Dir(rt): filepath.Dir(rt)},
			[]string{"AZUREML_ENTRY_SCRIPT=" + filepath.Join(dir, "score.py"), "AZUREML_MODEL_DIR=" + dir, "ATELIER_ACCESS_LOG=0",
				"ATELIER_TEMPLATE_SOCKET=" + serving.TemplateSocketIn})
	}, tlog, nil, "")
	var mu sync.Mutex
	logs := map[int]*syncBuffer{}
	var started []serving.Replica
	start := func(ctx context.Context, n int) (serving.Replica, error) {
		b := &syncBuffer{}
		mu.Lock()
		logs[n] = b
		mu.Unlock()
		r, err := tmpl.Start(ctx, n, b)
		if err == nil {
			mu.Lock()
			started = append(started, r)
			mu.Unlock()
		}
		return r, err
	}
	t.Cleanup(tmpl.Close)
	return tmpl, start, dir, func(n int) string {
			mu.Lock()
			defer mu.Unlock()
			if logs[n] == nil {
				return ""
			}
			return logs[n].String()
		}, func() []serving.Replica {
			mu.Lock()
			defer mu.Unlock()
			var live []serving.Replica
			for _, r := range started {
				if r.Err() == nil {
					live = append(live, r)
				}
			}
			return live
		}
}

func lines(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie (state Z) has exited.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// TestTemplateForksReplicas: 3 replicas forked from one template under bubblewrap: score.py's
// module level ran once, init() 3 times in 3 processes, each replica's output is in its own log;
// a replica killed with SIGKILL is seen exited and replaced while the pool keeps serving; closing
// the pool leaves no process.
func TestTemplateForksReplicas(t *testing.T) {
	tmpl, start, dir, replicaLog, replicas := templateStarter(t, countingScore)
	var emu sync.Mutex
	var events []string
	pool := serving.NewPool(serving.Config{Replicas: 3, MaxConcurrent: 1, MaxWait: time.Minute, Timeout: time.Minute, Refresh: 50 * time.Millisecond},
		start, nil, func(e serving.Event) { emu.Lock(); events = append(events, e.Kind+" "+e.Message); emu.Unlock() })
	pool.OnClose(tmpl.Close) // as the local target does
	closed := false
	defer func() {
		if !closed {
			pool.Close(context.Background())
		}
	}()
	if err := pool.WaitReady(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	if got := lines(t, filepath.Join(dir, "imports")); len(got) != 1 {
		t.Fatalf("score.py imported %d times for 3 replicas: %v", len(got), got)
	}
	inits := lines(t, filepath.Join(dir, "inits"))
	if len(inits) != 3 || inits[0] == inits[1] || inits[1] == inits[2] || inits[0] == inits[2] {
		t.Fatalf("init() ran in %v: want 3 processes", inits)
	}
	for n := range 3 {
		if l := replicaLog(n); !strings.Contains(l, "init in") || !strings.Contains(l, serving.ReadyLine) {
			t.Fatalf("replica %d's log: %q", n, l)
		}
	}
	if code, body, err := post(t, pool, `{}`); err != nil || code != 200 || !strings.Contains(body, "pid") {
		t.Fatalf("score: %d %s %v", code, body, err)
	}
	templatePid := tmpl.Pid()

	// The replicas as this process sees them: children of the template's Python, itself under
	// bubblewrap; one killed with SIGKILL.
	rs := readyReplicas(t, replicas, 3)
	var pids []int
	for _, r := range rs {
		pid := r.(interface{ Pid() int }).Pid()
		if !alive(pid) {
			t.Fatalf("replica pid %d is not running", pid)
		}
		pids = append(pids, pid)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the killed replica to be replaced", func() bool {
		emu.Lock()
		ev := strings.Join(events, "\n")
		emu.Unlock()
		return strings.Contains(ev, "replica.exited") && strings.Contains(ev, "signal: killed") && pool.Stats().Ready == 3
	})
	if code, _, err := post(t, pool, `{}`); err != nil || code != 200 {
		t.Fatalf("score after the kill: %d %v", code, err)
	}
	if got := lines(t, filepath.Join(dir, "imports")); len(got) != 1 || tmpl.Pid() != templatePid {
		t.Fatalf("the replacement was not forked from the same template: imports %v, template %d then %d", got, templatePid, tmpl.Pid())
	}
	if got := lines(t, filepath.Join(dir, "inits")); len(got) != 4 {
		t.Fatalf("init() ran %d times for 4 replicas", len(got))
	}

	// Closing the pool stops the replicas, then the template: nothing is left.
	for _, r := range readyReplicas(t, replicas, 3) {
		pids = append(pids, r.(interface{ Pid() int }).Pid())
	}
	pool.Close(context.Background())
	closed = true
	pids = append(pids, templatePid)
	waitFor(t, "no process left", func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	})
}

// TestTemplateRestarted: a template killed takes its replicas with it; the pool starts them
// again from a new template.
func TestTemplateRestarted(t *testing.T) {
	tmpl, start, dir, _, _ := templateStarter(t, countingScore)
	pool := serving.NewPool(serving.Config{Replicas: 2, MaxConcurrent: 1, MaxWait: time.Minute, Timeout: time.Minute, Refresh: 50 * time.Millisecond}, start, nil, nil)
	defer pool.Close(context.Background())
	if err := pool.WaitReady(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	first := tmpl.Pid()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "2 replicas of a new template", func() bool {
		return pool.Stats().Ready == 2 && tmpl.Pid() != first && len(lines(t, filepath.Join(dir, "imports"))) == 2
	})
	if code, _, err := post(t, pool, `{}`); err != nil || code != 200 {
		t.Fatalf("score after the template's restart: %d %v", code, err)
	}
}

// TestTemplateInitFailure: init() raising in a forked replica fails WaitReady with the traceback,
// as ErrInitFailed (the pool does not start replicas in a loop); score.py failing at import fails
// the template the same way.
func TestTemplateInitFailure(t *testing.T) {
	for name, score := range map[string]string{
		"init":   "def init():\n    raise ValueError('no model here')\ndef run(raw):\n    return raw\n",
		"import": "raise ValueError('no model here')\ndef init():\n    pass\ndef run(raw):\n    return raw\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, start, _, _, _ := templateStarter(t, score)
			pool := serving.NewPool(serving.Config{Replicas: 2, MaxConcurrent: 1, MaxWait: time.Second, Timeout: time.Second, Refresh: time.Second}, start, nil, nil)
			defer pool.Close(context.Background())
			err := pool.WaitReady(context.Background(), 2)
			if err == nil || !strings.Contains(err.Error(), "no model here") || !strings.Contains(err.Error(), "Traceback") || !strings.Contains(err.Error(), "init()") {
				t.Fatalf("WaitReady: %v", err)
			}
			if st := pool.Stats(); !st.Failing {
				t.Fatalf("the pool is not failing after an init() failure: %+v", st)
			}
		})
	}
}

// readyReplicas are the replicas started and not exited; there must be n.
func readyReplicas(t *testing.T, replicas func() []serving.Replica, n int) []serving.Replica {
	t.Helper()
	rs := replicas()
	if len(rs) != n {
		t.Fatalf("%d running replicas, want %d", len(rs), n)
	}
	return rs
}
