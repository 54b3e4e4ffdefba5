"""Experiments and registered models are atelier records of their own (issue 19): what MLflow
creates shows no hidden runs in atelier, and MLflow's behaviour holds under concurrency."""


def workspace(server, name):
    status, body = server.api("POST", "/api/v1/workspaces", {"name": name})
    assert status in (200, 201), body
    return server.url + "/workspaces/%s/mlflow" % name


def atelier_runs(server, ws):
    status, body = server.api("GET", "/api/v1/workspaces/%s/runs" % ws)
    assert status == 200, body
    return body["runs"]


def test_experiment_concurrent_create_tags_and_location(run_mlflow, server):
    uri = workspace(server, "exp-records")
    res = run_mlflow("""
        from concurrent.futures import ThreadPoolExecutor
        c = MlflowClient()
        def create(_):
            try:
                return c.create_experiment("race")
            except MlflowException as e:
                return e.error_code
        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(create, range(20)))
        eid = c.create_experiment("located", artifact_location="s3://bucket/located", tags={"team": "a"})
        c.set_experiment_tag(eid, "stage", "dev")
        c.delete_experiment_tag(eid, "team")
        e = c.get_experiment(eid)
        found = [x.name for x in c.search_experiments(filter_string="tags.stage = 'dev'")]
        mlflow.set_experiment("fluent-made")
        out({"results": results, "location": e.artifact_location, "tags": e.tags, "found": found})
    """, tracking_uri=uri)
    errors = [r for r in res["results"] if r == "RESOURCE_ALREADY_EXISTS"]
    assert len(errors) == 19, res["results"]
    assert res["location"] == "s3://bucket/located"
    assert res["tags"] == {"stage": "dev"}
    assert res["found"] == ["located"]
    assert atelier_runs(server, "exp-records") == []


def test_registered_model_records_and_rename(run_mlflow, server):
    uri = workspace(server, "model-records")
    res = run_mlflow("""
        from concurrent.futures import ThreadPoolExecutor
        c = MlflowClient()
        c.create_registered_model("empty", tags={"team": "a"}, description="first")
        c.set_registered_model_tag("empty", "stage", "dev")
        c.delete_registered_model_tag("empty", "team")
        c.update_registered_model("empty", description="second")
        m = c.get_registered_model("empty")
        created = m.creation_timestamp
        renamed = c.rename_registered_model("empty", "renamed")
        r = c.get_registered_model("renamed")
        c.create_registered_model("a")
        c.create_registered_model("b")
        def rename(n):
            try:
                c.rename_registered_model(n, "c")
                return "ok"
            except MlflowException as e:
                return e.error_code
        with ThreadPoolExecutor(2) as pool:
            races = sorted(pool.map(rename, ["a", "b"]))
        names = sorted(x.name for x in c.search_registered_models())
        out({"desc": r.description, "tags": r.tags, "created": created, "rcreated": r.creation_timestamp,
             "versions": len(r.latest_versions or []), "races": races, "names": names})
    """, tracking_uri=uri)
    assert res["desc"] == "second"
    assert res["tags"] == {"stage": "dev"}
    assert res["rcreated"] == res["created"]
    assert res["versions"] == 0
    assert res["races"] == ["RESOURCE_ALREADY_EXISTS", "ok"]
    assert len(res["names"]) == 3 and "c" in res["names"] and "renamed" in res["names"]
    assert atelier_runs(server, "model-records") == []


def test_deleted_run_is_deleted_in_atelier(run_mlflow, server):
    uri = workspace(server, "run-lifecycle")
    res = run_mlflow("""
        c = MlflowClient()
        eid = c.create_experiment("lifecycle")
        rid = c.create_run(eid).info.run_id
        c.delete_run(rid)
        try:
            c.log_batch(rid, metrics=[mlflow.entities.Metric("m", 1.0, 1, 0)])
            err = None
        except MlflowException as e:
            err = e.error_code
        out({"rid": rid, "err": err})
    """, tracking_uri=uri)
    assert res["err"] == "INVALID_PARAMETER_VALUE"
    status, run = server.api("GET", "/api/v1/workspaces/run-lifecycle/runs/%s" % res["rid"])
    assert status == 200 and run.get("deleted") is True, run
    assert "mlflow.lifecycleStage" not in run["tags"]
    # the store refuses writes to it from atelier's own API too
    status, body = server.api("POST", "/api/v1/workspaces/run-lifecycle/runs/%s/tags" % res["rid"], {"tags": {"t": "1"}})
    assert status == 409, (status, body)


def test_metric_history_pages(run_mlflow, server):
    uri = workspace(server, "history-pages")
    res = run_mlflow("""
        from mlflow.entities import Metric
        c = MlflowClient()
        rid = c.create_run(c.create_experiment("h")).info.run_id
        for b in range(30):
            c.log_batch(rid, metrics=[Metric("loss", float(i), 1000 + i, i) for i in range(b * 1000, (b + 1) * 1000)])
        hist = c.get_metric_history(rid, "loss")  # the client pages by 25000
        store = c._tracking_client.store
        page = store.get_metric_history(rid, "loss", max_results=7)
        page2 = store.get_metric_history(rid, "loss", max_results=7, page_token=page.token)
        out({"n": len(hist), "first": hist[0].step, "last": hist[-1].step,
             "page": [m.step for m in page], "token": page.token, "page2": [m.step for m in page2]})
    """, tracking_uri=uri)
    assert res["n"] == 30000 and res["first"] == 0 and res["last"] == 29999
    assert res["page"] == list(range(7)) and res["token"]
    assert res["page2"] == list(range(7, 14))


def test_logged_model_records_and_names_with_spaces(run_mlflow, server):
    """A logged model (MLflow 3) is a record of its own: metrics logged with model_id reach it and
    filter searches by data set, a run's model inputs are kept, finalizing READY then FAILED
    sticks; a registered model may have spaces in its name and loads back."""
    uri = workspace(server, "lm-records")
    res = run_mlflow("""
        import numpy as np
        from sklearn.linear_model import Ridge
        from mlflow.entities import LoggedModelStatus
        X, y = np.arange(20.0).reshape(10, 2), np.arange(10.0)
        mlflow.set_experiment("lm exp")
        ds = mlflow.data.from_numpy(X, targets=y, name="eval set")
        with mlflow.start_run() as run:
            info = mlflow.sklearn.log_model(Ridge().fit(X, y), name="ridge model", params={"alpha": "1"})
            mlflow.log_metric("rmse", 0.5, model_id=info.model_id, dataset=ds)
        c = MlflowClient()
        with mlflow.start_run() as user:
            c.log_inputs(user.info.run_id, models=[mlflow.entities.LoggedModelInput(info.model_id)])
        eid = run.info.experiment_id
        by_ds = mlflow.search_logged_models(experiment_ids=[eid], datasets=[{"dataset_name": "eval set"}], output_format="list")
        no_ds = mlflow.search_logged_models(experiment_ids=[eid], datasets=[{"dataset_name": "other"}], output_format="list")
        by_metric = mlflow.search_logged_models(experiment_ids=[eid], filter_string="metrics.rmse < 1 AND params.alpha = '1'", output_format="list")
        m = c.get_logged_model(info.model_id)
        inputs = [i.model_id for i in (c.get_run(user.info.run_id).inputs.model_inputs or [])]
        c.finalize_logged_model(info.model_id, LoggedModelStatus.FAILED)
        failed = str(c.get_logged_model(info.model_id).status)
        mv = mlflow.register_model("models:/%s" % info.model_id, "ridge model prod")
        loaded = mlflow.pyfunc.load_model("models:/ridge model prod/1")
        names = [r.name for r in c.search_registered_models(filter_string="name = 'ridge model prod'")]
        out({"by_ds": [x.model_id for x in by_ds], "no_ds": len(no_ds), "by_metric": [x.model_id for x in by_metric],
             "metrics": [(x.key, x.value, x.dataset_name) for x in m.metrics], "model_id": info.model_id,
             "inputs": inputs, "failed": failed, "version": mv.version, "names": names,
             "same": bool(np.allclose(loaded.predict(X), Ridge().fit(X, y).predict(X)))})
    """, tracking_uri=uri)
    mid = res["model_id"]
    assert res["by_ds"] == [mid] and res["no_ds"] == 0 and res["by_metric"] == [mid]
    assert res["metrics"] == [["rmse", 0.5, "eval set"]]
    assert res["inputs"] == [mid]
    assert "FAILED" in res["failed"]
    assert str(res["version"]) == "1" and res["names"] == ["ridge model prod"] and res["same"]
    runs = atelier_runs(server, "lm-records")
    assert len(runs) == 2, runs  # the two runs; the logged model is not one
