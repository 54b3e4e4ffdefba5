"""Azure ML v1 behaviours of the run API (issue 24), against a real server."""

import pytest

import atelier


def test_metric_names_keep_leading_and_trailing_spaces(run):
    run.log(" lead", 1)
    run.log("trail ", 2)
    run.log_list(" list ", [1, 2])
    m = run.get_metrics()
    assert m[" lead"] == 1.0
    assert m["trail "] == 2.0
    assert m[" list "] == [1, 2]
    assert "lead" not in m and "trail" not in m
    assert run.get_metrics(" lead") == {" lead": 1.0}


def test_get_metrics_gives_the_value_of_a_metric_logged_once(run):
    run.log("once", 0.5)
    run.log("twice", 1)
    run.log("twice", 2)
    run.log("nan", float("nan"))
    run.log_list("a_list", [1, 2])
    m = run.get_metrics()
    assert m["once"] == 0.5 and isinstance(m["once"], float)
    assert m["twice"] == [1.0, 2.0]
    assert m["nan"] != m["nan"]  # NaN, a float, not a list
    assert m["a_list"] == [1, 2]  # a list metric stays its list
    assert run.get_metrics(name="once") == {"once": 0.5}
    assert run.get_metrics(name="twice") == {"twice": [1.0, 2.0]}
    assert run.get_metrics(name="once", recursive=True) == {run.id: {"once": 0.5}}


def test_offline_get_metrics_gives_the_value_of_a_metric_logged_once(monkeypatch, capsys):
    monkeypatch.delenv("ATELIER_RUN_ID", raising=False)
    r = atelier.OfflineRun()
    r.log("once", 0.5)
    r.log("twice", 1)
    r.log("twice", 2)
    r.log_list("a_list", [3])
    assert r.get_metrics() == {"once": 0.5, "twice": [1.0, 2.0], "a_list": [3]}


def test_text_metrics(run):
    run.log("note", "some text")
    run.log("versions", "v1")
    run.log("versions", "v2")
    run.log("nan_text", "NaN")  # a string, not a number
    run.log(" spaced ", "kept")
    run.log({"acc": 0.5, "model": "resnet"})
    m = run.get_metrics()
    assert m["note"] == "some text"
    assert m["versions"] == ["v1", "v2"]
    assert m["nan_text"] == "NaN"
    assert m[" spaced "] == "kept"
    assert m["acc"] == 0.5 and m["model"] == "resnet"
    assert run.get_metrics(name="versions") == {"versions": ["v1", "v2"]}
    # Stored on the server as a record of kind text, as any client reads it.
    recs = run.workspace._client.request("GET", "/api/v1/workspaces/default/runs/%s/metric-records" % run.id,
                                         query={"name": "versions"})["records"]
    assert [(r["kind"], r["value"]) for r in recs] == [("text", "v1"), ("text", "v2")]
    # The same name cannot hold numbers and text: the server refuses the mix at flush.
    run.log("mixed", 1.0)
    run.flush()
    run.log("mixed", "text")
    with pytest.raises(atelier.AtelierError, match="mixed"):
        run.flush()


def test_text_metric_in_a_submitted_script(ws, tmp_path):
    (tmp_path / "train.py").write_text(
        "from atelier import Run\n"
        "run = Run.get_context()\n"
        "run.log('optimizer', 'adam')\n"
        "run.log('loss', 0.25)\n")
    exp = atelier.Experiment(ws, "pytest-text-metric")
    run = exp.submit(atelier.ScriptRunConfig(source_directory=str(tmp_path), script="train.py"))
    run.wait_for_completion(timeout=180)
    assert run.get_metrics() == {"optimizer": "adam", "loss": 0.25}


def test_offline_text_metric(monkeypatch, capsys):
    monkeypatch.delenv("ATELIER_RUN_ID", raising=False)
    r = atelier.OfflineRun()
    r.log("note", "hello")
    assert r.get_metrics() == {"note": "hello"}


def _snapshot_names(ws, run):
    import io
    import zipfile
    data = ws._client.request("GET", "/api/v1/workspaces/default/runs/%s/snapshot" % run.id, raw=True)
    return sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())


def test_start_logging_snapshots_the_current_directory_and_uploads_outputs(ws, tmp_path, monkeypatch):
    # Azure ML's train-within-notebook: start_logging(), write the model to ./outputs,
    # complete(), then register the model from the run's outputs.
    (tmp_path / "notebook.py").write_text("print('train')\n")
    (tmp_path / "outputs").mkdir()
    monkeypatch.chdir(tmp_path)
    exp = atelier.Experiment(ws, "pytest-start-logging")
    run = exp.start_logging()
    assert _snapshot_names(ws, run) == ["notebook.py"]
    (tmp_path / "outputs" / "model.pkl").write_bytes(b"model bytes")
    (tmp_path / "outputs" / "sub").mkdir()
    (tmp_path / "outputs" / "sub" / "extra.txt").write_text("extra")
    run.upload_file("outputs/model.pkl", str(tmp_path / "outputs" / "model.pkl"))  # uploaded twice: fine
    assert "outputs/sub/extra.txt" not in run.get_file_names()  # not before complete()
    monkeypatch.chdir("/")  # uploaded from where the run started, wherever the process is now
    run.complete()
    assert run.get_status() == "Completed"
    names = run.get_file_names()
    assert "outputs/model.pkl" in names and "outputs/sub/extra.txt" in names
    model = run.register_model("start-logging-model", "outputs/model.pkl")
    assert model.version >= 1
    dl = tmp_path / "dl"
    dl.mkdir()
    run.download_file("outputs/sub/extra.txt", str(dl))
    assert (dl / "extra.txt").read_text() == "extra"


def test_start_logging_snapshot_and_outputs_arguments(ws, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("x = 1\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("a")
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "b.txt").write_text("b")
    monkeypatch.chdir(tmp_path)
    exp = atelier.Experiment(ws, "pytest-start-logging")
    with exp.start_logging(snapshot_directory=str(src), outputs="out") as run:
        pass
    assert _snapshot_names(ws, run) == ["train.py"]
    files = run.get_file_names()
    assert "outputs/a.txt" in files and "outputs/b.txt" not in files
    # None: no snapshot (Azure's "setting to None will take no snapshot"); outputs=False: no upload.
    with exp.start_logging(snapshot_directory=None, outputs=False) as run:
        pass
    assert not (run.get_details().get("snapshot_id"))
    with pytest.raises(atelier.AtelierError, match="no snapshot"):
        _snapshot_names(ws, run)
    assert not [f for f in run.get_file_names() if f.startswith("outputs/")]
