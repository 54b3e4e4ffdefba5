package kubernetes_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/kubernetes"
	"github.com/atelier-ml/atelier/compute/kubernetes/kubetest"
)

const ns = "ml"

// One control plane for the package's tests (starting one takes seconds): two kwok nodes with
// 4 GPUs each, and a node "proc" whose pods run as processes.
var (
	once    sync.Once
	shared  *kubetest.Cluster
	runner  string
	startTB testing.TB
)

// fakeRunner is the runner the "proc" node runs for `atelier`: it says its arguments, server
// and whether it got the tokens and a secret, then does what ATELIER_SECRET_MODE says.
const fakeRunner = `#!/bin/sh
echo "runner $*"
echo "server $ATELIER_SERVER workspace $ATELIER_WORKSPACE"
echo "token $ATELIER_TOKEN script-token $ATELIER_SCRIPT_TOKEN"
echo "secret $ATELIER_SECRET_API_KEY"
echo "rank ${RANK:-none} world ${WORLD_SIZE:-none}"
case "$ATELIER_SECRET_MODE" in
fail) exit 7 ;;
forever) trap 'echo "got SIGTERM"; exit 7' TERM; while :; do sleep 0.05; done ;;
esac
exit 0
`

func cluster(t *testing.T) *kubetest.Cluster {
	t.Helper()
	if _, err := kubetest.Bin(); err != nil && os.Getenv("CI") == "" {
		t.Skipf("a real Kubernetes control plane is needed: %v", err)
	}
	// The cluster outlives the test that started it: TestMain stops it.
	once.Do(func() {
		tb := &keepTB{T: t}
		shared = kubetest.Start(tb, kubetest.Options{Nodes: 2, Node: kubetest.NodeCapacity{GPUs: 4}})
		shared.Namespace(tb, ns)
		dir, _ := os.MkdirTemp("", "kubetest-runner-")
		runner = filepath.Join(dir, "atelier")
		os.WriteFile(runner, []byte(fakeRunner), 0o755)
		shared.StartKubelet(tb, "proc", kubetest.NodeCapacity{}, map[string]string{"atelier": runner})
	})
	if shared == nil {
		t.Fatal("the control plane did not start")
	}
	return shared
}

// keepTB is a testing.TB whose cleanups run at the end of the package's tests (TestMain).
type keepTB struct {
	*testing.T
}

var cleanups []func()

func (k *keepTB) Cleanup(f func()) { cleanups = append(cleanups, f) }

// Logf writes to stderr: the cleanups run after the test that started the cluster ended.
func (k *keepTB) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (k *keepTB) TempDir() string {
	d, _ := os.MkdirTemp("", "kubetest-")
	cleanups = append(cleanups, func() { os.RemoveAll(d) })
	return d
}

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(code)
}

func target(c *kubetest.Cluster, node string) (*atelier.ComputeTarget, atelier.ComputeCredentials) {
	t := &atelier.ComputeTarget{Name: "k8s", Kind: atelier.ComputeKubernetes, Workspace: atelier.DefaultWorkspace,
		Kubernetes: &atelier.KubernetesCompute{Namespace: ns, Image: "registry.example/atelier:1",
			NodeSelector: map[string]string{"kubernetes.io/hostname": node}}}
	return t, atelier.ComputeCredentials{Kubeconfig: string(c.KubeconfigData)}
}

func driver(tg *atelier.ComputeTarget, creds atelier.ComputeCredentials) *kubernetes.Driver {
	d := kubernetes.New("", func(_ context.Context, ws, name string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error) {
		if ws != tg.Workspace || name != tg.Name {
			return nil, creds, atelier.Errorf(atelier.ENOTFOUND, "no compute target %q", name)
		}
		return tg, creds, nil
	})
	return d
}

func launch(id string, tg *atelier.ComputeTarget, creds atelier.ComputeCredentials, config atelier.RunConfig, secrets map[string]string) *atelier.JobLaunch {
	b, _ := json.Marshal(config)
	return &atelier.JobLaunch{Run: &atelier.Run{ID: id, Workspace: atelier.DefaultWorkspace, Config: b}, Server: "http://127.0.0.1:9",
		Token: "runner-token-" + id, ScriptToken: "script-token-" + id, Target: tg, Credentials: creds, Secrets: secrets}
}

func waitState(t *testing.T, d *kubernetes.Driver, h string, what string, ok func(atelier.JobState) bool) atelier.JobState {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := d.Status(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job is still %+v, not %s", st, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ended(s atelier.JobState) bool { return s.Phase != atelier.JobRunning }

func parseHandle(t *testing.T, h string) (job, uid string) {
	var j struct{ Job, UID string }
	if err := json.Unmarshal([]byte(h), &j); err != nil {
		t.Fatal(err)
	}
	return j.Job, j.UID
}

// TestCheck: a usable target passes; an unreachable cluster, refused credentials, a missing
// namespace or context, and a user without permission each fail saying what, naming the target.
func TestCheck(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	tg, creds := target(c, "proc")
	d := driver(tg, creds)
	if err := d.Check(ctx, tg, creds); err != nil {
		t.Fatalf("Check of a usable target: %v", err)
	}
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedURL := "https://" + closed.Addr().String()
	closed.Close()
	for _, tc := range []struct {
		name, kubeconfig, namespace, context string
		code                                 string
		want                                 []string
	}{
		{"Unreachable", string(kubetest.KubeconfigFor(closedURL, kubetest.Token, ns)), ns, "", atelier.EUNAVAILABLE, []string{"k8s", "cannot reach the cluster", closedURL}},
		{"BadToken", string(kubetest.KubeconfigFor(c.URL, "wrong-token", ns)), ns, "", atelier.EINVALID, []string{"k8s", "refused the kubeconfig's credentials"}},
		{"NoNamespace", string(c.KubeconfigData), "nope", "", atelier.EINVALID, []string{"k8s", `no namespace "nope"`, "kubectl create namespace nope"}},
		{"NoContext", string(c.KubeconfigData), ns, "other", atelier.EINVALID, []string{"k8s", `no context "other"`, "kubetest"}},
		{"NotPermitted", string(c.UserKubeconfig("bob")), ns, "", atelier.EINVALID, []string{"k8s", "may not create jobs", "namespace ml", "Role"}},
		{"NotAKubeconfig", "clusters: [", ns, "", atelier.EINVALID, []string{"k8s", "kubeconfig"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := *tg
			bad.Kubernetes = &atelier.KubernetesCompute{Namespace: tc.namespace, Context: tc.context}
			err := d.Check(ctx, &bad, atelier.ComputeCredentials{Kubeconfig: tc.kubeconfig})
			if atelier.ErrorCode(err) != tc.code {
				t.Fatalf("Check: %v, want %s", err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(atelier.ErrorMessage(err), w) {
					t.Errorf("Check's error %q does not say %q", atelier.ErrorMessage(err), w)
				}
			}
			if strings.Contains(atelier.ErrorMessage(err), kubetest.Token) {
				t.Errorf("Check's error shows the token: %s", atelier.ErrorMessage(err))
			}
		})
	}
}

// TestJobObjects: a run's Job is as designed (no retries, the runner's command, the target's
// image, resources, node selector and tolerations, the labels the driver watches), its tokens
// and secrets are in a Secret the Job owns and nowhere in the Job; on a kwok node it goes
// Running, then Exited 0; a fresh driver (a restarted server) reads the same handle; Release
// deletes it, after which it is Gone. A distributed run is an Indexed Job with the usual
// variables and a headless Service.
func TestJobObjects(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	tg, creds := target(c, "kwok-0")
	tg.Kubernetes.CPU, tg.Kubernetes.Memory = "500m", "1Gi"
	tg.Kubernetes.Tolerations = []atelier.KubernetesToleration{{Key: "gpu", Operator: "Exists", Effect: "NoSchedule"}}
	d := driver(tg, creds)
	d.Args = []string{"--server-wait", "3s"}
	defer d.Close()
	secretValue := "s3cr3t-value\nsecond line"
	h, err := d.Launch(ctx, launch("run1", tg, creds, atelier.RunConfig{Script: "train.py", GPUs: 2}, map[string]string{"API_KEY": secretValue}))
	if err != nil {
		t.Fatal(err)
	}
	name, uid := parseHandle(t, h)
	job, err := c.Client.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(job.UID) != uid || !strings.HasPrefix(name, "atelier-run1-") {
		t.Errorf("handle %s names Job %s uid %s", h, job.Name, job.UID)
	}
	spec := job.Spec.Template.Spec
	ctr := spec.Containers[0]
	if *job.Spec.BackoffLimit != 0 || spec.RestartPolicy != corev1.RestartPolicyNever || job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion {
		t.Errorf("Job spec: backoff %d, restart %s, mode %v", *job.Spec.BackoffLimit, spec.RestartPolicy, job.Spec.CompletionMode)
	}
	if got := strings.Join(append(ctr.Command, ctr.Args...), " "); got != "atelier job exec --run run1 --work-dir job --envs-dir envs --server-wait 3s" || ctr.Image != "registry.example/atelier:1" {
		t.Errorf("container runs %q in %s", got, ctr.Image)
	}
	if q := ctr.Resources.Limits[kubernetes.GPUResource]; q.Value() != 2 {
		t.Errorf("GPU limit %v", ctr.Resources.Limits)
	}
	if q := ctr.Resources.Requests[corev1.ResourceCPU]; q.String() != "500m" {
		t.Errorf("CPU request %v", ctr.Resources.Requests)
	}
	if q := ctr.Resources.Limits[corev1.ResourceMemory]; q.String() != "1Gi" {
		t.Errorf("memory limit %v", ctr.Resources.Limits)
	}
	if spec.NodeSelector["kubernetes.io/hostname"] != "kwok-0" || len(spec.Tolerations) != 1 || spec.Tolerations[0].Key != "gpu" {
		t.Errorf("placement: %v %v", spec.NodeSelector, spec.Tolerations)
	}
	if job.Labels[kubernetes.ManagedByLabel] != kubernetes.ManagedBy || job.Annotations[kubernetes.RunAnnotation] != "run1" {
		t.Errorf("labels %v annotations %v", job.Labels, job.Annotations)
	}
	all, _ := json.Marshal(job)
	for _, secret := range []string{"runner-token-run1", "script-token-run1", "s3cr3t-value"} {
		if strings.Contains(string(all), secret) {
			t.Errorf("the Job holds %q in clear:\n%s", secret, all)
		}
	}
	if len(ctr.EnvFrom) != 1 || ctr.EnvFrom[0].SecretRef == nil || ctr.EnvFrom[0].SecretRef.Name != name {
		t.Errorf("envFrom %+v", ctr.EnvFrom)
	}
	sec, err := c.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data["ATELIER_TOKEN"]) != "runner-token-run1" || string(sec.Data["ATELIER_SCRIPT_TOKEN"]) != "script-token-run1" ||
		string(sec.Data["ATELIER_SECRET_API_KEY"]) != secretValue {
		t.Errorf("Secret data %v", sec.Data)
	}
	if len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != job.UID {
		t.Errorf("the Secret's owners %+v, want the Job", sec.OwnerReferences)
	}

	st := waitState(t, d, h, "ended", ended)
	if st.Phase != atelier.JobExited || st.ExitCode != 0 {
		t.Fatalf("a Job completed by kwok: %+v", st)
	}
	fresh := driver(tg, creds)
	defer fresh.Close()
	if st2, err := fresh.Status(ctx, h); err != nil || st2 != st {
		t.Errorf("a fresh driver sees %+v, %v; want %+v", st2, err, st)
	}
	if err := d.Cancel(ctx, h); err != nil {
		t.Errorf("Cancel of an ended job: %v", err)
	}
	if err := d.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	if st, err := d.Status(ctx, h); err != nil || st.Phase != atelier.JobGone {
		t.Errorf("a released job: %+v, %v; want Gone", st, err)
	}
	waitFor(t, "the Secret to go with its Job", func() bool {
		_, err := c.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})

	// A distributed run.
	h, err = d.Launch(ctx, launch("dist", tg, creds, atelier.RunConfig{Script: "train.py", NodeCount: 3, GPUs: 1}, nil))
	if err != nil {
		t.Fatal(err)
	}
	name, _ = parseHandle(t, h)
	job, err = c.Client.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if job.Spec.CompletionMode == nil || *job.Spec.CompletionMode != batchv1.IndexedCompletion || *job.Spec.Completions != 3 || *job.Spec.Parallelism != 3 ||
		job.Spec.Template.Spec.Subdomain != name {
		t.Errorf("a 3-node run's Job: %+v", job.Spec)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range job.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e
	}
	// Each pod's runner is told its node; it starts the node's processes with their ranks.
	if env["MASTER_ADDR"].Value != name+"-0."+name || env["MASTER_PORT"].Value != "29500" || env["ATELIER_CONTROL_PORT"].Value != "29501" ||
		env["ATELIER_NODE_RANK"].ValueFrom == nil || !strings.Contains(env["ATELIER_NODE_RANK"].ValueFrom.FieldRef.FieldPath, "job-completion-index") {
		t.Errorf("distributed variables: %+v", env)
	}
	for _, v := range []string{"RANK", "WORLD_SIZE", "LOCAL_RANK"} {
		if _, ok := env[v]; ok {
			t.Errorf("the pod has %s: the runner gives each process its own", v)
		}
	}
	svc, err := c.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil || svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("the headless Service: %+v, %v", svc, err)
	}
	if st := waitState(t, d, h, "ended", ended); st.Phase != atelier.JobExited || st.ExitCode != 0 {
		t.Errorf("a 3-pod Job completed by kwok: %+v", st)
	}
	d.Release(ctx, h)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestQueuedCancelVanished: a run asking more GPUs than a node has is Queued with the
// scheduler's reason; Cancel deletes its Job, which is then Gone. A Job deleted behind the
// driver's back is Gone saying so; a detached target's job is Gone.
func TestQueuedCancelVanished(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	tg, creds := target(c, "kwok-1")
	d := driver(tg, creds)
	defer d.Close()
	h, err := d.Launch(ctx, launch("big", tg, creds, atelier.RunConfig{Script: "train.py", GPUs: 8}, nil))
	if err != nil {
		t.Fatal(err)
	}
	st := waitState(t, d, h, "queued with the scheduler's reason", func(s atelier.JobState) bool { return strings.Contains(s.Detail, "Insufficient") })
	if st.Phase != atelier.JobRunning || !st.Queued || !strings.Contains(st.Detail, "waiting for a node") || !strings.Contains(st.Detail, "nvidia.com/gpu") {
		t.Errorf("a Job asking 8 GPUs of 4-GPU nodes: %+v", st)
	}
	if err := d.Cancel(ctx, h); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, d, h, "gone", ended)
	if st.Phase != atelier.JobGone {
		t.Errorf("a canceled queued job: %+v", st)
	}
	if err := d.Cancel(ctx, h); err != nil {
		t.Errorf("canceling again: %v", err)
	}

	// Deleted behind the driver's back.
	tg2, _ := target(c, "kwok-1")
	d2 := driver(tg2, creds)
	defer d2.Close()
	h, err = d2.Launch(ctx, launch("vanish", tg2, creds, atelier.RunConfig{Script: "train.py", GPUs: 8}, nil))
	if err != nil {
		t.Fatal(err)
	}
	name, uid := parseHandle(t, h)
	waitState(t, d2, h, "queued", func(s atelier.JobState) bool { return s.Queued })
	bg := metav1.DeletePropagationBackground
	if err := c.Client.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, d2, h, "gone", ended)
	if st.Phase != atelier.JobGone || !strings.Contains(st.Detail, name) || !strings.Contains(st.Detail, uid) || !strings.Contains(st.Detail, "deleted") {
		t.Errorf("a Job deleted behind the driver's back: %+v", st)
	}
	// A detached target.
	gone := kubernetes.New("", func(context.Context, string, string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error) {
		return nil, creds, atelier.Errorf(atelier.ENOTFOUND, "no such target")
	})
	if st, err := gone.Status(ctx, h); err != nil || st.Phase != atelier.JobGone || !strings.Contains(st.Detail, "detached") {
		t.Errorf("the job of a detached target: %+v, %v", st, err)
	}
	for _, bad := range []string{"", "garbage", "{}", `{"job":"x"}`} {
		if _, err := d.Status(ctx, bad); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("Status(%q): %v, want EINVALID", bad, err)
		}
	}
}

// TestProcessPods runs Jobs on the node whose pods are processes (a shell script stands for
// the runner): the runner gets the server, the tokens and the secrets from the Secret; its
// exit code is the job's; its output is the runner's log, readable from an offset; Cancel
// gives it SIGTERM and the Job goes.
func TestProcessPods(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	tg, creds := target(c, "proc")
	d := driver(tg, creds)
	defer d.Close()
	h, err := d.Launch(ctx, launch("ok1", tg, creds, atelier.RunConfig{Script: "train.py"}, map[string]string{"API_KEY": "v1"}))
	if err != nil {
		t.Fatal(err)
	}
	if st := waitState(t, d, h, "ended", ended); st.Phase != atelier.JobExited || st.ExitCode != 0 {
		t.Fatalf("a runner exiting 0: %+v", st)
	}
	r, err := d.Logs(ctx, h, 0)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := io.ReadAll(r)
	r.Close()
	for _, want := range []string{"runner job exec --run ok1 --work-dir job --envs-dir envs", "server http://127.0.0.1:9 workspace default",
		"token runner-token-ok1 script-token script-token-ok1", "secret v1", "rank none"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the runner's log does not say %q:\n%s", want, log)
		}
	}
	r, err = d.Logs(ctx, h, 7)
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	r.Close()
	if string(rest) != string(log[7:]) {
		t.Errorf("Logs from 7 = %q, want %q", rest, log[7:])
	}
	d.Release(ctx, h)

	h, err = d.Launch(ctx, launch("fail1", tg, creds, atelier.RunConfig{Script: "train.py"}, map[string]string{"MODE": "fail"}))
	if err != nil {
		t.Fatal(err)
	}
	if st := waitState(t, d, h, "ended", ended); st.Phase != atelier.JobExited || st.ExitCode != 7 {
		t.Fatalf("a runner exiting 7: %+v", st)
	}
	if err := d.Release(ctx, h); err != nil {
		t.Fatal(err)
	}

	h, err = d.Launch(ctx, launch("forever1", tg, creds, atelier.RunConfig{Script: "train.py"}, map[string]string{"MODE": "forever"}))
	if err != nil {
		t.Fatal(err)
	}
	st := waitState(t, d, h, "running", func(s atelier.JobState) bool { return !s.Queued })
	if st.Phase != atelier.JobRunning || !strings.Contains(st.Detail, "on proc") {
		t.Errorf("a running runner: %+v", st)
	}
	if err := d.Release(ctx, h); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("Release of a running job: %v, want ECONFLICT", err)
	}
	if err := d.Cancel(ctx, h); err != nil {
		t.Fatal(err)
	}
	if st := waitState(t, d, h, "ended", ended); st.Phase != atelier.JobGone {
		t.Errorf("a canceled job: %+v", st)
	}
}

// TestUnreachableCluster: a job whose cluster cannot be reached is an error, not Gone (the
// server asks again later), and while the first list keeps failing each call fails at once
// instead of waiting again.
func TestUnreachableCluster(t *testing.T) {
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	url := "https://" + closed.Addr().String()
	closed.Close()
	tg := &atelier.ComputeTarget{Name: "k8s", Kind: atelier.ComputeKubernetes, Workspace: atelier.DefaultWorkspace,
		Kubernetes: &atelier.KubernetesCompute{Namespace: ns}}
	creds := atelier.ComputeCredentials{Kubeconfig: string(kubetest.KubeconfigFor(url, "t", ns))}
	d := driver(tg, creds)
	d.SyncTimeout = time.Second
	defer d.Close()
	h := `{"workspace":"default","target":"k8s","namespace":"ml","job":"atelier-x-123456","uid":"u"}`
	_, err := d.Status(context.Background(), h)
	if atelier.ErrorCode(err) != atelier.EUNAVAILABLE || !strings.Contains(atelier.ErrorMessage(err), "cannot list the Jobs of namespace ml at "+url) {
		t.Fatalf("Status of a job on an unreachable cluster: %v, want EUNAVAILABLE saying so", err)
	}
	t0 := time.Now()
	if _, err := d.Status(context.Background(), h); atelier.ErrorCode(err) != atelier.EUNAVAILABLE {
		t.Fatalf("again: %v", err)
	}
	if time.Since(t0) > 500*time.Millisecond {
		t.Logf("the second call waited %v", time.Since(t0)) // not asserted: a loaded machine
	}
}
