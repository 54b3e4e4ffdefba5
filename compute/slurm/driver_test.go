package slurm_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/slurm"
	"github.com/atelier-ml/atelier/compute/slurm/slurmtest"
)

func target(c *slurmtest.Cluster, partition string) *atelier.ComputeTarget {
	return &atelier.ComputeTarget{Name: "hpc", Kind: atelier.ComputeSlurm, Workspace: atelier.DefaultWorkspace,
		Slurm: &atelier.SlurmCompute{URL: c.URL, Partition: partition}}
}

// TestCheck: a usable target passes; an unreachable URL, a URL that is not slurmrestd, a token
// that is not a JWT, one signed with another key, an expired one and an unknown partition each
// fail saying what.
func TestCheck(t *testing.T) {
	c := slurmtest.Start(t)
	ctx := context.Background()
	d := slurm.New("/usr/bin/atelier", t.TempDir(), nil)
	good := atelier.ComputeCredentials{Token: c.Token("root", time.Hour)}
	if err := d.Check(ctx, target(c, slurmtest.Partition), good); err != nil {
		t.Fatalf("Check of a usable target: %v", err)
	}
	if err := d.Check(ctx, target(c, ""), good); err != nil {
		t.Fatalf("Check of a usable target without a partition: %v", err)
	}
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedURL := "http://" + closed.Addr().String()
	closed.Close()
	notSlurm := httptest.NewServer(http.NotFoundHandler())
	defer notSlurm.Close()
	other := slurmtest.SignToken([]byte("another cluster's key, 32 bytes!"), "root", time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name  string
		url   string
		part  string
		token string
		code  string
		want  []string
	}{
		{"UnreachableURL", closedURL, "", good.Token, atelier.EUNAVAILABLE, []string{"hpc", "cannot reach slurmrestd", closedURL, "refused"}},
		{"NotSlurmrestd", notSlurm.URL, "", good.Token, atelier.EINVALID, []string{"hpc", "does not serve", "v0.0.38"}},
		{"NotAJWT", c.URL, "", "not-a-token", atelier.EINVALID, []string{"hpc", "not a JWT"}},
		{"WrongKey", c.URL, "", other, atelier.EINVALID, []string{"hpc", "did not accept", "jwt_key", `"root"`}},
		{"Expired", c.URL, "", c.Token("root", -time.Minute), atelier.EINVALID, []string{"hpc", "expired at", "scontrol token"}},
		{"UnknownPartition", c.URL, "gpu", good.Token, atelier.EINVALID, []string{"hpc", `no partition "gpu"`, "it has: " + slurmtest.Partition}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := target(c, tc.part)
			tg.Slurm.URL = tc.url
			err := d.Check(ctx, tg, atelier.ComputeCredentials{Token: tc.token})
			if atelier.ErrorCode(err) != tc.code {
				t.Fatalf("Check: %v, want %s", err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(atelier.ErrorMessage(err), w) {
					t.Errorf("Check's error %q does not say %q", atelier.ErrorMessage(err), w)
				}
			}
		})
	}
}

// fakeRunner is a runner binary that says its arguments and environment's server, then runs
// body.
func fakeRunner(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "runner")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho \"runner $*\"\necho \"server $ATELIER_SERVER\"\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(p), 0o755)
	return p
}

func waitState(t *testing.T, d *slurm.Driver, h string, ok func(atelier.JobState) bool) atelier.JobState {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := d.Status(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestJobs runs jobs whose runner is a shell script: the handle is the Slurm job id, the exit
// code comes from Slurm, the runner's log is readable from an offset, a pending job is Queued
// with Slurm's reason (Resources, then JobHeldAdmin while held), is canceled in Slurm and is
// then Gone (before it started), a fresh driver reads the same
// handles, GPUs map to gres, and Release removes the job's directory.
func TestJobs(t *testing.T) {
	c := slurmtest.Start(t)
	ctx := context.Background()
	tg := target(c, slurmtest.Partition)
	creds := atelier.ComputeCredentials{Token: c.Token("root", time.Hour)}
	lookup := func(_ context.Context, ws, name string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error) {
		if ws != tg.Workspace || name != tg.Name {
			return nil, creds, atelier.Errorf(atelier.ENOTFOUND, "no compute target %q", name)
		}
		return tg, creds, nil
	}
	work := t.TempDir()
	os.Chmod(work, 0o755)
	run := func(id string, config atelier.RunConfig) *atelier.JobLaunch {
		b, _ := json.Marshal(config)
		return &atelier.JobLaunch{Run: &atelier.Run{ID: id, Workspace: atelier.DefaultWorkspace, Config: b}, Server: "http://127.0.0.1:9",
			Token: "runner-token", ScriptToken: "script-token", Target: tg, Credentials: creds}
	}

	d := slurm.New(fakeRunner(t, "exit 7"), work, lookup)
	h, err := d.Launch(ctx, run("fails", atelier.RunConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	st := waitState(t, d, h, func(s atelier.JobState) bool { return s.Phase != atelier.JobRunning })
	if st.Phase != atelier.JobExited || st.ExitCode != 7 {
		t.Fatalf("a runner exiting 7: %+v", st)
	}
	fresh := slurm.New("/nonexistent", "/nonexistent", lookup)
	if st2, err := fresh.Status(ctx, h); err != nil || st2 != st {
		t.Errorf("a fresh driver sees %+v, %v; want %+v", st2, err, st)
	}
	r, err := fresh.Logs(ctx, h, 0)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := io.ReadAll(r)
	r.Close()
	if !strings.Contains(string(log), "runner job exec --run fails --work-dir "+work+"/fails/job") || !strings.Contains(string(log), "server http://127.0.0.1:9") {
		t.Errorf("the runner's log:\n%s", log)
	}
	r, _ = fresh.Logs(ctx, h, 7)
	rest, _ := io.ReadAll(r)
	r.Close()
	if string(rest) != string(log[7:]) {
		t.Errorf("Logs from 7 = %q, want %q", rest, log[7:])
	}
	// The tokens are in the job's environment, not in anything Slurm shows of the job.
	var id struct {
		JobID int `json:"job_id"`
	}
	json.Unmarshal([]byte(h), &id)
	shown, _ := c.Command("scontrol", "show", "job", "-d", itoa(id.JobID)).CombinedOutput()
	if strings.Contains(string(shown), "runner-token") || strings.Contains(string(shown), "script-token") {
		t.Errorf("scontrol show job shows a token:\n%s", shown)
	}
	if err := fresh.Cancel(ctx, h); err != nil {
		t.Errorf("Cancel of an ended job: %v", err)
	}
	if err := fresh.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(work, "fails")); !os.IsNotExist(err) {
		t.Errorf("the job's directory is still there after Release: %v", err)
	}
	if _, err := fresh.Logs(ctx, h, 0); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("Logs of a released job: %v, want ENOTFOUND", err)
	}

	// Both GPUs held by a running job: the next job waits (Resources), and its cancel removes it.
	sleeper := slurm.New(fakeRunner(t, "sleep 600"), work, lookup)
	busy, err := sleeper.Launch(ctx, run("busy", atelier.RunConfig{GPUs: 2}))
	if err != nil {
		t.Fatal(err)
	}
	st = waitState(t, sleeper, busy, func(s atelier.JobState) bool { return strings.Contains(s.Detail, "RUNNING") })
	if st.Queued {
		t.Errorf("a running job is Queued: %+v", st)
	}
	shown, _ = c.Command("scontrol", "show", "job", jobID(t, busy)).CombinedOutput()
	if !strings.Contains(string(shown), "gpu:2") {
		t.Errorf("the job does not ask for 2 GPUs:\n%s", shown)
	}
	queued, err := sleeper.Launch(ctx, run("queued", atelier.RunConfig{GPUs: 1}))
	if err != nil {
		t.Fatal(err)
	}
	st = waitState(t, sleeper, queued, func(s atelier.JobState) bool { return s.Queued && !strings.Contains(s.Detail, "queue: None") })
	if st.Phase != atelier.JobRunning || !strings.Contains(st.Detail, "waiting in Slurm's queue: Resources") {
		t.Errorf("a job waiting for GPUs: %+v, want Running and Queued with Slurm's reason", st)
	}
	// Held (scontrol hold), its reason says so; released, it waits for the GPUs again.
	if out, err := c.Command("scontrol", "hold", jobID(t, queued)).CombinedOutput(); err != nil {
		t.Fatalf("scontrol hold: %v: %s", err, out)
	}
	st = waitState(t, sleeper, queued, func(s atelier.JobState) bool { return strings.Contains(s.Detail, "JobHeld") })
	if st.Phase != atelier.JobRunning || !st.Queued || !strings.Contains(st.Detail, "waiting in Slurm's queue: JobHeldAdmin") {
		t.Errorf("a held job: %+v, want Running and Queued, held", st)
	}
	if out, err := c.Command("scontrol", "release", jobID(t, queued)).CombinedOutput(); err != nil {
		t.Fatalf("scontrol release: %v: %s", err, out)
	}
	st = waitState(t, sleeper, queued, func(s atelier.JobState) bool { return !strings.Contains(s.Detail, "JobHeld") })
	if st.Phase != atelier.JobRunning || !st.Queued {
		t.Errorf("a released job still waiting for GPUs: %+v, want Running and Queued", st)
	}
	if err := sleeper.Release(ctx, queued); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("Release of a pending job: %v, want ECONFLICT", err)
	}
	if err := sleeper.Cancel(ctx, queued); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, sleeper, queued, func(s atelier.JobState) bool { return s.Phase != atelier.JobRunning })
	if st.Phase != atelier.JobGone || !strings.Contains(st.Detail, "CANCELLED") || !strings.Contains(st.Detail, "before it started") {
		t.Errorf("a canceled pending job: %+v", st)
	}
	// A running job's cancel leaves it to its runner, with a time limit as a backstop.
	if err := sleeper.Cancel(ctx, busy); err != nil {
		t.Fatal(err)
	}
	shown, err = c.Command("scontrol", "show", "job", jobID(t, busy)).CombinedOutput()
	if !strings.Contains(string(shown), "TimeLimit=00:02:00") && !strings.Contains(string(shown), "TimeLimit=00:03:00") {
		t.Errorf("a canceled running job's time limit is not cut to 2 or 3 minutes (%v):\n%s", err, shown)
	}
	if st, _ := sleeper.Status(ctx, busy); st.Phase != atelier.JobRunning {
		t.Errorf("a canceled running job ended at once: %+v", st)
	}
	c.Command("scancel", jobID(t, busy)).Run()
	st = waitState(t, sleeper, busy, func(s atelier.JobState) bool { return s.Phase != atelier.JobRunning })
	if st.Phase != atelier.JobGone || !strings.Contains(st.Detail, "CANCELLED") {
		t.Errorf("a job canceled with scancel: %+v, want Gone saying CANCELLED", st)
	}

	// A detached target's job is Gone; a handle of another driver is EINVALID.
	tg2 := *tg
	tg2.Name = "gone"
	h2 := strings.Replace(h, `"target":"hpc"`, `"target":"gone"`, 1)
	if st, err := fresh.Status(ctx, h2); err != nil || st.Phase != atelier.JobGone || !strings.Contains(st.Detail, "detached") {
		t.Errorf("the job of a detached target: %+v, %v", st, err)
	}
	for _, bad := range []string{"", "{}", `{"pid":1}`, `{"target":"hpc","url":"http://x","job_id":1,"dir":"relative"}`} {
		if _, err := fresh.Status(ctx, bad); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("Status(%q): %v, want EINVALID", bad, err)
		}
	}
}

func jobID(t *testing.T, h string) string {
	var id struct {
		JobID int `json:"job_id"`
	}
	if err := json.Unmarshal([]byte(h), &id); err != nil {
		t.Fatal(err)
	}
	return itoa(id.JobID)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
