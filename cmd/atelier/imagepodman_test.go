package main

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// needRealTool skips a test when something it needs is missing, except in CI (CI=true), where
// .ci/run installs it and its absence is a failure.
func needRealTool(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI installs it: see .ci/run)", args...)
	}
	t.Skipf(format, args...)
}

// TestImageServedThroughPodman is the seed's workflow from a model to a scoring container:
// register a model, build an image of it and a score.py on the real CPython base through the
// server, log podman in to the server's registry with an atelier token, pull the image from
// it, run it, and score.
func TestImageServedThroughPodman(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		needRealTool(t, "podman is not installed")
	}
	base := os.Getenv("ATELIER_PYTHON_BASE")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache", "atelier-test", "python-base", "current")
	}
	if _, err := os.Stat(filepath.Join(base, "index.json")); err != nil {
		needRealTool(t, "no CPython base image in %s: run scripts/build-python-base.sh", base)
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dataDir, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, dataDir, addr, "--image-base", base)
	c := srv.client

	// The model: a scale factor score.py reads from AZUREML_MODEL_DIR, as Azure ML's do.
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "model.json"), []byte(`{"scale": 3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := exec.Command(bin, "model", "register", "--name", "diabetes", "--path", "model.json")
	reg.Dir, reg.Env = work, append(os.Environ(), "ATELIER_SERVER="+srv.url, "ATELIER_TOKEN="+c.Token)
	if out, err := reg.CombinedOutput(); err != nil {
		t.Fatalf("model register: %v\n%s", err, out)
	}
	const score = `import json, os
def init():
    global scale
    scale = json.load(open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.json")))["scale"]
def run(raw):
    return {"result": [x * scale for x in json.loads(raw)["data"]]}
`
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("score.py")
	w.Write([]byte(score))
	zw.Close()
	snap, err := c.UploadSnapshotZip(ctx, "default", &buf)
	if err != nil {
		t.Fatal(err)
	}
	img, err := c.CreateImage(ctx, "default", atelier.ImageCreate{Name: "diabetes-svc", Models: []string{"diabetes"}, EntryScript: "score.py", SnapshotID: snap.ID})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the image to be built", func() bool {
		img, err = c.FindImage(ctx, "default", atelier.ImageRef{Name: "diabetes-svc", Version: 1})
		return err == nil && img.Status.Ended()
	})
	if img.Status != atelier.ImageSucceeded || !strings.HasPrefix(img.Digest, "sha256:") {
		log, _ := c.ImageLog(ctx, "default", atelier.ImageRef{Name: "diabetes-svc", Version: 1}, 0)
		t.Fatalf("image %s (%s)\n%s", img.Status, img.Error, log)
	}

	// podman, with an auth file of its own, logs in with the token and pulls from /v2/.
	auth := filepath.Join(t.TempDir(), "auth.json")
	ref := addr + "/default/diabetes-svc:1"
	name := "atelier-test-" + strings.ReplaceAll(addr, ":", "-")
	pod := func(args ...string) (string, error) {
		cmd := exec.Command(podman, args...)
		cmd.Env = append(os.Environ(), "REGISTRY_AUTH_FILE="+auth)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { pod("rm", "-f", name); pod("rmi", "-f", ref) })
	if out, err := pod("pull", "--tls-verify=false", ref); err == nil {
		t.Fatalf("podman pulled without logging in:\n%s", out)
	}
	if out, err := pod("login", "--tls-verify=false", "-u", "admin", "-p", c.Token, addr); err != nil {
		t.Fatalf("podman login: %v\n%s", err, out)
	}
	if out, err := pod("pull", "--tls-verify=false", ref); err != nil {
		t.Fatalf("podman pull: %v\n%s", err, out)
	}
	if out, err := pod("image", "inspect", "--format", "{{.Digest}}", ref); err != nil || strings.TrimSpace(out) != img.Digest {
		t.Errorf("pulled digest %q (%v), built %s", strings.TrimSpace(out), err, img.Digest)
	}
	port := freeAddr(t)
	if out, err := pod("run", "-d", "--name", name, "-p", port+":5001", ref); err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	var answer string
	waitFor(t, "the container to score", func() bool {
		resp, err := http.Post("http://"+port+"/score", "application/json", strings.NewReader(`{"data": [1, 2, 3]}`))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answer = string(b)
		return resp.StatusCode == 200
	})
	if !strings.Contains(answer, "[3, 6, 9]") {
		t.Errorf("the container scored %q, want the model's scale (3) applied", answer)
	}
}
