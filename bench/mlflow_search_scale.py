#!/usr/bin/env python3
"""Search at scale through the MLflow API: atelier beside `mlflow server` (issue 19).

Over raw HTTP (keep-alive, bodies encoded before the clock starts), one server at a time on a
fresh data directory, the first page of each search, median of --reps (5) after 2 that warm up:

  runs      --runs runs (made as bench/mlflow_compare.py makes them: through the API for
            atelier, copied in its SQLite database for mlflow server): a filter on one attribute
            (run_name), on a param, on a tag, a filter that matches nothing, and ordering by a
            metric the filter does not use; page of 100.
  records   --records experiments, registered models and logged models, made through the API by
            --workers clients (not timed), each with a tag (and logged models a param and a metric
            measured on a data set): searches by tag, by name, that match nothing, and logged
            models ordered by the metric; page of 100.

Usage: python3 bench/mlflow_search_scale.py [--servers mlflow,atelier] [--runs 300000]
       [--records 2000] [--workers 8] [--reps 5] [--mlflow-python PY]
"""

import argparse
import concurrent.futures
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mlflow_compare as mc  # noqa: E402  (re-executes under the test suite's mlflow venv if needed)

NOTES = []

RUN_SEARCHES = [
    ("attribute: run_name = one run", {"filter": "attributes.run_name = 'run-123'"}, 1),
    ("param: params.alpha = '0.1'", {"filter": "params.alpha = '0.1'"}, 100),
    ("tag: tags.group = 'g3'", {"filter": "tags.group = 'g3'"}, 100),
    ("no match: params.alpha = 'none'", {"filter": "params.alpha = 'none'"}, 0),
    ("order by metrics.acc DESC, no filter", {"order_by": ["metrics.acc DESC"]}, 100),
]


REPS = 5


def timed(raw, method, path, body, want=None, key=None):
    times = []
    for i in range(2 + REPS):
        t0 = time.perf_counter()
        data = raw.call(method, path, body)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    if want is not None:
        got = len(json.loads(data).get(key, []))
        if got != want:  # told, not fatal: the row then compares different answers
            print("  ! %s %s found %d, expected %d" % (path, (body or b"")[:120], got, want), flush=True)
            NOTES.append("%s %s: %d found, %d expected" % (raw.name, path, got, want))
    return statistics.median(times) * 1000


class Retrying(mc.Raw):
    """A connection that reconnects and sends again a request the server closed the connection
    on without answering (mlflow server drops idle keep-alive connections after a few seconds,
    which a loaded machine reaches between two requests)."""

    def __init__(self, srv):
        super().__init__(srv)
        self.srv = srv

    def call(self, method, path, body=None):
        try:
            return super().call(method, path, body)
        except (mc.http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.conn.close()
            self.conn = mc.Raw(self.srv).conn
            return super().call(method, path, body)


def make_records(srv, n, workers):
    """n experiments, n registered models and n logged models (in one experiment, measured by one
    run), each tagged group=g(i%7); through the API, not timed."""
    raw = Retrying(srv)
    exp = json.loads(raw.call("POST", "/experiments/create", json.dumps({"name": "lm-home"})))["experiment_id"]
    rid = json.loads(raw.call("POST", "/runs/create", json.dumps({"experiment_id": exp, "start_time": mc.now_ms()})))["run"]["info"]["run_id"]

    def work(k):
        raw, rng = Retrying(srv), random.Random(k)
        for i in range(k, n, workers):
            g = [{"key": "group", "value": "g%d" % (i % 7)}]
            raw.call("POST", "/experiments/create", json.dumps({"name": "exp-%d" % i, "tags": g}))
            raw.call("POST", "/registered-models/create", json.dumps({"name": "model-%d" % i, "tags": g}))
            m = json.loads(raw.call("POST", "/logged-models", json.dumps({
                "experiment_id": exp, "name": "lm-%d" % i, "source_run_id": rid, "tags": g,
                "params": [{"key": "alpha", "value": mc.ALPHAS[i % 5]}]})))["model"]["info"]["model_id"]
            raw.call("POST", "/runs/log-batch", json.dumps({"run_id": rid, "metrics": [{
                "key": "acc", "value": rng.random(), "timestamp": mc.now_ms(), "step": 0, "model_id": m,
                "dataset_name": "eval-%d" % (i % 3), "dataset_digest": "d"}]}))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(work, k) for k in range(workers)]:
            f.result()
    return exp


def record_searches(srv, raw, exp, n):
    page = min(100, sum(1 for i in range(n) if i % 7 == 3))
    like = min(100, sum(1 for i in range(n) if str(i).startswith("1")))
    alpha = min(100, sum(1 for i in range(n) if i % 5 == 2))
    eval1 = min(100, sum(1 for i in range(n) if i % 3 == 1))
    q = lambda d: json.dumps(d).encode()  # noqa: E731
    out = {}
    out["experiments: tags.group = 'g3'"] = timed(raw, "POST", "/experiments/search",
                                                  q({"filter": "tags.group = 'g3'", "max_results": 100}), page, "experiments")
    out["experiments: name = one"] = timed(raw, "POST", "/experiments/search",
                                           q({"filter": "name = 'exp-17'", "max_results": 100}), 1, "experiments")
    out["experiments: no match"] = timed(raw, "POST", "/experiments/search",
                                         q({"filter": "tags.group = 'none'", "max_results": 100}), 0, "experiments")
    out["registered models: tags.group = 'g3'"] = timed(raw, "GET", "/registered-models/search?max_results=100&filter=" +
                                                        mc.urllib.parse.quote("tags.group = 'g3'"), None, page, "registered_models")
    out["registered models: name LIKE 'model-1%'"] = timed(raw, "GET", "/registered-models/search?max_results=100&filter=" +
                                                           mc.urllib.parse.quote("name LIKE 'model-1%'"), None, like, "registered_models")
    out["registered models: no match"] = timed(raw, "GET", "/registered-models/search?max_results=100&filter=" +
                                               mc.urllib.parse.quote("tags.group = 'none'"), None, 0, "registered_models")
    out["logged models: params.alpha = '0.1', order by metrics.acc"] = timed(
        raw, "POST", "/logged-models/search", q({"experiment_ids": [exp], "filter": "params.alpha = '0.1'", "max_results": 100,
                                                  "order_by": [{"field_name": "metrics.acc", "ascending": False}]}), alpha, "models")
    out["logged models: datasets = eval-1"] = timed(
        raw, "POST", "/logged-models/search", q({"experiment_ids": [exp], "max_results": 100,
                                                  "datasets": [{"dataset_name": "eval-1"}]}), eval1, "models")
    return out


def run_searches(srv, raw, exp):
    out = {}
    for name, extra, want in RUN_SEARCHES:
        body = dict({"experiment_ids": [exp], "max_results": 100, "run_view_type": "ACTIVE_ONLY"}, **extra)
        out["runs: " + name] = timed(raw, "POST", "/runs/search", json.dumps(body).encode(), want, "runs")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", default="mlflow,atelier")
    ap.add_argument("--runs", type=int, default=300000)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--mlflow-python", default=sys.executable)
    ap.add_argument("--bin", default="")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions of each search (after 2 that warm up)")
    args = ap.parse_args()
    global REPS
    REPS = args.reps
    work = tempfile.mkdtemp(prefix="atelier-search-scale-")
    binary = args.bin or os.path.join(work, "atelier-bin")  # not "atelier": the server's directory
    if not args.bin:
        subprocess.run(["go", "build", "-o", binary, "./cmd/atelier"], cwd=mc.REPO_ROOT, check=True)
    results = {}
    for name in args.servers.split(","):
        srv = mc.start_mlflow(work, args.mlflow_python) if name == "mlflow" else mc.start_atelier(work, binary)
        try:
            raw = Retrying(srv)
            raw.name = name
            res = {}
            if args.records:
                t0 = time.perf_counter()
                exp = make_records(srv, args.records, args.workers)
                print("  [%s] %d experiments, registered models and logged models made in %.1f s (not measured)" % (
                    name, args.records, time.perf_counter() - t0), flush=True)
                res.update(record_searches(srv, raw, exp, args.records))
            if args.runs:
                rexp = json.loads(raw.call("POST", "/experiments/create", json.dumps({"name": "runs"})))["experiment_id"]
                rmse, _ = mc.search_data(args.runs)
                pargs = argparse.Namespace(mlflow_populate="copy", workers=args.workers)
                mc.populate(srv, pargs, rexp, rmse)
                raw = Retrying(srv)  # a new connection: servers close idle ones while runs are made
                raw.name = name
                res.update(run_searches(srv, raw, rexp))
            results[name] = res
            for k, v in res.items():
                print("  [%s] %s: %.1f ms" % (name, k, v), flush=True)
        finally:
            srv.stop()
    names = list(results)
    print("\nload average %s\n" % mc.loadavg())
    print("| search (first page, median of %d, ms) | " % REPS + " | ".join(names) + (" | mlflow ÷ atelier |" if len(names) == 2 else " |"))
    print("|---" * (len(names) + 1 + (len(names) == 2)) + "|")
    for k in results[names[0]]:
        vals = [results[n].get(k) for n in names]
        row = "| %s | %s |" % (k, " | ".join("%.1f" % v if v is not None else "–" for v in vals))
        if len(names) == 2 and None not in vals and "atelier" in names and "mlflow" in names:
            row += " %.0f× |" % (results["mlflow"][k] / results["atelier"][k])
        print(row)
    for n in NOTES:
        print("\nnote: " + n)


if __name__ == "__main__":
    main()
