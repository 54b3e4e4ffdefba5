package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/service"
	"github.com/atelier-ml/atelier/sqlite"
)

// testKey stands for an SSH private key: what a target's credentials hold, which no answer,
// audit entry or database page may show.
const testKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END OPENSSH PRIVATE KEY-----\n"

// checkingDriver is a compute driver that only checks targets (the remote drivers come in
// issue 23): it refuses the host "unreachable.example" and records what it was given.
type checkingDriver struct {
	mu     sync.Mutex
	checks []atelier.ComputeCredentials
	hosts  []string
}

var _ atelier.ComputeChecker = (*checkingDriver)(nil)

func (d *checkingDriver) Check(ctx context.Context, t *atelier.ComputeTarget, creds atelier.ComputeCredentials) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.checks = append(d.checks, creds)
	if t.Sealed != nil {
		return atelier.Errorf(atelier.EINTERNAL, "the driver was given the sealed credentials")
	}
	if t.SSH != nil {
		d.hosts = append(d.hosts, t.SSH.Host)
		if t.SSH.Host == "unreachable.example" {
			return io.ErrUnexpectedEOF // a plain error, as a network library gives
		}
	}
	return nil
}

func (d *checkingDriver) Launch(context.Context, *atelier.JobLaunch) (string, error) {
	return "", atelier.Errorf(atelier.EUNAVAILABLE, "not a runner")
}
func (d *checkingDriver) Status(context.Context, string) (atelier.JobState, error) {
	return atelier.JobState{Phase: atelier.JobGone}, nil
}
func (d *checkingDriver) Cancel(context.Context, string) error { return nil }
func (d *checkingDriver) Logs(context.Context, string, int64) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("")), nil
}
func (d *checkingDriver) Release(context.Context, string) error { return nil }

// computeStack is a stack with the built-in local target and drivers for local and ssh.
func computeStack(t *testing.T) (*Stack, *checkingDriver) {
	s := MustStack(t)
	d := &checkingDriver{}
	s.Service.AddComputeTarget(&service.Target{Name: atelier.DefaultCompute, Kind: atelier.ComputeLocal, Driver: d, MaxConcurrentRuns: 2})
	s.Service.Drivers = map[string]atelier.ComputeDriver{atelier.ComputeLocal: d, atelier.ComputeSSH: d}
	return s, d
}

func sshSpec(name, host string) atelier.ComputeTargetSpec {
	return atelier.ComputeTargetSpec{Name: name, Kind: atelier.ComputeSSH, Description: "the GPU box", MaxConcurrentRuns: 2,
		SSH:         &atelier.SSHCompute{Host: host, User: "ml"},
		Credentials: atelier.ComputeCredentials{SSHPrivateKey: testKey}}
}

func TestComputeTargets(t *testing.T) {
	s, driver := computeStack(t)
	c, ctx := s.Client, Ctx(t)

	// Every workspace has the built-in local.
	list, err := c.ListComputeTargets(ctx, "default")
	if err != nil || len(list) != 1 || list[0].Name != "local" || !list[0].BuiltIn || list[0].MaxConcurrentRuns != 2 {
		t.Fatalf("ListComputeTargets on a fresh server = %+v, %v", list, err)
	}
	if ct, err := c.FindComputeTarget(ctx, "default", "local"); err != nil || !ct.BuiltIn || ct.Kind != "local" {
		t.Errorf("FindComputeTarget(local) = %+v, %v", ct, err)
	}

	// Attach: the driver checks the target with its credentials in clear; the answer names
	// them, never shows them; the check is an activity.
	gpu, err := c.CreateComputeTarget(ctx, "default", sshSpec("gpu-box", "10.0.0.7"))
	if err != nil {
		t.Fatal(err)
	}
	if gpu.Kind != "ssh" || gpu.SSH == nil || gpu.SSH.Port != 22 || gpu.SSH.User != "ml" || gpu.Workspace != "default" ||
		strings.Join(gpu.Credentials, ",") != "ssh_private_key" || gpu.CreatedBy != "admin" || gpu.CreatedAt == nil || gpu.Activity == "" || gpu.BuiltIn {
		t.Errorf("CreateComputeTarget = %+v", gpu)
	}
	if len(driver.checks) != 1 || driver.checks[0].SSHPrivateKey != testKey {
		t.Errorf("the driver's checks = %d, want one with the key", len(driver.checks))
	}
	act, err := c.FindActivity(ctx, "default", gpu.Activity)
	if err != nil || act.Kind != "compute.attach" || act.Target != "gpu-box" || act.Status != atelier.ActivitySucceeded || act.EndedAt == nil {
		t.Errorf("the attach activity = %+v, %v", act, err)
	}
	if _, err := c.CreateComputeTarget(ctx, "default", sshSpec("gpu-box", "10.0.0.8")); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("attaching twice: %v, want ECONFLICT", err)
	}

	// A local target is created (its activity says so) and listed after the built-in one.
	cpu, err := c.CreateComputeTarget(ctx, "default", atelier.ComputeTargetSpec{Name: "cpu4", Kind: "local", MaxConcurrentRuns: 4})
	if err != nil || cpu.MaxConcurrentRuns != 4 || len(cpu.Credentials) != 0 {
		t.Fatalf("creating a local target = %+v, %v", cpu, err)
	}
	if act, err := c.FindActivity(ctx, "default", cpu.Activity); err != nil || act.Kind != "compute.create" {
		t.Errorf("the create activity = %+v, %v", act, err)
	}
	list, err = c.ListComputeTargets(ctx, "default")
	if err != nil || len(list) != 3 || list[0].Name != "local" || list[1].Name != "cpu4" || list[2].Name != "gpu-box" || list[2].SSH == nil {
		t.Fatalf("ListComputeTargets = %+v, %v", list, err)
	}

	// A check that fails: 400 with the driver's reason, the activity Failed, nothing stored.
	_, err = c.CreateComputeTarget(ctx, "default", sshSpec("far", "unreachable.example"))
	if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), `compute target "far" failed its check: unexpected EOF`) {
		t.Errorf("a failed check: %v, want EINVALID with the reason", err)
	}
	if _, err := c.FindComputeTarget(ctx, "default", "far"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("a target that failed its check was stored: %v", err)
	}
	acts, err := c.ListActivities(ctx, "default", atelier.ActivityFilter{Kind: "compute.attach", Target: "far"})
	if err != nil || len(acts) != 1 || acts[0].Status != atelier.ActivityFailed || !strings.Contains(acts[0].Error, "unexpected EOF") {
		t.Errorf("the failed attach's activity = %+v, %v", acts, err)
	}

	// A kind without a driver here is refused, naming what the server has.
	_, err = c.CreateComputeTarget(ctx, "default", atelier.ComputeTargetSpec{Name: "hpc", Kind: "slurm",
		Slurm: &atelier.SlurmCompute{URL: "http://slurm:6820"}, Credentials: atelier.ComputeCredentials{Token: "jwt"}})
	if atelier.ErrorCode(err) != atelier.EINVALID || atelier.ErrorMessage(err) != `compute kind "slurm" is not available on this server yet (this server has: local, ssh)` {
		t.Errorf("attaching a slurm target: %v", err)
	}

	// A run queued on the target holds it: detach is refused, saying how many and what to do.
	run, err := s.DB.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "exp", Status: atelier.StatusQueued, Compute: "gpu-box"})
	if err != nil {
		t.Fatal(err)
	}
	if ct, err := c.FindComputeTarget(ctx, "default", "gpu-box"); err != nil || ct.Queued != 1 || ct.Running != 0 {
		t.Errorf("FindComputeTarget with a queued run = %+v, %v", ct, err)
	}
	err = c.DetachComputeTarget(ctx, "default", "gpu-box")
	if atelier.ErrorCode(err) != atelier.ECONFLICT || !strings.Contains(atelier.ErrorMessage(err), "1 queued run") ||
		!strings.Contains(atelier.ErrorMessage(err), "atelier run cancel") {
		t.Errorf("detaching a target with a queued run: %v", err)
	}
	if _, err := c.CancelRun(ctx, "default", run.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DetachComputeTarget(ctx, "default", "gpu-box"); err != nil {
		t.Fatalf("detaching once its run was canceled: %v", err)
	}
	if _, err := c.FindComputeTarget(ctx, "default", "gpu-box"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("FindComputeTarget after detach: %v", err)
	}
	if err := c.DetachComputeTarget(ctx, "default", "gpu-box"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("detaching twice: %v", err)
	}
	if err := c.DetachComputeTarget(ctx, "default", "local"); atelier.ErrorCode(err) != atelier.ECONFLICT ||
		!strings.Contains(atelier.ErrorMessage(err), "built in") {
		t.Errorf("detaching local: %v", err)
	}
}

// Stored targets belong to their workspace: a run submitted there may name one, another
// workspace does not see it, and a target whose kind lost its driver takes no run.
func TestComputeTargetSubmit(t *testing.T) {
	s, _ := computeStack(t)
	c, ctx := s.Client, Ctx(t)
	if err := c.CreateWorkspace(ctx, &atelier.Workspace{Name: "team"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateComputeTarget(ctx, "default", sshSpec("gpu-box", "10.0.0.7")); err != nil {
		t.Fatal(err)
	}
	snap, err := c.UploadSnapshotZip(ctx, "default", bytes.NewReader(MustZip(t, [2]string{"train.py", "print(1)\n"})))
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.SubmitRun(ctx, "default", atelier.RunSubmit{Experiment: "exp", SnapshotID: snap.ID,
		Config: atelier.RunConfig{Script: "train.py", Compute: "gpu-box"}})
	if err != nil || run.Compute != "gpu-box" || run.Status != atelier.StatusQueued {
		t.Fatalf("SubmitRun to a stored target = %+v, %v", run, err)
	}
	if _, err := c.FindComputeTarget(ctx, "team", "gpu-box"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("another workspace sees the target: %v", err)
	}
	if list, err := c.ListComputeTargets(ctx, "team"); err != nil || len(list) != 1 {
		t.Errorf("another workspace's list = %+v, %v", list, err)
	}
	for _, tc := range []struct{ compute, want string }{
		{"nowhere", `unknown compute target "nowhere"`},
		{"bad name!", `invalid compute name "bad name!"`},
	} {
		_, err := c.SubmitRun(ctx, "default", atelier.RunSubmit{Experiment: "exp", SnapshotID: snap.ID,
			Config: atelier.RunConfig{Script: "train.py", Compute: tc.compute}})
		if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), tc.want) {
			t.Errorf("SubmitRun to %q: %v, want %s", tc.compute, err, tc.want)
		}
	}
	s.Service.Drivers = map[string]atelier.ComputeDriver{atelier.ComputeLocal: s.Service.Drivers[atelier.ComputeLocal]}
	_, err = c.SubmitRun(ctx, "default", atelier.RunSubmit{Experiment: "exp", SnapshotID: snap.ID,
		Config: atelier.RunConfig{Script: "train.py", Compute: "gpu-box"}})
	if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), `compute kind "ssh" is not available on this server yet`) {
		t.Errorf("SubmitRun to a target whose kind has no driver: %v", err)
	}
}

// Reader may look, not change; credentials are in no answer, no audit entry and nowhere in the
// database in clear.
func TestComputeTargetAccessAndSecrets(t *testing.T) {
	s, _ := computeStack(t)
	ctx := Ctx(t)
	reader, _ := mustUserClient(t, s, "rita", "default", atelier.RoleReader)
	contrib, _ := mustUserClient(t, s, "carl", "default", atelier.RoleContributor)

	if _, err := reader.CreateComputeTarget(ctx, "default", sshSpec("gpu-box", "10.0.0.7")); atelier.ErrorCode(err) != atelier.EFORBIDDEN {
		t.Errorf("a Reader attaching: %v, want EFORBIDDEN", err)
	}
	if _, err := contrib.CreateComputeTarget(ctx, "default", sshSpec("gpu-box", "10.0.0.7")); err != nil {
		t.Fatalf("a Contributor attaching: %v", err)
	}
	if list, err := reader.ListComputeTargets(ctx, "default"); err != nil || len(list) != 2 {
		t.Errorf("a Reader listing = %+v, %v", list, err)
	}
	if ct, err := reader.FindComputeTarget(ctx, "default", "gpu-box"); err != nil || ct.CreatedBy != "carl" {
		t.Errorf("a Reader showing = %+v, %v", ct, err)
	}
	if err := reader.DetachComputeTarget(ctx, "default", "gpu-box"); atelier.ErrorCode(err) != atelier.EFORBIDDEN {
		t.Errorf("a Reader detaching: %v, want EFORBIDDEN", err)
	}
	outsider, _ := mustUserClient(t, s, "olga", "", "")
	if _, err := outsider.FindComputeTarget(ctx, "default", "gpu-box"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("a non-member showing: %v, want ENOTFOUND", err)
	}

	secret := []byte("c2VjcmV0LWtleS1tYXRlcmlhbA")
	for _, path := range []string{"/api/v1/workspaces/default/compute", "/api/v1/workspaces/default/compute/gpu-box", "/api/v1/workspaces/default/activities"} {
		resp := s.MustDo(t, Request{Method: "GET", Path: path})
		if resp.Status != 200 || bytes.Contains(resp.Body, secret) || !bytes.Contains(resp.Body, []byte("gpu-box")) {
			t.Errorf("GET %s: %d %s", path, resp.Status, resp.Body)
		}
	}
	resp := s.MustDo(t, Request{Method: "POST", Path: "/api/v1/workspaces/default/compute",
		Body: `{"name":"box2","kind":"ssh","ssh":{"host":"h","user":"u"},"credentials":{"ssh_private_key":` + jsonString(testKey) + `}}`})
	if resp.Status != 201 || bytes.Contains(resp.Body, secret) || !bytes.Contains(resp.Body, []byte(`"credentials":["ssh_private_key"]`)) {
		t.Errorf("POST: %d %s", resp.Status, resp.Body)
	}
	entries, err := s.Client.ListAudit(ctx, "default", atelier.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(entries)
	if bytes.Contains(b, secret) || !bytes.Contains(b, []byte(`"path":"/api/v1/workspaces/default/compute"`)) {
		t.Errorf("the audit log: %s", b)
	}
	if err := s.DB.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"atelier.db", "atelier.db-wal"} {
		data, err := os.ReadFile(filepath.Join(s.Dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(data, secret) {
			t.Errorf("%s holds a compute target's key in clear", name)
		}
	}
	// The sealed credentials open again, bound to their target, for the scheduler.
	db, err := sqlite.Open(ctx, filepath.Join(s.Dir, "atelier.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stored, err := db.FindComputeTarget(ctx, "default", "box2")
	if err != nil || len(stored.Sealed) == 0 {
		t.Fatalf("the stored target = %+v, %v", stored, err)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Bad input is refused with 400 naming the field, before any driver is asked.
func TestComputeTargetBadInput(t *testing.T) {
	s, driver := computeStack(t)
	const base = "/api/v1/workspaces/default/compute"
	key := jsonString(testKey)
	ssh := func(extra string) string {
		return `{"name":"x","kind":"ssh",` + extra + `}`
	}
	for _, tc := range []struct {
		name   string
		req    Request
		status int
		want   []string
	}{
		{"unknown kind", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"ftp"}`}, 400, []string{`unknown compute kind "ftp"`}},
		{"no kind", Request{Method: "POST", Path: base, Body: `{"name":"x"}`}, 400, []string{"kind"}},
		{"bad name", Request{Method: "POST", Path: base, Body: `{"name":"bad name","kind":"local"}`}, 400, []string{"invalid compute target name"}},
		{"reserved name", Request{Method: "POST", Path: base, Body: `{"name":"local","kind":"local"}`}, 400, []string{`"local" is reserved`}},
		{"negative concurrency", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"local","max_concurrent_runs":-1}`}, 400, []string{"max_concurrent_runs -1"}},
		{"huge concurrency", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"local","max_concurrent_runs":5000}`}, 400, []string{"max_concurrent_runs 5000"}},
		{"local with ssh", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"local","ssh":{"host":"h","user":"u"}}`}, 400, []string{"ssh does not apply to a local compute target"}},
		{"ssh without its block", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"ssh","credentials":{"ssh_private_key":` + key + `}}`}, 400, []string{"needs its configuration, ssh"}},
		{"ssh without host", Request{Method: "POST", Path: base, Body: ssh(`"ssh":{"user":"u"},"credentials":{"ssh_private_key":` + key + `}`)}, 400, []string{`"ssh.host"`}},
		{"ssh bad host", Request{Method: "POST", Path: base, Body: ssh(`"ssh":{"host":"a b","user":"u"},"credentials":{"ssh_private_key":` + key + `}`)}, 400, []string{`invalid ssh.host "a b"`}},
		{"ssh bad port", Request{Method: "POST", Path: base, Body: ssh(`"ssh":{"host":"h","port":70000,"user":"u"},"credentials":{"ssh_private_key":` + key + `}`)}, 400, []string{"ssh.port 70000"}},
		{"ssh without user", Request{Method: "POST", Path: base, Body: ssh(`"ssh":{"host":"h"},"credentials":{"ssh_private_key":` + key + `}`)}, 400, []string{`"ssh.user"`}},
		{"ssh bad host key", Request{Method: "POST", Path: base, Body: ssh(`"ssh":{"host":"h","user":"u","host_key":"nonsense"},"credentials":{"ssh_private_key":` + key + `}`)}, 400, []string{"invalid ssh.host_key"}},
		{"ssh without key", Request{Method: "POST", Path: base, Body: ssh(`"ssh":{"host":"h","user":"u"}`)}, 400, []string{"credentials.ssh_private_key"}},
		{"ssh key not a key", Request{Method: "POST", Path: base, Body: ssh(`"ssh":{"host":"h","user":"u"},"credentials":{"ssh_private_key":"hunter2"}`)}, 400, []string{"credentials.ssh_private_key is not"}},
		{"ssh with kubeconfig", Request{Method: "POST", Path: base, Body: ssh(`"ssh":{"host":"h","user":"u"},"credentials":{"ssh_private_key":` + key + `,"kubeconfig":"clusters: []"}`)}, 400, []string{"credentials.kubeconfig does not apply to a ssh"}},
		{"slurm bad url", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"slurm","slurm":{"url":"ftp://h"},"credentials":{"token":"t"}}`}, 400, []string{`invalid slurm.url "ftp://h"`}},
		{"slurm url with password", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"slurm","slurm":{"url":"http://u:p@h"},"credentials":{"token":"t"}}`}, 400, []string{"invalid slurm.url", "no password"}},
		{"slurm without token", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"slurm","slurm":{"url":"http://h:6820"}}`}, 400, []string{"slurm.token_secret", "credentials.token"}},
		{"slurm bad token secret", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"slurm","slurm":{"url":"http://h:6820","token_secret":"no-dashes"}}`}, 400, []string{"slurm.token_secret"}},
		{"slurm bad partition", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"slurm","slurm":{"url":"http://h:6820","partition":"a b"},"credentials":{"token":"t"}}`}, 400, []string{`invalid slurm.partition "a b"`}},
		{"kubernetes without namespace", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"kubernetes","kubernetes":{}}`}, 400, []string{`"kubernetes.namespace"`}},
		{"kubernetes bad namespace", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"kubernetes","kubernetes":{"namespace":"ML_Team"}}`}, 400, []string{`invalid kubernetes.namespace "ML_Team"`}},
		{"kubernetes bad kubeconfig", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"kubernetes","kubernetes":{"namespace":"ml"},"credentials":{"kubeconfig":"hello"}}`}, 400, []string{"credentials.kubeconfig is not a kubeconfig"}},
		{"kubernetes bad image", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"kubernetes","kubernetes":{"namespace":"ml","image":"a b"}}`}, 400, []string{"invalid kubernetes.image"}},
		{"podman bad url", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"podman","podman":{"url":"unix://relative.sock"}}`}, 400, []string{"invalid podman.url"}},
		{"podman with token", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"podman","podman":{},"credentials":{"token":"t"}}`}, 400, []string{"credentials.token does not apply to a podman"}},
		{"unknown field", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"local","password":"p"}`}, 400, []string{"unknown field"}},
		{"unknown ssh field", Request{Method: "POST", Path: base, Body: ssh(`"ssh":{"host":"h","user":"u","password":"p"}`)}, 400, []string{"password"}},
		{"valid podman, no driver", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"podman","podman":{"url":"unix:///run/podman/podman.sock"}}`}, 400, []string{`compute kind "podman" is not available on this server yet (this server has: local, ssh)`}},
		{"valid kubernetes, no driver", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"kubernetes","kubernetes":{"namespace":"ml"},"credentials":{"kubeconfig":"apiVersion: v1\nclusters: []\n"}}`}, 400, []string{`compute kind "kubernetes" is not available`}},
		{"slurm secret missing", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"slurm","slurm":{"url":"http://h:6820","token_secret":"SLURM_JWT"}}`}, 400, []string{`compute kind "slurm" is not available`}},
		{"unknown target", Request{Method: "GET", Path: base + "/nope"}, 404, []string{`no compute target "nope"`}},
		{"bad target name", Request{Method: "GET", Path: base + "/bad%20name"}, 400, []string{"invalid compute target name"}},
		{"detach unknown", Request{Method: "DELETE", Path: base + "/nope"}, 404, []string{`compute target "nope" not found`}},
		{"detach local", Request{Method: "DELETE", Path: base + "/local"}, 409, []string{"built in"}},
		{"unknown workspace", Request{Method: "GET", Path: "/api/v1/workspaces/nope/compute/local"}, 404, []string{"workspace"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			MustAPIError(t, s.MustDo(t, tc.req), tc.status, tc.want...)
		})
	}
	if len(driver.checks) != 0 {
		t.Errorf("the driver checked %d targets of bad input", len(driver.checks))
	}
}

// A slurm target's token may be a workspace secret: it must exist, and the check is given
// its value.
func TestComputeTargetTokenSecret(t *testing.T) {
	s, driver := computeStack(t)
	s.Service.Drivers[atelier.ComputeSlurm] = driver
	c, ctx := s.Client, Ctx(t)
	spec := atelier.ComputeTargetSpec{Name: "hpc", Kind: "slurm", Slurm: &atelier.SlurmCompute{URL: "http://slurm:6820", Partition: "gpu", TokenSecret: "SLURM_JWT"}}
	_, err := c.CreateComputeTarget(ctx, "default", spec)
	if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), `slurm.token_secret: secret "SLURM_JWT" does not exist`) {
		t.Errorf("a missing token secret: %v", err)
	}
	if _, err := c.SetSecret(ctx, "default", "SLURM_JWT", "eyJhbGciOi.jwt"); err != nil {
		t.Fatal(err)
	}
	hpc, err := c.CreateComputeTarget(ctx, "default", spec)
	if err != nil || hpc.Slurm == nil || hpc.Slurm.TokenSecret != "SLURM_JWT" || len(hpc.Credentials) != 0 {
		t.Fatalf("CreateComputeTarget(slurm) = %+v, %v", hpc, err)
	}
	if n := len(driver.checks); n != 1 || driver.checks[0].Token != "eyJhbGciOi.jwt" {
		t.Errorf("the check was given %+v, want the secret's value as the token", driver.checks)
	}
	// What the scheduler gets: the target and its credentials, the token read from the vault.
	stored, err := s.Service.ComputeTargetFor(ctx, "default", "hpc")
	if err != nil {
		t.Fatal(err)
	}
	creds, err := s.Service.ComputeTargetCredentials(ctx, stored)
	if err != nil || creds.Token != "eyJhbGciOi.jwt" {
		t.Errorf("ComputeTargetCredentials = %+v, %v", creds, err)
	}
	if local, err := s.Service.ComputeTargetFor(ctx, "default", "local"); err != nil || !local.BuiltIn {
		t.Errorf("ComputeTargetFor(local) = %+v, %v", local, err)
	}
	if _, err := s.Service.ComputeTargetFor(ctx, "default", "nope"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("ComputeTargetFor(nope): %v", err)
	}
}

// A server that stopped during a check left its activity Running: the next start ends it,
// Succeeded when the target was stored by it, Failed otherwise.
func TestComputeTargetInterruptedCheck(t *testing.T) {
	s, _ := computeStack(t)
	c, ctx := s.Client, Ctx(t)
	gpu, err := c.CreateComputeTarget(ctx, "default", sshSpec("gpu-box", "10.0.0.7"))
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().Add(-time.Minute).UTC()
	for _, a := range []*atelier.Activity{
		{ID: gpu.Activity, Workspace: "default", Kind: service.ActivityComputeAttach, Target: "gpu-box", Status: atelier.ActivityRunning, StartedAt: started, UpdatedAt: started},
		{ID: "0123456789abcdef0123456789abcdef", Workspace: "default", Kind: service.ActivityComputeAttach, Target: "lost", Status: atelier.ActivityRunning, StartedAt: started, UpdatedAt: started},
	} {
		if err := s.DB.PutActivity(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Service.Init(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]atelier.ActivityStatus{gpu.Activity: atelier.ActivitySucceeded, "0123456789abcdef0123456789abcdef": atelier.ActivityFailed} {
		a, err := c.FindActivity(ctx, "default", id)
		if err != nil || a.Status != want || a.EndedAt == nil {
			t.Errorf("activity %s after a restart = %+v, %v; want %s", id, a, err, want)
		}
		if want == atelier.ActivityFailed && !strings.Contains(a.Error, "the server stopped during the check") {
			t.Errorf("the interrupted check's error = %q", a.Error)
		}
	}
}
