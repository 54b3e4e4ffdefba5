package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atelier-ml/atelier"
	kubernetescompute "github.com/atelier-ml/atelier/compute/kubernetes"
	"github.com/atelier-ml/atelier/oci/build/buildtest"
)

// TestKubernetesWorkspaceImage: a kubernetes target whose image is a workspace image
// (NAME:VERSION of `atelier image`) runs its pods from the workspace registry at the server's
// advertised address: the Job names HOST/WORKSPACE/NAME:VERSION and a pull Secret whose
// credential really pulls that image from the registry while the run is active (the run's
// token, not in the Job's spec). A reference of another registry is used as is, and an image
// that did not build is refused saying so.
func TestKubernetesWorkspaceImage(t *testing.T) {
	needPython(t)
	base := filepath.Join(t.TempDir(), "base")
	if err := buildtest.WriteLayout(base, buildtest.Platform(), "3.11"); err != nil {
		t.Fatal(err)
	}
	c, srv, kc := startKubeServer(t, "--image-base", base)
	cli := func(args ...string) string { t.Helper(); return srv.mustRun(t, args...) }
	serve := t.TempDir()
	os.WriteFile(filepath.Join(serve, "score.py"), []byte("def init():\n    pass\n\ndef run(raw):\n    return raw\n"), 0o644)
	model := filepath.Join(t.TempDir(), "model")
	os.MkdirAll(model, 0o755)
	os.WriteFile(filepath.Join(model, "weights.txt"), []byte("1\n"), 0o644)
	cli("model", "register", "--name", "m", "--path", model)
	cli("image", "create", "trainer", "--model", "m", "--entry-script", "score.py", "--source-dir", serve, "--wait")
	cli("compute", "attach", "k8s", "--kind", "kubernetes", "--kubeconfig", kc, "--namespace", "ml", "--image", "trainer:1",
		"--node-selector", "kubernetes.io/hostname=proc")
	gate := filepath.Join(t.TempDir(), "go")
	run := submitScriptTo(t, srv.client, "import os, time\nprint('in a pod', flush=True)\nwhile not os.path.exists(\""+gate+"\"):\n    time.sleep(0.02)\n", "k8s")
	waitFor(t, "the script to start in its pod", func() bool { return strings.Contains(runLog(srv.client, run.ID), "in a pod") })

	ctx := context.Background()
	jobs, err := c.Client.BatchV1().Jobs("ml").List(ctx, metav1.ListOptions{LabelSelector: kubernetescompute.RunLabel + "=" + run.ID})
	if err != nil || len(jobs.Items) != 1 {
		t.Fatalf("the run's Job: %v, %v", jobs, err)
	}
	spec := jobs.Items[0].Spec.Template.Spec
	want := strings.TrimPrefix(srv.url, "http://") + "/default/trainer:1"
	if got := spec.Containers[0].Image; got != want {
		t.Errorf("the Job's image is %q, want the workspace registry's %q", got, want)
	}
	if len(spec.ImagePullSecrets) != 1 {
		t.Fatalf("imagePullSecrets = %+v, want the run's pull Secret", spec.ImagePullSecrets)
	}
	specJSON, _ := json.Marshal(jobs.Items[0].Spec)
	secret, err := c.Client.CoreV1().Secrets("ml").Get(ctx, spec.ImagePullSecrets[0].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var dockercfg struct {
		Auths map[string]struct{ Username, Password string } `json:"auths"`
	}
	if err := json.Unmarshal(secret.Data[".dockerconfigjson"], &dockercfg); err != nil {
		t.Fatalf("the pull Secret: %v: %s", err, secret.Data)
	}
	cred, ok := dockercfg.Auths[strings.TrimPrefix(srv.url, "http://")]
	if !ok || cred.Password == "" || strings.Contains(string(specJSON), cred.Password) {
		t.Fatalf("the pull Secret's credential for the registry: %+v (found %v); it must exist and stay out of the Job's spec", dockercfg, ok)
	}
	// The credential pulls the image, as the node's runtime would.
	req, _ := http.NewRequest("GET", srv.url+"/v2/default/trainer/manifests/1", nil)
	req.SetBasicAuth(cred.Username, cred.Password)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("pulling the image's manifest with the pull Secret's credential: %s", resp.Status)
	}
	os.WriteFile(gate, nil, 0o644)
	if got := waitEnded(t, srv.client, run.ID); got.Status != atelier.StatusCompleted {
		t.Fatalf("the run ended %s (%q)", got.Status, got.Error)
	}
	// Once the run ended, its token no longer pulls.
	waitFor(t, "the ended run's credential to stop pulling", func() bool {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})

	// A failed image is refused at launch, naming it.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "score.py"), []byte("def init():\n    pass\n\ndef run(raw):\n    return raw\n"), 0o644)
	os.WriteFile(filepath.Join(bad, "requirements.txt"), []byte("this-package-does-not-exist-atelier==0.0.1\n"), 0o644)
	if _, _, code := srv.run(t, "image", "create", "trainer", "--model", "m", "--entry-script", "score.py", "--source-dir", bad,
		"--requirements", filepath.Join(bad, "requirements.txt"), "--wait"); code == 0 {
		t.Fatal("an image whose requirement does not exist was built")
	}
	cli("compute", "attach", "k8s-bad", "--kind", "kubernetes", "--kubeconfig", kc, "--namespace", "ml", "--image", "trainer:2")
	failed := submitScriptTo(t, srv.client, "print(1)\n", "k8s-bad")
	if got := waitEnded(t, srv.client, failed.ID); got.Status != atelier.StatusFailed || !strings.Contains(got.Error, "workspace image trainer:2 is Failed") {
		t.Errorf("a run on a target whose workspace image did not build ended %s (%q)", got.Status, got.Error)
	}
}
