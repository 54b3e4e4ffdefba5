#!/usr/bin/env python3
"""Compares atelier's MLflow-compatible API with `mlflow server` and FastTrackML (issue 5).

Runs the same workload, through the real mlflow Python client (MlflowClient), against
  (a) `mlflow server` (SQLite backend, its default workers),
  (b) atelier (built from this checkout), and
  (c) FastTrackML (`fml server`, SQLite), when its binary is available,
one server at a time on a fresh data directory, and prints markdown tables with the ratios.
The same workloads are also driven over raw HTTP (http.client with keep-alive and bodies
encoded before the clock starts) to show what the servers do without the mlflow client's own
per-call cost, and, through the client once more with atelier's recorded answers replayed inside
`requests` (no server, no network), to show what the client itself costs: the most any server
could show through it.

Workloads:
  1. log-batch throughput: log_batch calls of 1,000 metric points (10 keys x 100 steps),
     round-robin over 10 runs, for --duration seconds -> metric points/s
  2. search_runs over --runs runs (filter on a metric, order by it, first page of 100) -> median
     of 7 after 3 that warm up. The searched runs are made alike for every server and not timed: through the API by
     --workers clients at once, but for mlflow server, which creates only 2-10 runs a second here,
     by copying the rows of one run made through its API in its SQLite database.
  4. run creation: create_run + one small log_batch (2 params, 2 metrics, 1 tag) per run, one
     after another, --create runs (--create-mlflow for mlflow server) after 10 untimed -> runs/s
  3. get_metric_history of a 100,000-point metric (logged in log_batch chunks of 1,000) -> median of 3

Usage (any python that has mlflow; otherwise the test suite's cached venv is used):
  python3 bench/mlflow_compare.py [--servers mlflow,fasttrackml,atelier] [--runs 10000]
      [--create 300] [--create-mlflow 100] [--duration 10] [--rounds 1] [--fml /path/to/fml]
      [--mlflow-python PY]
  A quick look: --runs 2000 --create 200 --create-mlflow 50 --duration 3 (about two minutes).
  With --rounds N every server is measured N times, their order turning each round, and the
  tables show the median and the range.

FastTrackML: `pip install fasttrackml` (it ships the Go binary `fml`); pass --fml or put it on
PATH. The mlflow server is run with --mlflow-python (default: the python running this script).
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import random
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

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
CREATE_WARMUP = 10  # runs created before run creation is timed
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


# --- the searched runs ------------------------------------------------------------------------------

def search_data(n):
    """rmse of the n searched runs, and how many rmse < 0.5 (the page length the search returns)."""
    rng = random.Random(1)
    rmse = [rng.random() for _ in range(n)]
    return rmse, min(100, sum(1 for v in rmse if v < 0.5))


def batch_body(rid, i, rmse, rng):
    return json.dumps({
        "run_id": rid,
        "metrics": [{"key": "rmse", "value": rmse, "timestamp": now_ms(), "step": 0},
                    {"key": "acc", "value": rng.random(), "timestamp": now_ms(), "step": 0}],
        "params": [{"key": "alpha", "value": ALPHAS[i % 5]}, {"key": "l1_ratio", "value": str(rng.random())}],
        "tags": [{"key": "group", "value": "g%d" % (i % 7)}]}).encode()


def populate_http(srv, exp, rmse, workers):
    """Creates the searched runs through the API with several clients at once (not measured)."""
    def work(k):
        raw, rng = Raw(srv), random.Random(k)
        for i in range(k, len(rmse), workers):
            body = json.dumps({"experiment_id": exp, "start_time": now_ms(), "run_name": "run-%d" % i}).encode()
            rid = json.loads(raw.call("POST", "/runs/create", body))["run"]["info"]["run_id"]
            raw.call("POST", "/runs/log-batch", batch_body(rid, i, rmse[i], rng))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(work, k) for k in range(workers)]:
            f.result()


def populate_mlflow_db(srv, exp, rmse):
    """Creates the searched runs in mlflow server's SQLite database directly (not measured):
    through its API it creates 2-10 runs a second here, so 10,000 would take most of an hour.
    One run is made through the API; the others are copies of its rows in every table that has a
    run_uuid column (so whatever mlflow writes for a run, they have), with their own ids, names
    and values. The server only reads them afterwards."""
    raw = Raw(srv)
    body = json.dumps({"experiment_id": exp, "start_time": now_ms(), "run_name": "run-0"}).encode()
    tid = json.loads(raw.call("POST", "/runs/create", body))["run"]["info"]["run_id"]
    raw.call("POST", "/runs/log-batch", batch_body(tid, 0, rmse[0], random.Random(0)))
    db = sqlite3.connect(os.path.join(srv.workdir, "mlflow.db"), timeout=60)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    rng = random.Random(2)
    ids = [uuid.uuid4().hex for _ in rmse]
    with db:
        for table in tables:
            cols = [r[1] for r in db.execute("PRAGMA table_info(%s)" % table)]
            if "run_uuid" not in cols:
                continue
            rows = db.execute("SELECT * FROM %s WHERE run_uuid = ?" % table, (tid,)).fetchall()
            if not rows:
                continue
            out = []
            for i in range(1, len(rmse)):
                rid = ids[i]
                for row in rows:
                    r = dict(zip(cols, row))
                    for c, v in r.items():
                        if isinstance(v, str) and tid in v:
                            r[c] = v.replace(tid, rid)
                    key = r.get("key")
                    # Times as if the runs had been made one after another, a few ms apart.
                    for c in ("start_time", "timestamp"):
                        if isinstance(r.get(c), int):
                            r[c] += 3 * i
                    if table == "runs":
                        r["name"] = "run-%d" % i
                    elif table in ("metrics", "latest_metrics") and key == "rmse":
                        r["value"] = rmse[i]
                    elif table in ("metrics", "latest_metrics") and key == "acc":
                        r["value"] = rng.random()
                    elif table == "params" and key == "alpha":
                        r["value"] = ALPHAS[i % 5]
                    elif table == "params" and key == "l1_ratio":
                        r["value"] = str(rng.random())
                    elif table == "tags" and key == "mlflow.runName":
                        r["value"] = "run-%d" % i
                    elif table == "tags" and key == "group":
                        r["value"] = "g%d" % (i % 7)
                    out.append(tuple(r[c] for c in cols))
            db.executemany("INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(cols), ", ".join("?" * len(cols))), out)
    db.close()


def populate(srv, args, exp, rmse):
    t0 = time.perf_counter()
    if srv.name == "mlflow" and args.mlflow_populate == "copy":
        populate_mlflow_db(srv, exp, rmse)
        how = "copied in its database"
    else:
        populate_http(srv, exp, rmse, args.workers)
        how = "through the API, %d clients" % args.workers
    print("  [%s] %d runs to search made in %.1f s (%s, not measured)" % (
        srv.name, len(rmse), time.perf_counter() - t0, how), flush=True)


# --- workloads through MlflowClient ------------------------------------------------------------

def now_ms():
    return int(time.time() * 1000)


def batch_metrics(i, ts):
    """The i-th log-batch payload: 10 keys x 100 steps, unique (key, step) per run."""
    base = (i // 10) * 100  # run i % 10 gets steps base .. base+99 for each key
    return [Metric("m%d" % k, random.random(), ts, base + s) for k in range(10) for s in range(100)]


def client_create(srv, c, ncreate):
    """(4) run creation: create_run + one small log_batch per run, one after another, after
    CREATE_WARMUP untimed ones (the server's and the client's first requests of a kind are slow)."""
    exp = c.create_experiment("create-%d" % time.time_ns())
    rng = random.Random(3)
    for i in range(CREATE_WARMUP + ncreate):
        if i == CREATE_WARMUP:
            t0 = time.perf_counter()
        r = c.create_run(exp, run_name="run-%d" % i)
        c.log_batch(r.info.run_id,
                    metrics=[Metric("rmse", rng.random(), now_ms(), 0), Metric("acc", rng.random(), now_ms(), 0)],
                    params=[Param("alpha", ALPHAS[i % len(ALPHAS)]), Param("l1_ratio", str(rng.random()))],
                    tags=[RunTag("group", "g%d" % (i % 7))])
    dt = time.perf_counter() - t0
    print("  [%s] created %d runs in %.1f s (%.0f runs/s)" % (srv.name, ncreate, dt, ncreate / dt), flush=True)
    return ncreate / dt


def client_search(srv, c, exp, page_len):
    """(2) search: filter on a metric, order by it, first page of 100; median of 7."""
    times = []
    for i in range(3 + 7):  # the first three warm up (mlflow server's workers start cold)
        t0 = time.perf_counter()
        page = c.search_runs([exp], filter_string=SEARCH_FILTER, order_by=SEARCH_ORDER, max_results=100)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    vals = [r.data.metrics["rmse"] for r in page]
    assert len(page) == page_len and vals == sorted(vals) and vals[-1] < 0.5, (len(page), vals[:5])
    print("  [%s] search: median %.1f ms (%s)" % (srv.name, statistics.median(times) * 1000, fmt_list(times)),
          flush=True)
    return statistics.median(times) * 1000


def client_log_batch(srv, c, args):
    """(1) log-batch throughput: 1,000 points a call, round-robin over 10 runs."""
    exp = c.create_experiment("batch-%d" % time.time_ns())
    runs = [c.create_run(exp).info.run_id for _ in range(10)]
    n, t0 = 0, time.perf_counter()
    while True:
        c.log_batch(runs[n % 10], metrics=batch_metrics(n, now_ms()))
        n += 1
        if time.perf_counter() - t0 >= args.duration:
            break
    dt = time.perf_counter() - t0
    print("  [%s] log_batch: %d calls in %.1f s, %.0f points/s" % (srv.name, n, dt, n * CHUNK / dt), flush=True)
    return n * CHUNK / dt


def client_history(srv, c, exp):
    """(3) get_metric_history of a 100,000-point metric logged in 1,000-point batches; median of 3."""
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
    print("  [%s] get_metric_history: median %.0f ms (%s)" % (
        srv.name, statistics.median(times) * 1000, fmt_list(times)), flush=True)
    return statistics.median(times) * 1000, run


# --- the same workloads over raw HTTP ------------------------------------------------------------

class Raw:
    def __init__(self, srv):
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=300)
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


def raw_create(srv, raw, ncreate):
    rexp = json.loads(raw.call("POST", "/experiments/create", json.dumps({"name": "raw-%d" % time.time_ns()})))
    create = json.dumps({"experiment_id": rexp["experiment_id"], "start_time": now_ms()}).encode()
    rng = random.Random(4)
    for i in range(CREATE_WARMUP + ncreate):
        if i == CREATE_WARMUP:
            t0 = time.perf_counter()
        rid = json.loads(raw.call("POST", "/runs/create", create))["run"]["info"]["run_id"]
        raw.call("POST", "/runs/log-batch", batch_body(rid, i, rng.random(), rng))
    return ncreate / (time.perf_counter() - t0)


def raw_search(srv, raw, exp, page_len):
    body = json.dumps({"experiment_ids": [exp], "filter": SEARCH_FILTER, "order_by": SEARCH_ORDER,
                       "max_results": 100, "run_view_type": "ACTIVE_ONLY"}).encode()
    times = []
    for i in range(3 + 7):  # the clock covers the request and reading the body, not decoding it
        t0 = time.perf_counter()
        data = raw.call("POST", "/runs/search", body)
        if i >= 3:  # the first three warm up
            times.append(time.perf_counter() - t0)
    out = json.loads(data)
    assert len(out["runs"]) == page_len, (len(out["runs"]), page_len)
    return statistics.median(times) * 1000


def raw_log_batch(srv, raw, args):
    """Bodies encoded before the clock starts."""
    rexp = json.loads(raw.call("POST", "/experiments/create", json.dumps({"name": "rawbatch-%d" % time.time_ns()})))
    create = json.dumps({"experiment_id": rexp["experiment_id"], "start_time": now_ms()}).encode()
    runs = [json.loads(raw.call("POST", "/runs/create", create))["run"]["info"]["run_id"] for _ in range(10)]
    ts = now_ms()
    bodies = []
    for i in range(args.raw_batches):
        base = (i // 10) * 100
        bodies.append(json.dumps({"run_id": runs[i % 10], "metrics": [
            {"key": "m%d" % k, "value": random.random(), "timestamp": ts, "step": base + s}
            for k in range(10) for s in range(100)]}).encode())
    raw = Raw(srv)  # encoding took longer than servers keep an idle connection
    n, t0 = 0, time.perf_counter()
    for b in bodies:
        raw.call("POST", "/runs/log-batch", b)
        n += 1
        if time.perf_counter() - t0 >= args.duration:
            break
    return n * CHUNK / (time.perf_counter() - t0)


def raw_history(srv, raw, history_run):
    """Follows page tokens like the client (25,000 a page). The page token sits at an end of the
    body; it is found without decoding the points, which are decoded (to count them) after the
    clock stops."""
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
    return statistics.median(times) * 1000


def workloads(srv, args, ncreate, nsearch):
    """Every workload through the client, then over raw HTTP, on one server."""
    os.environ["MLFLOW_TRACKING_TOKEN"] = srv.token or "unused"
    c = MlflowClient(tracking_uri=srv.url)
    # A fresh connection for each raw phase: servers close idle keep-alive connections.
    client, rawres = {}, {}
    client["create"] = client_create(srv, c, ncreate)
    if not args.no_raw:
        rawres["create"] = raw_create(srv, Raw(srv), ncreate)
    exp = c.create_experiment("search-%d" % time.time_ns())
    rmse, page_len = search_data(nsearch)
    populate(srv, args, exp, rmse)
    client["search"] = client_search(srv, c, exp, page_len)
    if not args.no_raw:
        rawres["search"] = raw_search(srv, Raw(srv), exp, page_len)
    client["log_batch"] = client_log_batch(srv, c, args)
    if not args.no_raw:
        rawres["log_batch"] = raw_log_batch(srv, Raw(srv), args)
    client["history"], hrun = client_history(srv, c, exp)
    if not args.no_raw:
        rawres["history"] = raw_history(srv, Raw(srv), hrun)
        print("  [%s] raw HTTP: %s" % (srv.name, {k: round(v, 1) for k, v in rawres.items()}), flush=True)
    if args.client_alone and srv.name == "atelier":
        client["client_alone"] = client_alone(srv, c, args, ncreate, exp, page_len, hrun)
    return client, rawres


# --- the mlflow client alone -------------------------------------------------------------------

class Canned:
    """Answers the mlflow client's requests from a recording of a real server's answers, with no
    network and no server: what the client workloads cost the client itself, the most any server
    could show through it. Answers are keyed by method, path and page_token, so each request gets
    the answer the server gave to the same kind of request (runs/create always the same run,
    log-batch {}, each history page its page)."""

    def __init__(self):
        self.answers = {}
        self.recording = True

    @staticmethod
    def key(request):
        u = urllib.parse.urlsplit(request.url)
        token = urllib.parse.parse_qs(u.query).get("page_token", [""])[0]
        body = request.body or b""
        if not token and b"page_token" in (body if isinstance(body, bytes) else body.encode()):
            try:
                token = json.loads(request.body).get("page_token", "")
            except ValueError:
                pass
        return request.method, u.path, token

    def __enter__(self):
        import requests
        from requests.adapters import HTTPAdapter
        from requests.structures import CaseInsensitiveDict
        self._send = HTTPAdapter.send
        canned = self

        def send(adapter, request, **kw):
            if canned.recording:
                resp = canned._send(adapter, request, **kw)
                canned.answers[canned.key(request)] = (resp.status_code, resp.content, dict(resp.headers))
                return resp
            status, content, headers = canned.answers[canned.key(request)]
            resp = requests.Response()
            resp.status_code, resp._content, resp.reason = status, content, "OK"
            resp.headers, resp.encoding = CaseInsensitiveDict(headers), "utf-8"
            resp.url, resp.request = request.url, request
            return resp

        HTTPAdapter.send = send
        return self

    def __exit__(self, *exc):
        from requests.adapters import HTTPAdapter
        HTTPAdapter.send = self._send


def client_alone(srv, c, args, ncreate, exp, page_len, hrun):
    """The client workloads again, answered by Canned from a recording of srv's answers."""
    class Alone:
        name = "mlflow client alone"
    with Canned() as canned:
        # Record one request of each kind the workloads make.
        e = c.create_experiment("alone-%d" % time.time_ns())
        r = c.create_run(e).info.run_id
        c.log_batch(r, metrics=batch_metrics(0, now_ms()))
        c.search_runs([exp], filter_string=SEARCH_FILTER, order_by=SEARCH_ORDER, max_results=100)
        c.get_metric_history(hrun, "loss")
        canned.recording = False
        out = {"create": client_create(Alone, c, ncreate), "search": client_search(Alone, c, exp, page_len),
               "log_batch": client_log_batch(Alone, c, args)}
        out["history"], _ = client_history(Alone, c, exp)
    return out


def fmt_list(ts):
    return ", ".join("%.0f" % (t * 1000) if t >= 0.01 else "%.1f" % (t * 1000) for t in ts) + " ms"


# --- report ----------------------------------------------------------------------------------------

ROWS = [  # key, label, higher is better, format
    ("log_batch", "log_batch throughput (metric points/s)", True, "{:,.0f}"),
    ("search", "search_runs over %s runs, filter + order_by, page of 100 (median ms)", False, "{:,.1f}"),
    ("history", "get_metric_history, 100,000 points (median ms)", False, "{:,.0f}"),
    ("create", "run creation, %s (runs/s)", True, "{:,.0f}"),
]


def rows(nsearch, creation):
    """ROWS with their labels filled in."""
    for key, label, hib, f in ROWS:
        if key == "search":
            label = label % "{:,}".format(nsearch)
        elif key == "create":
            label = label % creation
        yield key, label, hib, f


def table(rounds, creation, nsearch):
    """rounds: one {server: {key: value}} per round. A cell is the median over the rounds, with
    the range when there are several; a ratio is the median of the rounds' ratios."""
    def values(name, key):
        return [r[name][key] for r in rounds if name in r and key in r[name]]

    def cell(name, key, f):
        v = values(name, key)
        if not v:
            return "n/a"
        if len(v) == 1:
            return f.format(v[0])
        return "%s (%s–%s)" % (f.format(statistics.median(v)), f.format(min(v)), f.format(max(v)))

    def ratio(name, key, hib):
        rs = [(r["atelier"][key] / r[name][key] if hib else r[name][key] / r["atelier"][key])
              for r in rounds if "atelier" in r and name in r and key in r["atelier"] and key in r[name]]
        if not rs:
            return "n/a"
        if len(rs) == 1:
            return "%.1f×" % rs[0]
        return "%.1f× (%.1f–%.1f)" % (statistics.median(rs), min(rs), max(rs))

    lines = ["| workload | mlflow server | FastTrackML | atelier | atelier/mlflow | atelier/FastTrackML |",
             "|---|---|---|---|---|---|"]
    for key, label, hib, f in rows(nsearch, creation):
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            label, cell("mlflow", key, f), cell("fasttrackml", key, f), cell("atelier", key, f),
            ratio("mlflow", key, hib), ratio("fasttrackml", key, hib)))
    return "\n".join(lines)


def alone_table(rounds, alone, nsearch):
    """The client alone beside mlflow server and atelier through the client: alone/mlflow is the
    largest ratio any server could reach through this client."""
    def med(vals):
        return statistics.median(vals) if vals else None

    lines = ["| workload | mlflow server | atelier | the client alone | atelier/mlflow | the most any server can show (alone/mlflow) |",
             "|---|---|---|---|---|---|"]
    for key, label, hib, f in rows(nsearch, "create_run + log_batch"):
        m = med([r["mlflow"][key] for r in rounds if "mlflow" in r])
        a = med([r["atelier"][key] for r in rounds if "atelier" in r])
        c = med([x[key] for x in alone])

        def fmt(v):
            return "n/a" if v is None else f.format(v)

        def ratio(x):
            if x is None or m is None:
                return "n/a"
            return "%.1f×" % ((x / m) if hib else (m / x))
        lines.append("| %s | %s | %s | %s | %s | %s |" % (label, fmt(m), fmt(a), fmt(c), ratio(a), ratio(c)))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="mlflow,fasttrackml,atelier")
    p.add_argument("--runs", type=int, default=10000, help="runs searched, made alike for every server")
    p.add_argument("--create", type=int, default=300, help="runs created one after another, timed")
    p.add_argument("--create-mlflow", type=int, default=100,
                   help="runs mlflow server creates, timed (it makes 2-10 a second here; 0: --create)")
    p.add_argument("--workers", type=int, default=4, help="clients making the searched runs through the API")
    p.add_argument("--mlflow-populate", choices=["copy", "api"], default="copy",
                   help="how mlflow server gets the searched runs: copies in its database, or its API (slow)")
    p.add_argument("--raw-batches", type=int, default=3000, help="max raw log-batch bodies (1,000 points each)")
    p.add_argument("--duration", type=float, default=10, help="seconds of log_batch throughput")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat everything, the servers' order turning each round; cells show median (range)")
    p.add_argument("--no-raw", action="store_true", help="skip the raw HTTP measurements")
    p.add_argument("--no-client-alone", dest="client_alone", action="store_false",
                   help="skip timing the mlflow client alone (answers replayed, no server)")
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

    client_rounds, raw_rounds, notes, creates = [], [], [], {}
    servers = args.servers.split(",")
    try:
        starters = {}
        for name in servers:
            if name == "atelier":
                binary = args.atelier
                if not binary:
                    binary = os.path.join(workdir, "atelier-bin")
                    subprocess.run(["go", "build", "-o", binary, "./cmd/atelier"], cwd=REPO_ROOT, check=True)
                starters[name] = lambda d, b=binary: start_atelier(d, b)
            elif name == "mlflow":
                starters[name] = lambda d: start_mlflow(d, args.mlflow_python)
            elif name == "fasttrackml":
                if not args.fml or not os.path.exists(args.fml):
                    notes.append("FastTrackML skipped: no fml binary (pip install fasttrackml, or --fml)")
                    print(notes[-1], flush=True)
                    continue
                starters[name] = lambda d: start_fml(d, args.fml)
            else:
                sys.exit("unknown server " + name)
        order = [n for n in servers if n in starters]
        for rnd in range(args.rounds):
            client_rounds.append({})
            raw_rounds.append({})
            for name in order[rnd % len(order):] + order[:rnd % len(order)]:
                d = tempfile.mkdtemp(prefix="round%d-" % rnd, dir=workdir)
                print("== %s, round %d (load %s)" % (name, rnd + 1, loadavg()), flush=True)
                try:
                    srv = starters[name](d)
                except RuntimeError as e:
                    notes.append("%s skipped: %s" % (name, str(e).splitlines()[0]))
                    print(e, flush=True)
                    continue
                try:
                    t0 = time.perf_counter()
                    ncreate = args.create_mlflow if name == "mlflow" and args.create_mlflow else args.create
                    creates[name] = ncreate
                    client_rounds[-1][name], raw_rounds[-1][name] = workloads(srv, args, ncreate, args.runs)
                    print("  [%s] done in %.0f s (load %s)" % (name, time.perf_counter() - t0, loadavg()), flush=True)
                finally:
                    srv.stop()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    created = " / ".join("{:,}".format(creates[n]) for n in ("mlflow", "fasttrackml", "atelier") if n in creates)
    alone = [r["atelier"].pop("client_alone") for r in client_rounds if "client_alone" in r.get("atelier", {})]
    print("\n### Through the mlflow Python client (MlflowClient)\n")
    print(table(client_rounds, "create_run + log_batch, %s runs" % created, args.runs))
    if alone:
        print("\n### The mlflow client alone (atelier's answers replayed, no server, no network)\n")
        print(alone_table(client_rounds, alone, args.runs))
    if not args.no_raw:
        print("\n### Raw HTTP (http.client, keep-alive, bodies encoded in advance)\n")
        print(table(raw_rounds, "runs/create + runs/log-batch, %s runs" % created, args.runs))
    print("\nrounds: %d; load at the end %s" % (args.rounds, loadavg()))
    for n in notes:
        print("note: " + n)
    print(json.dumps({"client": client_rounds, "raw": raw_rounds, "client_alone": alone,
                      "searched_runs": args.runs, "created": creates}))


if __name__ == "__main__":
    main()
