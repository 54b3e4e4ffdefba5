package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/computetest"
	kubernetescompute "github.com/atelier-ml/atelier/compute/kubernetes"
	"github.com/atelier-ml/atelier/compute/kubernetes/kubetest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestKubernetesDriverConformance runs the compute driver suite against the kubernetes driver:
// a real control plane (apiserver, controller manager, scheduler, etcd); each run a Job whose
// pod lands on a node whose pods run as processes here (kubetest's stand-in kubelet: a real
// container runtime is not available), so its container's command, the real binary's runner,
// talks to a real server with the tokens of the run's Secret.
func TestKubernetesDriverConformance(t *testing.T) {
	needPython(t)
	c := kubetest.Start(t, kubetest.Options{})
	c.Namespace(t, "ml")
	s := startJobStack(t)
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	c.StartKubelet(t, "proc", kubetest.NodeCapacity{}, map[string]string{"atelier": bin})
	target := &atelier.ComputeTarget{Name: "k8s", Kind: atelier.ComputeKubernetes, Workspace: atelier.DefaultWorkspace,
		Kubernetes: &atelier.KubernetesCompute{Namespace: "ml", Image: "atelier:test", NodeSelector: map[string]string{"kubernetes.io/hostname": "proc"}}}
	creds := atelier.ComputeCredentials{Kubeconfig: string(c.KubeconfigData)}
	d := kubernetescompute.New("", func(_ context.Context, ws, name string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error) {
		if ws != target.Workspace || name != target.Name {
			return nil, creds, atelier.Errorf(atelier.ENOTFOUND, "no compute target %q", name)
		}
		return target, creds, nil
	}, "--server-wait", "3s", "--cancel-grace", "300ms")
	defer d.Close()
	computetest.TestDriver(t, s.harness(d, func(l *atelier.JobLaunch) { l.Target, l.Credentials = target, creds }))
}

// TestKubernetesTargetThroughTheServer: a user attaches a namespace of a real cluster with the
// CLI (the server's driver checks it: a missing namespace and an unreachable cluster are
// refused saying so, the kubeconfig's token never shown), and a run submitted to it with --wait
// completes in a pod of the process node; a run survives its server killed with -9 (the
// restarted server finds its Job by the handle) and another is canceled (its Job deleted).
func TestKubernetesTargetThroughTheServer(t *testing.T) {
	needPython(t)
	c := kubetest.Start(t, kubetest.Options{})
	c.Namespace(t, "ml")
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	c.StartKubelet(t, "proc", kubetest.NodeCapacity{}, map[string]string{"atelier": bin})
	dataDir, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, dataDir, addr)
	adminToken, _ := os.ReadFile(filepath.Join(dataDir, adminTokenFile))
	cli := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "ATELIER_SERVER="+srv.url, "ATELIER_TOKEN="+strings.TrimSpace(string(adminToken)))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, c.KubeconfigData, 0o600)
	unreachable := filepath.Join(t.TempDir(), "unreachable")
	os.WriteFile(unreachable, kubetest.KubeconfigFor("https://127.0.0.1:1", kubetest.Token, "ml"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing namespace", []string{"--kubeconfig", kc, "--namespace", "nope"}, `no namespace "nope"`},
		{"unreachable", []string{"--kubeconfig", unreachable, "--namespace", "ml"}, "cannot reach the cluster at https://127.0.0.1:1"},
	} {
		out, err := cli(append([]string{"compute", "attach", "k8s", "--kind", "kubernetes", "--image", "atelier:test"}, tc.args...)...)
		if err == nil || !strings.Contains(out, tc.want) || strings.Contains(out, kubetest.Token) {
			t.Errorf("attach with %s: %v, want an error saying %q (and not the token):\n%s", tc.name, err, tc.want, out)
		}
	}
	if out, err := cli("compute", "attach", "k8s", "--kind", "kubernetes", "--kubeconfig", kc, "--namespace", "ml", "--image", "atelier:test",
		"--node-selector", "kubernetes.io/hostname=proc", "--cpu", "100m", "--max-concurrent-runs", "4"); err != nil {
		t.Fatalf("attach: %v\n%s", err, out)
	}
	if out, err := cli("compute", "show", "k8s"); err != nil || !strings.Contains(out, "kubernetes.io/hostname=proc") || strings.Contains(out, kubetest.Token) {
		t.Errorf("compute show: %v\n%s", err, out)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "train.py"), []byte(`import os, sys, time
print('in a pod', os.environ.get('ATELIER_TOKEN') is not None, flush=True)
if len(sys.argv) > 1:
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.02)
    print('after the gate', flush=True)
`), 0o644)
	out, err := cli("run", "submit", dir, "-e", "k8s", "--script", "train.py", "--compute", "k8s", "--wait", "-o", "json")
	if err != nil {
		t.Fatalf("run submit --compute k8s --wait: %v\n%s\nserver log:\n%s", err, out, srv.log)
	}
	page, err := srv.client.ListRuns(context.Background(), atelier.DefaultWorkspace, atelier.RunQuery{})
	if err != nil || len(page.Runs) != 1 {
		t.Fatalf("runs: %+v, %v", page, err)
	}
	run := page.Runs[0]
	if run.Status != atelier.StatusCompleted || run.Compute != "k8s" || !strings.Contains(runLog(srv.client, run.ID), "in a pod True") {
		t.Fatalf("the kubernetes run: %s on %q (%q):\n%s", run.Status, run.Compute, run.Error, runLog(srv.client, run.ID))
	}
	if strings.Contains(srv.log.String(), kubetest.Token) {
		t.Error("the server's log holds the kubeconfig's token")
	}

	submit := func(args ...string) *atelier.Run {
		t.Helper()
		out, err := cli(append([]string{"run", "submit", dir, "-e", "k8s", "--script", "train.py", "--compute", "k8s", "-o", "json", "--"}, args...)...)
		if err != nil {
			t.Fatalf("run submit: %v\n%s", err, out)
		}
		var r atelier.Run
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); err != nil {
			t.Fatalf("run submit -o json: %v\n%s", err, out)
		}
		return &r
	}
	gates := t.TempDir()
	gated := submit(filepath.Join(gates, "go"))
	waitFor(t, "the gated script to start", func() bool { return strings.Contains(runLog(srv.client, gated.ID), "in a pod") })
	srv.cmd.Process.Kill()
	srv.cmd.Wait()
	srv = startServer(t, dataDir, addr)
	os.WriteFile(filepath.Join(gates, "go"), nil, 0o644)
	if got := waitEnded(t, srv.client, gated.ID); got.Status != atelier.StatusCompleted || !strings.Contains(runLog(srv.client, gated.ID), "after the gate") {
		t.Fatalf("the run across a server restart ended %s (%q):\n%s", got.Status, got.Error, runLog(srv.client, gated.ID))
	}
	forever := submit(filepath.Join(gates, "never"))
	waitFor(t, "the second script to start", func() bool { return strings.Contains(runLog(srv.client, forever.ID), "in a pod") })
	if out, err := cli("run", "cancel", forever.ID); err != nil {
		t.Fatalf("run cancel: %v\n%s", err, out)
	}
	if got := waitEnded(t, srv.client, forever.ID); got.Status != atelier.StatusCanceled {
		t.Errorf("the canceled run ended %s (%q)", got.Status, got.Error)
	}
	waitFor(t, "the canceled run's Job to go", func() bool {
		jobs, err := c.Client.BatchV1().Jobs("ml").List(context.Background(), metav1.ListOptions{LabelSelector: kubernetescompute.RunLabel + "=" + forever.ID})
		return err == nil && len(jobs.Items) == 0
	})
}
