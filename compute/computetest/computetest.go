// Package computetest is the conformance suite of compute drivers (atelier.ComputeDriver):
// every driver kind passes it against a real server and a real job runner.
package computetest

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

// Harness is what the suite needs around a driver.
type Harness struct {
	Driver atelier.ComputeDriver
	// Claim submits a run of script (train.py) on the driver's target and claims it as a
	// controller does (Preparing, with the runner's and the script's tokens), returning what
	// to launch it with.
	Claim func(t *testing.T, script string) *atelier.JobLaunch
	// Run reads a run as the server has it.
	Run func(t *testing.T, id string) *atelier.Run
	// RequestCancel asks for a run to be canceled, as a user does (CancelRequested).
	RequestCancel func(t *testing.T, id string)
	// Timeout bounds each wait for a condition (a failure bound, not a duration anything
	// depends on); 2 minutes when zero.
	Timeout time.Duration
}

// TestDriver runs the suite.
func TestDriver(t *testing.T, h Harness) {
	if h.Timeout == 0 {
		h.Timeout = 2 * time.Minute
	}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"Completes", testCompletes},
		{"FailsWithExitCode", testFails},
		{"Cancel", testCancel},
		{"BadHandles", testBadHandles},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// waitExited waits until the driver says the job ended, and returns its state.
func waitExited(t *testing.T, h Harness, handle string) atelier.JobState {
	t.Helper()
	deadline := time.Now().Add(h.Timeout)
	for {
		st, err := h.Driver.Status(context.Background(), handle)
		if err != nil {
			t.Fatalf("Status(%s): %v", handle, err)
		}
		if st.Phase != atelier.JobRunning {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job %s still runs after %s", handle, h.Timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRun waits until the run satisfies ok.
func waitRun(t *testing.T, h Harness, id string, what string, ok func(*atelier.Run) bool) *atelier.Run {
	t.Helper()
	deadline := time.Now().Add(h.Timeout)
	for {
		run := h.Run(t, id)
		if ok(run) {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s (%s), still not %s after %s", id, run.Status, run.Error, what, h.Timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func launch(t *testing.T, h Harness, script string) (*atelier.JobLaunch, string) {
	t.Helper()
	l := h.Claim(t, script)
	handle, err := h.Driver.Launch(context.Background(), l)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if handle == "" {
		t.Fatal("Launch returned an empty handle")
	}
	return l, handle
}

func testCompletes(t *testing.T, h Harness) {
	ctx := context.Background()
	l, handle := launch(t, h, "import os\nprint('hello from the job', flush=True)\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/o.txt', 'w').write('x')\n")
	st := waitExited(t, h, handle)
	if st.Phase != atelier.JobExited || st.ExitCode != 0 {
		t.Fatalf("job ended as %+v, want Exited with code 0", st)
	}
	run := waitRun(t, h, l.Run.ID, "Completed", func(r *atelier.Run) bool { return r.Status.Terminal() })
	if run.Status != atelier.StatusCompleted || run.ExitCode == nil || *run.ExitCode != 0 {
		t.Fatalf("run ended %s (exit %v, %q), want Completed with exit code 0", run.Status, run.ExitCode, run.Error)
	}
	// The runner's own log is readable from an offset (it may be empty when all went well).
	r, err := h.Driver.Logs(ctx, handle, 0)
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	all, _ := io.ReadAll(r)
	r.Close()
	if len(all) > 0 {
		r, err := h.Driver.Logs(ctx, handle, 1)
		if err != nil {
			t.Fatalf("Logs from 1: %v", err)
		}
		rest, _ := io.ReadAll(r)
		r.Close()
		if string(rest) != string(all[1:]) {
			t.Errorf("Logs from offset 1 = %q, want %q", rest, all[1:])
		}
	}
	// Canceling an ended job is not an error; releasing forgets it.
	if err := h.Driver.Cancel(ctx, handle); err != nil {
		t.Errorf("Cancel of an ended job: %v", err)
	}
	if err := h.Driver.Release(ctx, handle); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if st, err := h.Driver.Status(ctx, handle); err == nil && st.Phase == atelier.JobRunning {
		t.Errorf("a released job is %+v", st)
	}
}

func testFails(t *testing.T, h Harness) {
	l, handle := launch(t, h, "import sys\nprint('failing', flush=True)\nsys.exit(3)\n")
	st := waitExited(t, h, handle)
	if st.Phase != atelier.JobExited || st.ExitCode == 0 {
		t.Fatalf("job ended as %+v, want Exited with a non-zero code", st)
	}
	run := waitRun(t, h, l.Run.ID, "ended", func(r *atelier.Run) bool { return r.Status.Terminal() })
	if run.Status != atelier.StatusFailed || run.ExitCode == nil || *run.ExitCode != 3 {
		t.Fatalf("run ended %s (exit %v, %q), want Failed with the script's exit code 3", run.Status, run.ExitCode, run.Error)
	}
	h.Driver.Release(context.Background(), handle)
}

func testCancel(t *testing.T, h Harness) {
	ctx := context.Background()
	l, handle := launch(t, h, "import time\nprint('waiting', flush=True)\nwhile True:\n    time.sleep(0.05)\n")
	waitRun(t, h, l.Run.ID, "Running", func(r *atelier.Run) bool { return r.Status == atelier.StatusRunning || r.Status.Terminal() })
	h.RequestCancel(t, l.Run.ID)
	if err := h.Driver.Cancel(ctx, handle); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	waitExited(t, h, handle)
	run := waitRun(t, h, l.Run.ID, "ended", func(r *atelier.Run) bool { return r.Status.Terminal() })
	if run.Status != atelier.StatusCanceled {
		t.Fatalf("canceled run ended %s (%q), want Canceled", run.Status, run.Error)
	}
	h.Driver.Release(ctx, handle)
}

func testBadHandles(t *testing.T, h Harness) {
	ctx := context.Background()
	for _, bad := range []string{"", "garbage", "{}", `{"pid": -1}`} {
		if _, err := h.Driver.Status(ctx, bad); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("Status(%q): %v, want EINVALID", bad, err)
		}
		if err := h.Driver.Cancel(ctx, bad); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("Cancel(%q): %v, want EINVALID", bad, err)
		}
		if _, err := h.Driver.Logs(ctx, bad, 0); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("Logs(%q): %v, want EINVALID", bad, err)
		}
		if err := h.Driver.Release(ctx, bad); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("Release(%q): %v, want EINVALID", bad, err)
		}
	}
	// A launch whose runner cannot reach the server ends, and says why in its log.
	l := h.Claim(t, "print('never')\n")
	l.Server = "http://127.0.0.1:1"
	handle, err := h.Driver.Launch(ctx, l)
	if err != nil {
		return // refusing at launch is as good
	}
	st := waitExited(t, h, handle)
	if st.Phase == atelier.JobExited && st.ExitCode == 0 {
		t.Errorf("a runner that cannot reach its server exited 0")
	}
	if r, err := h.Driver.Logs(ctx, handle, 0); err == nil {
		b, _ := io.ReadAll(r)
		r.Close()
		if !strings.Contains(string(b), "127.0.0.1:1") {
			t.Errorf("the runner's log does not say which server it could not reach:\n%s", b)
		}
	}
	h.Driver.Release(ctx, handle)
}
