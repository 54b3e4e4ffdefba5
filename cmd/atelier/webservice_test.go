package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
)

// pythonBase is the CPython base image the tests build images on (scripts/build-python-base.sh).
func pythonBase(t *testing.T) string {
	t.Helper()
	base := os.Getenv("ATELIER_PYTHON_BASE")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache", "atelier-test", "python-base", "current")
	}
	if _, err := os.Stat(filepath.Join(base, "index.json")); err != nil {
		needRealTool(t, "no CPython base image in %s: run scripts/build-python-base.sh", base)
	}
	return base
}

// serviceScore is a score.py written as Azure ML's are: the model's scale factor read from
// AZUREML_MODEL_DIR in init(), and requests that can ask it to hang or to die, so the gateway's
// timeout and a replica's death can be tested.
const serviceScore = `import json, os, time
def init():
    global scale
    scale = json.load(open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.json")))["scale"]
    if json.load(open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.json"))).get("fail"):
        raise RuntimeError("the model cannot be loaded")
def run(raw):
    req = json.loads(raw)
    if req.get("sleep"):
        time.sleep(req["sleep"])
    if req.get("die"):
        os._exit(9)
    return {"result": [x * scale for x in req["data"]], "pid": os.getpid()}
`

// buildServiceImage registers a model of the given scale (failing init() with fail) and builds
// image name of it with serviceScore; it returns the image.
func buildServiceImage(t *testing.T, srv *serverProcess, bin, model, name string, scale int, fail bool) *atelier.Image {
	t.Helper()
	ctx := context.Background()
	c := srv.client
	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "model.json"), []byte(`{"scale": `+strconv.Itoa(scale)+`, "fail": `+strconv.FormatBool(fail)+`}`), 0o644)
	reg := exec.Command(bin, "model", "register", "--name", model, "--path", "model.json")
	reg.Dir, reg.Env = work, append(os.Environ(), "ATELIER_SERVER="+srv.url, "ATELIER_TOKEN="+c.Token)
	if out, err := reg.CombinedOutput(); err != nil {
		t.Fatalf("model register: %v\n%s", err, out)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("score.py")
	w.Write([]byte(serviceScore))
	zw.Close()
	snap, err := c.UploadSnapshotZip(ctx, "default", &buf)
	if err != nil {
		t.Fatal(err)
	}
	img, err := c.CreateImage(ctx, "default", atelier.ImageCreate{Name: name, Models: []string{model}, EntryScript: "score.py", SnapshotID: snap.ID})
	if err != nil {
		t.Fatal(err)
	}
	ref := atelier.ImageRef{Name: img.Name, Version: img.Version}
	waitFor(t, "the image to be built", func() bool {
		img, err = c.FindImage(ctx, "default", ref)
		return err == nil && img.Status.Ended()
	})
	if img.Status != atelier.ImageSucceeded {
		log, _ := c.ImageLog(ctx, "default", ref, 0)
		t.Fatalf("image %s (%s)\n%s", img.Status, img.Error, log)
	}
	return img
}

// run runs the binary against srv and returns its stdout, stderr and exit code.
func (srv *serverProcess) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "ATELIER_SERVER="+srv.url, "ATELIER_TOKEN="+srv.client.Token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// mustRun runs the CLI against the server and returns its standard output; a failure ends the
// test with what the CLI and the server said.
func (srv *serverProcess) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := srv.run(t, args...)
	if code != 0 {
		t.Fatalf("atelier %s: exit %d\n%s%s\nserver log:\n%s", strings.Join(args, " "), code, out, errOut, srv.log)
	}
	return out
}

type scoreAnswer struct {
	status int
	header http.Header
	body   string
}

func score(t *testing.T, srv *serverProcess, name, auth, body string) scoreAnswer {
	t.Helper()
	resp, err := srv.client.Score(context.Background(), "default", name, "/score", auth, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return scoreAnswer{resp.StatusCode, resp.Header, string(b)}
}

func findService(t *testing.T, c *api.Client, name string) *atelier.WebService {
	t.Helper()
	svc, err := c.FindWebService(context.Background(), "default", name)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// replicaPids lists the scoring runtimes running under a data directory's unpacked images.
func replicaPids(dataDir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if bytes.Contains(cmdline, []byte(filepath.Join(dataDir, "services", "rootfs"))) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestWebServiceLocal deploys an image as a web service on the local target through the real
// binary and scores it: keys, errors, a replica killed with SIGKILL, a hanging run(), a
// restart of the server, a rolling update under requests, and deletion.
func TestWebServiceLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image and runs replicas")
	}
	if _, err := exec.LookPath("bwrap"); err != nil {
		needRealTool(t, "bubblewrap is not installed (apt install bubblewrap)")
	}
	base := pythonBase(t)
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dataDir, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, dataDir, addr, "--image-base", base)
	c := srv.client
	buildServiceImage(t, srv, bin, "diabetes", "diabetes-svc", 3, false)

	out, errOut, code := srv.run(t, "service", "deploy", "diabetes", "--image", "diabetes-svc:1", "--replicas", "2", "--wait", "-o", "json")
	if code != 0 {
		t.Fatalf("deploy exited %d: %s\n%s\nserver:\n%s", code, errOut, out, srv.log)
	}
	var svc atelier.WebService
	if err := json.Unmarshal([]byte(out), &svc); err != nil {
		t.Fatalf("deploy -o json: %v\n%s", err, out)
	}
	if svc.State != atelier.ServiceHealthy || svc.ScoringURI != srv.url+"/services/default/diabetes/score" || svc.Replicas.Ready != 2 {
		t.Fatalf("deployed service: %+v", svc)
	}
	keys, err := c.WebServiceKeys(ctx, "default", "diabetes", "")
	if err != nil || keys.Primary == "" || keys.Secondary == "" || keys.Primary == keys.Secondary {
		t.Fatalf("keys %+v, %v", keys, err)
	}

	// Scoring: the key is required; with it, score.py's answer, and Azure's request id header.
	if a := score(t, srv, "diabetes", "", `{"data": [1]}`); a.status != 401 {
		t.Fatalf("no key: %d %s", a.status, a.body)
	}
	if a := score(t, srv, "diabetes", "Bearer wrong", `{"data": [1]}`); a.status != 401 {
		t.Fatalf("wrong key: %d %s", a.status, a.body)
	}
	a := score(t, srv, "diabetes", "Bearer "+keys.Secondary, `{"data": [1, 2]}`)
	if a.status != 200 || !strings.Contains(a.body, `"result": [3, 6]`) || a.header.Get("x-ms-request-id") == "" {
		t.Fatalf("score: %d %v %s", a.status, a.header, a.body)
	}
	// Without ids from the client, x-request-id is the gateway's request id too, as Microsoft's
	// server makes both the same new UUID.
	if a.header.Get("x-request-id") != a.header.Get("x-ms-request-id") {
		t.Fatalf("score: x-request-id %q, x-ms-request-id %q", a.header.Get("x-request-id"), a.header.Get("x-ms-request-id"))
	}
	if a := score(t, srv, "nosuchsvc", "Bearer "+keys.Primary, `{}`); a.status != 404 {
		t.Fatalf("unknown service: %d %s", a.status, a.body)
	}
	// The CLI scores with the primary key.
	if out, errOut, code := srv.run(t, "service", "score", "diabetes", "--data", `{"data": [5]}`); code != 0 || !strings.Contains(out, "[15]") {
		t.Fatalf("service score: %d %s %s", code, out, errOut)
	}
	// The image it serves cannot be deleted.
	if err := c.DeleteImage(ctx, "default", atelier.ImageRef{Name: "diabetes-svc", Version: 1}); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Fatalf("deleting a served image: %v", err)
	}

	// A replica killed with SIGKILL: the service stays up and the replica is replaced.
	pids := replicaPids(dataDir)
	if len(pids) == 0 {
		t.Fatal("no replica process found")
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Replaced: its exit is an event of the service, and two replicas are ready again.
	waitFor(t, "the killed replica to be replaced", func() bool {
		s := findService(t, c, "diabetes")
		exited := false
		for _, e := range s.Events {
			exited = exited || e.Kind == "replica.exited"
		}
		return exited && s.Replicas.Ready == 2 && score(t, srv, "diabetes", "Bearer "+keys.Primary, `{"data": [1]}`).status == 200
	})
	// A replica dying in the middle of a request: that request gets a 502 that says so.
	if a := score(t, srv, "diabetes", "Bearer "+keys.Primary, `{"data": [1], "die": true}`); a.status != 502 || !strings.Contains(a.body, "exited") {
		t.Fatalf("replica died mid-request: %d %s", a.status, a.body)
	}
	waitFor(t, "the dead replica to be replaced", func() bool { return findService(t, c, "diabetes").Replicas.Ready == 2 })

	// run() hanging past scoring_timeout_ms: 504, and the replica is recycled.
	if out, errOut, code := srv.run(t, "service", "update", "diabetes", "--timeout-ms", "1500", "--wait"); code != 0 {
		t.Fatalf("update: %d %s %s", code, out, errOut)
	}
	if a := score(t, srv, "diabetes", "Bearer "+keys.Primary, `{"data": [1], "sleep": 30}`); a.status != 504 {
		t.Fatalf("hanging run(): %d %s", a.status, a.body)
	}
	waitFor(t, "the recycled replica to be replaced", func() bool {
		return score(t, srv, "diabetes", "Bearer "+keys.Primary, `{"data": [1]}`).status == 200 && findService(t, c, "diabetes").Replicas.Ready == 2
	})

	// Regenerating the primary key: the old one stops working at once.
	newKeys, err := c.WebServiceKeys(ctx, "default", "diabetes", "primary")
	if err != nil || newKeys.Primary == keys.Primary || newKeys.Secondary != keys.Secondary {
		t.Fatalf("regenerate: %+v %v", newKeys, err)
	}
	if a := score(t, srv, "diabetes", "Bearer "+keys.Primary, `{"data": [1]}`); a.status != 401 {
		t.Fatalf("old primary key: %d", a.status)
	}
	keys = newKeys

	// A body over the limit is refused before it reaches a replica.
	resp, err := c.Score(ctx, "default", "diabetes", "/score", "Bearer "+keys.Primary, bytes.NewReader(make([]byte, 100<<20+1)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("a 100 MiB + 1 body: %d", resp.StatusCode)
	}

	// A rolling update to version 2 (scale 5) under a steady stream of requests: none fails.
	buildServiceImage(t, srv, bin, "diabetes2", "diabetes-svc", 5, false)
	stop := make(chan struct{})
	failures := make(chan string, 100)
	done := make(chan int)
	go func() {
		n := 0
		defer func() { done <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := c.Score(ctx, "default", "diabetes", "/score", "Bearer "+keys.Primary, strings.NewReader(`{"data": [1]}`))
			if err != nil {
				failures <- err.Error()
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failures <- resp.Status + " " + string(b)
			}
			n++
		}
	}()
	if out, errOut, code := srv.run(t, "service", "update", "diabetes", "--image", "diabetes-svc:2", "--wait"); code != 0 {
		t.Fatalf("rolling update: %d %s %s", code, out, errOut)
	}
	if a := score(t, srv, "diabetes", "Bearer "+keys.Primary, `{"data": [1]}`); !strings.Contains(a.body, `"result": [5]`) {
		t.Fatalf("after the update: %d %s", a.status, a.body)
	}
	close(stop)
	n := <-done
	close(failures)
	for f := range failures {
		t.Errorf("a request failed during the rolling update: %s", f)
	}
	if n == 0 {
		t.Fatal("no request was made during the update")
	}
	// Once the old revision's replicas stopped, its unpacked image is removed: one is left.
	waitFor(t, "the unpacked image of diabetes-svc:1 to be removed", func() bool { return len(unpackedImages(t, dataDir)) == 1 })

	// The service log has the replicas' output, the update and the requests.
	log, _, _ := srv.run(t, "service", "logs", "diabetes")
	for _, want := range []string{"replica 0", "traffic moved to diabetes-svc:2", "request POST /score 200"} {
		if !strings.Contains(log, want) {
			t.Errorf("the service log lacks %q:\n%s", want, log)
		}
	}

	// Prometheus metrics: the requests by status, replicas, scale events; a token is needed.
	metrics := func(token string) (int, string) {
		req, _ := http.NewRequest("GET", srv.url+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := metrics(""); code != 401 {
		t.Fatalf("/metrics without a token: %d", code)
	}
	code, text := metrics(c.Token)
	for _, want := range []string{`atelier_service_requests_total{workspace="default",service="diabetes",code="200"}`,
		`atelier_service_requests_total{workspace="default",service="diabetes",code="401"}`,
		`atelier_service_requests_total{workspace="default",service="diabetes",code="504"} 1`,
		`atelier_service_replicas{workspace="default",service="diabetes",state="ready"} 2`,
		`atelier_service_request_duration_seconds_bucket{workspace="default",service="diabetes",le="+Inf"}`} {
		if code != 200 || !strings.Contains(text, want) {
			t.Fatalf("/metrics (%d) lacks %s:\n%s", code, want, text)
		}
	}

	// A restart of the server: the service comes back.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	srv.cmd.Wait()
	waitFor(t, "the replicas to stop with the server", func() bool { return len(replicaPids(dataDir)) == 0 })
	srv = startServer(t, dataDir, addr, "--image-base", base)
	c = srv.client
	waitFor(t, "the service to come back after the restart", func() bool {
		return score(t, srv, "diabetes", "Bearer "+keys.Primary, `{"data": [2]}`).status == 200
	})

	// Deletion: the replicas stop and the service is gone.
	if out, errOut, code := srv.run(t, "service", "delete", "diabetes"); code != 0 {
		t.Fatalf("delete: %d %s %s", code, out, errOut)
	}
	if a := score(t, srv, "diabetes", "Bearer "+keys.Primary, `{"data": [1]}`); a.status != 404 {
		t.Fatalf("deleted service: %d %s", a.status, a.body)
	}
	waitFor(t, "the replicas to stop", func() bool { return len(replicaPids(dataDir)) == 0 })
	waitFor(t, "the unpacked images to be removed", func() bool { return len(unpackedImages(t, dataDir)) == 0 })
	if err := c.DeleteImage(ctx, "default", atelier.ImageRef{Name: "diabetes-svc", Version: 1}); err != nil {
		t.Fatalf("deleting an image no longer served: %v", err)
	}
}

// unpackedImages are the images the local target has unpacked in the server's data directory.
func unpackedImages(t *testing.T, dataDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, "services", "rootfs"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// localServiceServer starts a server that builds images on the CPython base and serves them
// on the local target (bubblewrap); it returns the server, the binary and its data directory.
func localServiceServer(t *testing.T) (*serverProcess, string, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds an image and runs replicas")
	}
	if _, err := exec.LookPath("bwrap"); err != nil {
		needRealTool(t, "bubblewrap is not installed (apt install bubblewrap)")
	}
	base := pythonBase(t)
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	dataDir, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, dataDir, addr, "--image-base", base)
	return srv, bin, dataDir
}

// TestWebServiceBadInput: an init() that raises fails the deployment with its traceback and
// leaves nothing running; bad names, images and configurations are 4xx with what was wrong.
func TestWebServiceBadInput(t *testing.T) {
	srv, bin, dataDir := localServiceServer(t)
	buildServiceImage(t, srv, bin, "broken", "broken-svc", 1, true)

	out, errOut, code := srv.run(t, "service", "deploy", "broken", "--image", "broken-svc:1", "--wait")
	if code != 7 || !strings.Contains(errOut, "the model cannot be loaded") || !strings.Contains(errOut, "init()") {
		t.Fatalf("deploy of a failing init(): exit %d\n%s\n%s", code, out, errOut)
	}
	if svc := findService(t, srv.client, "broken"); svc.State != atelier.ServiceFailed || svc.Replicas.Ready != 0 {
		t.Fatalf("after a failed deployment: %+v", svc)
	}
	waitFor(t, "no replica left", func() bool { return len(replicaPids(dataDir)) == 0 })

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"service", "deploy", "Bad_Name", "--image", "broken-svc:1"}, 2, "invalid web service name"},
		{[]string{"service", "deploy", "other", "--image", "nosuch:1"}, 2, "image nosuch:1 not found"},
		{[]string{"service", "deploy", "other", "--image", "broken-svc:1", "--autoscale", "5,2"}, 2, "autoscale replicas 5,2"},
		{[]string{"service", "deploy", "other", "--image", "broken-svc:1", "--auth", "maybe"}, 2, "--auth"},
		{[]string{"service", "deploy", "broken", "--image", "broken-svc:1"}, 4, "already exists"},
		{[]string{"service", "show", "nosuch"}, 3, "not found"},
		{[]string{"service", "split", "broken", "--to", "broken-svc:1=150"}, 2, "invalid traffic split"},
		{[]string{"service", "deploy", "other", "--image", "broken-svc:1", "--replica-start", "sometimes"}, 2, `replica_start must be fork or process, not "sometimes"`},
	} {
		out, errOut, code := srv.run(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)\n%s", tc.args, code, tc.code, errOut, tc.want, out)
		}
	}
}

// TestWebServiceProcessReplicas: with --replica-start process the local target starts a
// sandboxed Python for each replica instead of forking them from a template.
func TestWebServiceProcessReplicas(t *testing.T) {
	srv, bin, dataDir := localServiceServer(t)
	buildServiceImage(t, srv, bin, "procmodel", "proc-svc", 3, false)
	if out, errOut, code := srv.run(t, "service", "deploy", "procs", "--image", "proc-svc:1", "--replicas", "2",
		"--replica-start", "process", "--auth", "none", "--wait"); code != 0 {
		t.Fatalf("deploy: exit %d\n%s\n%s", code, out, errOut)
	}
	if a := score(t, srv, "procs", "", `{"data": [1, 2]}`); a.status != 200 || !strings.Contains(a.body, `"result": [3, 6]`) {
		t.Fatalf("score: %d %s", a.status, a.body)
	}
	// A sandbox per replica (bwrap, whose own child is the sandbox's pid 1: only the outer
	// process's parent is not one of them); forked replicas would share their template's.
	pids := replicaPids(dataDir)
	outer := 0
	for _, pid := range pids {
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if ppid, _ := strconv.Atoi(f[1]); !slices.Contains(pids, ppid) {
			outer++
		}
	}
	if outer != 2 {
		t.Fatalf("%d sandboxes (processes %v) for 2 replicas started as processes", outer, pids)
	}
	if log, _, _ := srv.run(t, "service", "logs", "procs"); strings.Contains(log, "template") {
		t.Fatalf("a template was started:\n%s", log)
	}
	var svc atelier.WebService
	out, _, _ := srv.run(t, "service", "show", "procs", "-o", "json")
	if err := json.Unmarshal([]byte(out), &svc); err != nil || svc.Config.ReplicaStart != atelier.ReplicaProcess {
		t.Fatalf("service show: %v %s", err, out)
	}
}

// podmanContainers lists the containers of a service started by the server of dataDir.
func podmanContainers(t *testing.T, podman, service string) []string {
	out, err := exec.Command(podman, "ps", "-q", "--filter", "label=ai.atelier.service=default/"+service).Output()
	if err != nil {
		t.Fatalf("podman ps: %v", err)
	}
	return strings.Fields(string(out))
}

// TestWebServicePodman deploys the same kind of image on the podman target: each replica a
// container of the image, scored through the gateway; a container killed is replaced; deleting
// the service removes its containers.
func TestWebServicePodman(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image and runs containers")
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		needRealTool(t, "podman is not installed")
	}
	base := pythonBase(t)
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	dataDir, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, dataDir, addr, "--image-base", base)
	name := "pod" + strings.Split(addr, ":")[1]
	t.Cleanup(func() {
		for _, id := range podmanContainers(t, podman, name) {
			exec.Command(podman, "rm", "-f", "-t", "0", id).Run()
		}
	})
	buildServiceImage(t, srv, bin, "podmodel", "pod-svc", 7, false)
	out, errOut, code := srv.run(t, "service", "deploy", name, "--image", "pod-svc:1", "--target", "podman", "--replicas", "2", "--auth", "none", "--wait", "-o", "json")
	if code != 0 {
		t.Fatalf("deploy on podman: exit %d\n%s\n%s\nserver:\n%s", code, out, errOut, srv.log)
	}
	if ids := podmanContainers(t, podman, name); len(ids) != 2 {
		t.Fatalf("%d containers for 2 replicas", len(ids))
	}
	a := score(t, srv, name, "", `{"data": [1, 2]}`)
	if a.status != 200 || !strings.Contains(a.body, `"result": [7, 14]`) {
		t.Fatalf("score on podman: %d %s", a.status, a.body)
	}
	// A container killed: the replica is replaced by a new container.
	ids := podmanContainers(t, podman, name)
	if out, err := exec.Command(podman, "kill", "-s", "KILL", ids[0]).CombinedOutput(); err != nil {
		t.Fatalf("podman kill: %v %s", err, out)
	}
	waitFor(t, "the killed container to be replaced", func() bool {
		now := podmanContainers(t, podman, name)
		return len(now) == 2 && !slices.Contains(now, ids[0]) && findService(t, srv.client, name).Replicas.Ready == 2
	})
	if a := score(t, srv, name, "", `{"data": [3]}`); a.status != 200 || !strings.Contains(a.body, "[21]") {
		t.Fatalf("after the kill: %d %s", a.status, a.body)
	}
	if out, errOut, code := srv.run(t, "service", "delete", name); code != 0 {
		t.Fatalf("delete: %d %s %s", code, out, errOut)
	}
	waitFor(t, "the containers to be removed", func() bool { return len(podmanContainers(t, podman, name)) == 0 })
}
