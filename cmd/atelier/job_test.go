package main

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/server"
	"github.com/atelier-ml/atelier/server/servertest"
	"github.com/atelier-ml/atelier/service"
)

// jobStack is a server as the binary wires it (SQLite, objects, datastores, the vault, REST),
// with no scheduler: the test claims runs as a scheduler would and `atelier job exec` runs them.
type jobStack struct {
	url   string
	svc   *service.Service
	admin *api.Client
}

func startJobStack(t *testing.T) *jobStack {
	t.Helper()
	// Submitting needs the target to exist; nothing dispatches to it (no scheduler runs).
	st := servertest.New(t, servertest.WithoutScheduler(),
		servertest.WithLocalCompute(func(context.Context, server.Machine) (*service.Target, error) {
			return &service.Target{Name: atelier.DefaultCompute, Kind: "local"}, nil
		}))
	return &jobStack{url: st.URL, svc: st.Service, admin: st.Client}
}

// claim submits script (with the other files) and claims the run as the scheduler does
// (Queued → Preparing, and the runner's token), returning the run and the token.
func (s *jobStack) claim(t *testing.T, ctx context.Context, config atelier.RunConfig, files map[string]string) (*atelier.Run, string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, content := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(content))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	snap, err := s.admin.UploadSnapshotZip(ctx, atelier.DefaultWorkspace, &buf)
	if err != nil {
		t.Fatal(err)
	}
	config.Compute = atelier.DefaultCompute
	run, err := s.admin.SubmitRun(ctx, atelier.DefaultWorkspace, atelier.RunSubmit{Experiment: "jobs", SnapshotID: snap.ID, Config: config})
	if err != nil {
		t.Fatal(err)
	}
	if run, err = s.admin.UpdateRunStatus(ctx, run.Workspace, run.ID, atelier.RunStatusUpdate{Status: atelier.StatusPreparing}); err != nil {
		t.Fatal(err)
	}
	// The REST API mints no run tokens: the service does, as its scheduler would.
	tok, err := s.svc.CreateToken(context.Background(), &atelier.Token{Name: atelier.RunnerTokenPrefix + run.ID, Kind: atelier.PrincipalRun,
		Owner: run.CreatedBy, Workspace: run.Workspace, RunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}
	return run, tok.Secret
}

// startRunner starts `atelier job exec` for the run as a real process (this test binary, which
// is atelier when its name is; see TestMain).
func (s *jobStack) startRunner(t *testing.T, run *atelier.Run, token string, env ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "job", "exec", "--run", run.ID, "--work-dir", t.TempDir())
	cmd.Args[0] = "atelier"
	cmd.Env = append([]string{"ATELIER_SERVER=" + s.url, "ATELIER_TOKEN=" + token, "ATELIER_WORKSPACE=" + run.Workspace,
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// runnerExit waits for the runner and returns its exit code (-1 when it could not be waited for).
func runnerExit(cmd *exec.Cmd) int {
	err := cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	return -1
}

func stdLog(t *testing.T, ctx context.Context, c *api.Client, run *atelier.Run) string {
	t.Helper()
	chunk, err := c.ReadLog(ctx, run.Workspace, run.ID, "logs/std_log.txt", 0, 0)
	if err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Fatal(err)
	}
	if chunk == nil {
		return ""
	}
	return string(chunk.Data)
}

func needPython(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
}

func jobCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// The runner does a run's phases with the run's token: the snapshot, a data reference, the
// secrets it was handed, the script's output in std_log, ./outputs uploaded, and the end.
func TestJobExecCompletes(t *testing.T) {
	needPython(t)
	ctx := jobCtx(t)
	s := startJobStack(t)
	ws := atelier.DefaultWorkspace
	if _, err := s.admin.WriteDatastoreFile(ctx, ws, atelier.DefaultDatastore, "sets/train.csv", strings.NewReader("a,b\n1,2\n"), "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin.SetSecret(ctx, ws, "API_KEY", "s3cr3t-value-42"); err != nil {
		t.Fatal(err)
	}
	const script = `import os, pathlib
print("hello from the job", os.environ["ATELIER_RUN_ID"], os.environ["MLFLOW_RUN_ID"])
print("helper says", open("helper.txt").read().strip())
print("train:", pathlib.Path(os.environ["ATELIER_DATA_TRAIN"]).read_text().splitlines()[1])
print("key length", len(os.environ["API_KEY"]), "key", os.environ["API_KEY"])
os.makedirs("outputs", exist_ok=True)
pathlib.Path("outputs/model.txt").write_text("weights")
`
	run, token := s.claim(t, ctx, atelier.RunConfig{Script: "train.py", Secrets: []string{"API_KEY"},
		Data: []atelier.DataReference{{Name: "train", Datastore: atelier.DefaultDatastore, Path: "sets/train.csv", Mode: atelier.DataDownload}}},
		map[string]string{"train.py": script, "helper.txt": "from the snapshot\n"})
	cmd, out := s.startRunner(t, run, token, "ATELIER_SECRET_API_KEY=s3cr3t-value-42")
	if code := runnerExit(cmd); code != 0 {
		t.Fatalf("the runner exited %d:\n%s", code, out)
	}
	got, err := s.admin.FindRun(ctx, ws, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != atelier.StatusCompleted || got.ExitCode == nil || *got.ExitCode != 0 {
		t.Fatalf("run ended %s (exit code %v, error %q), want Completed with 0\nrunner:\n%s", got.Status, got.ExitCode, got.Error, out)
	}
	log := stdLog(t, ctx, s.admin, run)
	for _, want := range []string{"hello from the job " + run.ID + " " + run.ID, "helper says from the snapshot", "train: 1,2", "key length 15"} {
		if !strings.Contains(log, want) {
			t.Errorf("std_log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "s3cr3t-value-42") {
		t.Errorf("std_log shows the secret:\n%s", log)
	}
	_, rc, err := s.admin.OpenFile(ctx, ws, run.ID, "outputs/model.txt")
	if err != nil {
		t.Fatalf("the output was not uploaded: %v", err)
	}
	defer rc.Close()
	var b bytes.Buffer
	b.ReadFrom(rc)
	if b.String() != "weights" {
		t.Errorf("outputs/model.txt = %q", b.String())
	}
}

// A failing script ends its run Failed with its exit code, and the runner exits 7.
func TestJobExecFails(t *testing.T) {
	needPython(t)
	ctx := jobCtx(t)
	s := startJobStack(t)
	run, token := s.claim(t, ctx, atelier.RunConfig{Script: "fail.py"},
		map[string]string{"fail.py": "import sys\nprint('about to fail')\nsys.exit(3)\n"})
	cmd, out := s.startRunner(t, run, token)
	if code := runnerExit(cmd); code != exitRunFailed {
		t.Fatalf("the runner exited %d, want %d:\n%s", code, exitRunFailed, out)
	}
	got, err := s.admin.FindRun(ctx, run.Workspace, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != atelier.StatusFailed || got.ExitCode == nil || *got.ExitCode != 3 {
		t.Fatalf("run ended %s (exit code %v, error %q), want Failed with 3", got.Status, got.ExitCode, got.Error)
	}
	if log := stdLog(t, ctx, s.admin, run); !strings.Contains(log, "about to fail") {
		t.Errorf("std_log lacks the script's output:\n%s", log)
	}
}

// A cancel asked of the server (the run becomes CancelRequested) reaches the script through
// the runner, which ends the run Canceled and exits 7.
func TestJobExecCancel(t *testing.T) {
	needPython(t)
	ctx := jobCtx(t)
	s := startJobStack(t)
	run, token := s.claim(t, ctx, atelier.RunConfig{Script: "wait.py"},
		map[string]string{"wait.py": "import time\nprint('waiting', flush=True)\ntime.sleep(600)\nprint('woke up')\n"})
	cmd, out := s.startRunner(t, run, token)
	exited := make(chan int, 1)
	go func() { exited <- runnerExit(cmd) }()
	for !strings.Contains(stdLog(t, ctx, s.admin, run), "waiting") {
		select {
		case code := <-exited:
			t.Fatalf("the runner exited %d before the script started:\n%s", code, out)
		case <-ctx.Done():
			t.Fatal("the script never started")
		case <-time.After(20 * time.Millisecond):
		}
	}
	canceled, err := s.admin.CancelRun(ctx, run.Workspace, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if canceled.Status != atelier.StatusCancelRequested {
		t.Fatalf("cancel left the run %s, want CancelRequested", canceled.Status)
	}
	select {
	case code := <-exited:
		if code != exitRunFailed {
			t.Fatalf("the runner exited %d, want %d:\n%s", code, exitRunFailed, out)
		}
	case <-ctx.Done():
		cmd.Process.Kill()
		t.Fatal("the runner did not stop the script")
	}
	got, err := s.admin.FindRun(ctx, run.Workspace, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != atelier.StatusCanceled {
		t.Fatalf("run ended %s (%q), want Canceled", got.Status, got.Error)
	}
	if log := stdLog(t, ctx, s.admin, run); strings.Contains(log, "woke up") {
		t.Errorf("the script ran to its end:\n%s", log)
	}
}

// A secret the configuration names but the launcher did not hand over fails the run, saying
// which variable was missing; a token that is not valid is the runner's own error (exit 1).
func TestJobExecRefuses(t *testing.T) {
	needPython(t)
	ctx := jobCtx(t)
	s := startJobStack(t)
	if _, err := s.admin.SetSecret(ctx, atelier.DefaultWorkspace, "API_KEY", "value"); err != nil {
		t.Fatal(err)
	}
	run, token := s.claim(t, ctx, atelier.RunConfig{Script: "train.py", Secrets: []string{"API_KEY"}},
		map[string]string{"train.py": "print('ran')\n"})
	cmd, out := s.startRunner(t, run, "atl_notavalidtoken")
	if code := runnerExit(cmd); code != 1 {
		t.Fatalf("with an invalid token the runner exited %d, want 1:\n%s", code, out)
	}
	cmd, out = s.startRunner(t, run, token)
	if code := runnerExit(cmd); code != exitRunFailed {
		t.Fatalf("the runner exited %d, want %d:\n%s", code, exitRunFailed, out)
	}
	got, err := s.admin.FindRun(ctx, run.Workspace, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != atelier.StatusFailed || !strings.Contains(got.Error, "ATELIER_SECRET_API_KEY") {
		t.Fatalf("run ended %s (%q), want Failed naming ATELIER_SECRET_API_KEY", got.Status, got.Error)
	}
	if log := stdLog(t, ctx, s.admin, run); strings.Contains(log, "ran") {
		t.Errorf("the script ran without its secret:\n%s", log)
	}
}

// A runner stopped by a signal stops its script and records the run Failed (no one asked to
// cancel it), instead of leaving it active.
func TestJobExecSignaled(t *testing.T) {
	needPython(t)
	ctx := jobCtx(t)
	s := startJobStack(t)
	run, token := s.claim(t, ctx, atelier.RunConfig{Script: "wait.py"},
		map[string]string{"wait.py": "import time\nprint('waiting', flush=True)\ntime.sleep(600)\n"})
	cmd, out := s.startRunner(t, run, token)
	exited := make(chan int, 1)
	go func() { exited <- runnerExit(cmd) }()
	for !strings.Contains(stdLog(t, ctx, s.admin, run), "waiting") {
		select {
		case code := <-exited:
			t.Fatalf("the runner exited %d before the script started:\n%s", code, out)
		case <-ctx.Done():
			t.Fatal("the script never started")
		case <-time.After(20 * time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case code := <-exited:
		if code != exitRunFailed {
			t.Fatalf("the runner exited %d, want %d:\n%s", code, exitRunFailed, out)
		}
	case <-ctx.Done():
		cmd.Process.Kill()
		t.Fatal("the runner did not stop")
	}
	got, err := s.admin.FindRun(ctx, run.Workspace, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != atelier.StatusFailed || !strings.Contains(got.Error, "stopped") {
		t.Fatalf("run ended %s (%q), want Failed saying the runner was stopped", got.Status, got.Error)
	}
}
