"""The unmodified mlflow client logging to atelier, checked from both sides."""

import math


def atelier_run(server, run_id, ws="default"):
    status, run = server.api("GET", "/api/v1/workspaces/%s/runs/%s" % (ws, run_id))
    assert status == 200, run
    return run


def atelier_metrics(server, run_id, ws="default"):
    status, body = server.api("GET", "/api/v1/workspaces/%s/runs/%s/metrics" % (ws, run_id))
    assert status == 200, body
    return body


def test_fluent_run(run_mlflow, server):
    res = run_mlflow("""
        mlflow.set_experiment("fluent")
        with mlflow.start_run(run_name="first") as run:
            mlflow.log_param("alpha", 0.5)
            mlflow.log_params({"l1": "0.1", "solver": "adam"})
            mlflow.log_metric("rmse", 0.9, step=0)
            mlflow.log_metric("rmse", 0.7, step=1)
            mlflow.log_metrics({"r2": 0.5, "mae": 1.5})
            mlflow.set_tag("team", "vision")
            mlflow.set_tags({"stage": "dev", "owner": "ada"})
            rid = run.info.run_id
        r = mlflow.get_run(rid)
        hist = MlflowClient().get_metric_history(rid, "rmse")
        out({"id": rid, "exp": r.info.experiment_id, "status": r.info.status, "name": r.info.run_name,
             "params": r.data.params, "metrics": r.data.metrics, "tags": r.data.tags,
             "hist": [[m.step, m.value] for m in hist], "end": r.info.end_time, "uri": r.info.artifact_uri})
    """)
    assert res["status"] == "FINISHED"
    assert res["name"] == "first"
    assert res["params"] == {"alpha": "0.5", "l1": "0.1", "solver": "adam"}
    assert res["metrics"] == {"rmse": 0.7, "r2": 0.5, "mae": 1.5}
    assert res["tags"]["team"] == "vision" and res["tags"]["owner"] == "ada"
    assert res["tags"]["mlflow.runName"] == "first"
    assert res["hist"] == [[0, 0.9], [1, 0.7]]
    assert res["end"] is not None
    assert res["uri"] == "mlflow-artifacts:/%s/%s/artifacts" % (res["exp"], res["id"])

    # atelier's side: the same run
    run = atelier_run(server, res["id"])
    assert run["experiment"] == "fluent"
    assert run["name"] == "first"
    assert run["status"] == "Completed"
    assert run["params"] == res["params"]
    assert run["tags"]["team"] == "vision"
    assert run["metrics"] == {"rmse": 0.7, "r2": 0.5, "mae": 1.5}


def test_nested_runs_and_default_experiment(run_mlflow, server):
    res = run_mlflow("""
        with mlflow.start_run() as parent:
            with mlflow.start_run(nested=True, run_name="child") as child:
                mlflow.log_metric("loss", 1.0)
        c = mlflow.get_run(child.info.run_id)
        p = mlflow.get_run(parent.info.run_id)
        kids = mlflow.search_runs(experiment_ids=["0"], filter_string="tags.mlflow.parentRunId = '%s'" % parent.info.run_id,
                                  output_format="list")
        e = MlflowClient().get_experiment("0")
        out({"parent": parent.info.run_id, "child": child.info.run_id, "exp": c.info.experiment_id,
             "ptag": c.data.tags.get("mlflow.parentRunId"), "pname": p.info.run_name,
             "kids": [r.info.run_id for r in kids], "default": [e.experiment_id, e.name, e.lifecycle_stage]})
    """)
    assert res["exp"] == "0"
    assert res["ptag"] == res["parent"]
    assert res["pname"]  # a generated name
    assert res["kids"] == [res["child"]]
    assert res["default"] == ["0", "Default", "active"]
    child = atelier_run(server, res["child"])
    assert child["parent_id"] == res["parent"]
    assert child["experiment"] == "Default"


def test_artifacts(run_mlflow, server, tmp_path):
    res = run_mlflow("""
        os.makedirs("d/sub", exist_ok=True)
        open("hello.txt", "w").write("hello")
        open("d/a.txt", "w").write("aaa")
        open("d/sub/b.txt", "w").write("bb")
        with mlflow.start_run() as run:
            mlflow.log_artifact("hello.txt")
            mlflow.log_artifacts("d", artifact_path="data")
            mlflow.log_dict({"k": [1, 2]}, "config/params.json")
            mlflow.log_text("some text", "notes.txt")
        c = MlflowClient()
        rid = run.info.run_id
        top = sorted((f.path, f.is_dir, f.file_size) for f in c.list_artifacts(rid))
        data = sorted((f.path, f.is_dir) for f in c.list_artifacts(rid, "data"))
        local = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="data")
        got = {}
        for root, _, files in os.walk(local):
            for f in files:
                p = os.path.join(root, f)
                got[os.path.relpath(p, local)] = open(p).read()
        d = mlflow.artifacts.load_dict("runs:/%s/config/params.json" % rid)
        out({"id": rid, "top": top, "data": data, "got": got, "dict": d})
    """)
    assert res["top"] == [["config", True, None], ["data", True, None], ["hello.txt", False, 5], ["notes.txt", False, 9]]
    assert res["data"] == [["data/a.txt", False], ["data/sub", True]]
    assert res["got"] == {"a.txt": "aaa", "sub/b.txt": "bb"}
    assert res["dict"] == {"k": [1, 2]}
    status, files = server.api("GET", "/api/v1/workspaces/default/runs/%s/files" % res["id"])
    assert status == 200, files
    paths = sorted(f["path"] for f in files["files"])
    assert paths == ["outputs/config/params.json", "outputs/data/a.txt", "outputs/data/sub/b.txt",
                     "outputs/hello.txt", "outputs/notes.txt"]


def test_log_batch_search_and_history(run_mlflow, server):
    res = run_mlflow("""
        from mlflow.entities import Metric, Param, RunTag
        c = MlflowClient()
        eid = c.create_experiment("search-exp", tags={"purpose": "search"})
        ids = []
        for i, (alpha, rmse) in enumerate([("0.1", 3.0), ("0.2", 1.0), ("0.3", 2.0)]):
            r = c.create_run(eid, run_name="r%d" % i)
            c.log_batch(r.info.run_id, metrics=[Metric("rmse", rmse, 1000 + i, 0), Metric("rmse", rmse / 2, 2000 + i, 1)],
                        params=[Param("alpha", alpha)], tags=[RunTag("kind", "even" if i % 2 == 0 else "odd")])
            ids.append(r.info.run_id)
        c.set_terminated(ids[0])
        c.set_terminated(ids[1], status="FAILED")
        def names(runs):
            return [r.info.run_name for r in runs]
        res = {
            "eid": eid,
            "ids": ids,
            "by_rmse": names(c.search_runs([eid], order_by=["metrics.rmse ASC"])),
            "by_rmse_desc": names(c.search_runs([eid], order_by=["metrics.rmse DESC"])),
            "lt": names(c.search_runs([eid], "metrics.rmse < 1.2", order_by=["attributes.run_name"])),
            "param": names(c.search_runs([eid], "params.alpha = '0.3'")),
            "tag": names(c.search_runs([eid], "tags.kind = 'even'", order_by=["params.alpha DESC"])),
            "finished": names(c.search_runs([eid], "attributes.status = 'FINISHED'")),
            "running": names(c.search_runs([eid], "attributes.status = 'RUNNING'")),
            "not_failed": names(c.search_runs([eid], "attributes.status != 'FAILED'", order_by=["attributes.run_name ASC"])),
            "status_in": names(c.search_runs([eid], "attributes.status IN ('FAILED', 'FINISHED')", order_by=["run_name DESC"])),
            "name_like": names(c.search_runs([eid], "attributes.run_name LIKE 'r%' and metrics.rmse > 0", order_by=["attributes.start_time ASC"])),
            "hist": [[m.step, m.value, m.timestamp] for m in c.get_metric_history(ids[1], "rmse")],
        }
        page1 = c.search_runs([eid], max_results=2, order_by=["attributes.run_name ASC"])
        page2 = c.search_runs([eid], max_results=2, order_by=["attributes.run_name ASC"], page_token=page1.token)
        res["pages"] = [names(page1), names(page2), page2.token]
        res["df"] = sorted(mlflow.search_runs(experiment_ids=[eid])["params.alpha"].tolist())
        e = c.get_experiment(eid)
        res["exp"] = [e.name, e.tags.get("purpose"), c.get_experiment_by_name("search-exp").experiment_id]
        res["exps"] = sorted(x.name for x in c.search_experiments(filter_string="name LIKE 'search%'"))
        out(res)
    """)
    assert res["by_rmse"] == ["r1", "r2", "r0"]
    assert res["by_rmse_desc"] == ["r0", "r2", "r1"]
    assert res["lt"] == ["r1", "r2"]
    assert res["param"] == ["r2"]
    assert res["tag"] == ["r2", "r0"]
    assert res["finished"] == ["r0"]
    assert res["running"] == ["r2"]
    assert res["not_failed"] == ["r0", "r2"]
    assert res["status_in"] == ["r1", "r0"]
    assert res["name_like"] == ["r0", "r1", "r2"]
    assert res["hist"] == [[0, 1.0, 1001], [1, 0.5, 2001]]
    assert res["pages"][0] == ["r0", "r1"] and res["pages"][1] == ["r2"] and not res["pages"][2]
    assert res["df"] == ["0.1", "0.2", "0.3"]
    assert res["exp"] == ["search-exp", "search", res["eid"]]
    assert res["exps"] == ["search-exp"]
    # atelier sees the batch-logged values and status
    run = atelier_run(server, res["ids"][1])
    assert run["experiment"] == "search-exp" and run["status"] == "Failed"
    assert run["params"] == {"alpha": "0.2"} and run["tags"]["kind"] == "odd"
    assert run["metrics"] == {"rmse": 0.5}


def test_metric_semantics(run_mlflow, server):
    res = run_mlflow("""
        from mlflow.entities import Metric
        c = MlflowClient()
        r = c.create_run("0")
        rid = r.info.run_id
        c.log_metric(rid, "m", 1.0, timestamp=5, step=0)
        c.log_metric(rid, "m", 1.0, timestamp=5, step=0)  # identical point: kept once
        c.log_batch(rid, metrics=[Metric("m", 1.0, 5, 0), Metric("m", 2.0, 6, 1)])
        c.log_metric(rid, "nan", float("nan"), step=0)
        c.log_metric(rid, "inf", float("inf"), step=0)
        hist = [[m.step, m.value] for m in c.get_metric_history(rid, "m")]
        got = c.get_run(rid).data.metrics
        out({"id": rid, "hist": hist, "nan": math.isnan(got["nan"]), "inf": got["inf"] == float("inf"),
             "none": [m.value for m in c.get_metric_history(rid, "absent")]})
    """)
    assert res["hist"] == [[0, 1.0], [1, 2.0]]
    assert res["nan"] and res["inf"]
    assert res["none"] == []


def test_delete_restore_run(run_mlflow, server):
    res = run_mlflow("""
        c = MlflowClient()
        eid = c.create_experiment("lifecycle")
        keep = c.create_run(eid).info.run_id
        gone = c.create_run(eid).info.run_id
        c.delete_run(gone)
        from mlflow.entities import ViewType
        active = [r.info.run_id for r in c.search_runs([eid])]
        deleted = [r.info.run_id for r in c.search_runs([eid], run_view_type=ViewType.DELETED_ONLY)]
        stage = c.get_run(gone).info.lifecycle_stage
        tags = c.get_run(gone).data.tags
        try:
            c.log_param(gone, "x", "1")
            log_err = None
        except MlflowException as e:
            log_err = e.error_code
        c.restore_run(gone)
        after = sorted(r.info.run_id for r in c.search_runs([eid]))
        c.delete_experiment(eid)
        e_stage = c.get_experiment(eid).lifecycle_stage
        listed = [x.name for x in c.search_experiments()]
        c.restore_experiment(eid)
        out({"keep": keep, "gone": gone, "active": active, "deleted": deleted, "stage": stage,
             "hidden": "mlflow.lifecycleStage" in tags, "log_err": log_err, "after": after,
             "e_stage": e_stage, "listed": "lifecycle" in listed,
             "restored": c.get_experiment(eid).lifecycle_stage})
    """)
    assert res["active"] == [res["keep"]]
    assert res["deleted"] == [res["gone"]]
    assert res["stage"] == "deleted" and not res["hidden"]
    assert res["log_err"] == "INVALID_PARAMETER_VALUE"
    assert res["after"] == sorted([res["keep"], res["gone"]])
    assert res["e_stage"] == "deleted" and not res["listed"]
    assert res["restored"] == "active"


def test_errors(run_mlflow, server):
    res = run_mlflow("""
        c = MlflowClient()
        def code(f):
            try:
                f()
            except MlflowException as e:
                return [e.error_code, e.get_http_status_code()]
            return None
        c.create_experiment("dup")
        r = c.create_run("0")
        rid = r.info.run_id
        c.log_param(rid, "p", "1")
        out({
            "dup": code(lambda: c.create_experiment("dup")),
            "param": code(lambda: c.log_param(rid, "p", "2")),
            "same_param": code(lambda: c.log_param(rid, "p", "1")),
            "missing_run": code(lambda: c.get_run("nosuchrun")),
            "missing_exp": code(lambda: c.get_experiment("987654")),
            "missing_name": c.get_experiment_by_name("no such experiment"),
            "bad_filter": code(lambda: c.search_runs(["0"], "metrics.rmse <")),
            "bad_status": code(lambda: c.search_runs(["0"], "attributes.status = 'DONE'")),
            "bad_order": code(lambda: c.search_runs(["0"], order_by=["metrics.rmse SIDEWAYS"])),
            "long_key": code(lambda: c.log_metric(rid, "k" * 300, 1.0)),
            "bad_exp_id": code(lambda: c.create_run("not-a-number")),
            "missing_run_log": code(lambda: c.log_metric("nosuchrun", "m", 1.0)),
            "delete_missing_tag": code(lambda: c.delete_tag(rid, "nope")),
        })
    """)
    assert res["dup"] == ["RESOURCE_ALREADY_EXISTS", 400]
    assert res["param"] == ["INVALID_PARAMETER_VALUE", 400]
    assert res["same_param"] is None
    assert res["missing_run"] == ["RESOURCE_DOES_NOT_EXIST", 404]
    assert res["missing_exp"] == ["RESOURCE_DOES_NOT_EXIST", 404]
    assert res["missing_name"] is None
    for k in ["bad_filter", "bad_status", "bad_order", "long_key", "bad_exp_id"]:
        assert res[k] == ["INVALID_PARAMETER_VALUE", 400], (k, res[k])
    assert res["missing_run_log"] == ["RESOURCE_DOES_NOT_EXIST", 404]
    assert res["delete_missing_tag"] == ["RESOURCE_DOES_NOT_EXIST", 404]


def test_atelier_run_read_by_mlflow(run_mlflow, server):
    status, run = server.api("POST", "/api/v1/workspaces/default/runs", {
        "experiment": "from-atelier", "name": "native", "status": "Running",
        "params": {"lr": "0.01"}, "tags": {"src": "atelier"}})
    assert status == 201, run
    rid = run["id"]
    status, body = server.api("POST", "/api/v1/workspaces/default/runs/%s/metrics" % rid,
                              {"metrics": [{"name": "acc", "step": 0, "timestamp": 1, "value": 0.5},
                                           {"name": "acc", "step": 1, "timestamp": 2, "value": 0.75}]})
    assert status in (200, 204), body
    status, body = server.api("POST", "/api/v1/workspaces/default/runs/%s/status" % rid, {"status": "Completed"})
    assert status == 200, body
    res = run_mlflow("""
        r = mlflow.get_run(%r)
        c = MlflowClient()
        e = c.get_experiment(r.info.experiment_id)
        out({"name": r.info.run_name, "status": r.info.status, "params": r.data.params, "metrics": r.data.metrics,
             "src": r.data.tags.get("src"), "exp": e.name,
             "hist": [[m.step, m.value] for m in c.get_metric_history(r.info.run_id, "acc")]})
    """ % rid)
    assert res == {"name": "native", "status": "FINISHED", "params": {"lr": "0.01"}, "metrics": {"acc": 0.75},
                   "src": "atelier", "exp": "from-atelier", "hist": [[0, 0.5], [1, 0.75]]}


def test_workspace_tracking_uri_and_basic_auth(run_mlflow, server):
    status, body = server.api("POST", "/api/v1/workspaces", {"name": "team-a"})
    assert status == 201, body
    res = run_mlflow("""
        mlflow.set_experiment("ws-exp")
        with mlflow.start_run() as run:
            mlflow.log_metric("m", 3.0)
            open("f.txt", "w").write("x")
            mlflow.log_artifact("f.txt")
        out({"id": run.info.run_id, "files": [f.path for f in MlflowClient().list_artifacts(run.info.run_id)]})
    """, tracking_uri=server.url + "/workspaces/team-a/mlflow",
        env={"MLFLOW_TRACKING_TOKEN": "", "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": server.token})
    assert res["files"] == ["f.txt"]
    run = atelier_run(server, res["id"], ws="team-a")
    assert run["experiment"] == "ws-exp" and run["metrics"] == {"m": 3.0}
    status, _ = server.api("GET", "/api/v1/workspaces/default/runs/%s" % res["id"])
    assert status == 404


def test_unauthenticated(run_mlflow, server):
    res = run_mlflow("""
        try:
            MlflowClient().get_experiment("0")
            out(None)
        except MlflowException as e:
            out([e.error_code, e.get_http_status_code()])
    """, env={"MLFLOW_TRACKING_TOKEN": "atl_wrong"})
    assert res == ["UNAUTHENTICATED", 401]


def test_sklearn_model_registry_round_trip(run_mlflow, server):
    res = run_mlflow("""
        import numpy as np
        from sklearn.datasets import load_diabetes
        from sklearn.linear_model import Ridge
        X, y = load_diabetes(return_X_y=True)
        model = Ridge(alpha=0.5).fit(X, y)
        mlflow.set_experiment("diabetes")
        with mlflow.start_run() as run:
            mlflow.log_param("alpha", 0.5)
            info = mlflow.sklearn.log_model(model, name="model", registered_model_name="diabetes-ridge",
                                            input_example=X[:2])
        c = MlflowClient()
        c.set_registered_model_alias("diabetes-ridge", "champion", 1)
        loaded = mlflow.pyfunc.load_model("models:/diabetes-ridge@champion")
        same = bool(np.allclose(loaded.predict(X), model.predict(X)))
        by_id = mlflow.sklearn.load_model(info.model_uri)  # models:/m-<id>
        by_run = mlflow.pyfunc.load_model("runs:/%s/model" % run.info.run_id)
        mv = c.get_model_version("diabetes-ridge", "1")
        lm = c.get_logged_model(info.model_id)
        rm = c.get_registered_model("diabetes-ridge")
        out({"run": run.info.run_id, "model_id": info.model_id, "uri": info.model_uri, "same": same,
             "by_id": bool(np.allclose(by_id.predict(X), model.predict(X))),
             "by_run": bool(np.allclose(by_run.predict(X), model.predict(X))),
             "version": info.registered_model_version, "mv": [mv.version, mv.run_id, mv.source, mv.status, list(mv.aliases)],
             "lm": [lm.status.to_proto() if hasattr(lm.status, "to_proto") else str(lm.status), lm.source_run_id, lm.name, lm.params.get("alpha")],
             "rm": [rm.name, sorted(rm.aliases.items())],
             "outputs": [o.model_id for o in mlflow.get_run(run.info.run_id).outputs.model_outputs]})
    """)
    assert res["same"] and res["by_id"] and res["by_run"]
    assert res["uri"] == "models:/" + res["model_id"]
    assert res["version"] == 1 or res["version"] == "1"
    # (the client drops model_id from model versions it reads)
    assert res["mv"] == ["1", res["run"], "models:/" + res["model_id"], "READY", ["champion"]]
    assert res["lm"][1:] == [res["run"], "model", "0.5"]
    assert "READY" in str(res["lm"][0]) or res["lm"][0] == 2
    assert res["rm"] == ["diabetes-ridge", [["champion", "1"]]]
    assert res["outputs"] == [res["model_id"]]

    # atelier's side: the version exists, made of the model's files, with the run as lineage
    status, body = server.api("GET", "/api/v1/workspaces/default/models")
    assert status == 200, body
    models = body.get("models", body) if isinstance(body, dict) else body
    assert any(m["name"] == "diabetes-ridge" and m["latest_version"] >= 1 for m in models), body
    status, v = server.api("GET", "/api/v1/workspaces/default/models/diabetes-ridge/versions/1")
    assert status == 200, v
    assert v["run_id"] == res["run"]
    assert v["aliases"] == ["champion"]
    paths = sorted(f["path"] for f in v["files"])
    assert "model/MLmodel" in paths and any(p.startswith("model/model.") for p in paths), paths
    # the logged model is a record of its own, not a run: the runs are the training run only
    status, body = server.api("GET", "/api/v1/workspaces/default/runs/%s" % res["model_id"][2:])
    assert status == 404, body
    status, body = server.api("GET", "/api/v1/workspaces/default/runs?experiment=diabetes")
    assert status == 200, body
    assert [r["id"] for r in body["runs"]] == [res["run"]], body


def test_autolog_and_registry_search(run_mlflow, server):
    res = run_mlflow("""
        import numpy as np
        from sklearn.datasets import load_diabetes
        from sklearn.linear_model import ElasticNet
        X, y = load_diabetes(return_X_y=True)
        mlflow.set_experiment("autolog")
        mlflow.sklearn.autolog(log_input_examples=False, silent=True)
        with mlflow.start_run() as run:
            model = ElasticNet(alpha=0.1, l1_ratio=0.3).fit(X, y)
        mlflow.sklearn.autolog(disable=True)
        r = mlflow.get_run(run.info.run_id)
        models = mlflow.search_logged_models(experiment_ids=[r.info.experiment_id], output_format="list")
        lm = [m for m in models if m.source_run_id == run.info.run_id]
        loaded = mlflow.pyfunc.load_model("models:/%s" % lm[0].model_id)
        c = MlflowClient()
        mv = mlflow.register_model("models:/%s" % lm[0].model_id, "autolog-enet")
        mv2 = mlflow.register_model("runs:/%s/model" % run.info.run_id, "autolog-enet")
        c.set_registered_model_tag("autolog-enet", "team", "vision")
        c.update_registered_model("autolog-enet", description="elastic net")
        c.set_model_version_tag("autolog-enet", "2", "validated", "yes")
        c.transition_model_version_stage("autolog-enet", "2", "Production")
        rms = c.search_registered_models(filter_string="name LIKE 'autolog%'")
        mvs = c.search_model_versions("name = 'autolog-enet'")
        tagged = c.search_model_versions("name = 'autolog-enet' and tags.validated = 'yes'")
        latest = c.get_latest_versions("autolog-enet", stages=["Production"])
        rm = c.get_registered_model("autolog-enet")
        out({"params": r.data.params, "metrics": sorted(r.data.metrics), "n_models": len(lm),
             "same": bool(np.allclose(loaded.predict(X), model.predict(X))),
             "versions": [mv.version, mv2.version],
             "rms": [(m.name, m.description, m.tags) for m in rms],
             "mvs": sorted(v.version for v in mvs), "tagged": [v.version for v in tagged],
             "latest": [(v.version, v.current_stage) for v in latest],
             "rm_latest": sorted((v.version, v.current_stage) for v in rm.latest_versions)})
    """)
    assert res["params"]["alpha"] == "0.1" and res["params"]["l1_ratio"] == "0.3"
    assert "training_score" in res["metrics"] or any(m.startswith("training_") for m in res["metrics"]), res["metrics"]
    assert res["n_models"] == 1 and res["same"]
    assert [str(v) for v in res["versions"]] == ["1", "2"]
    assert res["rms"] == [["autolog-enet", "elastic net", {"team": "vision"}]]
    assert res["mvs"] == ["1", "2"] and res["tagged"] == ["2"]
    assert res["latest"] == [["2", "Production"]]
    assert res["rm_latest"] == [["1", "None"], ["2", "Production"]]


def test_atelier_model_read_by_mlflow(run_mlflow, server):
    # a model registered in atelier (from a run's outputs) loads through MLflow
    res = run_mlflow("""
        import numpy as np
        from sklearn.linear_model import LinearRegression
        X = np.array([[1.0], [2.0], [3.0]]); y = np.array([2.0, 4.0, 6.0])
        model = LinearRegression().fit(X, y)
        with mlflow.start_run() as run:
            mlflow.sklearn.save_model(model, "saved")
            mlflow.log_artifacts("saved", artifact_path="linreg")
        out({"run": run.info.run_id})
    """)
    status, body = server.api("POST", "/api/v1/workspaces/default/models",
                              {"name": "native-linreg", "run_id": res["run"], "path": "outputs/linreg"})
    assert status in (200, 201), body
    got = run_mlflow("""
        import numpy as np
        c = MlflowClient()
        mv = c.get_model_version("native-linreg", "1")
        c.set_registered_model_alias("native-linreg", "prod", "1")
        m = mlflow.pyfunc.load_model("models:/native-linreg@prod")
        out({"run": mv.run_id, "source": mv.source, "pred": m.predict(np.array([[4.0]])).tolist(),
             "uri": c.get_model_version_download_uri("native-linreg", "1")})
    """)
    assert got["run"] == res["run"]
    assert got["source"].endswith("/%s/artifacts/linreg" % res["run"])
    assert abs(got["pred"][0] - 8.0) < 1e-6
    assert got["uri"] == "mlflow-artifacts:/registered-models/native-linreg/versions/1/files/linreg"
