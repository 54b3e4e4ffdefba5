package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The diabetes example's scoring files: what `atelier image create` builds in its README.
var exampleServe = filepath.Join("..", "..", "examples", "sklearn-diabetes", "serve")

// needReal skips the test when something it needs is missing, unless it runs in CI (CI=true),
// where .ci/run installs everything and a missing piece is a failure.
func needReal(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s (CI installs it: see .ci/run)", msg)
	}
	tb.Skip(msg)
}

// testCache is where the tests keep what is slow to make: ATELIER_TEST_CACHE or
// ~/.cache/atelier-test, as scripts/build-python-base.sh.
func testCache(tb testing.TB) string {
	if d := os.Getenv("ATELIER_TEST_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		tb.Fatal(err)
	}
	return filepath.Join(home, ".cache", "atelier-test")
}

// MustRealBase returns the CPython base image that scripts/build-python-base.sh built from
// Debian packages (or ATELIER_PYTHON_BASE, an OCI layout), and its layout directory.
func MustRealBase(tb testing.TB) (v1.Image, string) {
	tb.Helper()
	dir := os.Getenv("ATELIER_PYTHON_BASE")
	if dir == "" {
		dir = filepath.Join(testCache(tb), "python-base", "current")
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		needReal(tb, "no CPython base image in %s: run scripts/build-python-base.sh (mmdebstrap, about a minute)", dir)
	}
	img, err := ImportBase(context.Background(), dir, DefaultPlatform())
	if err != nil {
		tb.Fatal(err)
	}
	return img, dir
}

// MustTool returns the path of a real client, or skips (fails in CI) naming how to install it.
func MustTool(tb testing.TB, name, install string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		needReal(tb, "%s is not installed (%s)", name, install)
	}
	return p
}

// MustDiabetesModel trains a small ridge regression on scikit-learn's diabetes data set with the
// host's Python and the example's pinned requirements (installed once into the test cache), and
// returns the model's folder (model.pkl) and three rows with their predictions.
func MustDiabetesModel(tb testing.TB) (dir string, rows [][]float64, want []float64) {
	tb.Helper()
	py := MustPython(tb)
	req, err := os.ReadFile(filepath.Join(exampleServe, "requirements.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(req)
	site := filepath.Join(testCache(tb), "sklearn-serve-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(site, ".complete")); err != nil {
		tmp := site + ".tmp"
		os.RemoveAll(tmp)
		cmd := exec.Command(py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
			"--target", tmp, "--requirement", filepath.Join(exampleServe, "requirements.txt"))
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("installing the example's requirements to train its model: %v\n%s", err, out)
		}
		if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
			tb.Fatal(err)
		}
		os.RemoveAll(site)
		if err := os.Rename(tmp, site); err != nil {
			tb.Fatal(err)
		}
	}
	dir = filepath.Join(tb.TempDir(), "model")
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	const train = `import json, pickle, sys
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
X, y = load_diabetes(return_X_y=True)
model = Ridge(alpha=0.1).fit(X, y)
with open(sys.argv[1], "wb") as f:
    pickle.dump(model, f)
json.dump({"rows": X[:3].tolist(), "want": model.predict(X[:3]).tolist()}, sys.stdout)
`
	cmd := exec.Command(py, "-c", train, filepath.Join(dir, "model.pkl"))
	cmd.Env = append(os.Environ(), "PYTHONPATH="+site)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("training the diabetes model: %v\n%s", err, stderr.String())
	}
	var got struct {
		Rows [][]float64 `json:"rows"`
		Want []float64   `json:"want"`
	}
	if err := json.Unmarshal(out, &got); err != nil || len(got.Want) != 3 {
		tb.Fatalf("the training script printed %q: %v", out, err)
	}
	return dir, got.Rows, got.Want
}

// basicAuth lets one user do everything: the registry's real authorization is tested in
// oci/registry; here it only has to make podman and skopeo go through the token flow.
type basicAuth struct{ user, password string }

func (a basicAuth) Authorize(r *http.Request, repo string, action registry.Action) (string, error) {
	if u, ok := registry.TokenPrincipal(r.Context()); ok && u == a.user {
		return u, nil
	}
	if u, p, ok := r.BasicAuth(); ok && u == a.user && p == a.password {
		return u, nil
	}
	return "", atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required")
}

// MustServeRegistry serves an oci/registry over disk stores on 127.0.0.1 and returns its host
// and stores (a build may write into them, as the workspace's builds do).
func MustServeRegistry(tb testing.TB, user, password string) (string, *RegistryOutput) {
	tb.Helper()
	dir := tb.TempDir()
	blobs, err := registry.OpenDiskBlobs(filepath.Join(dir, "blobs"), time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	meta, err := registry.OpenDiskMetadata(filepath.Join(dir, "meta"))
	if err != nil {
		tb.Fatal(err)
	}
	reg, err := registry.New(registry.Options{Blobs: blobs, Metadata: meta, Authorizer: basicAuth{user, password}})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	tb.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &RegistryOutput{Blobs: blobs, Metadata: meta}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestPodmanRun builds the diabetes example (score.py, scikit-learn from the package index, a
// model trained here) on the CPython base built from Debian packages into atelier's registry
// (and pushes it there again with skopeo), pulls it from loopback with podman and runs it: the
// image's own CPython imports scikit-learn from the dependencies layer, and a scoring request
// answers with the model's predictions.
func TestPodmanRun(t *testing.T) {
	podman := MustTool(t, "podman", "apt-get install podman runc, and /etc/containers/containers.conf of .ci/run")
	skopeo := MustTool(t, "skopeo", "apt-get install skopeo")
	base, _ := MustRealBase(t)
	modelDir, rows, want := MustDiabetesModel(t)
	ctx := t.Context()

	// A layer cache kept between runs, as a workspace keeps it: the dependencies layer (pip
	// install of scikit-learn, about 30 s) is built once per requirements file.
	spec := Spec{
		Name: "diabetes-svc", Version: "1",
		SourceDir: exampleServe, EntryScript: "score.py",
		Requirements: filepath.Join(exampleServe, "requirements.txt"),
		Models:       []Model{{Name: "diabetes", Version: "1", Dir: modelDir}},
		CacheDir:     filepath.Join(testCache(t), "oci-build-layers"),
	}
	// The build writes into the registry's stores, as the workspace's builds do, and into a
	// layout that skopeo then pushes over HTTP under another tag.
	host, stores := MustServeRegistry(t, "ana", "secret")
	stores.Repo, stores.Tags = "default/diabetes-svc", []string{"1"}
	out := filepath.Join(t.TempDir(), "out")
	res, err := Build(ctx, spec, base, Output{LayoutDir: out, Tag: "1", Registry: stores})
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Log)
	}
	t.Logf("built %s (%d bytes)", res.Digest, res.Size)
	ref := host + "/default/diabetes-svc:1"
	pushed := host + "/default/diabetes-svc:pushed"
	home := t.TempDir()
	// Credentials go on each command line; an empty auth file of the test's own keeps the
	// machine's logins out of it.
	mustWrite(t, filepath.Join(home, "auth.json"), `{"auths": {}}`)
	env := append(os.Environ(), "HOME="+home, "REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"))
	run := func(name string, args ...string) (string, error) {
		// Not the test's context: it is done before the clean-ups run, and they use this too.
		cmd := exec.Command(name, args...)
		cmd.Env = env
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	must := func(name string, args ...string) string {
		t.Helper()
		s, err := run(name, args...)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, s)
		}
		return s
	}
	must(skopeo, "--insecure-policy", "copy", "--dest-creds", "ana:secret", "--dest-tls-verify=false", "oci:"+out+":1", "docker://"+pushed)

	t.Cleanup(func() { run(podman, "rmi", "--force", ref, pushed) })
	if s, err := run(podman, "pull", "--tls-verify=false", ref); err == nil {
		t.Fatalf("podman pulled without credentials:\n%s", s)
	}
	for _, r := range []string{ref, pushed} {
		must(podman, "pull", "--quiet", "--tls-verify=false", "--creds", "ana:secret", r)
		if id := strings.TrimSpace(must(podman, "image", "inspect", "--format", "{{.Digest}}", r)); id != res.Digest {
			t.Fatalf("podman holds %s as %s, the build made %s", id, r, res.Digest)
		}
	}

	// The image's interpreter is Debian's CPython, and scikit-learn comes from the image.
	got := must(podman, "run", "--rm", "--network=none", "--entrypoint", "/usr/bin/python3", ref, "-c",
		"import sys, sklearn; print(sys.executable, sys.version.split()[0], sklearn.__version__, sklearn.__file__)")
	if f := strings.Fields(got); len(f) != 4 || f[0] != "/usr/bin/python3" || !strings.HasPrefix(f[1], "3.11.") ||
		f[2] != "1.5.2" || f[3] != SitePackages+"/sklearn/__init__.py" {
		t.Fatalf("inside the image: %q", got)
	}

	port := freePort(t)
	name := fmt.Sprintf("atelier-test-%d", port)
	must(podman, "run", "-d", "--name", name, "--network=host",
		"-e", "ATELIER_SCORE_HOST=127.0.0.1", "-e", fmt.Sprintf("ATELIER_SCORE_PORT=%d", port), ref)
	t.Cleanup(func() { run(podman, "rm", "--force", "--time", "0", name) })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		state := strings.TrimSpace(must(podman, "inspect", "--format", "{{.State.Status}}", name))
		if state != "running" && state != "created" || time.Now().After(deadline) {
			logs, _ := run(podman, "logs", name)
			t.Fatalf("the scoring server did not answer (container %s):\n%s", state, logs)
		}
	}
	body, _ := json.Marshal(map[string]any{"data": rows})
	resp, err := http.Post(url+"/score", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var pred []float64
	if resp.StatusCode != 200 || json.Unmarshal(b, &pred) != nil || len(pred) != len(want) {
		t.Fatalf("POST /score: %d %s", resp.StatusCode, b)
	}
	for i := range want {
		if math.Abs(pred[i]-want[i]) > 1e-6 {
			t.Fatalf("prediction %d: %v in the image, %v where it was trained", i, pred[i], want[i])
		}
	}
	// score.py's own validation answers a malformed request.
	resp, err = http.Post(url+"/score", "application/json", strings.NewReader(`{"data": [[1, 2]]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "rows of 10 features") {
		t.Fatalf("a row of 2 features: %d %s", resp.StatusCode, b)
	}
}
