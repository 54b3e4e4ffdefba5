#!/usr/bin/env python3
"""Compares atelier's MLflow-compatible API with `mlflow server` and FastTrackML (issue 5).

Runs the same workload, through the real mlflow Python client (MlflowClient), against
  (a) `mlflow server` (SQLite backend, its default workers),
  (b) atelier (built from this checkout), and
  (c) FastTrackML (`fml server`, SQLite), when its binary is available,
one server at a time on a fresh data directory, and prints markdown tables with the ratios.
The same workloads are also driven over raw HTTP (http.client with keep-alive and bodies
encoded before the clock starts) to show what the servers do without the mlflow client's own
per-call cost.

Workloads:
  1. log-batch throughput: log_batch calls of 1,000 metric points (10 keys x 100 steps),
     round-robin over 10 runs, for --duration seconds -> metric points/s
  2. search_runs over --runs runs (filter on a metric, order by it, first page of 100) -> median of 7
  3. get_metric_history of a 100,000-point metric (logged in log_batch chunks of 1,000) -> median of 3
  4. run creation: create_run + log_batch(params, metrics, tags) per run -> runs/s
     (these are the runs workload 2 searches)

Usage (any python that has mlflow; otherwise the test suite's cached venv is used):
  python3 bench/mlflow_compare.py [--servers mlflow,atelier,fasttrackml] [--runs 10000]
      [--runs-mlflow 10000] [--duration 10] [--fml /path/to/fml] [--mlflow-python PY]

FastTrackML: `pip install fasttrackml` (it ships the Go binary `fml`); pass --fml or put it on
PATH. The mlflow server is run with --mlflow-python (default: the python running this script).
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("ATELIER_TEST_CACHE", os.path.expanduser("~/.cache/atelier-test"))

try:
    import mlflow  # noqa: F401
except ImportError:  # re-run under the test suite's cached venv
    venv = os.path.join(CACHE, "mlflow-venv-py%d%d" % sys.version_info[:2])
    py = os.path.join(venv, "bin", "python")
    # A venv's python is a symlink to the base interpreter, so compare prefixes, not paths.
    if os.path.exists(py) and os.path.realpath(sys.prefix) != os.path.realpath(venv):
        os.execv(py, [py] + sys.argv)
    sys.exit("mlflow is not installed: run with a python that has mlflow (pip install 'mlflow>=3')")

from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402

API = "/api/2.0/mlflow"
HISTORY_POINTS = 100_000
CHUNK = 1000
HISTORY_READS = 3
TOKEN_RE = re.compile(rb'"next_page_token"\s*:\s*"([^"]+)"')
SEARCH_FILTER = "metrics.rmse < 0.5"
SEARCH_ORDER = ["metrics.rmse ASC"]
ALPHAS = ["0.01", "0.03", "0.1", "0.3", "1.0"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "?"


class Server:
    def __init__(self, name, argv, port, workdir, token=None, token_file=None, env=None):
        self.name, self.port, self.workdir = name, port, workdir
        self.url = "http://127.0.0.1:%d" % port
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir,
                                     env=env, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:  # any HTTP answer below 500 means the application is serving
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", API + "/experiments/get-by-name?experiment_name=Default")
                if c.getresponse().status < 500:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("%s did not start:\n%s" % (name, open(self.log_path).read()[-3000:]))
            time.sleep(0.2)
        self.token = token
        if token_file:
            self.token = open(token_file).read().strip()

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)  # the server's own process group (uvicorn workers)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.log.close()


def start_mlflow(workdir, python):
    port = free_port()
    d = os.path.join(workdir, "mlflow")
    os.makedirs(d)
    return Server("mlflow", [python, "-m", "mlflow", "server",
                             "--backend-store-uri", "sqlite:///%s/mlflow.db" % d,
                             "--default-artifact-root", "%s/artifacts" % d,
                             "--serve-artifacts", "--artifacts-destination", "%s/artifacts" % d,
                             "--host", "127.0.0.1", "--port", str(port)], port, d)


def start_atelier(workdir, binary):
    port = free_port()
    d = os.path.join(workdir, "atelier")
    os.makedirs(d)
    return Server("atelier", [binary, "server", "--data", d + "/data", "--addr", "127.0.0.1:%d" % port],
                  port, d, token_file=d + "/data/admin-token")


def start_fml(workdir, binary):
    port = free_port()
    d = os.path.join(workdir, "fasttrackml")
    os.makedirs(d)
    return Server("fasttrackml", [binary, "server", "--listen-address", "127.0.0.1:%d" % port,
                                  "--database-uri", "sqlite://%s/fml.db" % d,
                                  "--default-artifact-root", "%s/artifacts" % d], port, d)


# --- workloads through MlflowClient ------------------------------------------------------------

def now_ms():
    return int(time.time() * 1000)


def batch_metrics(i, ts):
    """The i-th log-batch payload: 10 keys x 100 steps, unique (key, step) per run."""
    base = (i // 10) * 100  # run i % 10 gets steps base .. base+99 for each key
    return [Metric("m%d" % k, random.random(), ts, base + s) for k in range(10) for s in range(100)]


def client_workloads(srv, args, nruns):
    os.environ["MLFLOW_TRACKING_TOKEN"] = srv.token or "unused"
    c = MlflowClient(tracking_uri=srv.url)
    res = {}
    exp = c.create_experiment("bench-%d" % time.time_ns())

    # (4) run creation, building the runs (2) searches
    rng = random.Random(1)
    rmse = [rng.random() for _ in range(nruns)]
    expected = sum(1 for v in rmse if v < 0.5)
    t0 = tseg = time.perf_counter()
    for i in range(nruns):
        r = c.create_run(exp, run_name="run-%d" % i)
        c.log_batch(r.info.run_id,
                    metrics=[Metric("rmse", rmse[i], now_ms(), 0), Metric("acc", rng.random(), now_ms(), 0)],
                    params=[Param("alpha", ALPHAS[i % len(ALPHAS)]), Param("l1_ratio", str(rng.random()))],
                    tags=[RunTag("group", "g%d" % (i % 7))])
        if nruns >= 1000 and (i + 1) % (nruns // 5) == 0:  # shows whether the rate drifts as runs grow
            t = time.perf_counter()
            print("  [%s] %d runs: %.0f runs/s over the last %d (load %s)" % (
                srv.name, i + 1, (nruns // 5) / (t - tseg), nruns // 5, loadavg()), flush=True)
            tseg = t
    dt = time.perf_counter() - t0
    res["create"] = nruns / dt
    print("  [%s] created %d runs in %.1f s (%.0f runs/s)" % (srv.name, nruns, dt, nruns / dt), flush=True)

    # (2) search
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        page = c.search_runs([exp], filter_string=SEARCH_FILTER, order_by=SEARCH_ORDER, max_results=100)
        times.append(time.perf_counter() - t0)
    vals = [r.data.metrics["rmse"] for r in page]
    assert len(page) == min(100, expected) and vals == sorted(vals) and vals[-1] < 0.5, (len(page), vals[:5])
    res["search"] = statistics.median(times) * 1000
    print("  [%s] search: median %.1f ms (%s)" % (srv.name, res["search"], fmt_list(times)), flush=True)

    # (1) log-batch throughput
    runs = [c.create_run(exp).info.run_id for _ in range(10)]
    n, t0 = 0, time.perf_counter()
    while True:
        c.log_batch(runs[n % 10], metrics=batch_metrics(n, now_ms()))
        n += 1
        if time.perf_counter() - t0 >= args.duration:
            break
    dt = time.perf_counter() - t0
    res["log_batch"] = n * CHUNK / dt
    print("  [%s] log_batch: %d calls in %.1f s, %.0f points/s" % (srv.name, n, dt, res["log_batch"]), flush=True)

    # (3) metric history
    run = c.create_run(exp).info.run_id
    t0 = time.perf_counter()
    ts = now_ms()
    for j in range(0, HISTORY_POINTS, CHUNK):
        c.log_batch(run, metrics=[Metric("loss", 1.0 / (s + 1), ts + s, s) for s in range(j, j + CHUNK)])
    print("  [%s] logged %d history points in %.1f s" % (srv.name, HISTORY_POINTS, time.perf_counter() - t0),
          flush=True)
    times = []
    for _ in range(HISTORY_READS):
        t0 = time.perf_counter()
        h = c.get_metric_history(run, "loss")
        times.append(time.perf_counter() - t0)
        assert len(h) == HISTORY_POINTS, len(h)
    res["history"] = statistics.median(times) * 1000
    print("  [%s] get_metric_history: median %.0f ms (%s)" % (srv.name, res["history"], fmt_list(times)),
          flush=True)
    return res, exp, run, min(100, expected)


# --- the same workloads over raw HTTP ------------------------------------------------------------

class Raw:
    def __init__(self, srv):
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        self.headers = {"Content-Type": "application/json"}
        if srv.token:
            self.headers["Authorization"] = "Bearer " + srv.token

    def call(self, method, path, body=None):
        self.conn.request(method, API + path, body=body, headers=self.headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError("%s %s: %d %s" % (method, path, r.status, data[:300]))
        return data


def raw_workloads(srv, args, exp, history_run, nruns, page_len):
    raw = Raw(srv)
    res = {}
    # (4) run creation over raw HTTP, into its own experiment
    rexp = json.loads(raw.call("POST", "/experiments/create", json.dumps({"name": "raw-%d" % time.time_ns()})))
    rexp = rexp["experiment_id"]
    create = json.dumps({"experiment_id": rexp, "start_time": now_ms()}).encode()
    t0 = time.perf_counter()
    for i in range(nruns):
        rid = json.loads(raw.call("POST", "/runs/create", create))["run"]["info"]["run_id"]
        raw.call("POST", "/runs/log-batch", json.dumps({
            "run_id": rid,
            "metrics": [{"key": "rmse", "value": random.random(), "timestamp": now_ms(), "step": 0},
                        {"key": "acc", "value": random.random(), "timestamp": now_ms(), "step": 0}],
            "params": [{"key": "alpha", "value": ALPHAS[i % 5]}, {"key": "l1_ratio", "value": str(random.random())}],
            "tags": [{"key": "group", "value": "g%d" % (i % 7)}]}).encode())
    res["create"] = nruns / (time.perf_counter() - t0)

    # (2) search (the client's runs)
    body = json.dumps({"experiment_ids": [exp], "filter": SEARCH_FILTER, "order_by": SEARCH_ORDER,
                       "max_results": 100, "run_view_type": "ACTIVE_ONLY"}).encode()
    times = []
    for _ in range(7):  # the clock covers the request and reading the body, not decoding it
        t0 = time.perf_counter()
        data = raw.call("POST", "/runs/search", body)
        times.append(time.perf_counter() - t0)
    out = json.loads(data)
    assert len(out["runs"]) == page_len, (len(out["runs"]), page_len)
    res["search"] = statistics.median(times) * 1000

    # (1) log-batch throughput, bodies encoded before the clock starts
    runs = [json.loads(raw.call("POST", "/runs/create", create))["run"]["info"]["run_id"] for _ in range(10)]
    ts = now_ms()
    bodies = []
    for i in range(args.raw_batches):
        base = (i // 10) * 100
        bodies.append(json.dumps({"run_id": runs[i % 10], "metrics": [
            {"key": "m%d" % k, "value": random.random(), "timestamp": ts, "step": base + s}
            for k in range(10) for s in range(100)]}).encode())
    n, t0 = 0, time.perf_counter()
    for b in bodies:
        raw.call("POST", "/runs/log-batch", b)
        n += 1
        if time.perf_counter() - t0 >= args.duration:
            break
    dt = time.perf_counter() - t0
    res["log_batch"] = n * CHUNK / dt

    # (3) metric history, following page tokens like the client (25,000 a page)
    # The page token sits at an end of the body; it is found without decoding the points, which
    # are decoded (to count them) after the clock stops.
    times = []
    for _ in range(HISTORY_READS):
        pages, token = [], None
        t0 = time.perf_counter()
        while True:
            q = {"run_id": history_run, "metric_key": "loss", "max_results": 25000}
            if token:
                q["page_token"] = token
            data = raw.call("GET", "/metrics/get-history?" + urllib.parse.urlencode(q))
            pages.append(data)
            m = TOKEN_RE.search(data[-400:]) or TOKEN_RE.search(data[:400])
            token = m.group(1).decode() if m else None
            if not token:
                break
        times.append(time.perf_counter() - t0)
        got = sum(len(json.loads(d).get("metrics", [])) for d in pages)
        assert got == HISTORY_POINTS, got
    res["history"] = statistics.median(times) * 1000
    print("  [%s] raw HTTP: %s" % (srv.name, {k: round(v, 1) for k, v in res.items()}), flush=True)
    return res


def fmt_list(ts):
    return ", ".join("%.0f" % (t * 1000) if t >= 0.01 else "%.1f" % (t * 1000) for t in ts) + " ms"


# --- report ----------------------------------------------------------------------------------------

ROWS = [  # key, label, higher is better, format
    ("log_batch", "log_batch throughput (metric points/s)", True, "{:,.0f}"),
    ("search", "search_runs, %s runs, filter + order_by, page of 100 (median ms)", False, "{:,.1f}"),
    ("history", "get_metric_history, 100,000 points (median ms)", False, "{:,.0f}"),
    ("create", "run creation, create_run + log_batch (runs/s)", True, "{:,.0f}"),
]


def table(results, scale):
    def cell(name, key, f):
        r = results.get(name)
        return f.format(r[key]) if r and key in r else "n/a"

    def ratio(name, key, hib):
        a, o = results.get("atelier"), results.get(name)
        if not a or not o or key not in a or key not in o:
            return "n/a"
        return "%.1f×" % (a[key] / o[key] if hib else o[key] / a[key])

    lines = ["| workload | mlflow server | FastTrackML | atelier | atelier/mlflow | atelier/FastTrackML |",
             "|---|---|---|---|---|---|"]
    for key, label, hib, f in ROWS:
        if key == "search":
            label = label % scale
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            label, cell("mlflow", key, f), cell("fasttrackml", key, f), cell("atelier", key, f),
            ratio("mlflow", key, hib), ratio("fasttrackml", key, hib)))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="mlflow,fasttrackml,atelier")
    p.add_argument("--runs", type=int, default=10000, help="runs created (and searched) per server")
    p.add_argument("--runs-mlflow", type=int, default=300,
                   help="runs for mlflow server, which creates 2-10 a second here (0: --runs)")
    p.add_argument("--raw-runs", type=int, default=1000,
                   help="runs created over raw HTTP (at most a fifth of the server's --runs)")
    p.add_argument("--raw-batches", type=int, default=3000, help="max raw log-batch bodies (1,000 points each)")
    p.add_argument("--duration", type=float, default=10, help="seconds of log_batch throughput")
    p.add_argument("--no-raw", action="store_true", help="skip the raw HTTP measurements")
    p.add_argument("--atelier", default=None, help="atelier binary (default: go build ./cmd/atelier)")
    p.add_argument("--fml", default=shutil.which("fml"), help="FastTrackML's fml binary")
    p.add_argument("--mlflow-python", default=sys.executable, help="python that runs `mlflow server`")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args()

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    workdir = tempfile.mkdtemp(prefix="mlflow-compare-")
    import mlflow as _m
    print("machine: %d CPUs, load %s; mlflow client %s; python %s" % (
        os.cpu_count(), loadavg(), _m.__version__, sys.version.split()[0]), flush=True)

    results, raw_results, notes = {}, {}, []
    scale = {}
    try:
        for name in args.servers.split(","):
            nruns = args.runs_mlflow if name == "mlflow" and args.runs_mlflow else args.runs
            if name == "atelier":
                binary = args.atelier
                if not binary:
                    binary = os.path.join(workdir, "atelier-bin")
                    subprocess.run(["go", "build", "-o", binary, "./cmd/atelier"], cwd=REPO_ROOT, check=True)
                start = lambda: start_atelier(workdir, binary)  # noqa: E731
            elif name == "mlflow":
                start = lambda: start_mlflow(workdir, args.mlflow_python)  # noqa: E731
            elif name == "fasttrackml":
                if not args.fml or not os.path.exists(args.fml):
                    notes.append("FastTrackML skipped: no fml binary (pip install fasttrackml, or --fml)")
                    print(notes[-1], flush=True)
                    continue
                start = lambda: start_fml(workdir, args.fml)  # noqa: E731
            else:
                sys.exit("unknown server " + name)
            print("== %s (load %s)" % (name, loadavg()), flush=True)
            try:
                srv = start()
            except RuntimeError as e:
                notes.append("%s skipped: %s" % (name, str(e).splitlines()[0]))
                print(e, flush=True)
                continue
            try:
                t0 = time.perf_counter()
                results[name], exp, hrun, page_len = client_workloads(srv, args, nruns)
                if not args.no_raw:
                    raw_results[name] = raw_workloads(srv, args, exp, hrun, min(args.raw_runs, nruns // 5),
                                                      page_len)
                scale[name] = nruns
                print("  [%s] done in %.0f s (load %s)" % (name, time.perf_counter() - t0, loadavg()),
                      flush=True)
            finally:
                srv.stop()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    runs_label = " / ".join("{:,}".format(scale[n]) for n in ("mlflow", "fasttrackml", "atelier") if n in scale)
    if len(set(scale.values())) == 1:
        runs_label = "{:,}".format(next(iter(scale.values())))
    print("\n### Through the mlflow Python client (MlflowClient)\n")
    print(table(results, runs_label))
    if raw_results:
        print("\n### Raw HTTP (http.client, keep-alive, bodies encoded in advance)\n")
        print(table(raw_results, runs_label).replace("run creation, create_run + log_batch",
                                                     "run creation, runs/create + runs/log-batch"))
    print("\nruns per server: %s; load at the end %s" % (scale, loadavg()))
    for n in notes:
        print("note: " + n)
    print(json.dumps({"client": results, "raw": raw_results, "runs": scale}))


if __name__ == "__main__":
    main()
