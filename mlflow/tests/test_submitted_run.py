"""The mlflow client inside a script submitted to atelier: the server points it at the run
(MLFLOW_TRACKING_URI, MLFLOW_TRACKING_TOKEN = the run's token, MLFLOW_RUN_ID), so an unmodified
MLflow training script logs into its atelier run, as it does in an Azure ML job, and its token
reaches nothing but that run tree, the workspace's models and datastores."""

import io
import json
import textwrap
import time
import urllib.request
import zipfile

SCRIPT = textwrap.dedent("""
    import json, os
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from sklearn.linear_model import LinearRegression

    res = {}
    mlflow.log_param("alpha", "0.5")  # attaches to MLFLOW_RUN_ID
    mlflow.log_metric("rmse", 0.7, step=0)
    mlflow.log_metric("rmse", 0.5, step=1)
    mlflow.set_tag("team", "vision")
    run = mlflow.active_run()
    res["run"] = run.info.run_id
    with mlflow.start_run(nested=True, run_name="child") as child:
        mlflow.log_metric("loss", 1.0)
        res["child"] = child.info.run_id
    mlflow.log_text("hello", "notes/hello.txt")
    model = LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])
    info = mlflow.sklearn.log_model(model, name="model", registered_model_name="submitted-model")
    res["registered"] = info.registered_model_version
    loaded = mlflow.pyfunc.load_model("models:/submitted-model/%s" % info.registered_model_version)
    res["predicted"] = [float(x) for x in loaded.predict([[3.0]])]
    client = MlflowClient()
    res["experiment"] = client.get_experiment(run.info.experiment_id).name
    res["searched"] = sorted(r.info.run_id for r in client.search_runs([run.info.experiment_id]))
    try:
        client.get_run(os.environ["OTHER_RUN"])
        res["other"] = "allowed"
    except MlflowException as e:
        res["other"] = str(e)
    try:
        mlflow.set_experiment("mlflow-elsewhere")
        res["set_experiment"] = "allowed"
    except MlflowException as e:
        res["set_experiment"] = str(e)
    print("__RESULT__" + json.dumps(res), flush=True)
""")


def _zip(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    return buf.getvalue()


def _post_zip(server, path, data):
    req = urllib.request.Request(server.url + path, data=data, method="POST")
    req.add_header("Authorization", "Bearer " + server.token)
    req.add_header("Content-Type", "application/zip")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _read_log(server, run_id):
    req = urllib.request.Request(server.url + "/api/v1/workspaces/default/runs/%s/logs/logs/std_log.txt" % run_id)
    req.add_header("Authorization", "Bearer " + server.token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError:
        return ""


def test_mlflow_in_a_submitted_run(mlflow_python, server):
    status, other = server.api("POST", "/api/v1/workspaces/default/runs", {"experiment": "mlflow-elsewhere"})
    assert status == 201, other
    snap = _post_zip(server, "/api/v1/workspaces/default/snapshots", _zip({"train.py": SCRIPT}))
    status, run = server.api("POST", "/api/v1/workspaces/default/runs/submit", {
        "experiment": "mlflow-submitted", "snapshot_id": snap["id"], "config": {
            "script": "train.py", "environment": {"python": mlflow_python, "variables": {
                "OTHER_RUN": other["id"], "GIT_PYTHON_REFRESH": "quiet", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}}}})
    assert status == 201, run
    deadline = time.monotonic() + 300
    while True:
        status, got = server.api("GET", "/api/v1/workspaces/default/runs/%s" % run["id"])
        if got["status"] in ("Completed", "Failed", "Canceled") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    log = _read_log(server, run["id"])
    assert got["status"] == "Completed", "%s (%s):\n%s" % (got["status"], got.get("error"), log[-6000:])
    res = json.loads([line for line in log.splitlines() if line.startswith("__RESULT__")][-1][len("__RESULT__"):])

    assert res["run"] == run["id"]
    assert got["params"] == {"alpha": "0.5"} and got["metrics"]["rmse"] == 0.5 and got["tags"]["team"] == "vision"
    status, child = server.api("GET", "/api/v1/workspaces/default/runs/%s" % res["child"])
    assert child["parent_id"] == run["id"] and child["experiment"] == "mlflow-submitted"
    status, files = server.api("GET", "/api/v1/workspaces/default/runs/%s/files" % run["id"])
    assert "outputs/notes/hello.txt" in [f["path"] for f in files["files"]], files
    assert res["registered"] == "1"
    assert abs(res["predicted"][0] - 3.0) < 1e-6
    assert res["experiment"] == "mlflow-submitted"
    assert run["id"] in res["searched"] and other["id"] not in res["searched"]
    assert "a run's token may change only its run" in res["other"], res["other"]
    assert "a run's token may change only its run" in res["set_experiment"], res["set_experiment"]
    status, versions = server.api("GET", "/api/v1/workspaces/default/models/submitted-model/versions")
    assert status == 200 and versions["versions"][0]["run_id"] == run["id"], versions
    assert server.token not in log
