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
