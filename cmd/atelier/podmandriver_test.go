package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/compute/computetest"
	podmancompute "github.com/atelier-ml/atelier/compute/podman"
)

// needPodman returns podman and the CPython base image (scripts/build-python-base.sh), or
// skips saying what is missing; in CI (CI=true, where .ci/run installs both) it fails.
func needPodman(t *testing.T) (podman, base string) {
	t.Helper()
	podman, err := exec.LookPath("podman")
	if err != nil {
		needRealTool(t, "podman is not installed (apt-get install podman runc, and /etc/containers/containers.conf of .ci/run)")
	}
	base = os.Getenv("ATELIER_PYTHON_BASE")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache", "atelier-test", "python-base", "current")
	}
	if _, err := os.Stat(filepath.Join(base, "index.json")); err != nil {
		needRealTool(t, "no CPython base image in %s: run scripts/build-python-base.sh", base)
	}
	return podman, base
}

// removeJobContainers removes the containers of runs of this test's workspace runs (named by
// their run ids), whatever state they are in.
func removeJobContainers(podman string, ids ...string) {
	for _, id := range ids {
		exec.Command(podman, "rm", "--force", "--time", "0", "atelier-job-"+id).Run()
	}
}

// podmanTarget is a podman target of the server's podman, on the default base image.
func podmanTarget() *atelier.ComputeTarget {
	return &atelier.ComputeTarget{Name: "box", Kind: atelier.ComputePodman, Workspace: atelier.DefaultWorkspace,
		Podman: &atelier.PodmanCompute{CPUs: 1, MemoryGB: 1}}
}

// podmanDriver is the podman driver as the server wires it: the real binary, the base image.
func podmanDriver(t *testing.T, base string) *podmancompute.Driver {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	d := podmancompute.New(bin, "--server-wait", "3s", "--cancel-grace", "300ms")
	d.DefaultBase = base
	d.Dir = t.TempDir()
	d.StopTimeout = 5 * time.Second
	return d
}

// TestPodmanDriverConformance runs the compute driver suite against the podman driver: each run
// a real container of the CPython base image, whose runner (the real binary, bind-mounted)
// talks to a real server.
func TestPodmanDriverConformance(t *testing.T) {
	podman, base := needPodman(t)
	s := startJobStack(t)
	d := podmanDriver(t, base)
	target := podmanTarget()
	var runs []string
	t.Cleanup(func() { removeJobContainers(podman, runs...) })
	h := s.harness(d, func(l *atelier.JobLaunch) {
		l.Target = target
		runs = append(runs, l.Run.ID)
	})
	computetest.TestDriver(t, h)
}

// TestPodmanDriverRecovery: the runner's token is in no part of the container's configuration
// and its environment file is gone once it started; the CPU and memory limits are the target's;
// a driver that did not launch the job (a restarted server) sees it running; a container
// removed behind atelier's back is Gone with a reason naming it; releasing it is no error.
func TestPodmanDriverRecovery(t *testing.T) {
	podman, base := needPodman(t)
	ctx := context.Background()
	s := startJobStack(t)
	d := podmanDriver(t, base)
	target := podmanTarget()
	run, token := s.claim(t, jobCtx(t), atelier.RunConfig{Script: "train.py"},
		map[string]string{"train.py": "import time\nprint('looping', flush=True)\nwhile True:\n    time.sleep(0.05)\n"})
	t.Cleanup(func() { removeJobContainers(podman, run.ID) })
	handle, err := d.Launch(ctx, &atelier.JobLaunch{Run: run, Server: s.url, Token: token, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal([]byte(handle), &h); err != nil {
		t.Fatal(err)
	}
	name := h["name"].(string)
	waitFor(t, "the script to run", func() bool {
		r, _ := s.admin.FindRun(ctx, atelier.DefaultWorkspace, run.ID)
		return r != nil && r.Status == atelier.StatusRunning
	})
	inspect, err := exec.Command(podman, "container", "inspect", name).CombinedOutput()
	if err != nil {
		t.Fatalf("podman inspect: %v\n%s", err, inspect)
	}
	if strings.Contains(string(inspect), token) {
		t.Error("the runner's token is in the container's configuration (podman inspect)")
	}
	var info []struct {
		HostConfig struct {
			Memory   int64
			NanoCpus int64
		}
	}
	if err := json.Unmarshal(inspect, &info); err != nil || len(info) != 1 {
		t.Fatalf("podman inspect: %v", err)
	}
	if info[0].HostConfig.Memory != 1<<30 || info[0].HostConfig.NanoCpus != 1e9 {
		t.Errorf("the container's limits are memory %d, nano CPUs %d; want the target's 1 GB and 1 CPU", info[0].HostConfig.Memory, info[0].HostConfig.NanoCpus)
	}
	if out, err := exec.Command(podman, "exec", name, "ls", "-R", podmancompute.JobDir+"/secret").CombinedOutput(); err != nil || strings.Contains(string(out), "env") {
		t.Errorf("the runner's environment file is still in the container (%v): %s", err, out)
	}
	jobDir, _ := h["dir"].(string)
	if entries, err := os.ReadDir(jobDir); jobDir == "" || err != nil || len(entries) != 0 {
		t.Errorf("the job's directory %q on the server's machine: %v, %v; want it empty once the runner started", jobDir, entries, err)
	}
	other := podmancompute.New(d.Binary)
	if st, err := other.Status(ctx, handle); err != nil || st.Phase != atelier.JobRunning {
		t.Fatalf("a running container, to another driver: %+v, %v", st, err)
	}
	if err := other.Release(ctx, handle); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("Release of a running job: %v, want ECONFLICT", err)
	}
	// Launched again (a server stopped after the launch, before it recorded the handle): the
	// running container is adopted, not restarted.
	started := func() string {
		out, _ := exec.Command(podman, "container", "inspect", "--format", "{{.State.StartedAt}}", name).Output()
		return strings.TrimSpace(string(out))
	}
	before := started()
	again, err := d.Launch(ctx, &atelier.JobLaunch{Run: run, Server: s.url, Token: token + "-new", Target: target})
	if err != nil {
		t.Fatalf("launching a launched run again: %v", err)
	}
	var ha map[string]any
	json.Unmarshal([]byte(again), &ha)
	if ha["id"] != h["id"] || started() != before || before == "" {
		t.Errorf("launching again gave container %v (started %s), want the running %v (started %s)", ha["id"], started(), h["id"], before)
	}
	if entries, _ := os.ReadDir(jobDir); len(entries) != 0 {
		t.Errorf("the adopting launch left files in the job's directory: %v", entries)
	}
	// Removed behind atelier's back: Gone, saying which container.
	if out, err := exec.Command(podman, "rm", "--force", "--time", "0", name).CombinedOutput(); err != nil {
		t.Fatalf("podman rm: %v\n%s", err, out)
	}
	// (Statuses come from a listing of the service's containers kept for a moment: the removal
	// shows once it is renewed.)
	var st atelier.JobState
	waitFor(t, "the removed container to be seen gone", func() bool {
		st, err = other.Status(ctx, handle)
		return err != nil || st.Phase != atelier.JobRunning
	})
	if err != nil || st.Phase != atelier.JobGone || !strings.Contains(st.Detail, name) || !strings.Contains(st.Detail, "box") {
		t.Errorf("a removed container: %+v, %v; want Gone naming %s and the target", st, err, name)
	}
	if err := other.Cancel(ctx, handle); err != nil {
		t.Errorf("Cancel of a removed container: %v", err)
	}
	if _, err := other.Logs(ctx, handle, 0); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("Logs of a removed container: %v, want ENOTFOUND", err)
	}
	if err := other.Release(ctx, handle); err != nil {
		t.Errorf("Release of a removed container: %v", err)
	}
	if _, err := os.Stat(jobDir); err != nil {
		t.Errorf("a driver of another directory removed the job's directory: %v", err)
	}
	if err := d.Release(ctx, handle); err != nil {
		t.Errorf("Release of a removed container: %v", err)
	}
	if _, err := os.Stat(jobDir); !os.IsNotExist(err) {
		t.Errorf("the job's directory is still there after Release: %v", err)
	}
	// Killed from outside: Exited with 137, and the runner's log says what podman saw.
	run2, token2 := s.claim(t, jobCtx(t), atelier.RunConfig{Script: "train.py"},
		map[string]string{"train.py": "import time\nwhile True:\n    time.sleep(0.05)\n"})
	t.Cleanup(func() { removeJobContainers(podman, run2.ID) })
	handle2, err := d.Launch(ctx, &atelier.JobLaunch{Run: run2, Server: s.url, Token: token2, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(podman, "kill", "--signal", "KILL", "atelier-job-"+run2.ID).CombinedOutput(); err != nil {
		t.Fatalf("podman kill: %v\n%s", err, out)
	}
	waitFor(t, "the killed container to be seen exited", func() bool {
		st, err := d.Status(ctx, handle2)
		return err == nil && st.Phase == atelier.JobExited && st.ExitCode == 137
	})
	if r, err := d.Logs(ctx, handle2, 0); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(r)
		r.Close()
		if !strings.Contains(string(b), "atelier-job-"+run2.ID+" was killed by signal 9") {
			t.Errorf("the runner's log of a killed container does not say so:\n%s", b)
		}
	}
	d.Release(ctx, handle2)
	// A service that does not answer is an error the controller retries, not Gone.
	var down map[string]any
	json.Unmarshal([]byte(handle), &down)
	down["url"] = "unix://" + filepath.Join(t.TempDir(), "none.sock")
	db, _ := json.Marshal(down)
	if st, err := other.Status(ctx, string(db)); err == nil {
		t.Errorf("Status on a service that does not answer: %+v, want an error", st)
	}
}

// TestPodmanDriverCheck: a usable target passes; an image that cannot be pulled, an image
// without Python and a service that does not answer each give a clear EINVALID naming the
// target and what to fix.
func TestPodmanDriverCheck(t *testing.T) {
	podman, base := needPodman(t)
	ctx := jobCtx(t)
	d := podmanDriver(t, base)
	if err := d.Check(ctx, podmanTarget(), atelier.ComputeCredentials{}); err != nil {
		t.Fatalf("Check of a usable target: %v", err)
	}
	// An image without python3: the base's filesystem with /usr/bin/python3* removed.
	loaded, err := exec.Command(podman, "image", "list", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference="+podmancompute.BaseRepo).Output()
	if err != nil || strings.TrimSpace(string(loaded)) == "" {
		t.Fatalf("the base image was not loaded as %s: %v", podmancompute.BaseRepo, err)
	}
	baseRef := strings.Fields(string(loaded))[0]
	noPython := "localhost/atelier-test/no-python:1"
	ctr := "atelier-test-nopython-" + time.Now().Format("150405.000000")
	if out, err := exec.Command(podman, "run", "--name", ctr, "--network=none", "--entrypoint", "/bin/sh", baseRef, "-c", "rm -f /usr/bin/python3*").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := exec.Command(podman, "commit", "--quiet", ctr, noPython).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	exec.Command(podman, "rm", "--force", ctr).Run()
	t.Cleanup(func() { exec.Command(podman, "rmi", "--force", noPython).Run() })
	for _, tc := range []struct {
		name   string
		podman atelier.PodmanCompute
		want   []string
	}{
		{"NotPullable", atelier.PodmanCompute{Image: "127.0.0.1:1/none/such:1"}, []string{"box", "127.0.0.1:1/none/such:1", "cannot be pulled"}},
		{"NoPython", atelier.PodmanCompute{Image: noPython}, []string{"box", "python3 --version", noPython, "Python 3"}},
		{"ServiceDown", atelier.PodmanCompute{URL: "unix://" + filepath.Join(t.TempDir(), "podman.sock")}, []string{"box", "does not answer", "podman.url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := podmanTarget()
			target.Podman = &tc.podman
			err := d.Check(ctx, target, atelier.ComputeCredentials{})
			if atelier.ErrorCode(err) != atelier.EINVALID {
				t.Fatalf("Check: %v, want EINVALID", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(atelier.ErrorMessage(err), w) {
					t.Errorf("Check's error %q does not say %q", atelier.ErrorMessage(err), w)
				}
			}
		})
	}
}

// TestPodmanDriverService: the driver through a Podman service (podman system service on a
// Unix socket, the CLI in remote mode), the runner copied into the container as for a service
// on another machine: a run completes.
func TestPodmanDriverService(t *testing.T) {
	podman, base := needPodman(t)
	sock := filepath.Join(t.TempDir(), "podman.sock")
	svc := exec.Command(podman, "system", "service", "--time=0", "unix://"+sock)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Process.Kill(); svc.Wait() })
	waitFor(t, "the podman service's socket", func() bool { _, err := os.Stat(sock); return err == nil })
	s := startJobStack(t)
	d := podmanDriver(t, base)
	d.CopyRunner = true
	target := podmanTarget()
	target.Podman.URL = "unix://" + sock
	ctx := jobCtx(t)
	if err := d.Check(ctx, target, atelier.ComputeCredentials{}); err != nil {
		t.Fatalf("Check through the service: %v", err)
	}
	run, token := s.claim(t, ctx, atelier.RunConfig{Script: "train.py"}, map[string]string{"train.py": "print('through the service', flush=True)\n"})
	t.Cleanup(func() { removeJobContainers(podman, run.ID) })
	handle, err := d.Launch(ctx, &atelier.JobLaunch{Run: run, Server: s.url, Token: token, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	var st atelier.JobState
	waitFor(t, "the job to end", func() bool {
		st, err = d.Status(ctx, handle)
		return err != nil || st.Phase != atelier.JobRunning
	})
	if err != nil || st.Phase != atelier.JobExited || st.ExitCode != 0 {
		r, _ := d.Logs(ctx, handle, 0)
		var log []byte
		if r != nil {
			log, _ = io.ReadAll(r)
		}
		t.Fatalf("the job ended %+v (%v):\n%s", st, err, log)
	}
	if log := runLog(s.admin, run.ID); !strings.Contains(log, "through the service") {
		t.Errorf("the run's log: %q", log)
	}
	if err := d.Release(ctx, handle); err != nil {
		t.Fatal(err)
	}
}

// attachPodman attaches the server's podman as target box with the CLI.
func attachPodman(t testing.TB, srv *serverProcess, args ...string) string {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"compute", "attach", "box", "--kind", "podman"}, args...)...)
	cmd.Env = append(os.Environ(), "ATELIER_SERVER="+srv.url, "ATELIER_TOKEN="+srv.client.Token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("compute attach: %v\n%s", err, out)
	}
	return string(out)
}

// TestPodmanTargetThroughTheServer: a user attaches the server's podman with the CLI (the
// server's podman driver checks it), and runs submitted to it execute in containers of the
// server's base image: one completes with its log and outputs across a kill -9 of the server
// (the restarted server reattaches it by its container), one is canceled, and one whose
// container is removed while the server is down fails saying so.
func TestPodmanTargetThroughTheServer(t *testing.T) {
	podman, base := needPodman(t)
	ctx := context.Background()
	dataDir, addr := t.TempDir(), freeAddr(t)
	srvArgs := []string{"--image-base", base, "--cancel-grace", "300ms"}
	srv := startServer(t, dataDir, addr, srvArgs...)
	var runs []string
	t.Cleanup(func() { removeJobContainers(podman, runs...) })
	attachPodman(t, srv, "--cpus", "1", "--memory-gb", "1")
	target, err := srv.client.FindComputeTarget(ctx, atelier.DefaultWorkspace, "box")
	if err != nil || target.Podman == nil || target.Podman.CPUs != 1 || target.Podman.MemoryGB != 1 {
		t.Fatalf("attached %+v, %v", target, err)
	}
	submit := func(script string) *atelier.Run {
		t.Helper()
		run := submitScriptTo(t, srv.client, script, "box")
		runs = append(runs, run.ID)
		return run
	}
	ended := func(s *serverProcess, id string) *atelier.Run {
		t.Helper()
		var got *atelier.Run
		waitFor(t, "run "+id+" to end", func() bool {
			r, err := s.client.FindRun(ctx, atelier.DefaultWorkspace, id)
			got = r
			return err == nil && r.Status.Terminal()
		})
		return got
	}

	// Completes across a kill -9 of the server.
	run := submit(gatedScript)
	waitFor(t, "the script to start in its container", func() bool { return strings.Contains(runLog(srv.client, run.ID), "before the restart") })
	srv.cmd.Process.Kill()
	srv.cmd.Wait()
	srv = startServer(t, dataDir, addr, srvArgs...)
	if out, err := exec.Command(podman, "exec", "atelier-job-"+run.ID, "touch", podmancompute.JobDir+"/work/work/"+run.ID+"/wd/go").CombinedOutput(); err != nil {
		// podman exec may answer after the script it let through ended and its container was
		// released ("does not exist in database"): the run's end below says whether the gate opened.
		t.Logf("podman exec (opening the gate): %v: %s", err, out)
	}
	if got := ended(srv, run.ID); got.Status != atelier.StatusCompleted {
		t.Fatalf("run on the podman target ended %s (%q)", got.Status, got.Error)
	}
	if log := runLog(srv.client, run.ID); !strings.Contains(log, "before the restart") || !strings.Contains(log, "after the gate") {
		t.Errorf("the run's log lost a part across the restart:\n%s", log)
	}
	files, err := srv.client.ListFiles(ctx, atelier.DefaultWorkspace, run.ID, "outputs/")
	if err != nil || len(files) != 1 {
		t.Errorf("outputs of the podman run: %v, %v", files, err)
	}
	// The ended run's container is released.
	waitFor(t, "the ended run's container to be removed", func() bool {
		return exec.Command(podman, "container", "exists", "atelier-job-"+run.ID).Run() != nil
	})

	// Canceled.
	loop := "import time\nprint('looping', flush=True)\nwhile True:\n    time.sleep(0.05)\n"
	run = submit(loop)
	waitFor(t, "the looping script to start", func() bool { return strings.Contains(runLog(srv.client, run.ID), "looping") })
	if _, err := srv.client.CancelRun(ctx, atelier.DefaultWorkspace, run.ID); err != nil {
		t.Fatal(err)
	}
	if got := ended(srv, run.ID); got.Status != atelier.StatusCanceled {
		t.Fatalf("canceled run ended %s (%q)", got.Status, got.Error)
	}

	// Its container removed while the server was down: the restarted server finds it gone and
	// fails the run, naming the container.
	run = submit(loop)
	waitFor(t, "the looping script to start", func() bool { return strings.Contains(runLog(srv.client, run.ID), "looping") })
	srv.cmd.Process.Kill()
	srv.cmd.Wait()
	if out, err := exec.Command(podman, "rm", "--force", "--time", "0", "atelier-job-"+run.ID).CombinedOutput(); err != nil {
		t.Fatalf("podman rm: %v\n%s", err, out)
	}
	srv = startServer(t, dataDir, addr, srvArgs...)
	if got := ended(srv, run.ID); got.Status != atelier.StatusFailed || !strings.Contains(got.Error, "atelier-job-"+run.ID) {
		t.Fatalf("a run whose container was removed ended %s (%q), want Failed naming its container", got.Status, got.Error)
	}
}

// submitScriptTo submits script as train.py to a compute target.
func submitScriptTo(t testing.TB, c *api.Client, script, compute string) *atelier.Run {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("train.py")
	w.Write([]byte(script))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	snap, err := c.UploadSnapshotZip(ctx, atelier.DefaultWorkspace, &buf)
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.SubmitRun(ctx, atelier.DefaultWorkspace, atelier.RunSubmit{Experiment: "podman", SnapshotID: snap.ID,
		Config: atelier.RunConfig{Script: "train.py", Compute: compute}})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// BenchmarkPodmanSubmitToRunning measures a podman target's submit → Running (the runner has
// fetched the snapshot, chosen the interpreter and started the script) through a real server,
// the base image and the environment volume already there, against `podman run` of the same
// image starting python3 directly.
//
//	go test ./cmd/atelier/ -run '^$' -bench PodmanSubmitToRunning -benchtime 10x
func BenchmarkPodmanSubmitToRunning(b *testing.B) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		b.Skip("podman is not installed")
	}
	home, _ := os.UserHomeDir()
	base := filepath.Join(home, ".cache", "atelier-test", "python-base", "current")
	if _, err := os.Stat(filepath.Join(base, "index.json")); err != nil {
		b.Skip("no CPython base image: run scripts/build-python-base.sh")
	}
	ctx := context.Background()
	dataDir, addr := b.TempDir(), freeAddr(b)
	srv := startServer(b, dataDir, addr, "--image-base", base)
	attachPodman(b, srv)
	var runs []string
	b.Cleanup(func() {
		for _, id := range runs {
			exec.Command(podman, "rm", "--force", "--time", "0", "atelier-job-"+id).Run()
		}
	})
	one := func() time.Duration {
		run := submitScriptTo(b, srv.client, "print('hi')\n", "box")
		runs = append(runs, run.ID)
		start := time.Now()
		var running time.Duration
		for deadline := start.Add(2 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
			r, err := srv.client.FindRun(ctx, atelier.DefaultWorkspace, run.ID)
			if err != nil {
				b.Fatal(err)
			}
			if running == 0 && (r.Status == atelier.StatusRunning || r.Status.Terminal()) {
				running = time.Since(start)
			}
			if r.Status.Terminal() {
				if r.Status != atelier.StatusCompleted {
					b.Fatalf("run %s ended %s (%q)", r.ID, r.Status, r.Error)
				}
				return running
			}
			if time.Now().After(deadline) {
				b.Fatalf("run %s is still %s", r.ID, r.Status)
			}
		}
	}
	one() // the base image loaded, the environment volume made
	out, err := exec.Command(podman, "image", "list", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference="+podmancompute.BaseRepo).Output()
	if err != nil || len(strings.Fields(string(out))) == 0 {
		b.Fatalf("the base image is not loaded: %v", err)
	}
	image := strings.Fields(string(out))[0]
	var atelierTimes, podmanStart, podmanTotal []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		atelierTimes = append(atelierTimes, one())
		// podman run, until python3's first line is read (its start) and until it exits.
		start := time.Now()
		cmd := exec.Command(podman, "run", "--rm", "--network=host", "--init", image, "python3", "-c", "print('hi', flush=True)")
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		line := make([]byte, 3)
		if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "hi\n" {
			b.Fatalf("podman run printed %q: %v", line, err)
		}
		podmanStart = append(podmanStart, time.Since(start))
		if err := cmd.Wait(); err != nil {
			b.Fatalf("podman run: %v", err)
		}
		podmanTotal = append(podmanTotal, time.Since(start))
	}
	b.StopTimer()
	median := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	b.ReportMetric(median(atelierTimes), "submit-to-running-median-ms")
	b.ReportMetric(median(podmanStart), "podman-run-to-python-median-ms")
	b.ReportMetric(median(podmanTotal), "podman-run-total-median-ms")
}
