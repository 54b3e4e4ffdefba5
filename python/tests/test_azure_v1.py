"""Azure ML v1 behaviours of the run API (issue 24), against a real server."""

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
