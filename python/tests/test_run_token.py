"""A script submitted to the real server does its work with its run's token, which reads and
changes only its run tree (and reads the workspace, its datastores and its models)."""

import json
import textwrap

import atelier
from atelier.submit import upload_snapshot

from conftest import api

SCRIPT = textwrap.dedent("""
    import json, os
    from atelier import AtelierError, Experiment, Model, Run

    run = Run.get_context()
    ws = run.experiment.workspace
    res = {}

    def refused(f):
        try:
            f()
        except AtelierError as e:
            return [e.status, e.message]
        return None

    run.log("acc", 0.5)
    run.log("acc", 0.75)
    run.log_list("l", [1, 2])
    run.log_param("lr", "0.1")
    run.tag("k", "v")
    run.add_properties({"p": "1"})
    with run.child_run("child") as c:
        c.log("loss", 1.0)
        c.tag("t", "1")
        with c.child_run("grandchild") as g:
            g.log("x", 1)
    run.flush()
    res["children"] = sorted(r.display_name for r in run.get_children(recursive=True))
    res["parent_of_child"] = run.get_children()[0].parent.id
    os.makedirs("tmp", exist_ok=True)
    with open("tmp/model.txt", "w") as f:
        f.write("weights")
    run.upload_file("model/model.txt", "tmp/model.txt")
    res["files"] = run.get_file_names()
    res["registered"] = run.register_model("token-model", "model/model.txt", tags={"from": "run"}).id
    res["run_models"] = [m.id for m in run.get_models()]
    res["inputs"] = {k: sorted(os.listdir(v)) for k, v in run.input_datasets.items()}
    res["workspace"] = ws.get_details()["name"]
    res["experiment"] = run.experiment.get_details()["name"]
    res["experiments"] = sorted(ws.experiments)
    res["models"] = sorted(ws.models)
    with open(Model(ws, "token-shared").download("dl")) as f:
        res["shared"] = f.read()
    res["metrics"] = sorted(run.get_metrics())
    res["runs"] = [r.id for r in run.experiment.get_runs(include_children=True)]
    res["details"] = run.get_details()["runId"]

    other = os.environ["OTHER_RUN"]
    res["refused"] = {
        "other run": refused(lambda: ws.get_run(other)),
        "log to other run": refused(lambda: atelier_run(other).log_param("x", "1")),
        "other experiment": refused(lambda: Experiment(ws, "token-other").get_details()),
        "child elsewhere": refused(lambda: ws._client.request("POST", "/api/v1/workspaces/default/runs",
                                                            body={"parent_id": run.id, "experiment": "token-other"})),
        "top-level run": refused(lambda: Experiment(ws, "token-exp").start_logging()),
        "members": refused(lambda: ws._client.request("GET", "/api/v1/workspaces/default/members")),
        "activities": refused(lambda: ws._client.request("GET", "/api/v1/workspaces/default/activities")),
        "local model upload": refused(lambda: Model.register(ws, "tmp/model.txt", "local-upload")),
    }
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/result.json", "w") as f:
        json.dump(res, f)
""").replace("atelier_run(other)", "Run(Experiment(ws, 'token-other'), other)")


def test_submitted_script_with_its_run_token(ws, tmp_path):
    c = ws._client
    c.request("PUT", "/api/v1/workspaces/default/datastores/default/files/tokentest/train.csv",
              body=b"a,b\n1,2\n", headers={"Content-Type": "application/octet-stream"})
    shared = tmp_path / "shared.txt"
    shared.write_text("shared weights")
    atelier.Model.register(ws, str(shared), "token-shared")
    other = atelier.Experiment(ws, "token-other").start_logging()
    other.complete()

    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(SCRIPT)
    snap = upload_snapshot(ws, str(src))
    d = api(ws, "POST", "/runs/submit", body={"experiment": "token-exp", "snapshot_id": snap["id"], "config": {
        "script": "train.py", "data": [{"name": "train", "datastore": "default", "path": "tokentest/"}],
        "environment": {"variables": {"OTHER_RUN": other.id}}}})
    run = atelier.Run(atelier.Experiment(ws, "token-exp"), d["id"])
    details = run.wait_for_completion(raise_on_error=False)
    if details["status"] != "Completed":
        files = [f["path"] for f in c.request("GET", "/api/v1/workspaces/default/runs/%s/files" % run.id)["files"]]
        logs = {p: c.request("GET", "/api/v1/workspaces/default/runs/%s/logs/%s" % (run.id, p), raw=True).decode()
                for p in files if p.startswith("logs/")}
        raise AssertionError("the run is %s (%s):\n%s" % (details["status"], details.get("error"), logs))
    with open(run.download_file("outputs/result.json", str(tmp_path / "result.json"))) as f:
        res = json.load(f)

    assert res["children"] == ["child", "grandchild"]
    assert res["parent_of_child"] == run.id
    assert "model/model.txt" in res["files"]
    assert res["registered"] == "token-model:1" and res["run_models"] == ["token-model:1"]
    assert res["inputs"] == {"train": ["train.csv"]}
    assert res["workspace"] == "default" and res["experiment"] == "token-exp"
    assert res["experiments"] == ["token-exp"]  # its own experiment only
    assert {"token-model", "token-shared"} <= set(res["models"])
    assert res["shared"] == "shared weights"
    assert res["metrics"] == ["acc", "l"]
    assert sorted(res["runs"]) == sorted([run.id] + [r.id for r in run.get_children(recursive=True)])
    assert res["details"] == run.id

    for what, got in res["refused"].items():
        assert got is not None, "%s was allowed to a run's token" % what
        status, message = got
        assert status == 403, (what, got)
        assert "a run's token may change only its run and that run's descendants" in message, (what, message)
    # What the token was refused left nothing behind.
    assert api(ws, "GET", "/runs/%s" % other.id)["params"] == {}
    assert sorted(r["id"] for r in api(ws, "GET", "/runs", query={"experiment": "token-exp"})["runs"]) == sorted(res["runs"])
    assert "token-other" in [e["name"] for e in api(ws, "GET", "/experiments")["experiments"]]
    assert not any(m["name"] == "local-upload" for m in api(ws, "GET", "/models")["models"])


LOSING_SCRIPT = textwrap.dedent("""
    import os
    from atelier import Experiment, Run

    run = Run.get_context()
    run.log("acc", 0.5)
    # The run's token may not log to another run: the server refuses that batch, and the script
    # ends without logging anything else, as a script whose metrics were refused at exit does.
    other = Run(Experiment(run.experiment.workspace, "token-other"), os.environ["OTHER_RUN"])
    other.log("stolen", 1.0)
    print("done")
""")


def test_a_submitted_run_whose_metrics_were_refused_fails(ws, tmp_path):
    other = atelier.Experiment(ws, "token-other").start_logging()
    other.complete()
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(LOSING_SCRIPT)
    snap = upload_snapshot(ws, str(src))
    d = api(ws, "POST", "/runs/submit", body={"experiment": "token-lost", "snapshot_id": snap["id"], "config": {
        "script": "train.py", "environment": {"variables": {"OTHER_RUN": other.id}}}})
    run = atelier.Run(atelier.Experiment(ws, "token-lost"), d["id"])
    details = run.wait_for_completion(raise_on_error=False)
    log = ws._client.request("GET", "/api/v1/workspaces/default/runs/%s/logs/logs/std_log.txt" % run.id,
                             raw=True).decode()
    assert details["status"] == "Failed", (details, log)
    assert "done" in log
    assert "the server refused 1 metric points and 0 records of run %s (metrics 'stolen')" % other.id in log
    assert "exiting with status 1" in log
    assert run.get_metrics() == {"acc": 0.5}  # its own metrics were sent
    assert api(ws, "GET", "/runs/%s/metrics" % other.id)["metrics"] == []
