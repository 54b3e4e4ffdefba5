package main

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
)

// gatedScript prints, then waits for a file named "go" in its working directory (the test
// writes it: no timing), then prints again and writes an output.
const gatedScript = `import os, time
print("before the restart", flush=True)
while not os.path.exists("go"):
    time.sleep(0.02)
print("after the gate", flush=True)
os.makedirs("outputs", exist_ok=True)
open("outputs/survived.txt", "w").write("yes")
`

func submitScript(t *testing.T, c *api.Client, script string) *atelier.Run {
	t.Helper()
	ctx := context.Background()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("train.py")
	w.Write([]byte(script))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	snap, err := c.UploadSnapshotZip(ctx, atelier.DefaultWorkspace, &buf)
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.SubmitRun(ctx, atelier.DefaultWorkspace, atelier.RunSubmit{Experiment: "durable", SnapshotID: snap.ID,
		Config: atelier.RunConfig{Script: "train.py"}})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// waitFor polls until ok holds; the bound only ends a test that would otherwise hang.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runLog(c *api.Client, id string) string {
	chunk, err := c.ReadLog(context.Background(), atelier.DefaultWorkspace, id, "logs/std_log.txt", 0, 0)
	if err != nil || chunk == nil {
		return ""
	}
	return string(chunk.Data)
}

// TestRunSurvivesKill9: a submitted run's script outlives its server killed with SIGKILL; the
// server started again reattaches it, its log goes on, and it ends Completed with its outputs —
// whether the script finishes after the restart or while the server is down.
func TestRunSurvivesKill9(t *testing.T) {
	needPython(t)
	for _, tc := range []struct {
		name       string
		openBefore bool // the gate opens while the server is down
	}{{"FinishesAfterRestart", false}, {"FinishesWhileDown", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir, addr := t.TempDir(), freeAddr(t)
			srv := startServer(t, dataDir, addr)
			run := submitScript(t, srv.client, gatedScript)
			waitFor(t, "the script to start", func() bool { return strings.Contains(runLog(srv.client, run.ID), "before the restart") })

			srv.cmd.Process.Kill()
			srv.cmd.Wait()
			gate := filepath.Join(dataDir, "jobs", run.ID, "job", "work", run.ID, "wd", "go")
			if tc.openBefore {
				if err := os.WriteFile(gate, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				// The script finishes; its runner waits for the server to record the end.
				waitFor(t, "the script to end", func() bool {
					b, _ := os.ReadFile(filepath.Join(dataDir, "jobs", run.ID, "runner.log"))
					return strings.Contains(string(b), "cannot reach the server")
				})
			}
			srv = startServer(t, dataDir, addr)
			if !tc.openBefore {
				if err := os.WriteFile(gate, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var got *atelier.Run
			waitFor(t, "the run to end", func() bool {
				r, err := srv.client.FindRun(context.Background(), atelier.DefaultWorkspace, run.ID)
				got = r
				return err == nil && r.Status.Terminal()
			})
			if got.Status != atelier.StatusCompleted {
				t.Fatalf("run ended %s (%q), want Completed\nserver log:\n%s", got.Status, got.Error, srv.log)
			}
			log := runLog(srv.client, run.ID)
			if !strings.Contains(log, "before the restart") || !strings.Contains(log, "after the gate") {
				t.Errorf("the run's log lost a part across the restart:\n%s", log)
			}
			files, err := srv.client.ListFiles(context.Background(), atelier.DefaultWorkspace, run.ID, "outputs/")
			if err != nil || len(files) != 1 || files[0].Path != "outputs/survived.txt" {
				t.Errorf("outputs after the restart: %v, %v", files, err)
			}
			if !strings.Contains(srv.log.String(), `msg="runs recovered" count=1`) {
				t.Errorf("the server did not say it recovered the run:\n%s", srv.log)
			}
			// Its job is released once recorded.
			waitFor(t, "the job's directory to be released", func() bool {
				_, err := os.Stat(filepath.Join(dataDir, "jobs", run.ID))
				return os.IsNotExist(err)
			})
		})
	}
}

// TestRunVanishedWhileDown: a runner that died with the server (the machine restarted, say)
// is Gone: the restarted server fails its run and says why, instead of leaving it Running.
func TestRunVanishedWhileDown(t *testing.T) {
	needPython(t)
	dataDir, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, dataDir, addr)
	run := submitScript(t, srv.client, gatedScript)
	waitFor(t, "the script to start", func() bool { return strings.Contains(runLog(srv.client, run.ID), "before the restart") })
	srv.cmd.Process.Kill()
	srv.cmd.Wait()
	// Kill the runner (its script dies with it: Pdeathsig).
	killRunner(t, run.ID)
	srv = startServer(t, dataDir, addr)
	var got *atelier.Run
	waitFor(t, "the run to end", func() bool {
		r, err := srv.client.FindRun(context.Background(), atelier.DefaultWorkspace, run.ID)
		got = r
		return err == nil && r.Status.Terminal()
	})
	if got.Status != atelier.StatusFailed || !strings.Contains(got.Error, "gone") {
		t.Fatalf("run ended %s (%q), want Failed saying its job is gone", got.Status, got.Error)
	}
}

// TestCancelFromAnotherServer: a second server process on the same data directory cancels a
// run the first one launched; the cancel reaches the script, and the run ends Canceled.
func TestCancelFromAnotherServer(t *testing.T) {
	needPython(t)
	dataDir := t.TempDir()
	first := startServer(t, dataDir, freeAddr(t))
	run := submitScript(t, first.client, gatedScript)
	waitFor(t, "the script to start", func() bool { return strings.Contains(runLog(first.client, run.ID), "before the restart") })
	second := startServer(t, dataDir, freeAddr(t), "--socket", "off")
	got, err := second.client.CancelRun(context.Background(), atelier.DefaultWorkspace, run.ID)
	if err != nil || got.Status != atelier.StatusCancelRequested {
		t.Fatalf("CancelRun on the second server: %v, %v; want CancelRequested", got, err)
	}
	waitFor(t, "the run to end", func() bool {
		r, err := first.client.FindRun(context.Background(), atelier.DefaultWorkspace, run.ID)
		got = r
		return err == nil && r.Status.Terminal()
	})
	if got.Status != atelier.StatusCanceled {
		t.Fatalf("run ended %s (%q), want Canceled", got.Status, got.Error)
	}
	if strings.Contains(runLog(first.client, run.ID), "after the gate") {
		t.Error("the canceled script ran on")
	}
}

// TestInteractiveRunSurvivesRestart: a run a client drives (no compute target) is left as it is
// by a restart, and its client completes it afterwards.
func TestInteractiveRunSurvivesRestart(t *testing.T) {
	dataDir, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, dataDir, addr)
	ctx := context.Background()
	run, err := srv.client.CreateRun(ctx, atelier.DefaultWorkspace, atelier.RunCreate{Experiment: "laptop", Status: atelier.StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	srv.cmd.Process.Kill()
	srv.cmd.Wait()
	srv = startServer(t, dataDir, addr)
	if got, err := srv.client.FindRun(ctx, atelier.DefaultWorkspace, run.ID); err != nil || got.Status != atelier.StatusRunning {
		t.Fatalf("after the restart the interactive run is %v (%v), want Running", got, err)
	}
	if got, err := srv.client.UpdateRunStatus(ctx, atelier.DefaultWorkspace, run.ID, atelier.RunStatusUpdate{Status: atelier.StatusCompleted}); err != nil || got.Status != atelier.StatusCompleted {
		t.Fatalf("completing it: %v, %v", got, err)
	}
}

// killRunner kills the job runner of a run (found by its command line) with SIGKILL.
func killRunner(t *testing.T, runID string) {
	t.Helper()
	if killRunners(func(cmdline string) bool { return strings.Contains(cmdline, runID) }) == 0 {
		t.Fatalf("no job runner of run %s found", runID)
	}
}

// killRunnersUnder kills, with SIGKILL, the job runners whose command line names a path under
// dir (their scripts die with them: Pdeathsig): runners outlive their servers by design, and a
// test must not leave its runs running after it.
func killRunnersUnder(dir string) {
	// A path under dir: dir and a separator (another test's dir may start with this one's name).
	under := filepath.Clean(dir) + string(filepath.Separator)
	killRunners(func(cmdline string) bool { return strings.Contains(cmdline, under) })
}

// killRunners kills the job runners (atelier job exec) whose command line matches, and says how many.
func killRunners(match func(cmdline string) bool) int {
	killed := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 3 && args[1] == "job" && args[2] == "exec" && match(string(cmdline)) && syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	return killed
}

// TestSSHTargetThroughTheServer: a workspace attaches a machine over SSH (the server's ssh
// driver checks it), a run submitted to it executes there, and survives its server killed with
// -9: the restarted server reattaches it over SSH and it completes with its outputs.
func TestSSHTargetThroughTheServer(t *testing.T) {
	needPython(t)
	m := startSSHD(t)
	t.Cleanup(func() { killRunnersUnder(m.home) })
	ctx := context.Background()
	dataDir, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, dataDir, addr)
	target, err := srv.client.CreateComputeTarget(ctx, atelier.DefaultWorkspace, atelier.ComputeTargetSpec{Name: "box", Kind: atelier.ComputeSSH,
		SSH: &atelier.SSHCompute{Host: "127.0.0.1", Port: m.port, User: sshUser, HostKey: m.hostKey}, Credentials: atelier.ComputeCredentials{SSHPrivateKey: m.key}})
	if err != nil {
		t.Fatalf("attaching the ssh target: %v", err)
	}
	if target.Kind != atelier.ComputeSSH {
		t.Fatalf("attached %+v", target)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("train.py")
	w.Write([]byte(gatedScript))
	zw.Close()
	snap, err := srv.client.UploadSnapshotZip(ctx, atelier.DefaultWorkspace, &buf)
	if err != nil {
		t.Fatal(err)
	}
	run, err := srv.client.SubmitRun(ctx, atelier.DefaultWorkspace, atelier.RunSubmit{Experiment: "ssh", SnapshotID: snap.ID,
		Config: atelier.RunConfig{Script: "train.py", Compute: "box"}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the script to start on the machine", func() bool { return strings.Contains(runLog(srv.client, run.ID), "before the restart") })
	srv.cmd.Process.Kill()
	srv.cmd.Wait()
	srv = startServer(t, dataDir, addr)
	gate := filepath.Join(m.home, ".cache", "atelier", "jobs", run.ID, "job", "work", run.ID, "wd", "go")
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatalf("opening the gate on the machine: %v", err)
	}
	var got *atelier.Run
	waitFor(t, "the run to end", func() bool {
		r, err := srv.client.FindRun(ctx, atelier.DefaultWorkspace, run.ID)
		got = r
		return err == nil && r.Status.Terminal()
	})
	if got.Status != atelier.StatusCompleted {
		t.Fatalf("run on the ssh target ended %s (%q)", got.Status, got.Error)
	}
	if log := runLog(srv.client, run.ID); !strings.Contains(log, "after the gate") {
		t.Errorf("the run's log lost its end across the restart:\n%s", log)
	}
	files, err := srv.client.ListFiles(ctx, atelier.DefaultWorkspace, run.ID, "outputs/")
	if err != nil || len(files) != 1 {
		t.Errorf("outputs of the ssh run: %v, %v", files, err)
	}
}

// TestScriptFailsItsRun: a submitted script that fails its own run (run.fail(), as Azure ML
// scripts do) and then exits 0 ends Failed with its error, once its outputs are uploaded; one
// that completes its own run is ended by its exit (Completed).
func TestScriptFailsItsRun(t *testing.T) {
	needPython(t)
	srv := startServer(t, t.TempDir(), freeAddr(t))
	ctx := context.Background()
	failing := submitScript(t, srv.client, `import os
from atelier import Run
run = Run.get_context()
os.makedirs("outputs", exist_ok=True)
open("outputs/partial.txt", "w").write("x")
run.fail(error_details="bad input data")
print("still running after fail", flush=True)
`)
	completing := submitScript(t, srv.client, "from atelier import Run\nRun.get_context().complete()\nprint('after complete', flush=True)\n")
	for _, tc := range []struct {
		run    *atelier.Run
		status atelier.RunStatus
		error  string
		log    string
	}{{failing, atelier.StatusFailed, "bad input data", "still running after fail"}, {completing, atelier.StatusCompleted, "", "after complete"}} {
		var got *atelier.Run
		waitFor(t, "the run to end", func() bool {
			r, err := srv.client.FindRun(ctx, atelier.DefaultWorkspace, tc.run.ID)
			got = r
			return err == nil && r.Status.Terminal()
		})
		if got.Status != tc.status || !strings.Contains(got.Error, tc.error) {
			t.Errorf("run ended %s (%q), want %s with %q", got.Status, got.Error, tc.status, tc.error)
		}
		if log := runLog(srv.client, tc.run.ID); !strings.Contains(log, tc.log) {
			t.Errorf("the script did not run to its end:\n%s", log)
		}
	}
	if files, err := srv.client.ListFiles(ctx, atelier.DefaultWorkspace, failing.ID, "outputs/"); err != nil || len(files) != 1 {
		t.Errorf("the failed run's outputs: %v, %v", files, err)
	}
}
