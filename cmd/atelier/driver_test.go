package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/computetest"
	"github.com/atelier-ml/atelier/compute/local"
)

// localDriver is the local compute target's driver as the server wires it, launching the
// real binary's job runner.
func localDriver(t *testing.T) *local.Driver {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Cleanup(func() { killRunnersUnder(dir) })
	return &local.Driver{Command: []string{bin, "job", "exec"}, Dir: dir, Env: runnerEnviron(),
		Args: []string{"--envs-dir", t.TempDir(), "--server-wait", "3s", "--cancel-grace", "300ms"}}
}

// TestLocalDriverConformance runs the compute driver suite against the local driver, with a
// real server (claims made as the controller makes them) and the real binary's runner.
func TestLocalDriverConformance(t *testing.T) {
	needPython(t)
	s := startJobStack(t)
	computetest.TestDriver(t, s.harness(localDriver(t), nil))
}

// TestLocalDriverRecovery: what a restarted server learns of handles — a runner killed (no
// exit code left) is Gone, a handle whose pid now names another process (reused) is Gone, and
// a runner still running is Running to a driver that did not start it.
func TestLocalDriverRecovery(t *testing.T) {
	needPython(t)
	ctx := context.Background()
	s := startJobStack(t)
	d := localDriver(t)
	run, token := s.claim(t, jobCtx(t), atelier.RunConfig{Script: "train.py"},
		map[string]string{"train.py": "import time\nwhile True:\n    time.sleep(0.05)\n"})
	handle, err := d.Launch(ctx, &atelier.JobLaunch{Run: run, Server: s.url, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	// Another driver over the same directory (a restarted server) sees it running.
	other := &local.Driver{Command: d.Command, Dir: d.Dir}
	if st, err := other.Status(ctx, handle); err != nil || st.Phase != atelier.JobRunning {
		t.Fatalf("a running runner, to another driver: %+v, %v", st, err)
	}
	var h struct {
		PID   int    `json:"pid"`
		Start uint64 `json:"start"`
		Dir   string `json:"dir"`
	}
	if err := json.Unmarshal([]byte(handle), &h); err != nil {
		t.Fatal(err)
	}
	// The same pid with another start time: a process that reused the pid is not the runner.
	reused, _ := json.Marshal(map[string]any{"pid": h.PID, "start": h.Start + 1, "dir": h.Dir})
	if st, err := other.Status(ctx, string(reused)); err != nil || st.Phase != atelier.JobGone {
		t.Errorf("a handle whose pid was reused: %+v, %v; want Gone", st, err)
	}
	if err := other.Cancel(ctx, string(reused)); err != nil {
		t.Errorf("Cancel of a reused pid: %v", err)
	}
	if st, _ := other.Status(ctx, handle); st.Phase != atelier.JobRunning {
		t.Fatalf("canceling a reused pid's handle stopped the runner: %+v", st)
	}
	// Killed without a word: Gone, and it says so.
	if err := syscall.Kill(h.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := other.Status(ctx, handle)
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase == atelier.JobGone && st.Detail != "" {
			break
		}
		if st.Phase != atelier.JobRunning || time.Now().After(deadline) {
			t.Fatalf("a killed runner: %+v, want Gone with a reason", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Release refuses what is not its own directory.
	outside, _ := json.Marshal(map[string]any{"pid": h.PID, "start": h.Start, "dir": filepath.Join(os.TempDir(), "elsewhere")})
	if err := other.Release(ctx, string(outside)); atelier.ErrorCode(err) != atelier.EINVALID {
		t.Errorf("Release of a directory outside the driver's: %v, want EINVALID", err)
	}
	if err := other.Release(ctx, handle); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.Dir); !os.IsNotExist(err) {
		t.Errorf("the job's directory is still there after Release: %v", err)
	}
}
