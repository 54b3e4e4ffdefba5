package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/computetest"
	kubernetescompute "github.com/atelier-ml/atelier/compute/kubernetes"
	"github.com/atelier-ml/atelier/compute/kubernetes/kubetest"
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
// completes in a pod of the process node.
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
	os.WriteFile(filepath.Join(dir, "train.py"), []byte("import os\nprint('in a pod', os.environ.get('ATELIER_TOKEN') is not None, flush=True)\n"), 0o644)
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
}
