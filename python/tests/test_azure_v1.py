"""Azure ML v1 behaviours of the run API (issue 24), against a real server."""

import atelier


def test_metric_names_keep_leading_and_trailing_spaces(run):
    run.log(" lead", 1)
    run.log("trail ", 2)
    run.log_list(" list ", [1, 2])
    m = run.get_metrics()
    assert m[" lead"] == [1.0]
    assert m["trail "] == [2.0]
    assert m[" list "] == [1, 2]
    assert "lead" not in m and "trail" not in m
    assert run.get_metrics(" lead") == {" lead": [1.0]}
