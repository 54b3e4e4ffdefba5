// Command services measures a web service end to end through the real server: an image built
// by the server on the CPython base image, deployed on the local target (its replica under
// bubblewrap), scored through the gateway at several concurrency levels; beside it, in the same
// run, the same replica called directly on its socket (the gateway's overhead) and Microsoft's
// azureml-inference-server-http with the same score.py and model (when the virtualenv that
// bench/scoring creates exists). It also measures a replica's cold start and a scale-up from 1
// to 4 replicas under a step of load. It prints a markdown table for docs/benchmarks.md.
//
//	go run ./bench/services [-duration 5s] [-levels 1,8,32] [-sklearn=true]
//
// With -sklearn (the default), the image installs scikit-learn from PyPI (its build is cached
// after the first run) and serves bench/scoring's Ridge model on the diabetes data, trained with
// the aml virtualenv's Python; without it, a no-op score.py (the floor of the stack).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/atelier-ml/atelier/bench/scoring/load"
)

const sklearnScore = `import json
import os

import joblib
import numpy as np


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    return model.predict(data).tolist()
`

const noopScore = `def init():
    pass


def run(raw_data):
    return {"ok": True}
`

const trainPy = `import sys, joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
X, y = load_diabetes(return_X_y=True)
joblib.dump(Ridge(alpha=0.5).fit(X, y), sys.argv[1])
`

const rows = `[[0.0380759, 0.0506801, 0.0616962, 0.0218724, -0.0442235, -0.0348208, -0.0434008, -0.00259226, 0.0199084, -0.0176461], [-0.00188202, -0.0446416, -0.0514741, -0.0263278, -0.00844872, -0.0191633, 0.0744116, -0.0394934, -0.0683297, -0.092204]]`

var (
	work    string
	bin     string
	env     []string
	started []*exec.Cmd
)

func main() {
	dur := flag.Duration("duration", 5*time.Second, "how long each level runs")
	levelsFlag := flag.String("levels", "1,8,32", "concurrency levels")
	sklearn := flag.Bool("sklearn", true, "serve a scikit-learn model (else a no-op score.py)")
	home, _ := os.UserHomeDir()
	amlVenv := flag.String("aml-venv", filepath.Join(home, ".cache", "atelier-bench", "amlserver"), "bench/scoring's virtualenv with azureml-inference-server-http and scikit-learn")
	profile := flag.String("cpuprofile", "", "write the server's CPU profile during the last level through the gateway to this file")
	serverEnv := flag.String("server-env", "", "extra environment for the server, NAME=VALUE separated by spaces (e.g. GOMAXPROCS=2: the server keeps every core while replicas run)")
	base := flag.String("image-base", filepath.Join(home, ".cache", "atelier-test", "python-base", "current"), "the CPython base image")
	flag.Parse()
	var levels []int
	for _, s := range strings.Split(*levelsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fatal(fmt.Errorf("-levels %q", *levelsFlag))
		}
		levels = append(levels, n)
	}
	var err error
	if work, err = os.MkdirTemp("", "atelier-bench-services-"); err != nil {
		fatal(err)
	}
	defer os.RemoveAll(work)
	defer stopAll()
	bin = filepath.Join(work, "atelier")
	run("go", "build", "-o", bin, "./cmd/atelier")
	amlPy := filepath.Join(*amlVenv, "bin", "python")
	haveAML := exists(amlPy) && exists(filepath.Join(*amlVenv, "bin", "azmlinfsrv"))
	if *sklearn && !haveAML {
		fatal(fmt.Errorf("-sklearn needs %s (run go run ./bench/scoring once to create it)", *amlVenv))
	}

	// The server, a model, an image and a service of one replica.
	addr := freeAddr()
	data := filepath.Join(work, "data")
	debug := freeAddr()
	srv := start(work, strings.Fields(*serverEnv), bin, "server", "--data", data, "--addr", addr, "--image-base", *base, "--debug-addr", debug)
	url := "http://" + addr
	waitHTTP(url+"/api/v1/health", 30*time.Second)
	token := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(data, "admin-token")))))
	env = append(os.Environ(), "ATELIER_SERVER="+url, "ATELIER_TOKEN="+token)
	src, mdir := filepath.Join(work, "serve"), filepath.Join(work, "model")
	os.MkdirAll(src, 0o755)
	os.MkdirAll(mdir, 0o755)
	score, body, modelFile := noopScore, `{"data": 1}`, filepath.Join(mdir, "model.json")
	if *sklearn {
		score, body, modelFile = sklearnScore, `{"data": `+rows+`}`, filepath.Join(mdir, "sklearn_regression_model.pkl")
		os.WriteFile(filepath.Join(work, "train.py"), []byte(trainPy), 0o644)
		run(amlPy, filepath.Join(work, "train.py"), modelFile)
		ver := strings.TrimSpace(string(must(exec.Command(amlPy, "-c", "import sklearn, joblib, numpy; print('scikit-learn==%s\\njoblib==%s\\nnumpy==%s' % (sklearn.__version__, joblib.__version__, numpy.__version__))").Output())))
		os.WriteFile(filepath.Join(src, "requirements.txt"), []byte(ver+"\n"), 0o644)
	} else {
		os.WriteFile(modelFile, []byte("{}"), 0o644)
	}
	os.WriteFile(filepath.Join(src, "score.py"), []byte(score), 0o644)
	cli("model", "register", "--name", "bench", "--path", modelFile)
	imageArgs := []string{"image", "create", "bench-svc", "--model", "bench", "--entry-script", "score.py", "--source-dir", src, "--wait"}
	if *sklearn {
		imageArgs = append(imageArgs, "--requirements", "requirements.txt")
	}
	t0 := time.Now()
	cli(imageArgs...)
	fmt.Fprintf(os.Stderr, "image built in %s\n", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	cli("service", "deploy", "bench", "--image", "bench-svc:1", "--wait", "--max-wait-ms", "60000")
	deploy := time.Since(t0)
	var keys struct {
		Primary string `json:"primary_key"`
	}
	must(0, json.Unmarshal([]byte(cli("service", "keys", "bench", "-o", "json")), &keys))
	hdr := http.Header{"Authorization": {"Bearer " + keys.Primary}, "Content-Type": {"application/json"}}
	gateway := url + "/services/default/bench/score"
	sock := replicaSocket(t0)

	// Microsoft's server with the same score.py and model, one worker.
	var amlURL string
	if haveAML {
		port := freePort()
		amlURL = fmt.Sprintf("http://127.0.0.1:%d/score", port)
		start(src, []string{"AZUREML_MODEL_DIR=" + mdir}, filepath.Join(*amlVenv, "bin", "azmlinfsrv"), "--entry_script", filepath.Join(src, "score.py"), "--port", strconv.Itoa(port))
		waitHTTP(fmt.Sprintf("http://127.0.0.1:%d/", port), 60*time.Second)
	}

	ctx := context.Background()
	fmt.Printf("Machine: %d CPUs, %s; %s; %s score.py, one replica / one worker; %s a level.\n\n", runtime.NumCPU(), runtime.GOOS, time.Now().UTC().Format("2006-01-02"), map[bool]string{true: "scikit-learn Ridge", false: "no-op"}[*sklearn], *dur)
	fmt.Println("| concurrency | through the gateway | replica direct (socket) | gateway overhead p50 / p99 | azureml-inference-server-http | ratio |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, c := range levels {
		load.Run(ctx, gateway, []byte(body), hdr, c, time.Second) // warm-up
		var prof chan []byte
		if *profile != "" && c == levels[len(levels)-1] {
			prof = make(chan []byte, 1)
			go func() {
				resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", debug, max(1, int(dur.Seconds())-1)))
				if err != nil {
					prof <- nil
					return
				}
				defer resp.Body.Close()
				var b bytes.Buffer
				b.ReadFrom(resp.Body)
				prof <- b.Bytes()
			}()
		}
		g := load.RunConfig(ctx, load.Config{URL: gateway, Body: []byte(body), Header: hdr, Concurrency: c, Duration: *dur})
		if prof != nil {
			if b := <-prof; b != nil {
				os.WriteFile(*profile, b, 0o644)
			}
		}
		d := load.RunConfig(ctx, load.Config{URL: "http://replica/score", Body: []byte(body), Header: http.Header{"Content-Type": {"application/json"}}, Concurrency: c, Duration: *dur, Client: load.NewClient(c, sock)})
		amlCell, ratio := "-", "-"
		if amlURL != "" {
			load.Run(ctx, amlURL, []byte(body), http.Header{"Content-Type": {"application/json"}}, c, time.Second)
			a := load.Run(ctx, amlURL, []byte(body), http.Header{"Content-Type": {"application/json"}}, c, *dur)
			amlCell = cell(a)
			if a.RPS > 0 {
				ratio = fmt.Sprintf("%.1f×", g.RPS/a.RPS)
			}
		}
		fmt.Printf("| %d | %s | %s | %s / %s | %s | %s |\n", c, cell(g), cell(d), msd(g.P50-d.P50), msd(g.P99-d.P99), amlCell, ratio)
	}

	// Cold start of a replica and a scale-up from 1 to 4 under a step of load.
	fmt.Printf("\nDeploy (`service deploy --wait`, image unpacked, 1 replica ready): %s\n", deploy.Round(time.Millisecond))
	cli("service", "update", "bench", "--autoscale", "1,4", "--target-utilization", "70", "--scale-down-delay", "600", "--wait")
	step := time.Now()
	done := make(chan load.Result)
	go func() { done <- load.Run(ctx, gateway, []byte(body), hdr, 16, 20*time.Second) }()
	var at time.Duration
	for time.Since(step) < 20*time.Second {
		var s struct {
			Replicas struct{ Ready int } `json:"replicas"`
		}
		json.Unmarshal([]byte(cli("service", "show", "bench", "-o", "json")), &s)
		if s.Replicas.Ready >= 4 {
			at = time.Since(step)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := <-done
	reached := "not reached within the step's 20 s"
	if at > 0 {
		reached = at.Round(time.Millisecond).String()
	}
	fmt.Printf("Scale-up from 1 to 4 replicas under a step to 16 clients: %s (the step's 20 s: %s)\n", reached, r)
	log := cli("service", "logs", "bench")
	var colds []time.Duration
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "scaling") || strings.Contains(line, " ready in ") || strings.Contains(line, "template") {
			fmt.Fprintln(os.Stderr, line)
		}
		if i := strings.Index(line, " ready in "); i >= 0 && strings.Contains(line, "replica") {
			if d, err := time.ParseDuration(strings.TrimSpace(line[i+len(" ready in "):])); err == nil {
				colds = append(colds, d)
			}
		}
	}
	sort.Slice(colds, func(i, j int) bool { return colds[i] < colds[j] })
	fmt.Printf("Replica cold starts (process start to ready, init() included): %v\n", colds)
	srv.Process.Signal(syscall.SIGTERM)
}

func cell(r load.Result) string {
	s := fmt.Sprintf("%.0f req/s, p50 %s p99 %s", r.RPS, msd(r.P50), msd(r.P99))
	if r.OK < r.Requests || r.Errors > 0 {
		s += fmt.Sprintf(" (%d non-2xx, %d errors: %s)", r.Requests-r.OK, r.Errors, r.FirstError)
	}
	return s
}

func msd(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// replicaSocket finds the socket of the replica started after t (the only one): score.sock of
// a replica started alone, <n>.sock of one forked from its template (the local target).
func replicaSocket(after time.Time) string {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "atelier-replica-*", "*.sock"))
	var best string
	var bestT time.Time
	for _, m := range matches {
		if filepath.Base(m) == "template.sock" {
			continue
		}
		fi, err := os.Stat(m)
		if err == nil && fi.ModTime().After(after.Add(-time.Second)) && fi.ModTime().After(bestT) {
			best, bestT = m, fi.ModTime()
		}
	}
	if best == "" {
		fatal(fmt.Errorf("no replica socket found"))
	}
	return best
}

func cli(args ...string) string {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		fatal(fmt.Errorf("atelier %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String()))
	}
	return out.String()
}

func start(dir string, extra []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), extra...)
	f := must(os.Create(filepath.Join(work, filepath.Base(name)+".log")))
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fatal(err)
	}
	started = append(started, cmd)
	return cmd
}

func stopAll() {
	for _, c := range started {
		syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		c.Wait()
	}
}

func waitHTTP(url string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	fatal(fmt.Errorf("%s did not answer within %s", url, timeout))
}

func run(name string, args ...string) {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		fatal(fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out))
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func freePort() int {
	ln := must(net.Listen("tcp", "127.0.0.1:0"))
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func freeAddr() string { return "127.0.0.1:" + strconv.Itoa(freePort()) }

func must[T any](v T, err error) T {
	if err != nil {
		fatal(err)
	}
	return v
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench/services:", err)
	stopAll()
	os.Exit(1)
}
