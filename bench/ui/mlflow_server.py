"""Runs `mlflow server` for bench/ui's side by side with the MLflow UI, filled with the data
bench/ui gives atelier: an experiment "bench-ui" of N runs (params alpha and seed, tag team,
metrics rmse and r2, the same values run for run) and a run "big" in an experiment
"bench-ui-big" with 10 metrics m0..m9 of P points each (one spike each, at step P/3).

mlflow server's own SQLite backend (sqlite:///DIR/mlflow.db), on 127.0.0.1. One run of each kind
is made through its REST API; the others (and the big run's points) are written into its SQLite
database with SQL in bulk, copies of the rows mlflow wrote for the first (every table with a
run_uuid column), with their own ids, names and values: through its API mlflow server makes a few
runs a second here, so 100,000 would take hours. The server only reads them afterwards.

Prints one JSON line on stdout when ready ({"url", "version", "experiment_id", "big_experiment_id",
"big_run_id", "fill_seconds"}), then serves until stdin closes, and stops the server.

    python bench/ui/mlflow_server.py --runs 100000 --points 1000000   (with mlflow installed)
"""
import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

ALPHAS = ["0.01", "0.1", "1", "10"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def call(url, path, body=None):
    for attempt in range(5):
        req = urllib.request.Request(url + "/api/2.0/mlflow" + path, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"}, method="POST" if body is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                return json.loads(r.read() or b"{}")
        except (ConnectionError, urllib.error.URLError) as e:
            # A worker of mlflow server restarting (slow first requests on a loaded machine).
            print("mlflow server: %s %s: %s; again" % (path, attempt, e), file=sys.stderr)
            time.sleep(2)
    raise SystemExit("mlflow server does not answer " + path)


def rmse(i):
    return 40 + ((i * 7919) % 10000) / 200  # as bench/ui gives atelier's runs


def r2(i):
    return (i % 100) / 100


def copy_runs(db, tid, n, make):
    """Copies the rows of run tid in every table with a run_uuid column n times: make(i, table, row)
    edits row i's copy (a dict) in place; row i gets its own run id."""
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    ids = [uuid.uuid4().hex for _ in range(n)]
    for table in tables:
        cols = [r[1] for r in db.execute("PRAGMA table_info(%s)" % table)]
        if "run_uuid" not in cols:
            continue
        rows = [dict(zip(cols, row)) for row in db.execute("SELECT * FROM %s WHERE run_uuid = ?" % table, (tid,)).fetchall()]
        if not rows:
            continue
        out = []
        for i in range(1, n):
            rid = ids[i]
            for row in rows:
                r = dict(row)
                for c, v in r.items():
                    if isinstance(v, str) and tid in v:
                        r[c] = v.replace(tid, rid)
                make(i, table, r)
                out.append(tuple(r[c] for c in cols))
            if len(out) > 200000:
                db.executemany("INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(cols), ", ".join("?" * len(cols))), out)
                out = []
        if out:
            db.executemany("INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(cols), ", ".join("?" * len(cols))), out)


def fill(url, dbpath, nruns, npoints, nmetrics):
    exp = call(url, "/experiments/create", {"name": "bench-ui"})["experiment_id"]
    now = int(time.time() * 1000)
    tid = call(url, "/runs/create", {"experiment_id": exp, "start_time": now, "run_name": "run-000000"})["run"]["info"]["run_id"]
    call(url, "/runs/log-batch", {"run_id": tid,
                                  "metrics": [{"key": "rmse", "value": rmse(0), "timestamp": 1, "step": 0},
                                              {"key": "r2", "value": r2(0), "timestamp": 1, "step": 0}],
                                  "params": [{"key": "alpha", "value": ALPHAS[0]}, {"key": "seed", "value": "0"}],
                                  "tags": [{"key": "team", "value": "vision"}]})
    bexp = call(url, "/experiments/create", {"name": "bench-ui-big"})["experiment_id"]
    bid = call(url, "/runs/create", {"experiment_id": bexp, "start_time": now, "run_name": "big"})["run"]["info"]["run_id"]
    call(url, "/runs/log-batch", {"run_id": bid, "metrics": [{"key": "m%d" % m, "value": 0, "timestamp": 1_700_000_000_000, "step": 0} for m in range(nmetrics)]})

    db = sqlite3.connect(dbpath, timeout=120)
    db.execute("PRAGMA journal_mode = WAL")

    def make(i, table, r):
        key = r.get("key")
        if table == "runs":
            r["name"] = "run-%06d" % i
            r["start_time"] = now + i
        elif table in ("metrics", "latest_metrics") and key == "rmse":
            r["value"] = rmse(i)
        elif table in ("metrics", "latest_metrics") and key == "r2":
            r["value"] = r2(i)
        elif table == "params" and key == "alpha":
            r["value"] = ALPHAS[i % 4]
        elif table == "params" and key == "seed":
            r["value"] = str(i)
        elif table == "tags" and key == "mlflow.runName":
            r["value"] = "run-%06d" % i
        elif table == "tags" and key == "team":
            r["value"] = ["vision", "nlp"][i % 2]

    with db:
        copy_runs(db, tid, nruns, make)
    # The big run's points: as bench/ui logs them to atelier (value (i % 1000) / 1000, 100 at P/3).
    cols = [r[1] for r in db.execute("PRAGMA table_info(metrics)")]
    with db:
        for m in range(nmetrics):
            base = dict(zip(cols, db.execute("SELECT * FROM metrics WHERE run_uuid = ? AND key = ?", (bid, "m%d" % m)).fetchone()))
            out = []
            for i in range(1, npoints):
                base["step"], base["timestamp"] = i, 1_700_000_000_000 + i
                base["value"] = 100.0 if i == npoints // 3 else (i % 1000) / 1000
                out.append(tuple(base[c] for c in cols))
                if len(out) >= 200000:
                    db.executemany("INSERT INTO metrics (%s) VALUES (%s)" % (", ".join(cols), ", ".join("?" * len(cols))), out)
                    out = []
            if out:
                db.executemany("INSERT INTO metrics (%s) VALUES (%s)" % (", ".join(cols), ", ".join("?" * len(cols))), out)
            last = npoints - 1
            db.execute("UPDATE latest_metrics SET step = ?, timestamp = ?, value = ? WHERE run_uuid = ? AND key = ?",
                       (last, 1_700_000_000_000 + last, (last % 1000) / 1000, bid, "m%d" % m))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return exp, bexp, bid


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100000)
    ap.add_argument("--points", type=int, default=1000000)
    ap.add_argument("--metrics", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1, help="mlflow server's --workers (with more, uvicorn restarts workers that start slower than its health check on a loaded machine)")
    a = ap.parse_args()
    from importlib.metadata import version
    d = tempfile.mkdtemp(prefix="atelier-bench-mlflow-")
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    log = open(os.path.join(d, "server.log"), "w")
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", "sqlite:///%s/mlflow.db" % d,
                             "--default-artifact-root", "%s/artifacts" % d, "--host", "127.0.0.1", "--port", str(port),
                             "--workers", str(a.workers)], stdout=log, stderr=log, start_new_session=True, env=env)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/health", timeout=2).read()
                break
            except Exception:
                if proc.poll() is not None:
                    raise SystemExit("mlflow server exited; its log is " + log.name)
                time.sleep(0.2)
        t0 = time.time()
        exp, bexp, bid = fill(url, os.path.join(d, "mlflow.db"), a.runs, a.points, a.metrics)
        print(json.dumps({"url": url, "version": version("mlflow"), "experiment_id": exp, "big_experiment_id": bexp,
                          "big_run_id": bid, "fill_seconds": round(time.time() - t0, 1)}), flush=True)
        sys.stdin.read()
    except BaseException:
        log.flush()
        sys.stderr.write(open(log.name).read()[-4000:])
        raise
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
