package kubernetes_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/kubernetes"
	"github.com/atelier-ml/atelier/compute/kubernetes/kubetest"
	"github.com/atelier-ml/atelier/serving"
)

// servingReplica writes the program a node runs for a scoring image: the repository's scoring
// runtime with a stdlib score.py answering the pod's address; its init() raises with fail.
func servingReplica(t *testing.T, fail bool) string {
	t.Helper()
	dir := t.TempDir()
	init := "    pass"
	if fail {
		init = `    raise RuntimeError("no model")`
	}
	os.WriteFile(filepath.Join(dir, "score.py"), []byte("import json, os\ndef init():\n"+init+
		"\ndef run(raw):\n    return {\"pod\": os.environ[\"ATELIER_SCORE_HOST\"], \"echo\": json.loads(raw)}\n"), 0o644)
	runtime, err := filepath.Abs("../../oci/build/runtime/atelier_runtime.py")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "entrypoint")
	os.WriteFile(script, fmt.Appendf(nil, "#!/bin/sh\nAZUREML_ENTRY_SCRIPT=%s AZUREML_MODEL_DIR=%s exec python3 %s\n",
		filepath.Join(dir, "score.py"), dir, runtime), 0o755)
	return script
}

var servingRuns int

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServingPods: a revision's Deployment (spec from the revision and the target), a pool
// whose replicas are its Ready pods (each its own IP) serving requests, a deleted pod replaced,
// a closed pool leaving the pods to a second pool that adopts them and trims the Deployment to
// its one replica, scaling from zero and back (a replica stopped: its pod deleted, the
// Deployment lowered), a failing init() failing the start with its traceback, and the service's
// deletion.
func TestServingPods(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	c := cluster(t)
	ctx := context.Background()
	servingRuns++ // each run of the test its node and service (-count)
	nodeName, svcName := fmt.Sprintf("scoring-%d", servingRuns), fmt.Sprintf("echo%d", servingRuns)
	node := c.StartKubelet(t, nodeName, kubetest.NodeCapacity{}, map[string]string{
		"registry.example/default/svc:1": servingReplica(t, false),
		"registry.example/default/bad:1": servingReplica(t, true),
	})
	node.OwnPodIPs()
	tg, creds := target(c, nodeName)
	tg.Kubernetes.Tolerations = []atelier.KubernetesToleration{{Key: "gpu", Operator: "Exists", Effect: "NoSchedule"}}
	d := driver(tg, creds)
	defer d.Close()
	sv, err := d.Serving(ctx, tg, creds)
	if err != nil {
		t.Fatal(err)
	}
	rev := kubernetes.Revision{Workspace: "default", Service: svcName, Image: "svc:1",
		Name: kubernetes.DeploymentName("default", svcName, "svc:1", map[string]int{"replicas": 2}), Reference: "registry.example/default/svc:1",
		Pull: &kubernetes.PullImage{Reference: "registry.example/default/svc:1", Registry: "registry.example", Username: "service", Password: "pull-secret"},
		Env:  []string{"ATELIER_SERVICE_NAME=" + svcName, "ATELIER_SCORE_SOCKET=/run/x.sock"}, CPU: 0.25, MemoryGB: 0.5, Log: func(msg string) { t.Log(msg) }}
	pods, err := sv.Deploy(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}
	dep, err := c.Client.AppsV1().Deployments(ns).Get(ctx, rev.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := dep.Spec.Template.Spec
	ctr := spec.Containers[0]
	if spec.NodeSelector["kubernetes.io/hostname"] != nodeName || len(spec.Tolerations) != 1 || *dep.Spec.Replicas != 0 {
		t.Errorf("node selector %v, tolerations %v, replicas %d", spec.NodeSelector, spec.Tolerations, *dep.Spec.Replicas)
	}
	for _, e := range ctr.Env {
		if e.Name == "ATELIER_SCORE_SOCKET" {
			t.Errorf("a pod's runtime must listen on its IP, not %s", e.Value)
		}
	}
	if cpu, mem := ctr.Resources.Requests[corev1.ResourceCPU], ctr.Resources.Limits[corev1.ResourceMemory]; cpu.String() != "250m" || mem.String() != "512Mi" {
		t.Errorf("cpu request %s, memory limit %s", cpu.String(), mem.String())
	}

	pool := serving.NewPool(serving.Config{Replicas: 2, MaxWait: time.Minute, Timeout: time.Minute}, pods.Start, nil, nil)
	if err := pool.WaitReady(ctx, 2); err != nil {
		t.Fatal(err)
	}
	scoreVia := func(p *serving.Pool) string {
		t.Helper()
		r := httptest.NewRequest("POST", "/score", strings.NewReader(`{"x": 1}`))
		w := httptest.NewRecorder()
		if res := p.Serve(w, r, "/score"); res.Err != nil || w.Code != 200 {
			t.Fatalf("scoring: %d %v %s", w.Code, res.Err, w.Body)
		}
		return w.Body.String()
	}
	if body := scoreVia(pool); !strings.Contains(body, `"pod": "127.0.`) {
		t.Errorf("the answer %s does not name the pod's own address", body)
	}
	listPods := func() []corev1.Pod {
		l, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.RevisionLabel + "=" + rev.Name})
		if err != nil {
			t.Fatal(err)
		}
		var live []corev1.Pod
		for _, p := range l.Items {
			if p.DeletionTimestamp == nil {
				live = append(live, p)
			}
		}
		return live
	}
	replicas := func() int32 {
		dep, err := c.Client.AppsV1().Deployments(ns).Get(ctx, rev.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *dep.Spec.Replicas
	}
	if n := replicas(); n != 2 {
		t.Errorf("the Deployment has %d replicas, want 2", n)
	}
	if p := listPods(); len(p) != 2 || p[0].Status.PodIP == p[1].Status.PodIP {
		t.Errorf("the pods %v: want 2, each with its own IP", p)
	}

	// A pod deleted under the pool: its replica ends and another pod serves.
	victim := listPods()[0].Name
	if err := c.Client.CoreV1().Pods(ns).Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the deleted pod's replica to be replaced", func() bool {
		st := pool.Stats()
		// The deleted pod's replica ends once its watch sees the deletion; until then the pool
		// may still count it ready.
		if st.Ready != 2 || pods.Claimed() != 2 || pods.Serves(victim) {
			return false
		}
		for _, p := range listPods() {
			if p.Name == victim {
				return false
			}
		}
		return true
	})
	scoreVia(pool)
	if n := replicas(); n != 2 {
		t.Errorf("after a pod was replaced the Deployment has %d replicas, want 2", n)
	}

	// A closed pool leaves its pods (a stopping server); another pool adopts and trims them.
	pool.Close(ctx)
	if n := len(listPods()); n != 2 {
		t.Errorf("%d pods after the pool closed, want its 2 left to the Deployment", n)
	}
	pods2, err := sv.Deploy(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}
	pool2 := serving.NewPool(serving.Config{Replicas: 1, MaxWait: time.Minute, Timeout: time.Minute}, pods2.Start, nil, nil)
	defer pool2.Close(ctx)
	if err := pool2.WaitReady(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := pods2.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the spare pod to go", func() bool { return replicas() == 1 && len(listPods()) == 1 })
	scoreVia(pool2)

	// Scale to zero: the first request starts a pod; without requests the autoscaler stops the
	// replica, which lowers the Deployment to 0 and deletes its pod. The revision collects model
	// data: its pod is handed to BeforeDelete while it still runs, before it is deleted.
	zeroRev := rev
	zeroRev.Name = kubernetes.DeploymentName("default", svcName, "svc:1", "zero")
	zeroRev.ModelData = true
	zeroPods, err := sv.Deploy(ctx, zeroRev)
	if err != nil {
		t.Fatal(err)
	}
	if zeroPods.ModelDataToken() == "" || pods.ModelDataToken() != "" {
		t.Errorf("model data tokens %q and %q: want one for the revision that collects only", zeroPods.ModelDataToken(), pods.ModelDataToken())
	}
	lastPull := make(chan string, 1)
	zeroPods.BeforeDelete = func(ctx context.Context, pod kubernetes.ServingPod) {
		status := "unreachable"
		if resp, err := http.Get("http://" + pod.Addr + "/"); err == nil {
			resp.Body.Close()
			status = resp.Status
		}
		select {
		case lastPull <- fmt.Sprintf("%s running=%v model-data=%v: %s", pod.Name, pod.Running, pod.ModelData, status):
		default:
		}
	}
	zero := serving.NewPool(serving.Config{Autoscale: true, Min: 0, Max: 1, TargetUtilization: 70, Refresh: 100 * time.Millisecond,
		ScaleDownDelay: 100 * time.Millisecond, MaxWait: time.Minute, Timeout: time.Minute}, zeroPods.Start, nil, nil)
	defer zero.Close(ctx)
	scoreVia(zero)
	zeroReplicas := func() int32 {
		dep, err := c.Client.AppsV1().Deployments(ns).Get(ctx, zeroRev.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *dep.Spec.Replicas
	}
	waitUntil(t, "the idle replica to be stopped and its pod deleted", func() bool {
		l, _ := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.RevisionLabel + "=" + zeroRev.Name})
		return zeroReplicas() == 0 && len(l.Items) == 0 && zeroPods.Claimed() == 0
	})
	select {
	case got := <-lastPull:
		if !strings.HasSuffix(got, "running=true model-data=true: 200 OK") {
			t.Errorf("BeforeDelete saw %s, want the pod running and answering", got)
		}
	default:
		t.Error("the stopped replica's pod was deleted without BeforeDelete")
	}

	// A failing init(): the start fails with the traceback, as ErrInitFailed.
	bad := kubernetes.Revision{Workspace: "default", Service: svcName, Image: "bad:1", Name: kubernetes.DeploymentName("default", svcName, "bad:1", nil),
		Reference: "registry.example/default/bad:1"}
	badPods, err := sv.Deploy(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	_, err = badPods.Start(ctx, 0)
	if !errors.Is(err, serving.ErrInitFailed) || !strings.Contains(err.Error(), "no model") {
		t.Errorf("starting a replica whose init() raises: %v", err)
	}

	// Deleting the service removes its Deployments, Service and pull Secret.
	if got := sv.Deployments("default", svcName); len(got) != 3 {
		t.Errorf("the service's Deployments: %v, want 3", got)
	}
	if err := sv.DeleteService(ctx, "default", svcName); err != nil {
		t.Fatal(err)
	}
	sel := metav1.ListOptions{LabelSelector: kubernetes.ServiceLabel + "=" + svcName}
	waitUntil(t, "the service's objects to go", func() bool {
		deps, _ := c.Client.AppsV1().Deployments(ns).List(ctx, sel)
		svcs, _ := c.Client.CoreV1().Services(ns).List(ctx, sel)
		secs, _ := c.Client.CoreV1().Secrets(ns).List(ctx, sel)
		return len(deps.Items) == 0 && len(svcs.Items) == 0 && len(secs.Items) == 0
	})
}
