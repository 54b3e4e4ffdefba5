package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/compute/computetest"
	slurmcompute "github.com/atelier-ml/atelier/compute/slurm"
	"github.com/atelier-ml/atelier/compute/slurm/slurmtest"
)

// TestSlurmDriverConformance runs the compute driver suite against the slurm driver: real
// slurmctld, slurmd and slurmrestd, each run a batch job whose script runs the real binary's
// runner, talking to a real server.
func TestSlurmDriverConformance(t *testing.T) {
	needPython(t)
	c := slurmtest.Start(t)
	s := startJobStack(t)
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	target := &atelier.ComputeTarget{Name: "hpc", Kind: atelier.ComputeSlurm, Workspace: atelier.DefaultWorkspace,
		Slurm: &atelier.SlurmCompute{URL: c.URL, Partition: slurmtest.Partition}}
	creds := atelier.ComputeCredentials{Token: c.Token("root", time.Hour)}
	work := t.TempDir()
	t.Cleanup(func() { killRunnersUnder(work) })
	d := slurmcompute.New(bin, work, func(_ context.Context, ws, name string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error) {
		if ws != target.Workspace || name != target.Name {
			return nil, creds, atelier.Errorf(atelier.ENOTFOUND, "no compute target %q", name)
		}
		return target, creds, nil
	}, "--server-wait", "3s", "--cancel-grace", "300ms")
	computetest.TestDriver(t, s.harness(d, func(l *atelier.JobLaunch) { l.Target, l.Credentials = target, creds }))
}

// harness is the conformance suite's harness for driver d over the stack: runs of train.py
// claimed as the controller claims them, launched with what target adds (the stored target
// and its credentials), read and canceled as a user does.
func (s *jobStack) harness(d atelier.ComputeDriver, target func(*atelier.JobLaunch)) computetest.Harness {
	return computetest.Harness{
		Driver: d,
		Claim: func(t *testing.T, script string) *atelier.JobLaunch {
			run, token := s.claim(t, jobCtx(t), atelier.RunConfig{Script: "train.py"}, map[string]string{"train.py": script})
			l := &atelier.JobLaunch{Run: run, Server: s.url, Token: token}
			if target != nil {
				target(l)
			}
			return l
		},
		Run: func(t *testing.T, id string) *atelier.Run {
			run, err := s.admin.FindRun(context.Background(), atelier.DefaultWorkspace, id)
			if err != nil {
				t.Fatal(err)
			}
			return run
		},
		RequestCancel: func(t *testing.T, id string) {
			if _, err := s.admin.CancelRun(context.Background(), atelier.DefaultWorkspace, id); err != nil {
				t.Fatal(err)
			}
		},
	}
}

// TestSlurmTargetThroughTheServer: a user attaches a Slurm cluster with the CLI (the server's
// slurm driver checks it; a wrong partition, an expired token and an unreachable URL are
// refused saying so), submits a run to it with --wait and gets its metrics and output; a run
// survives its server killed with -9 (the restarted server reattaches it by its Slurm job id)
// and another is canceled, while a third waits in Slurm's queue for GPUs and is canceled there.
func TestSlurmTargetThroughTheServer(t *testing.T) {
	needPython(t)
	c := slurmtest.Start(t)
	ctx := context.Background()
	dataDir, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, dataDir, addr)
	t.Cleanup(func() { killRunnersUnder(dataDir) })
	bin, _ := buildBinary()
	adminToken, _ := os.ReadFile(filepath.Join(dataDir, adminTokenFile))
	cli := func(stdin string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "ATELIER_SERVER="+srv.url, "ATELIER_TOKEN="+strings.TrimSpace(string(adminToken)))
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	token := c.Token("root", time.Hour)
	for _, tc := range []struct {
		name, token string
		args        []string
		want        string
	}{
		{"unknown partition", token, []string{"--url", c.URL, "--partition", "gpu"}, `no partition "gpu" (it has: debug)`},
		{"expired token", c.Token("root", -time.Minute), []string{"--url", c.URL}, "expired at"},
		{"unreachable", token, []string{"--url", "http://127.0.0.1:1"}, "cannot reach slurmrestd at http://127.0.0.1:1"},
	} {
		out, err := cli(tc.token, append([]string{"compute", "attach", "hpc", "--kind", "slurm", "--token", "-"}, tc.args...)...)
		if err == nil || !strings.Contains(out, tc.want) || strings.Contains(out, tc.token) {
			t.Errorf("attach with %s: %v, want an error saying %q (and not the token):\n%s", tc.name, err, tc.want, out)
		}
	}
	if out, err := cli(token, "compute", "attach", "hpc", "--kind", "slurm", "--url", c.URL, "--token", "-", "--partition", slurmtest.Partition, "--max-concurrent-runs", "4", "-o", "json"); err != nil {
		t.Fatalf("attach: %v\n%s", err, out)
	}

	dir := t.TempDir()
	script := `import os, sys, time
from atelier import Run
run = Run.get_context()
for step in range(3):
    run.log("loss", 1.0 / (step + 1))
print("on node", os.environ.get("SLURM_JOB_ID"), "gpus", os.environ.get("SLURM_JOB_GPUS", "-"), flush=True)
mode = sys.argv[1] if len(sys.argv) > 1 else ""
if mode == "gate":
    while not os.path.exists("go"):
        time.sleep(0.02)
    print("after the gate", flush=True)
elif mode == "forever":
    while True:
        time.sleep(0.05)
`
	if err := os.WriteFile(filepath.Join(dir, "train.py"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := cli("", "run", "submit", dir, "-e", "slurm", "--script", "train.py", "--compute", "hpc", "--gpus", "1", "--wait", "-o", "json")
	if err != nil {
		t.Fatalf("run submit --compute hpc --wait: %v\n%s\nserver log:\n%s", err, out, srv.log)
	}
	page, err := srv.client.ListRuns(ctx, atelier.DefaultWorkspace, atelier.RunQuery{})
	if err != nil || len(page.Runs) != 1 {
		t.Fatalf("runs: %+v, %v", page, err)
	}
	run := page.Runs[0]
	if run.Status != atelier.StatusCompleted || run.Compute != "hpc" || run.Metrics["loss"] != 1.0/3 {
		t.Fatalf("the slurm run: %s on %q, metrics %v (%q)", run.Status, run.Compute, run.Metrics, run.Error)
	}
	if log := runLog(srv.client, run.ID); !strings.Contains(log, "on node ") || strings.Contains(log, "on node None") || !strings.Contains(log, "gpus 0") {
		t.Errorf("the script did not run in a Slurm job with a GPU:\n%s", log)
	}

	// A distributed run: two processes (Slurm tasks) of the script, each with its rank, the
	// world size and the master's address and port; the outputs of both are the run's.
	dist := `import os
e = os.environ
print("rank", e["RANK"], "of", e["WORLD_SIZE"], "local", e["LOCAL_RANK"], "node", e["NODE_RANK"],
      "master", e["MASTER_ADDR"] + ":" + e["MASTER_PORT"], flush=True)
os.makedirs("outputs", exist_ok=True)
with open("outputs/rank_%s.txt" % e["RANK"], "w") as f:
    f.write(e["RANK"])
`
	if err := os.WriteFile(filepath.Join(dir, "dist.py"), []byte(dist), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = cli("", "run", "submit", dir, "-e", "slurm", "--script", "dist.py", "--compute", "hpc", "--process-count-per-node", "2", "--wait", "-o", "json")
	if err != nil {
		t.Fatalf("a distributed run: %v\n%s\nserver log:\n%s", err, out, srv.log)
	}
	var distRun atelier.Run
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &distRun); err != nil || distRun.Status != atelier.StatusCompleted {
		t.Fatalf("a distributed run: %v\n%s", err, out)
	}
	log := runLog(srv.client, distRun.ID)
	for _, want := range []string{"0: rank 0 of 2 local 0 node 0 master ", "1: rank 1 of 2 local 1 node 0 master "} {
		if !strings.Contains(log, want) {
			t.Errorf("the distributed run's log has no %q:\n%s", want, log)
		}
	}
	if files, err := srv.client.ListFiles(ctx, atelier.DefaultWorkspace, distRun.ID, "outputs/"); err != nil || len(files) != 2 {
		t.Errorf("the distributed run's outputs: %+v, %v; want rank_0.txt and rank_1.txt", files, err)
	}

	// A run survives its server killed with -9: the restarted server asks Slurm about its job.
	submit := func(args ...string) *atelier.Run {
		t.Helper()
		out, err := cli("", append([]string{"run", "submit", dir, "-e", "slurm", "--script", "train.py", "--compute", "hpc", "-o", "json"}, args...)...)
		if err != nil {
			t.Fatalf("run submit: %v\n%s", err, out)
		}
		var r atelier.Run
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); err != nil {
			t.Fatalf("run submit -o json: %v\n%s", err, out)
		}
		return &r
	}
	gated := submit("--", "gate")
	waitFor(t, "the gated script to start", func() bool { return strings.Contains(runLog(srv.client, gated.ID), "on node") })
	srv.cmd.Process.Kill()
	srv.cmd.Wait()
	srv = startServer(t, dataDir, addr)
	gate := filepath.Join(dataDir, "slurm", gated.ID, "job", "work", gated.ID, "wd", "go")
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatalf("opening the gate: %v", err)
	}
	got := waitEnded(t, srv.client, gated.ID)
	if got.Status != atelier.StatusCompleted || !strings.Contains(runLog(srv.client, gated.ID), "after the gate") {
		t.Fatalf("the run across a server restart ended %s (%q):\n%s", got.Status, got.Error, runLog(srv.client, gated.ID))
	}

	// Cancel: a running run, and one waiting in Slurm's queue for both GPUs while another holds them.
	running := submit("--gpus", "2", "--", "forever")
	waitFor(t, "the forever script to start", func() bool { return strings.Contains(runLog(srv.client, running.ID), "on node") })
	queued := submit("--gpus", "1")
	waitFor(t, "the second run's job to wait in Slurm's queue", func() bool {
		jobs, _ := c.Jobs()
		return strings.Contains(jobs, "PENDING atelier-"+queued.ID)
	})
	// The run stays Preparing (claimed), and its preparation log says why it waits.
	waitFor(t, "the queued run's preparation log to give Slurm's reason", func() bool {
		chunk, err := srv.client.ReadLog(ctx, atelier.DefaultWorkspace, queued.ID, "logs/prepare_log.txt", 0, 0)
		return err == nil && chunk != nil && strings.Contains(string(chunk.Data), "waiting in Slurm's queue: Resources")
	})
	if r, err := srv.client.FindRun(ctx, atelier.DefaultWorkspace, queued.ID); err != nil || r.Status != atelier.StatusPreparing {
		t.Errorf("a run whose job waits in Slurm's queue: %+v, %v; want Preparing", r, err)
	}
	for _, r := range []*atelier.Run{queued, running} {
		if out, err := cli("", "run", "cancel", r.ID); err != nil {
			t.Fatalf("run cancel: %v\n%s", err, out)
		}
	}
	for _, r := range []*atelier.Run{queued, running} {
		if got := waitEnded(t, srv.client, r.ID); got.Status != atelier.StatusCanceled {
			t.Errorf("canceled run %s ended %s (%q)", r.ID, got.Status, got.Error)
		}
	}
	waitFor(t, "Slurm's queue to empty", func() bool { jobs, _ := c.Jobs(); return strings.TrimSpace(jobs) == "" })
	if bytes.Contains([]byte(srv.log.String()), []byte(token)) {
		t.Error("the server's log holds the Slurm token")
	}
}

func waitEnded(t *testing.T, c interface {
	FindRun(context.Context, string, string) (*atelier.Run, error)
}, id string) *atelier.Run {
	t.Helper()
	var got *atelier.Run
	waitFor(t, "run "+id+" to end", func() bool {
		r, err := c.FindRun(context.Background(), atelier.DefaultWorkspace, id)
		got = r
		return err == nil && r.Status.Terminal()
	})
	return got
}

// BenchmarkSlurmSubmitToStart measures the time from submitting a script to its first line
// running, through atelier (a REST submit to a stored slurm target: the scheduler claims it,
// the driver submits its job to slurmrestd, Slurm starts the batch script, the runner fetches
// the snapshot and starts the script) beside `sbatch` of the same script. It reports the
// medians (ms) over b.N runs of each; docs/benchmarks.md records them:
//
//	go test -run '^$' -bench SlurmSubmitToStart -benchtime 10x ./cmd/atelier/
func BenchmarkSlurmSubmitToStart(b *testing.B) {
	c := slurmtest.Start(b)
	ctx := context.Background()
	dataDir, err := os.MkdirTemp("", "atelier-bench-slurm-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dataDir)
	srv := startServer(b, dataDir, freeAddr(b))
	if _, err := srv.client.CreateComputeTarget(ctx, atelier.DefaultWorkspace, atelier.ComputeTargetSpec{Name: "hpc", Kind: atelier.ComputeSlurm,
		MaxConcurrentRuns: 4, Slurm: &atelier.SlurmCompute{URL: c.URL, Partition: slurmtest.Partition},
		Credentials: atelier.ComputeCredentials{Token: c.Token("root", time.Hour)}}); err != nil {
		b.Fatal(err)
	}
	submit := submitToStart(b, srv.client, "hpc")
	var viaAtelier, viaSbatch []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		viaAtelier = append(viaAtelier, submit())

		out := filepath.Join(dataDir, "sbatch-"+strconv.Itoa(i)+".out")
		t0 := time.Now()
		cmd := c.Command("sbatch", "--partition", slurmtest.Partition, "--output", out, "--wrap",
			"/usr/bin/python3 -c \"import time; print('start', repr(time.time()), flush=True)\"")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("sbatch: %v: %s", err, msg)
		}
		var at time.Time
		for deadline := time.Now().Add(2 * time.Minute); at.IsZero(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatal("the sbatch job did not start")
			}
			data, _ := os.ReadFile(out)
			at = startedAt(string(data))
		}
		viaSbatch = append(viaSbatch, at.Sub(t0))
		waitFor2(b, func() bool { jobs, _ := c.Jobs(); return strings.TrimSpace(jobs) == "" })
	}
	b.StopTimer()
	b.ReportMetric(medianMS(viaAtelier), "atelier-ms")
	b.ReportMetric(medianMS(viaSbatch), "sbatch-ms")
	b.Logf("submit → script start, %d runs each: atelier %v; sbatch %v", b.N, viaAtelier, viaSbatch)
}

// submitToStart readies submits of a one-line script (which prints when it starts) to a
// compute target; each returns the time from the submit call to the script's start, once the
// run ended.
func submitToStart(b *testing.B, client *api.Client, compute string) func() time.Duration {
	ctx := context.Background()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("train.py")
	w.Write([]byte("import time\nprint('start', repr(time.time()), flush=True)\n"))
	zw.Close()
	snap, err := client.UploadSnapshotZip(ctx, atelier.DefaultWorkspace, &buf)
	if err != nil {
		b.Fatal(err)
	}
	return func() time.Duration {
		t0 := time.Now()
		run, err := client.SubmitRun(ctx, atelier.DefaultWorkspace, atelier.RunSubmit{Experiment: "bench", SnapshotID: snap.ID,
			Config: atelier.RunConfig{Script: "train.py", Compute: compute}})
		if err != nil {
			b.Fatal(err)
		}
		var at time.Time
		for deadline := time.Now().Add(2 * time.Minute); at.IsZero(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("run %s did not start", run.ID)
			}
			at = startedAt(runLog(client, run.ID))
		}
		waitFor2(b, func() bool {
			r, err := client.FindRun(ctx, atelier.DefaultWorkspace, run.ID)
			return err == nil && r.Status.Terminal()
		})
		return at.Sub(t0)
	}
}

// startedAt is the time a bench script printed as it started ("start <unix time>").
func startedAt(log string) time.Time {
	i := strings.Index(log, "start ")
	if i < 0 {
		return time.Time{}
	}
	f, err := strconv.ParseFloat(strings.Fields(log[i+6:])[0], 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, int64(f*1e9))
}

// medianMS is the median of d in milliseconds (d is sorted).
func medianMS(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2]) / float64(time.Millisecond)
}

func waitFor2(b *testing.B, ok func() bool) {
	for deadline := time.Now().Add(2 * time.Minute); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("still waiting after 2 minutes")
		}
	}
}

// TestSlurmDriverSecrets: secrets reach the script on the node unchanged (quotes, newlines,
// shell syntax) through the job's environment; neither they nor the run's token are in what
// Slurm shows of the job. A launch with an expired token is refused saying so.
func TestSlurmDriverSecrets(t *testing.T) {
	needPython(t)
	ctx := context.Background()
	c := slurmtest.Start(t)
	s := startJobStack(t)
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	target := &atelier.ComputeTarget{Name: "hpc", Kind: atelier.ComputeSlurm, Workspace: atelier.DefaultWorkspace,
		Slurm: &atelier.SlurmCompute{URL: c.URL}}
	creds := atelier.ComputeCredentials{Token: c.Token("root", time.Hour)}
	work := t.TempDir()
	t.Cleanup(func() { killRunnersUnder(work) })
	d := slurmcompute.New(bin, work, func(context.Context, string, string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error) {
		return target, creds, nil
	})
	value := "it's \"$HOME\" $(id)\nsecond line \\ `id`"
	if _, err := s.admin.SetSecret(ctx, atelier.DefaultWorkspace, "API_KEY", value); err != nil {
		t.Fatal(err)
	}
	script := "import os, sys, time\nok = os.environ.get('API_KEY') == " + strconv.Quote(value) +
		"\nprint('secret ok' if ok else 'secret wrong', flush=True)\nwhile not os.path.exists('go'):\n    time.sleep(0.02)\nsys.exit(0 if ok else 5)\n"
	run, token := s.claim(t, jobCtx(t), atelier.RunConfig{Script: "train.py", Secrets: []string{"API_KEY"}}, map[string]string{"train.py": script})
	handle, err := d.Launch(ctx, &atelier.JobLaunch{Run: run, Server: s.url, Token: token, Target: target, Credentials: creds,
		Secrets: map[string]string{"API_KEY": value}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the script to start", func() bool { return strings.Contains(stdLog(t, ctx, s.admin, run), "secret ") })
	var h struct {
		JobID int `json:"job_id"`
	}
	json.Unmarshal([]byte(handle), &h)
	shown, err := c.Command("scontrol", "show", "job", "-dd", strconv.Itoa(h.JobID)).CombinedOutput()
	if err != nil || !strings.Contains(string(shown), "atelier-"+run.ID) {
		t.Fatalf("scontrol show job: %v\n%s", err, shown)
	}
	if strings.Contains(string(shown), "second line") || strings.Contains(string(shown), token) {
		t.Errorf("scontrol show job shows the secret or the runner's token:\n%s", shown)
	}
	os.WriteFile(filepath.Join(work, run.ID, "job", "work", run.ID, "wd", "go"), nil, 0o644)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := d.Status(ctx, handle)
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase != atelier.JobRunning {
			if st.Phase != atelier.JobExited || st.ExitCode != 0 {
				got, _ := s.admin.FindRun(ctx, atelier.DefaultWorkspace, run.ID)
				t.Fatalf("the job ended %+v (run %s, %q): the secret did not reach the script unchanged", st, got.Status, got.Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job still runs")
		}
		time.Sleep(20 * time.Millisecond)
	}

	run2, token2 := s.claim(t, jobCtx(t), atelier.RunConfig{Script: "train.py"}, map[string]string{"train.py": "print(1)\n"})
	_, err = d.Launch(ctx, &atelier.JobLaunch{Run: run2, Server: s.url, Token: token2, Target: target,
		Credentials: atelier.ComputeCredentials{Token: c.Token("root", -time.Minute)}})
	if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), "expired at") {
		t.Errorf("a launch with an expired token: %v, want EINVALID saying it expired", err)
	}
}
