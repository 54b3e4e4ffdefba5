// Command scoring measures atelier's scoring runtime against Microsoft's
// azureml-inference-server-http and `mlflow models serve`, side by side with the same
// scikit-learn model and score.py, one worker each, at several concurrency levels, and prints
// a markdown table for docs/benchmarks.md.
//
//	go run ./bench/scoring [-duration 10s] [-levels 1,8,32] [-only atelier,azureml,mlflow,atelier-mlflow,noop]
//
// The Python environments are virtualenvs built from PyPI the first time and cached:
// -aml-venv (azureml-inference-server-http 1.5.1 and scikit-learn; atelier's runtime runs with
// the same interpreter, so both load the same model with the same libraries; its default host is
// patched to 127.0.0.1, it binds 0.0.0.0 otherwise) and -mlflow-venv (mlflow and scikit-learn).
// Each level runs every server in turn, so that a noisy machine disturbs them alike.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/atelier-ml/atelier/bench/scoring/load"
)

const scorePy = `import json
import os

import joblib
import numpy as np


def init():
    global model
    # AZUREML_MODEL_DIR is the registered model's directory (Azure ML's sklearn sample).
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    result = model.predict(data)
    return result.tolist()
`

const noopPy = `def init():
    pass


def run(raw_data):
    return {"ok": True}
`

// train fits Ridge on scikit-learn's diabetes data, saved with joblib (and, with a second
// argument, as an MLflow model too).
const trainPy = `import sys, joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
X, y = load_diabetes(return_X_y=True)
model = Ridge(alpha=0.5).fit(X, y)
joblib.dump(model, sys.argv[1])
if len(sys.argv) > 2:
    import mlflow.sklearn
    mlflow.sklearn.save_model(model, sys.argv[2], serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE)
`

// Two rows of the diabetes features, as the Azure ML sample's test request.
const rows = `[[0.0380759, 0.0506801, 0.0616962, 0.0218724, -0.0442235, -0.0348208, -0.0434008, -0.00259226, 0.0199084, -0.0176461], [-0.00188202, -0.0446416, -0.0514741, -0.0263278, -0.00844872, -0.0191633, 0.0744116, -0.0394934, -0.0683297, -0.092204]]`

type server struct {
	name   string
	path   string // what the load generator calls
	body   string
	url    string
	cmd    *exec.Cmd
	logf   *os.File
	health string
}

func main() {
	dur := flag.Duration("duration", 10*time.Second, "how long each level runs")
	warm := flag.Duration("warmup", 2*time.Second, "unmeasured load before the levels")
	levelsFlag := flag.String("levels", "1,8,32", "concurrency levels")
	only := flag.String("only", "atelier,azureml,mlflow,atelier-mlflow", "servers: atelier, azureml, mlflow, atelier-mlflow, noop (atelier and azureml with a no-op score.py)")
	cache := filepath.Join(homeCache(), "atelier-bench")
	amlVenv := flag.String("aml-venv", filepath.Join(cache, "amlserver"), "virtualenv with azureml-inference-server-http and scikit-learn (created when missing)")
	mlflowVenv := flag.String("mlflow-venv", filepath.Join(cache, "mlflow"), "virtualenv with mlflow and scikit-learn (created when missing)")
	runtimePy := flag.String("runtime", "oci/build/runtime/atelier_runtime.py", "atelier's scoring runtime")
	flag.Parse()
	var levels []int
	for _, f := range strings.Split(*levelsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fatal(fmt.Errorf("-levels: %q is not a concurrency", f))
		}
		levels = append(levels, n)
	}
	want := func(n string) bool { return strings.Contains(","+*only+",", ","+n+",") }
	rt, err := filepath.Abs(*runtimePy)
	if err != nil {
		fatal(err)
	}
	if _, err := os.Stat(rt); err != nil {
		fatal(fmt.Errorf("the runtime: %w (run from the repository root or pass -runtime)", err))
	}

	dir, err := os.MkdirTemp("", "atelier-bench-scoring-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	amlPy := ensureVenv(*amlVenv, []string{"azureml-inference-server-http==1.5.1", "scikit-learn", "joblib"}, patchAMLHost)
	app := filepath.Join(dir, "app")
	model := filepath.Join(dir, "azureml-models", "sklearn_regression_model", "1")
	must(os.MkdirAll(app, 0o755), os.MkdirAll(model, 0o755))
	must(os.WriteFile(filepath.Join(app, "score.py"), []byte(scorePy), 0o644), os.WriteFile(filepath.Join(app, "noop.py"), []byte(noopPy), 0o644))
	run(amlPy, "-c", trainPy, filepath.Join(model, "sklearn_regression_model.pkl"))
	env := []string{"AZUREML_MODEL_DIR=" + model, "PYTHONDONTWRITEBYTECODE=1"}
	body := `{"data": ` + rows + `}`

	var servers []*server
	startAtelier := func(name, script, py string, extra ...string) {
		port := freePort()
		s := &server{name: name, path: "/score", body: body, url: fmt.Sprintf("http://127.0.0.1:%d", port), health: "/"}
		e := append(append([]string{"AZUREML_ENTRY_SCRIPT=" + script, "ATELIER_SCORE_HOST=127.0.0.1", "ATELIER_SCORE_PORT=" + strconv.Itoa(port)}, env...), extra...)
		s.start(dir, e, py, rt)
		servers = append(servers, s)
	}
	startAML := func(name, script string) {
		port := freePort()
		s := &server{name: name, path: "/score", body: body, url: fmt.Sprintf("http://127.0.0.1:%d", port), health: "/"}
		s.start(dir, append([]string{"AML_APP_ROOT=" + app}, env...), filepath.Join(filepath.Dir(amlPy), "azmlinfsrv"),
			"--entry_script", script, "--port", strconv.Itoa(port))
		servers = append(servers, s)
	}
	if want("atelier") {
		startAtelier("atelier", filepath.Join(app, "score.py"), amlPy)
	}
	if want("azureml") {
		startAML("azureml-inference-server-http", filepath.Join(app, "score.py"))
	}
	if want("noop") {
		startAtelier("atelier (no-op score.py)", filepath.Join(app, "noop.py"), amlPy)
		startAML("azureml-inference-server-http (no-op score.py)", filepath.Join(app, "noop.py"))
	}
	if want("mlflow") || want("atelier-mlflow") {
		mlPy := ensureVenv(*mlflowVenv, []string{"mlflow", "scikit-learn"}, nil)
		mdir := filepath.Join(dir, "mlflow-models", "diabetes", "1")
		must(os.MkdirAll(mdir, 0o755))
		run(mlPy, "-c", trainPy, filepath.Join(dir, "unused.pkl"), filepath.Join(mdir, "model"))
		mbody := `{"inputs": ` + rows + `}`
		if want("mlflow") {
			port := freePort()
			s := &server{name: "mlflow models serve", path: "/invocations", body: mbody, url: fmt.Sprintf("http://127.0.0.1:%d", port), health: "/ping"}
			bin := filepath.Dir(mlPy)
			s.start(dir, []string{"PATH=" + bin + ":" + os.Getenv("PATH")}, filepath.Join(bin, "mlflow"), "models", "serve",
				"-m", filepath.Join(mdir, "model"), "--env-manager", "local", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-w", "1")
			servers = append(servers, s)
		}
		if want("atelier-mlflow") {
			port := freePort()
			s := &server{name: "atelier (MLflow model)", path: "/invocations", body: mbody, url: fmt.Sprintf("http://127.0.0.1:%d", port), health: "/ping"}
			s.start(dir, []string{"AZUREML_ENTRY_SCRIPT=", "AZUREML_MODEL_DIR=" + mdir, "ATELIER_SCORE_HOST=127.0.0.1", "ATELIER_SCORE_PORT=" + strconv.Itoa(port)}, mlPy, rt)
			servers = append(servers, s)
		}
	}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	ctx := context.Background()
	for _, s := range servers {
		if err := s.ready(ctx, 180*time.Second); err != nil {
			for _, s := range servers {
				s.stop()
			}
			fatal(err)
		}
		// One request to check it answers the payload, then the warm-up.
		if r := load.Run(ctx, s.url+s.path, []byte(s.body), nil, 1, 300*time.Millisecond); r.OK == 0 {
			for _, s := range servers {
				s.stop()
			}
			fatal(fmt.Errorf("%s does not answer %s: %s %s (its log: %s)", s.name, s.path, r.StatusSummary(), r.FirstError, s.logf.Name()))
		}
		load.Run(ctx, s.url+s.path, []byte(s.body), nil, 8, *warm)
	}

	results := map[string]map[int]load.Result{}
	for _, c := range levels {
		for _, s := range servers {
			r := load.Run(ctx, s.url+s.path, []byte(s.body), nil, c, *dur)
			if results[s.name] == nil {
				results[s.name] = map[int]load.Result{}
			}
			results[s.name][c] = r
			fmt.Fprintf(os.Stderr, "%-48s %s\n", s.name, r)
		}
	}
	load1, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\n%s, %d CPUs, Go %s, load average %s; %s per level, one worker each, keep-alive clients on loopback.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), strings.Join(strings.Fields(string(load1))[:3], " "), *dur)
	fmt.Printf("| server | concurrency | req/s | p50 | p99 | non-2xx / errors |\n|---|---:|---:|---:|---:|---:|\n")
	for _, s := range servers {
		for _, c := range levels {
			r := results[s.name][c]
			fmt.Printf("| %s | %d | %.0f | %.2f ms | %.2f ms | %d / %d |\n", s.name, c, r.RPS, msf(r.P50), msf(r.P99), r.Requests-r.OK, r.Errors)
		}
	}
	ratio := func(a, b string) {
		ra, rb := results[a], results[b]
		if ra == nil || rb == nil {
			return
		}
		fmt.Printf("\n%s / %s:", a, b)
		for _, c := range levels {
			fmt.Printf(" c=%d %.1f× throughput, p99 %.2f vs %.2f ms;", c, ra[c].RPS/rb[c].RPS, msf(ra[c].P99), msf(rb[c].P99))
		}
		fmt.Println()
	}
	ratio("atelier", "azureml-inference-server-http")
	ratio("atelier (MLflow model)", "mlflow models serve")
	ratio("atelier (no-op score.py)", "azureml-inference-server-http (no-op score.py)")
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (s *server) start(dir string, env []string, name string, args ...string) {
	f, err := os.CreateTemp(dir, "log-*.txt")
	if err != nil {
		fatal(err)
	}
	s.logf = f
	s.cmd = exec.Command(name, args...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = f, f
	// Its own process group: gunicorn's and uvicorn's workers stop with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		fatal(fmt.Errorf("%s: %w", s.name, err))
	}
}

func (s *server) ready(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if s.cmd.ProcessState != nil {
			break
		}
		resp, err := http.Get(s.url + s.health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, _ := os.ReadFile(s.logf.Name())
	return fmt.Errorf("%s did not become ready on %s:\n%s", s.name, s.url, out)
}

func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	s.cmd = nil
}

// ensureVenv returns the python of venv, creating it with packages from PyPI when missing.
func ensureVenv(venv string, packages []string, after func(venv string) error) string {
	py := filepath.Join(venv, "bin", "python")
	marker := filepath.Join(venv, ".installed")
	if _, err := os.Stat(marker); err == nil {
		return py
	}
	fmt.Fprintf(os.Stderr, "creating %s with %s\n", venv, strings.Join(packages, " "))
	os.RemoveAll(venv)
	run("python3", "-m", "venv", venv)
	run(py, append([]string{"-m", "pip", "install", "-q"}, packages...)...)
	if after != nil {
		if err := after(venv); err != nil {
			fatal(err)
		}
	}
	must(os.WriteFile(marker, nil, 0o644))
	return py
}

// patchAMLHost makes azureml-inference-server-http bind 127.0.0.1 (it binds 0.0.0.0 and has no
// flag for it).
func patchAMLHost(venv string) error {
	files, _ := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages", "azureml_inference_server_http", "constants.py"))
	if len(files) != 1 {
		return errors.New("azureml_inference_server_http/constants.py not found in " + venv)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}
	nb := strings.Replace(string(b), `DEFAULT_HOST = "0.0.0.0"`, `DEFAULT_HOST = "127.0.0.1"`, 1)
	if nb == string(b) && !strings.Contains(nb, `DEFAULT_HOST = "127.0.0.1"`) {
		return errors.New("DEFAULT_HOST not found in " + files[0])
	}
	return os.WriteFile(files[0], []byte(nb), 0o644)
}

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		fatal(fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(out)))
	}
}

func tail(b []byte) string {
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func homeCache() string {
	if d, err := os.UserCacheDir(); err == nil {
		return d
	}
	return os.TempDir()
}

func must(errs ...error) {
	for _, err := range errs {
		if err != nil {
			fatal(err)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench/scoring:", err)
	os.Exit(1)
}
