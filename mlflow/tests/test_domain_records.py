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
