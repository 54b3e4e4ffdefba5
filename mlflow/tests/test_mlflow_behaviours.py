"""Issue 19's list of ways atelier answered an MLflow user differently from `mlflow server`, one
case each, driven through the real mlflow client (raw HTTP where the client cannot send the
request: JSON of the wrong type). Behaviours covered elsewhere in this suite:
  - experiment create races, artifact_location, tags:  test_domain_records.test_experiment_concurrent_create_tags_and_location
  - registered-model records, two concurrent renames:   test_domain_records.test_registered_model_records_and_rename
  - get-history paging:                                  test_domain_records.test_metric_history_pages
  - logged models (log_metric(model_id=...) and search_logged_models(datasets=...), log_inputs(models=...),
    READY then FAILED) and a registered-model name with spaces loaded back:
                                                          test_domain_records.test_logged_model_records_and_names_with_spaces
"""

import json
import os
import subprocess
import urllib.request

import pytest


def workspace(server, name):
    status, body = server.api("POST", "/api/v1/workspaces", {"name": name})
    assert status in (200, 201), body
    return server.url + "/workspaces/%s/mlflow" % name


def mlflow_api(server, ws, method, endpoint, body=None):
    """Calls the MLflow REST API of a workspace directly: (status, decoded JSON)."""
    return server.api(method, "/workspaces/%s/mlflow/api/2.0/mlflow/%s" % (ws, endpoint), body)


def test_atelier_run_list_empty_after_mlflow_records(run_mlflow, server):
    """`atelier run list` (the CLI) shows no run after MLflow creates experiments, tags them and
    creates registered models with descriptions and tags but no versions."""
    uri = workspace(server, "cli-records")
    run_mlflow("""
        c = MlflowClient()
        eid = c.create_experiment("cli exp", tags={"team": "a"})
        c.set_experiment_tag(eid, "stage", "dev")
        mlflow.set_experiment("cli fluent")
        c.create_registered_model("cli model", tags={"t": "1"}, description="no versions")
        c.set_registered_model_tag("cli model", "stage", "dev")
        c.update_registered_model("cli model", description="still none")
        out(None)
    """, tracking_uri=uri)
    env = dict(os.environ, ATELIER_SERVER=server.url, ATELIER_TOKEN=server.token,
               ATELIER_WORKSPACE="cli-records", HOME=os.environ.get("HOME", "/tmp"))
    env.pop("ATELIER_CONFIG", None)
    p = subprocess.run([server.binary, "run", "list", "-o", "json", "--include-deleted"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [], p.stdout


def test_registered_model_spaces_and_recreated_name(run_mlflow, server):
    """Names with spaces are allowed; a deleted name created again is a new model: its own
    creation time, none of the old tags or versions."""
    uri = workspace(server, "model-names")
    res = run_mlflow("""
        import time
        c = MlflowClient()
        first = c.create_registered_model("my model v2", tags={"old": "yes"}, description="old")
        got = c.get_registered_model("my model v2")
        found = [m.name for m in c.search_registered_models(filter_string="name = 'my model v2'")]
        like = [m.name for m in c.search_registered_models(filter_string="name LIKE 'my model%'")]
        c.delete_registered_model("my model v2")
        time.sleep(0.05)
        second = c.create_registered_model("my model v2")
        again = c.get_registered_model("my model v2")
        out({"name": got.name, "found": found, "like": like,
             "t1": [first.creation_timestamp, first.last_updated_timestamp],
             "t2": [second.creation_timestamp, second.last_updated_timestamp],
             "t2get": [again.creation_timestamp, again.last_updated_timestamp],
             "tags": again.tags, "desc": again.description, "versions": len(again.latest_versions or [])})
    """, tracking_uri=uri)
    assert res["name"] == "my model v2"
    assert res["found"] == ["my model v2"] and res["like"] == ["my model v2"]
    assert res["t2"][0] > res["t1"][0] and res["t2"][1] > res["t1"][1], res
    assert res["t2get"] == res["t2"]
    assert res["tags"] == {} and not res["desc"] and res["versions"] == 0


def test_parent_run_id_naming_a_missing_run(run_mlflow, server):
    """A mlflow.parentRunId tag naming a run the server does not hold (made elsewhere) is kept as a
    tag, as MLflow keeps it, not a 404."""
    uri = workspace(server, "parent-missing")
    res = run_mlflow("""
        c = MlflowClient()
        eid = c.create_experiment("parents")
        missing = "0123456789abcdef0123456789abcdef"
        r = c.create_run(eid, tags={"mlflow.parentRunId": missing})
        with mlflow.start_run(experiment_id=eid, tags={"mlflow.parentRunId": missing}) as fluent:
            mlflow.log_metric("m", 1.0)
        late = c.create_run(eid).info.run_id
        c.set_tag(late, "mlflow.parentRunId", missing)
        kids = sorted(x.info.run_id for x in c.search_runs([eid], "tags.mlflow.parentRunId = '%s'" % missing))
        out({"tag": c.get_run(r.info.run_id).data.tags.get("mlflow.parentRunId"),
             "fluent": c.get_run(fluent.info.run_id).data.tags.get("mlflow.parentRunId"),
             "late": c.get_run(late).data.tags.get("mlflow.parentRunId"),
             "kids": kids, "want": sorted([r.info.run_id, fluent.info.run_id, late])})
    """, tracking_uri=uri)
    missing = "0123456789abcdef0123456789abcdef"
    assert res["tag"] == missing and res["fluent"] == missing and res["late"] == missing
    assert res["kids"] == res["want"]


def test_equal_keys_order_and_pages(run_mlflow, server):
    """Runs that tie on the ordering asked for go as MLflow's server breaks ties (start time newest
    first, then run id ascending), so pages of any size concatenate to the whole search."""
    uri = workspace(server, "equal-keys")
    res = run_mlflow("""
        from mlflow.entities import Metric
        c = MlflowClient()
        eid = c.create_experiment("ties")
        for i in range(7):
            r = c.create_run(eid)
            c.log_batch(r.info.run_id, metrics=[Metric("same", 1.0, 1, 0)], params=[mlflow.entities.Param("p", "x")])
        def walk(size, order_by=None):
            got, token = [], None
            while True:
                page = c.search_runs([eid], max_results=size, order_by=order_by, page_token=token)
                got += [x.info.run_id for x in page]
                token = page.token
                if not token:
                    return got
        runs = c.search_runs([eid])
        out({"want": [x.info.run_id for x in sorted(runs, key=lambda x: (-x.info.start_time, x.info.run_id))],
             "all": [x.info.run_id for x in runs],
             "p2": walk(2), "p3": walk(3), "metric": walk(2, ["metrics.same DESC"]),
             "param": walk(3, ["params.p ASC"]), "status": walk(4, ["attributes.status"]),
             "df": mlflow.search_runs([eid])["run_id"].tolist()})
    """, tracking_uri=uri)
    want = res["want"]
    assert res["all"] == want
    for k in ["p2", "p3", "metric", "param", "status", "df"]:
        assert res[k] == want, k


def test_equal_start_times_order_by_run_id(run_mlflow, server):
    """create_run(start_time=...) keeps the time given (MLflow does; importers rely on it), and
    runs that start at the same millisecond are ordered by run id ascending on every page."""
    uri = workspace(server, "equal-starts")
    res = run_mlflow("""
        c = MlflowClient()
        eid = c.create_experiment("ties")
        ids = [c.create_run(eid, start_time=1700000000000).info.run_id for _ in range(5)]
        page1 = c.search_runs([eid], max_results=2)
        page2 = c.search_runs([eid], max_results=10, page_token=page1.token)
        out({"ids": sorted(ids), "starts": sorted({x.info.start_time for x in page1}),
             "pages": [x.info.run_id for x in page1] + [x.info.run_id for x in page2]})
    """, tracking_uri=uri)
    assert res["starts"] == [1700000000000]
    assert res["pages"] == res["ids"]


def test_logged_model_missing_source_run_and_finalize(run_mlflow, server):
    """create_logged_model with a source_run_id the server does not hold records it as given (not
    a 404); finalizing READY then FAILED ends FAILED; metrics logged with model_id reach it."""
    uri = workspace(server, "lm-missing-run")
    res = run_mlflow("""
        from mlflow.entities import LoggedModelStatus
        c = MlflowClient()
        eid = c.create_experiment("lm")
        missing = "fedcba9876543210fedcba9876543210"
        m = c.create_logged_model(eid, name="elsewhere", source_run_id=missing, params={"k": "v"})
        c.finalize_logged_model(m.model_id, LoggedModelStatus.READY)
        ready = str(c.get_logged_model(m.model_id).status)
        c.finalize_logged_model(m.model_id, LoggedModelStatus.FAILED)
        got = c.get_logged_model(m.model_id)
        with mlflow.start_run(experiment_id=eid):
            mlflow.log_metric("acc", 0.9, model_id=m.model_id)
        got2 = c.get_logged_model(m.model_id)
        failed = mlflow.search_logged_models(experiment_ids=[eid], filter_string="status = 'FAILED'", output_format="list")
        out({"src": got.source_run_id, "ready": ready, "status": str(got.status), "params": got.params,
             "metrics": [(x.key, x.value) for x in got2.metrics], "failed": [x.model_id for x in failed],
             "id": m.model_id})
    """, tracking_uri=uri)
    assert res["src"] == "fedcba9876543210fedcba9876543210"
    assert "READY" in res["ready"] and "FAILED" in res["status"]
    assert res["params"] == {"k": "v"}
    assert res["metrics"] == [["acc", 0.9]]
    assert res["failed"] == [res["id"]]


def test_model_version_sources_mlflow_refuses(run_mlflow, server):
    """Sources the newest MLflow server refuses with 400 INVALID_PARAMETER_VALUE are refused the
    same way: a local path outside a run's (local) artifact folder, a runs:/ URI of a run the
    server does not hold or with another run_id, an mlflow-artifacts:/ URI outside a run."""
    uri = workspace(server, "mv-refused")
    res = run_mlflow("""
        c = MlflowClient()
        with mlflow.start_run() as run:
            mlflow.log_text("x", "model/MLmodel")
        with mlflow.start_run() as other:
            pass
        c.create_registered_model("refused")
        rid = run.info.run_id
        cases = {
            "local": ("/tmp/some/model", None),
            "file": ("file:///tmp/some/model", None),
            "runs_missing": ("runs:/0000000000000000000000000000dead/model", None),
            "runs_other": ("runs:/%s/model" % rid, other.info.run_id),
            "artifacts_outside": ("mlflow-artifacts:/somewhere/else/model", None),
            "relative": ("s3://bucket/a/../../model", None),
        }
        got = {}
        for k, (src, run_id) in cases.items():
            try:
                c.create_model_version("refused", src, run_id=run_id)
                got[k] = "created"
            except MlflowException as e:
                got[k] = [e.error_code, e.get_http_status_code(), e.message]
        ok = c.create_model_version("refused", "runs:/%s/model" % rid, run_id=rid)
        out({"got": got, "ok": [ok.version, ok.run_id == rid]})
    """, tracking_uri=uri)
    for k, got in res["got"].items():
        assert got != "created" and got[:2] == ["INVALID_PARAMETER_VALUE", 400], (k, got)
        assert "outputs/" not in got[2], (k, got)
    assert res["ok"] == ["1", True]


EXTERNAL_SOURCES = [
    "s3://bucket/path/model",
    "gs://bucket/path/model",
    "dbfs:/databricks/mlflow/model",
    "https://example.com/models/model.tar.gz",
    "http://example.com/models/model",
]


def test_model_version_external_sources(run_mlflow, server):
    """MLflow records a version's source as a pointer: s3://, gs://, dbfs:/, http(s)://, with or
    without a run_id the server does not hold (it looks no run up for a remote source), and runs:/
    to a path without files (with the run's own run_id, as the newest MLflow asks); the version
    reads back with the source and run id as given."""
    uri = workspace(server, "mv-external")
    res = run_mlflow("""
        c = MlflowClient()
        with mlflow.start_run() as run:
            mlflow.log_metric("m", 1.0)
        c.create_registered_model("external")
        missing = "0000000000000000000000000000dead"
        cases = [(s, None) for s in %r] + [(s, missing) for s in %r]
        cases.append(("runs:/%%s/no-files-here" %% run.info.run_id, run.info.run_id))
        got = []
        for s, run_id in cases:
            try:
                mv = c.create_model_version("external", s, run_id=run_id)
                v = c.get_model_version("external", mv.version)
                got.append([s, run_id, v.source, v.run_id or None])
            except MlflowException as e:
                got.append([s, run_id, e.error_code, e.get_http_status_code(), e.message[:200]])
        out(got)
    """ % (EXTERNAL_SOURCES, EXTERNAL_SOURCES), tracking_uri=uri)
    for case in res:
        s, run_id = case[:2]
        assert case[2:] == [s, run_id], case


def test_artifacts_proxy_outside_a_run(run_mlflow, server):
    """mlflow-artifacts:/ paths outside <experiment>/<run>/artifacts (what MlflowClient helpers and
    artifact repositories write) upload, list and download, served with a content type."""
    uri = workspace(server, "proxy-free")
    res = run_mlflow("""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        open("table.json", "w").write('{"a": 1}')
        open("notes.txt", "w").write("hello")
        repo = get_artifact_repository("mlflow-artifacts:/shared/dir")
        repo.log_artifact("table.json")
        repo.log_artifact("notes.txt", artifact_path="sub")
        listed = sorted(f.path for f in repo.list_artifacts())
        local = repo.download_artifacts("sub/notes.txt")
        out({"listed": listed, "text": open(local).read(),
             "loaded": mlflow.artifacts.load_dict("mlflow-artifacts:/shared/dir/table.json")})
    """, tracking_uri=uri)
    assert res["listed"] == ["sub", "table.json"]
    assert res["text"] == "hello" and res["loaded"] == {"a": 1}
    req = urllib.request.Request(server.url + "/workspaces/proxy-free/mlflow/api/2.0/mlflow-artifacts/artifacts/shared/dir/table.json")
    req.add_header("Authorization", "Bearer " + server.token)
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"].startswith("application/json")


def test_artifact_content_types(run_mlflow, server):
    """Run artifacts uploaded through the proxy come back with content types by extension, the
    proxy's own error messages name MLflow's paths (no atelier 'outputs/' prefix)."""
    uri = workspace(server, "content-types")
    res = run_mlflow("""
        with mlflow.start_run() as run:
            mlflow.log_dict({"a": 1}, "d/data.json")
            mlflow.log_text("hi", "d/notes.txt")
            mlflow.log_text("<p>x</p>", "page.html")
        c = MlflowClient()
        try:
            c.download_artifacts(run.info.run_id, "d/absent.txt", dst_path=".")
            err = None
        except Exception as e:
            err = str(e)
        try:
            c.create_registered_model("ct")
            c.create_model_version("ct", "runs:/%s/nowhere" % run.info.run_id, run_id=run.info.run_id)
            mv_err = None
        except MlflowException as e:
            mv_err = e.message
        out({"run": run.info.run_id, "exp": run.info.experiment_id, "err": err, "mv_err": mv_err})
    """, tracking_uri=uri)
    base = server.url + "/workspaces/content-types/mlflow/api/2.0/mlflow-artifacts/artifacts/%s/%s/artifacts/" % (res["exp"], res["run"])
    types = {}
    for p in ["d/data.json", "d/notes.txt", "page.html"]:
        req = urllib.request.Request(base + p)
        req.add_header("Authorization", "Bearer " + server.token)
        with urllib.request.urlopen(req, timeout=30) as r:
            types[p] = r.headers["Content-Type"]
    assert types["d/data.json"].startswith("application/json"), types
    assert types["d/notes.txt"].startswith("text/plain"), types
    assert types["page.html"].startswith("text/html"), types
    assert res["err"] and "outputs/" not in res["err"], res["err"]
    if res["mv_err"] is not None:  # a pointer once external sources are kept; until then a clear refusal
        assert "outputs/" not in res["mv_err"], res["mv_err"]


def test_json_types_and_messages(server):
    """JSON numbers where MLflow wants strings are a 400 INVALID_PARAMETER_VALUE as MLflow's server
    answers ({"name": 123} makes no experiment; run_id 31 is a 400, not a 404), and messages name
    the wire's types, never Go's (no []mlflow.inMetric)."""
    ws = "json-types"
    workspace(server, ws)

    def bad(method, endpoint, body):
        status, resp = mlflow_api(server, ws, method, endpoint, body)
        assert status == 400, (endpoint, body, status, resp)
        assert resp["error_code"] == "INVALID_PARAMETER_VALUE", (endpoint, resp)
        msg = resp["message"]
        assert "mlflow." not in msg and "[]" not in msg and "jstring" not in msg and "Go " not in msg, msg
        return msg

    assert "name" in bad("POST", "experiments/create", {"name": 123})
    status, body = mlflow_api(server, ws, "GET", "experiments/get-by-name?experiment_name=123")
    assert status == 404 and body["error_code"] == "RESOURCE_DOES_NOT_EXIST", (status, body)

    status, body = mlflow_api(server, ws, "POST", "experiments/create", {"name": "typed"})
    assert status == 200, body
    eid = body["experiment_id"]
    assert isinstance(eid, str)
    status, body = mlflow_api(server, ws, "POST", "runs/create", {"experiment_id": eid, "start_time": 1})
    assert status == 200, body
    rid = body["run"]["info"]["run_id"]

    assert "run_id" in bad("POST", "runs/update", {"run_id": 31, "status": "FINISHED"})
    assert "run_id" in bad("POST", "runs/log-parameter", {"run_id": 31, "key": "k", "value": "v"})
    bad("POST", "runs/create", {"experiment_id": 0})
    bad("POST", "runs/log-parameter", {"run_id": rid, "key": "k", "value": 5})
    bad("POST", "runs/set-tag", {"run_id": rid, "key": 1, "value": "v"})
    msg = bad("POST", "runs/log-batch", {"run_id": rid, "metrics": {"key": "m", "value": 1, "timestamp": 1, "step": 0}})
    assert "inMetric" not in msg and "metrics" in msg, msg
    bad("POST", "runs/log-batch", {"run_id": rid, "metrics": [{"key": "m", "value": "high", "timestamp": 1, "step": 0}]})
    bad("POST", "registered-models/create", {"name": 7})
    status, body = mlflow_api(server, ws, "GET", "runs/get?run_id=" + rid)
    assert status == 200 and not body["run"]["data"].get("params"), body  # the bad log-parameter logged nothing
    status, body = mlflow_api(server, ws, "POST", "experiments/search", {"max_results": 1000})
    assert status == 200 and [e["name"] for e in body["experiments"]].count("123") == 0, body
