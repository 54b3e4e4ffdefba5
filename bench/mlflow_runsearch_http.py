#!/usr/bin/env python3
"""Run searches over a large data directory through the MLflow API, raw HTTP (issue 19).

The data set is the one `BenchmarkRunSearchScale` (sqlite/runsearch_bench_test.go) builds once:
300,000 runs in experiment "bench", as MLflow clients make them (started, named run-<i>, params
alpha (5 values) and seed, tag group (7 values), metric acc). Serve a copy of it and search:

  go test ./sqlite/ -run '^$' -bench RunSearchScale -benchtime 1x   # builds $TMPDIR/atelier-bench-runsearch-300000.db
  mkdir -p /tmp/rsdata && cp /tmp/atelier-bench-runsearch-300000.db /tmp/rsdata/atelier.db
  atelier server --data /tmp/rsdata --addr 127.0.0.1:8711 &
  python3 bench/mlflow_runsearch_http.py --url http://127.0.0.1:8711 --token-file /tmp/rsdata/admin-token

Each search: the first page of 100 (`runs/search`, keep-alive, median of 9 after 2 that warm up).
"""

import argparse
import http.client
import json
import statistics
import time
import urllib.parse

CASES = [
    ("`attributes.run_name` = one run", {"filter": "attributes.run_name = 'run-123'"}, 1),
    ("`params.alpha = '0.1'`", {"filter": "params.alpha = '0.1'"}, 100),
    ("`tags.group = 'g3'`", {"filter": "tags.group = 'g3'"}, 100),
    ("a filter that matches nothing", {"filter": "params.alpha = 'none'"}, 0),
    ("`attributes.status = 'FAILED'` (none)", {"filter": "attributes.status = 'FAILED'"}, 0),
    ("order by `metrics.acc DESC`, no filter", {"order_by": ["metrics.acc DESC"]}, 100),
    ("order by `metrics.acc ASC`, no filter", {"order_by": ["metrics.acc ASC"]}, 100),
    ("`params.alpha = '0.1'`, order by `metrics.acc DESC`", {"filter": "params.alpha = '0.1'", "order_by": ["metrics.acc DESC"]}, 100),
    ("no filter (newest first)", {}, 100),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8711")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--experiment", default="bench")
    args = ap.parse_args()
    u = urllib.parse.urlsplit(args.url)
    c = http.client.HTTPConnection(u.hostname, u.port)
    headers = {"Authorization": "Bearer " + open(args.token_file).read().strip(), "Content-Type": "application/json"}

    def call(method, path, body=None):
        c.request(method, "/api/2.0/mlflow" + path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            raise SystemExit("%s %s: %d %s" % (method, path, r.status, data[:300]))
        return data

    exp = json.loads(call("GET", "/experiments/get-by-name?experiment_name=" + args.experiment))["experiment"]["experiment_id"]
    print("| search (first page of 100) | median ms | range ms | runs found |")
    print("|---|---:|---|---|")
    for name, q, want in CASES:
        body = json.dumps(dict(q, experiment_ids=[exp], max_results=100)).encode()
        times = []
        for i in range(2 + 9):
            t0 = time.perf_counter()
            data = call("POST", "/runs/search", body)
            if i >= 2:
                times.append(time.perf_counter() - t0)
        got = len(json.loads(data).get("runs", []))
        print("| %s | %.1f | %.1f–%.1f | %d%s |" % (name, statistics.median(times) * 1000, min(times) * 1000,
                                                 max(times) * 1000, got, "" if got == want else " (expected %d)" % want))


if __name__ == "__main__":
    main()
