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
