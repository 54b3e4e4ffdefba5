package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atelier-ml/atelier"
	kubernetescompute "github.com/atelier-ml/atelier/compute/kubernetes"
	"github.com/atelier-ml/atelier/compute/kubernetes/kubetest"
	"github.com/atelier-ml/atelier/oci/build/buildtest"
	"github.com/atelier-ml/atelier/sqlite"
)

// k8sScore is a stdlib-only score.py: the model's scale from AZUREML_MODEL_DIR, the pod's
// address (ATELIER_SCORE_HOST, its IP) in each answer, and a request may sleep. Its
// ModelDataCollector keeps each input with the pod's address (when the service collects).
const k8sScore = `import json, os, time
from azureml.monitoring import ModelDataCollector
def init():
    global scale, inputs
    m = json.load(open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.json")))
    if m.get("fail"):
        raise RuntimeError("the model cannot be loaded")
    scale = m["scale"]
    inputs = ModelDataCollector("m", designation="inputs", feature_names=["x", "pod"])
def run(raw):
    req = json.loads(raw)
    if req.get("sleep"):
        time.sleep(req["sleep"])
    inputs.collect([[x, os.environ.get("ATELIER_SCORE_HOST")] for x in req["data"]])
    return {"result": [x * scale for x in req["data"]], "pod": os.environ.get("ATELIER_SCORE_HOST")}
`

// k8sReplica writes the program the process node runs for an image's entrypoint: the
// repository's scoring runtime with k8sScore and a model of the given scale.
func k8sReplica(t *testing.T, scale int, fail bool) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "model"), 0o755)
	os.WriteFile(filepath.Join(dir, "model", "model.json"), fmt.Appendf(nil, `{"scale": %d, "fail": %v}`, scale, fail), 0o644)
	os.WriteFile(filepath.Join(dir, "score.py"), []byte(k8sScore), 0o644)
	runtime, err := filepath.Abs("../../oci/build/runtime/atelier_runtime.py")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "entrypoint")
	// kubetest mounts no volume: the pod's emptyDir at ATELIER_MODEL_DATA_DIR is that path
	// below the pod's own directory (its working directory), as a container's root would be.
	os.WriteFile(script, fmt.Appendf(nil, "#!/bin/sh\n[ -n \"$ATELIER_MODEL_DATA_DIR\" ] && export ATELIER_MODEL_DATA_DIR=\"$PWD$ATELIER_MODEL_DATA_DIR\"\n"+
		"AZUREML_ENTRY_SCRIPT=%s AZUREML_MODEL_DIR=%s exec python3 %s\n",
		filepath.Join(dir, "score.py"), filepath.Join(dir, "model"), runtime), 0o755)
	return script
}

// TestWebServiceKubernetes deploys web services to a kubernetes compute target of the real
// server, against a real control plane whose process node runs the pods (each its own loopback
// IP): the Deployment and Service objects and their spec, scoring through the gateway to the
// pods, autoscaling raising and lowering the Deployment's replicas, a rolling update under
// requests with no failed one, a failing update that leaves the old revision serving and
// nothing of the new, a server restart adopting the objects, deletion, and bad targets. The
// service collects model data: the rows of all its pods reach the default datastore under
// Azure's layout, each once (a restart, a scale-down, an update and the deletion included).
func TestWebServiceKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images and runs a control plane")
	}
	needPython(t)
	base := filepath.Join(t.TempDir(), "base")
	if err := buildtest.WriteLayout(base, buildtest.Platform(), "3.11"); err != nil {
		t.Fatal(err)
	}
	c := kubetest.Start(t, kubetest.Options{})
	c.Namespace(t, "ml")
	dataDir, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, dataDir, addr, "--image-base", base)
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, c.KubeconfigData, 0o600); err != nil {
		t.Fatal(err)
	}
	registry := strings.TrimPrefix(srv.url, "http://")
	node := c.StartKubelet(t, "proc", kubetest.NodeCapacity{}, map[string]string{
		registry + "/default/svc:1": k8sReplica(t, 1, false),
		registry + "/default/svc:2": k8sReplica(t, 10, false),
		registry + "/default/svc:3": k8sReplica(t, 100, true),
	})
	node.OwnPodIPs()
	cli := func(args ...string) string { t.Helper(); return srv.mustRun(t, args...) }
	serve := t.TempDir()
	os.WriteFile(filepath.Join(serve, "score.py"), []byte(k8sScore), 0o644)
	model := filepath.Join(t.TempDir(), "model")
	os.MkdirAll(model, 0o755)
	os.WriteFile(filepath.Join(model, "model.json"), []byte(`{"scale": 1}`), 0o644)
	cli("model", "register", "--name", "m", "--path", model)
	for range 3 {
		cli("image", "create", "svc", "--model", "m", "--entry-script", "score.py", "--source-dir", serve, "--wait")
	}
	cli("compute", "attach", "k8s", "--kind", "kubernetes", "--kubeconfig", kc, "--namespace", "ml")

	// Bad targets: unknown, and a compute target that is not kubernetes.
	if _, errOut, code := srv.run(t, "service", "deploy", "bad", "--image", "svc:1", "--target", "nosuch"); code == 0 ||
		!strings.Contains(errOut, `deployment target "nosuch" is neither`) {
		t.Errorf("deploying to an unknown target: exit %d: %s", code, errOut)
	}
	if _, err := srv.client.DeployWebService(context.Background(), "default", atelier.WebServiceDeploy{Name: "bad", Image: "svc:1", Target: "nosuch"}); atelier.ErrorCode(err) != atelier.EINVALID {
		t.Errorf("REST deploy to an unknown target: %v, want EINVALID (400)", err)
	}
	cli("compute", "create", "cpus", "--kind", "local")
	if _, errOut, code := srv.run(t, "service", "deploy", "bad", "--image", "svc:1", "--target", "cpus"); code == 0 ||
		!strings.Contains(errOut, "is of kind local: web services deploy to compute targets of kind kubernetes") {
		t.Errorf("deploying to a local compute target: exit %d: %s", code, errOut)
	}

	ctx := context.Background()
	kube := c.Client
	deployments := func() []appsv1.Deployment {
		t.Helper()
		l, err := kube.AppsV1().Deployments("ml").List(ctx, metav1.ListOptions{LabelSelector: kubernetescompute.ServiceLabel + "=web"})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}

	cli("service", "deploy", "web", "--image", "svc:1", "--target", "k8s", "--autoscale", "2,4", "--autoscale-refresh", "1",
		"--scale-down-delay", "1", "--cpu", "0.5", "--memory-gb", "0.25", "--collect-model-data", "--wait")
	keys, err := srv.client.WebServiceKeys(ctx, "default", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	auth := "Bearer " + keys.Primary

	// The objects.
	deps := deployments()
	if len(deps) != 1 {
		t.Fatalf("%d Deployments of the service, want 1", len(deps))
	}
	dep := deps[0]
	if *dep.Spec.Replicas != 2 {
		t.Errorf("the Deployment has %d replicas, want 2 (autoscale 2,4)", *dep.Spec.Replicas)
	}
	pod := dep.Spec.Template
	for k, v := range map[string]string{kubernetescompute.WorkspaceLabel: "default", kubernetescompute.ServiceLabel: "web", kubernetescompute.ImageLabel: "svc-1"} {
		if pod.Labels[k] != v || dep.Labels[k] != v && k != kubernetescompute.ImageLabel {
			t.Errorf("label %s: pod %q, Deployment %q; want %q", k, pod.Labels[k], dep.Labels[k], v)
		}
	}
	ctr := pod.Spec.Containers[0]
	if ctr.Image != registry+"/default/svc:1" {
		t.Errorf("the image is %q, want the workspace registry's", ctr.Image)
	}
	if len(ctr.Ports) != 1 || ctr.Ports[0].ContainerPort != 5001 {
		t.Errorf("ports %+v, want 5001", ctr.Ports)
	}
	if p := ctr.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/" || p.HTTPGet.Port.IntValue() != 5001 {
		t.Errorf("readiness probe %+v, want GET / on 5001", p)
	}
	hostFromIP := false
	for _, e := range ctr.Env {
		if e.Name == "ATELIER_SCORE_HOST" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP" {
			hostFromIP = true
		}
	}
	if !hostFromIP {
		t.Errorf("env %+v: ATELIER_SCORE_HOST must come from status.podIP", ctr.Env)
	}
	if cpu, mem := ctr.Resources.Requests[corev1.ResourceCPU], ctr.Resources.Requests[corev1.ResourceMemory]; cpu.MilliValue() != 500 || mem.Value() != 1<<28 {
		t.Errorf("requests cpu %s memory %s, want 500m and 256Mi", cpu.String(), mem.String())
	}
	// Model data: an emptyDir at ATELIER_MODEL_DATA_DIR; the pull token from the service's
	// Secret, not in the spec.
	modelData := map[string]corev1.EnvVar{}
	for _, e := range ctr.Env {
		modelData[e.Name] = e
	}
	if e := modelData["ATELIER_MODEL_DATA_DIR"]; e.Value != kubernetescompute.ModelDataDir || len(ctr.VolumeMounts) != 1 ||
		ctr.VolumeMounts[0].MountPath != kubernetescompute.ModelDataDir || len(pod.Spec.Volumes) != 1 || pod.Spec.Volumes[0].EmptyDir == nil {
		t.Errorf("model data: env %+v, mounts %+v, volumes %+v: want an emptyDir at %s", e, ctr.VolumeMounts, pod.Spec.Volumes, kubernetescompute.ModelDataDir)
	}
	tokenEnv := modelData["ATELIER_MODEL_DATA_TOKEN"]
	if tokenEnv.Value != "" || tokenEnv.ValueFrom == nil || tokenEnv.ValueFrom.SecretKeyRef == nil {
		t.Fatalf("ATELIER_MODEL_DATA_TOKEN %+v: want it from a Secret", tokenEnv)
	}
	mdSecret, err := kube.CoreV1().Secrets("ml").Get(ctx, tokenEnv.ValueFrom.SecretKeyRef.Name, metav1.GetOptions{})
	if err != nil || len(mdSecret.Data[tokenEnv.ValueFrom.SecretKeyRef.Key]) < 32 {
		t.Fatalf("the model data Secret: %v %v", mdSecret, err)
	}
	if len(pod.Spec.ImagePullSecrets) != 1 {
		t.Fatalf("imagePullSecrets %+v", pod.Spec.ImagePullSecrets)
	}
	secret, err := kube.CoreV1().Secrets("ml").Get(ctx, pod.Spec.ImagePullSecrets[0].Name, metav1.GetOptions{})
	if err != nil || secret.Type != corev1.SecretTypeDockerConfigJson || !strings.Contains(string(secret.Data[corev1.DockerConfigJsonKey]), registry) {
		t.Errorf("the pull Secret: %v %v", secret, err)
	}
	// The pull Secret's credential pulls the image, as the node's runtime would.
	type credential struct{ Username, Password string }
	pullCredential := func() credential {
		sec, err := kube.CoreV1().Secrets("ml").Get(ctx, pod.Spec.ImagePullSecrets[0].Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var dockercfg struct {
			Auths map[string]credential `json:"auths"`
		}
		json.Unmarshal(sec.Data[corev1.DockerConfigJsonKey], &dockercfg)
		return dockercfg.Auths[registry]
	}
	cred := pullCredential()
	pull := func(cred credential) int {
		req, _ := http.NewRequest("GET", srv.url+"/v2/default/svc/manifests/1", nil)
		req.SetBasicAuth(cred.Username, cred.Password)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Logf("pull: %s %s", resp.Status, b)
		}
		return resp.StatusCode
	}
	if cred.Password == "" || pull(cred) != 200 {
		t.Errorf("the pull Secret's credential %+v does not pull the image", cred.Username)
	}
	svcs, err := kube.CoreV1().Services("ml").List(ctx, metav1.ListOptions{LabelSelector: kubernetescompute.ServiceLabel + "=web"})
	if err != nil || len(svcs.Items) != 1 || svcs.Items[0].Spec.Type != corev1.ServiceTypeClusterIP || svcs.Items[0].Spec.Ports[0].Port != 5001 {
		t.Fatalf("the service's Service: %+v, %v", svcs, err)
	}

	// Scoring through the gateway reaches both pods.
	type answer struct {
		Result []float64
		Pod    string
	}
	scoreOK := func(body string) (answer, int) {
		a := score(t, srv, "web", auth, body)
		var got answer
		if a.status == 200 {
			if err := json.Unmarshal([]byte(a.body), &got); err != nil {
				t.Fatalf("%s: %v", a.body, err)
			}
		}
		return got, a.status
	}
	seen := map[string]bool{}
	waitFor(t, "requests to reach both pods", func() bool {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, status := scoreOK(`{"data": [1, 2], "sleep": 0.05}`)
				mu.Lock()
				defer mu.Unlock()
				if status != 200 || len(got.Result) != 2 || got.Result[1] != 2 {
					t.Errorf("scoring: %d %+v", status, got)
					return
				}
				seen[got.Pod] = true
			}()
		}
		wg.Wait()
		return len(seen) >= 2
	})
	// The rows the two pods collected reach the default datastore, in one file (one header).
	waitFor(t, "the model data of both pods in the default datastore", func() bool {
		pods := map[string]bool{}
		for _, r := range modelDataRows(t, srv) {
			pods[r.pod] = true
		}
		return len(pods) >= 2
	})
	// A pod's model data endpoint answers only to the service's token.
	for ip := range seen {
		for _, tok := range []string{"", "wrong"} {
			req, _ := http.NewRequest("POST", "http://"+ip+":5001"+kubernetescompute.ModelDataPath, strings.NewReader(`{"offsets": {}}`))
			req.Header.Set(kubernetescompute.ModelDataHeader, tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("pod %s's model data with token %q: %s, want 401", ip, tok, resp.Status)
			}
		}
		break
	}

	// Under load, the autoscaler raises the Deployment's replicas; without, it lowers them.
	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	for range 6 {
		load.Add(1)
		go func() {
			defer load.Done()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				score(t, srv, "web", auth, `{"data": [1], "sleep": 0.2}`)
			}
		}()
	}
	waitFor(t, "the Deployment to scale up under load", func() bool {
		d := deployments()
		return len(d) == 1 && *d[0].Spec.Replicas > 2
	})
	close(stopLoad)
	load.Wait()
	waitFor(t, "the Deployment to scale down without load", func() bool {
		d := deployments()
		if len(d) != 1 || *d[0].Spec.Replicas != 2 {
			return false
		}
		pods, _ := kube.CoreV1().Pods("ml").List(ctx, metav1.ListOptions{LabelSelector: kubernetescompute.RevisionLabel + "=" + d[0].Name})
		return len(pods.Items) == 2
	})

	// A rolling update under requests: none fails; the old Deployment goes once the new serves.
	oldName := dep.Name
	var failed, ok10 int
	var mu sync.Mutex
	stopLoad = make(chan struct{})
	for range 3 {
		load.Add(1)
		go func() {
			defer load.Done()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				a := score(t, srv, "web", auth, `{"data": [1]}`)
				mu.Lock()
				if a.status != 200 {
					failed++
					t.Logf("during the update: %d %s", a.status, a.body)
				} else if strings.Contains(a.body, `"result": [10]`) {
					ok10++
				}
				mu.Unlock()
			}
		}()
	}
	cli("service", "update", "web", "--image", "svc:2", "--wait")
	waitFor(t, "requests to be answered by the new revision", func() bool { mu.Lock(); defer mu.Unlock(); return ok10 > 5 })
	close(stopLoad)
	load.Wait()
	if failed > 0 {
		t.Errorf("%d requests failed during the rolling update", failed)
	}
	waitFor(t, "the old revision's Deployment to be deleted", func() bool {
		d := deployments()
		return len(d) == 1 && d[0].Name != oldName
	})
	newDep := deployments()[0]

	// A failing update: the old revision keeps serving, nothing of the new one stays.
	if _, _, code := srv.run(t, "service", "update", "web", "--image", "svc:3", "--wait"); code == 0 {
		t.Fatal("an update to an image whose init() fails succeeded")
	}
	if got, status := scoreOK(`{"data": [1]}`); status != 200 || got.Result[0] != 10 {
		t.Errorf("after the failed update: %d %+v, want svc:2's answer", status, got)
	}
	waitFor(t, "the failed revision's Deployment to be deleted", func() bool {
		d := deployments()
		return len(d) == 1 && d[0].Name == newDep.Name
	})
	if log := cli("service", "logs", "web"); !strings.Contains(log, "the model cannot be loaded") {
		t.Errorf("the service log does not say why the update failed:\n%s", log)
	}
	// Back to svc:2 (the service's wanted state names svc:3 until then).
	cli("service", "update", "web", "--image", "svc:2", "--wait")

	// Rows scored before the restart reach the datastore once: the adopting server pulls only
	// what is new.
	for _, x := range []string{"1001", "1002", "1003"} {
		if _, status := scoreOK(`{"data": [` + x + `]}`); status != 200 {
			t.Fatalf("scoring %s: %d", x, status)
		}
	}
	// A service deleted while no server runs it (its record gone while the server is down, its
	// lease left): the next server to take the lease deletes its objects.
	cli("service", "deploy", "orphan", "--image", "svc:1", "--target", "k8s", "--wait")
	orphanObjects := func() int {
		sel := metav1.ListOptions{LabelSelector: kubernetescompute.ServiceLabel + "=orphan"}
		d, _ := kube.AppsV1().Deployments("ml").List(ctx, sel)
		s, _ := kube.CoreV1().Services("ml").List(ctx, sel)
		sec, _ := kube.CoreV1().Secrets("ml").List(ctx, sel)
		return len(d.Items) + len(s.Items) + len(sec.Items)
	}
	if n := orphanObjects(); n < 3 {
		t.Fatalf("the second service has %d objects, want its Deployment, Service and pull Secret", n)
	}
	// Another installation's service in the same namespace (its pull Secret holds a token this
	// server never made) is not this server's to delete, though its store does not know it.
	foreign := kubernetescompute.ServiceObjectName("default", "foreign")
	fmeta := metav1.ObjectMeta{Name: foreign + "-0", Namespace: "ml",
		Labels: map[string]string{kubernetescompute.ManagedByLabel: kubernetescompute.ManagedBy, kubernetescompute.WorkspaceLabel: "default",
			kubernetescompute.ServiceLabel: "foreign", kubernetescompute.RevisionLabel: foreign + "-0"},
		Annotations: map[string]string{kubernetescompute.WorkspaceAnnotation: "default", "ai.atelier/service": "foreign"}}
	zero := int32(0)
	if _, err := kube.AppsV1().Deployments("ml").Create(ctx, &appsv1.Deployment{ObjectMeta: fmeta, Spec: appsv1.DeploymentSpec{Replicas: &zero,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{kubernetescompute.RevisionLabel: foreign + "-0"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: fmeta.Labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "scoring", Image: "elsewhere.example/default/svc:1"}}}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Secrets("ml").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: foreign + "-pull", Namespace: "ml"},
		Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(
			`{"auths": {"elsewhere.example": {"username": "service", "password": "another-servers-token"}}}`)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A restart of the server adopts the Deployment and its pods.
	podsBefore, _ := kube.CoreV1().Pods("ml").List(ctx, metav1.ListOptions{LabelSelector: kubernetescompute.ServiceLabel + "=web"})
	srv.cmd.Process.Signal(syscall.SIGTERM)
	srv.cmd.Wait()
	db, err := sqlite.Open(ctx, filepath.Join(dataDir, "atelier.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteWebService(ctx, "default", "orphan"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	srv = startServer(t, dataDir, addr, "--image-base", base)
	waitFor(t, "the service to come back after the restart", func() bool {
		got, status := scoreOK(`{"data": [3]}`)
		return status == 200 && got.Result[0] == 30
	})
	for deadline := time.Now().Add(2 * time.Minute); orphanObjects() != 0 || !strings.Contains(srv.log.String(), "another installation made them"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the objects of the service deleted while no server ran it are still there, or the other installation's were not seen; the server's log:\n%s", srv.log)
		}
	}
	if _, err := kube.AppsV1().Deployments("ml").Get(ctx, foreign+"-0", metav1.GetOptions{}); err != nil {
		t.Errorf("another installation's Deployment: %v, want it left alone", err)
	}
	d := deployments()
	if len(d) != 1 || d[0].UID != newDep.UID {
		t.Errorf("after the restart: Deployments %v, want %s adopted", names(d), newDep.Name)
	}
	podsAfter, _ := kube.CoreV1().Pods("ml").List(ctx, metav1.ListOptions{LabelSelector: kubernetescompute.ServiceLabel + "=web"})
	before := map[string]bool{}
	for _, p := range podsBefore.Items {
		before[string(p.UID)] = true
	}
	for _, p := range podsAfter.Items {
		if !before[string(p.UID)] {
			t.Errorf("pod %s is new after the restart: the running pods should have been adopted", p.Name)
		}
	}

	// The restarted server revoked the run tokens of no run, the first pull credential among
	// them (see Service.Init), and put a new one in the pull Secret.
	if code := pull(cred); code != http.StatusUnauthorized {
		t.Errorf("the first pull credential answers %d after the restart", code)
	}
	cred = pullCredential()
	if code := pull(cred); code != 200 {
		t.Errorf("the adopting server's pull credential answers %d", code)
	}
	// A credential revoked (as another server starting would) is replaced in the pull Secret.
	tokens, err := srv.client.ListTokens(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		if tok.Name == "service web image pull" && tok.RevokedAt == nil {
			if err := srv.client.RevokeToken(ctx, tok.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "the revoked pull credential to be replaced", func() bool {
		next := pullCredential()
		return next != cred && pull(next) == 200
	})
	cred = pullCredential()
	// Deletion removes the Deployment, the Service and the Secrets, once the pods' last model
	// data was pulled.
	if _, status := scoreOK(`{"data": [2001]}`); status != 200 {
		t.Fatalf("scoring before the deletion: %d", status)
	}
	cli("service", "delete", "web")
	waitFor(t, "the service's objects to be deleted", func() bool {
		s, _ := kube.CoreV1().Services("ml").List(ctx, metav1.ListOptions{LabelSelector: kubernetescompute.ServiceLabel + "=web"})
		sec, _ := kube.CoreV1().Secrets("ml").List(ctx, metav1.ListOptions{LabelSelector: kubernetescompute.ServiceLabel + "=web"})
		return len(deployments()) == 0 && len(s.Items) == 0 && len(sec.Items) == 0
	})
	count := map[string]int{}
	for _, r := range modelDataRows(t, srv) {
		count[r.x]++
	}
	for _, x := range []string{"1001", "1002", "1003", "2001"} {
		if count[x] != 1 {
			t.Errorf("the row of input %s is %d times in the default datastore's model data, want once", x, count[x])
		}
	}
	// The server that deleted the service revoked the pull credentials it made.
	if code := pull(cred); code != http.StatusUnauthorized {
		t.Errorf("the deleted service's pull credential still answers %d", code)
	}
}

func names(deps []appsv1.Deployment) []string {
	var out []string
	for _, d := range deps {
		out = append(out, d.Name)
	}
	return out
}

type modelDataRow struct{ x, pod string }

// modelDataRows reads the rows of the web service's model data in the default datastore:
// modeldata/<workspace>/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/data.csv,
// one header line a file.
func modelDataRows(t *testing.T, srv *serverProcess) []modelDataRow {
	t.Helper()
	ctx := context.Background()
	page, err := srv.client.ListDatastoreFiles(ctx, "default", "default", atelier.DatastoreFileQuery{Prefix: "modeldata/default/web/", Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	var rows []modelDataRow
	for _, f := range page.Files {
		parts := strings.Split(f.Path, "/")
		if len(parts) != 10 || parts[3] != "m" || parts[5] != "inputs" || len(parts[6]) != 4 || len(parts[7]) != 2 || len(parts[8]) != 2 || parts[9] != "data.csv" {
			t.Fatalf("model data file %s is not in Azure's layout", f.Path)
		}
		_, rc, err := srv.client.OpenDatastoreFile(ctx, "default", "default", f.Path)
		if err != nil {
			t.Fatal(err)
		}
		table, err := csv.NewReader(rc).ReadAll()
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		for i, r := range table {
			header := len(r) == 5 && r[3] == "x" && r[4] == "pod"
			if header != (i == 0) || len(r) != 5 {
				t.Fatalf("%s: line %d is %q: want one header line, then rows", f.Path, i+1, r)
			}
			if i > 0 {
				rows = append(rows, modelDataRow{x: r[3], pod: r[4]})
			}
		}
	}
	return rows
}
