package kubernetes_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/kubernetes"
)

// TestWorkspaceImage: a target whose kubernetes.image names a workspace image runs from the
// reference the resolver gives, pulled with an imagePullSecret (a dockerconfigjson Secret the
// Job owns) holding the pull credential, which is nowhere in the Job; an image of another
// registry is used as is, with no pull Secret; a resolver's refusal fails the launch with its
// code, naming the target and the image, and leaves no Secret behind.
func TestWorkspaceImage(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	tg, creds := target(c, "kwok-0")
	d := driver(tg, creds)
	defer d.Close()
	const pullToken = "pull-only-token-xyz"
	var asked []string
	d.ResolveImage = func(_ context.Context, workspace, image string) (*kubernetes.PullImage, error) {
		asked = append(asked, workspace+"/"+image)
		switch image {
		case "trainer:3":
			return &kubernetes.PullImage{Reference: "atelier.example:8443/default/trainer:3", Registry: "atelier.example:8443",
				Username: "atelier", Password: pullToken}, nil
		case "missing:9":
			return nil, atelier.Errorf(atelier.ENOTFOUND, "workspace default has no image missing:9")
		}
		return nil, nil
	}

	tg.Kubernetes.Image = "trainer:3"
	h, err := d.Launch(ctx, launch("img1", tg, creds, atelier.RunConfig{Script: "train.py"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	name, uid := parseHandle(t, h)
	job, err := c.Client.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := job.Spec.Template.Spec
	if spec.Containers[0].Image != "atelier.example:8443/default/trainer:3" || len(spec.ImagePullSecrets) != 1 || spec.ImagePullSecrets[0].Name != name+"-pull" {
		t.Errorf("image %q, imagePullSecrets %+v", spec.Containers[0].Image, spec.ImagePullSecrets)
	}
	if b, _ := json.Marshal(job); strings.Contains(string(b), pullToken) || strings.Contains(string(b), base64.StdEncoding.EncodeToString([]byte("atelier:"+pullToken))) {
		t.Error("the pull credential is in the Job")
	}
	pull, err := c.Client.CoreV1().Secrets(ns).Get(ctx, name+"-pull", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]struct{ Username, Password, Auth string }
	}
	if err := json.Unmarshal(pull.Data[corev1.DockerConfigJsonKey], &cfg); err != nil || pull.Type != corev1.SecretTypeDockerConfigJson {
		t.Fatalf("pull Secret %s: %v", pull.Type, err)
	}
	a := cfg.Auths["atelier.example:8443"]
	if a.Username != "atelier" || a.Password != pullToken || a.Auth != base64.StdEncoding.EncodeToString([]byte("atelier:"+pullToken)) {
		t.Errorf("pull Secret's auths: %+v", cfg.Auths)
	}
	waitFor(t, "the Job to own its pull Secret", func() bool {
		s, err := c.Client.CoreV1().Secrets(ns).Get(ctx, name+"-pull", metav1.GetOptions{})
		return err == nil && len(s.OwnerReferences) == 1 && string(s.OwnerReferences[0].UID) == uid
	})
	waitState(t, d, h, "ended", ended)
	if err := d.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pull Secret to go with its Job", func() bool {
		_, err := c.Client.CoreV1().Secrets(ns).Get(ctx, name+"-pull", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})

	tg.Kubernetes.Image = "registry.example/atelier:1"
	h, err = d.Launch(ctx, launch("img2", tg, creds, atelier.RunConfig{Script: "train.py"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	name, _ = parseHandle(t, h)
	job, err = c.Client.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if spec := job.Spec.Template.Spec; spec.Containers[0].Image != "registry.example/atelier:1" || len(spec.ImagePullSecrets) != 0 {
		t.Errorf("another registry's image: %q, imagePullSecrets %+v", spec.Containers[0].Image, spec.ImagePullSecrets)
	}
	if _, err := c.Client.CoreV1().Secrets(ns).Get(ctx, name+"-pull", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a pull Secret for another registry's image: %v", err)
	}

	tg.Kubernetes.Image = "missing:9"
	before, _ := c.Client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	_, err = d.Launch(ctx, launch("img3", tg, creds, atelier.RunConfig{Script: "train.py"}, nil))
	if atelier.ErrorCode(err) != atelier.ENOTFOUND || !strings.Contains(atelier.ErrorMessage(err), `compute target k8s: kubernetes.image "missing:9": workspace default has no image missing:9`) {
		t.Errorf("a missing workspace image: %v", err)
	}
	if after, _ := c.Client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); len(after.Items) != len(before.Items) {
		t.Errorf("a refused launch left Secrets: %d, then %d", len(before.Items), len(after.Items))
	}
	if strings.Join(asked, " ") != "default/trainer:3 default/registry.example/atelier:1 default/missing:9" {
		t.Errorf("the resolver was asked %q", asked)
	}
}
