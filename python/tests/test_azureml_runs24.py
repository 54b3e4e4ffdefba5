"""Issue 24: v1 run behaviours (snapshot of a changing directory, rename, int metrics,
submitted child runs) against a real server."""

import json
import os
import textwrap
import threading

import pytest

import atelier
from atelier import submit as _submit
from azureml.core import Experiment, Run, RunConfiguration, ScriptRunConfig, Workspace

from conftest import api


@pytest.fixture
def v1ws(server, tmp_path, monkeypatch):
    url, token = server
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(json.dumps({
        "subscription_id": "sub", "resource_group": "rg", "workspace_name": "default", "server": url, "token": token}))
    for k in ("ATELIER_SERVER", "ATELIER_TOKEN", "ATELIER_WORKSPACE", "ATELIER_RUN_ID"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)
    return Workspace.from_config()


def _snapshot(ws, run):
    import io
    import zipfile
    data = ws._client.request("GET", "/api/v1/workspaces/%s/runs/%s/snapshot" % (ws.name, run.id), raw=True)
    z = zipfile.ZipFile(io.BytesIO(data))
    return {n: z.read(n) for n in z.namelist()}


def test_start_logging_snapshot_of_a_file_appended_to_meanwhile(v1ws, tmp_path, capsys):
    # A log the notebook's own process (or another) appends to while start_logging snapshots
    # the directory: the run starts, and the snapshot holds the bytes that were read.
    log = tmp_path / "train.log"
    log.write_bytes(b"x" * (1 << 20))
    (tmp_path / "notebook.py").write_text("print(1)\n")
    stop = threading.Event()

    def append():
        with open(log, "ab") as f:
            while not stop.is_set() and f.tell() < (24 << 20):
                f.write(b"line\n" * 2000)
                f.flush()
                stop.wait(0.001)

    t = threading.Thread(target=append)
    t.start()
    try:
        for _ in range(3):
            run = Experiment(v1ws, "azureml-snapshot-race").start_logging(outputs=False)
            assert run.get_status() == "Running"
            snap = _snapshot(v1ws, run)
            assert snap["notebook.py"] == b"print(1)\n"
            assert snap["train.log"].startswith(b"x" * (1 << 20))
            run.complete()
    finally:
        stop.set()
        t.join()


def test_snapshot_upload_sends_what_was_hashed(v1ws, tmp_path, monkeypatch, capsys):
    # Deterministic: the file grows (a.log) or is rewritten (b.txt) between hashing and upload.
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.log").write_bytes(b"first part\n")
    (src / "b.txt").write_bytes(b"old content")
    real = _submit.snapshot_entries

    def entries_then_change(*a, **k):
        out = real(*a, **k)
        with open(src / "a.log", "ab") as f:
            f.write(b"appended later\n")
        (src / "b.txt").write_bytes(b"rewritten!!")
        return out

    monkeypatch.setattr(_submit, "snapshot_entries", entries_then_change)
    snap = _submit.upload_snapshot(v1ws, str(src))
    assert "b.txt changed while the snapshot was taken" in capsys.readouterr().err
    run = Experiment(v1ws, "azureml-snapshot-race").start_logging(snapshot_directory=None, outputs=False)
    run.complete()
    files = {e["path"]: e for e in snap["entries"]}
    assert files["a.log"]["size"] == len(b"first part\n")
    assert files["b.txt"]["size"] == len(b"rewritten!!")


def test_rename_run_persists(v1ws):
    run = Experiment(v1ws, "azureml-rename").start_logging(snapshot_directory=None, outputs=False)
    run.display_name = "renamed run"
    assert run.display_name == "renamed run"
    assert Run(run.experiment, run.id).display_name == "renamed run"  # a fresh handle reads the server
    assert api(v1ws, "GET", "/runs/%s" % run.id)["name"] == "renamed run"
    run.set_display_name("second")
    assert Run.get(v1ws, run.id).name == "second"
    with pytest.raises(atelier.AtelierError, match="name: a run name is at most 256"):
        run.display_name = "x" * 300
    with pytest.raises(atelier.AtelierError, match="required field \"name\" is missing"):
        api(v1ws, "PATCH", "/runs/%s" % run.id, body={})
    run.complete()


def test_int_metrics_come_back_as_ints(v1ws):
    run = Experiment(v1ws, "azureml-int-metrics").start_logging(snapshot_directory=None, outputs=False)
    run.log("n", 3)
    run.log("acc", 0.5)
    run.log("whole_float", 2.0)
    for i in range(3):
        run.log("epochs", i)
    run.log("mixed", 1)
    run.log("mixed", 2.5)
    m = run.get_metrics()
    assert m["n"] == 3 and type(m["n"]) is int
    assert type(m["acc"]) is float and type(m["whole_float"]) is float
    assert m["epochs"] == [0, 1, 2] and all(type(v) is int for v in m["epochs"])
    assert m["mixed"] == [1, 2.5] and type(m["mixed"][0]) is int and type(m["mixed"][1]) is float
    # a fresh handle (another process) reads the same types from the server
    again = Run(run.experiment, run.id).get_metrics()
    assert type(again["n"]) is int
    run.complete()


def test_offline_int_metric():
    from atelier.run import OfflineRun
    r = OfflineRun()
    r.log("n", 3)
    assert type(r.get_metrics()["n"]) is int


def test_submit_child_from_a_run(v1ws, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "child.py").write_text(textwrap.dedent("""
        from azureml.core import Run
        run = Run.get_context()
        run.log("child_parent", run.parent.id)
    """))
    (src / "parent.py").write_text(textwrap.dedent("""
        from azureml.core import Run, ScriptRunConfig
        run = Run.get_context()
        child = run.submit_child(ScriptRunConfig(source_directory=".", script="child.py"))
        run.log("child_id", child.id)
        child.wait_for_completion(raise_on_error=True)
    """))
    exp = Experiment(v1ws, "azureml-submit-child")
    # from an interactive run (the notebook's)
    parent = exp.start_logging(snapshot_directory=None, outputs=False)
    child = parent.submit_child(ScriptRunConfig(source_directory=str(src), script="child.py"))
    assert isinstance(child, Run) and child.parent.id == parent.id
    assert child.wait_for_completion()["status"] == "Completed"
    assert child.get_metrics()["child_parent"] == parent.id
    assert [c.id for c in parent.get_children()] == [child.id]
    parent.complete()
    # from a submitted run, with its own token
    run = exp.submit(ScriptRunConfig(source_directory=str(src), script="parent.py"))
    assert run.wait_for_completion(show_output=True)["status"] == "Completed"
    kid = run.get_metrics()["child_id"]
    assert [c.id for c in run.get_children()] == [kid]
    assert Run.get(v1ws, kid).get_metrics()["child_parent"] == run.id
    # a parent that does not exist
    with pytest.raises(atelier.AtelierError, match="parent_id: run \"nope\" not found"):
        ScriptRunConfig(source_directory=str(src), script="child.py")._submit(exp, _parent_id="nope")


def test_distributed_job_config_shapes_the_run(v1ws, tmp_path):
    # PyTorchConfiguration and MpiConfiguration give the run its nodes and processes per node
    # (run on slurm targets: srun starts them); on the local target the run fails saying so.
    from azureml.core.runconfig import MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration
    src = tmp_path / "dist"
    src.mkdir()
    (src / "train.py").write_text("import os\nprint(os.environ.get('RANK'))\n")
    exp = Experiment(v1ws, "azureml-distributed")
    run = exp.submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                     distributed_job_config=PyTorchConfiguration(process_count=4, node_count=2)))
    config = run.get_details()["runDefinition"]
    assert (config["nodeCount"], config["mpi"]["processCountPerNode"], config["pyTorch"]["processCount"]) == (2, 2, 4), config
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Failed"
    assert "runs on a slurm compute target" in json.dumps(run.get_details())
    run = exp.submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                     distributed_job_config=MpiConfiguration(process_count_per_node=3)))
    assert run.get_details()["runDefinition"]["mpi"]["processCountPerNode"] == 3
    run.wait_for_completion(raise_on_error=False)
    with pytest.raises(ValueError, match="cannot be spread evenly"):
        exp.submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                   distributed_job_config=PyTorchConfiguration(process_count=3, node_count=2)))
    with pytest.raises(Exception, match="TensorflowConfiguration"):
        TensorflowConfiguration(worker_count=2)
