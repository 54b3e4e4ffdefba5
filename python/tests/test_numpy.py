"""A script logging numpy values (what scikit-learn hands out) reaches the server as numbers,
with numpy 1 and with numpy 2 (whose repr() of a float64 is "np.float64(57.4)").

numpy lives in two virtualenvs cached under $ATELIER_TEST_CACHE (default ~/.cache/atelier-test),
keyed by the Python version; the script runs in their python as a subprocess, so the SDK is
tested as a user's script imports it while pytest itself needs no numpy. Without network access
to PyPI (and no cached venv) these tests are skipped.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import api, run_env

CACHE = os.environ.get("ATELIER_TEST_CACHE", os.path.expanduser("~/.cache/atelier-test"))
NUMPYS = {"numpy1": "numpy<2", "numpy2": "numpy>=2"}


def _venv_python(which):
    venv = os.path.join(CACHE, "%s-venv-py%d%d" % ((which,) + sys.version_info[:2]))
    py = os.path.join(venv, "bin", "python")
    marker = os.path.join(venv, ".installed")
    if os.path.exists(marker):
        return py
    if os.path.exists(venv):
        shutil.rmtree(venv)
    os.makedirs(CACHE, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", NUMPYS[which]], check=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(venv, ignore_errors=True)
        pytest.skip("cannot install %s from PyPI (%s)" % (NUMPYS[which], e))
    open(marker, "w").close()
    return py


SCRIPT = textwrap.dedent("""
    import json, sys
    from decimal import Decimal
    import numpy as np
    from atelier import Run

    run = Run.get_context()
    y, pred = np.array([50.0, 60.0]), np.array([45.0, 68.0])
    rmse = np.sqrt(np.mean((y - pred) ** 2))  # as a scikit-learn script computes it: a float64
    run.log("valid", 1.0)  # batched with the numpy values below, it must not be lost with them
    run.log("rmse", rmse)
    run.log("f64", np.float64(57.4))
    run.log("f32", np.float32(0.5))
    run.log("f16", np.float16(1.5))
    run.log("longdouble", np.longdouble(2.5))
    run.log("ints", np.int8(-3))
    run.log("ints", np.int16(300))
    run.log("ints", np.int32(-70000))
    run.log("ints", np.int64(2 ** 40))
    run.log("uints", np.uint8(255))
    run.log("uints", np.uint64(2 ** 64 - 1))
    run.log("bool", np.bool_(True))
    run.log("array0d", np.array(2.5))
    run.log("array0d", np.array(7))
    run.log("nonfinite", np.float64("nan"))
    run.log("nonfinite", np.float32("inf"))
    run.log("decimal", Decimal("0.1"))
    run.log("big", 2 ** 64 + 1)
    run.log("stepped", np.float64(0.5), step=np.int64(3))
    run.log_list("list_array", np.array([0.1, 0.2]))
    run.log_list("list_scalars", [np.float64(1.5), np.int64(2), np.bool_(False), np.float32("nan"), np.uint64(2 ** 64 - 1)])
    run.log_row("row", epoch=np.int64(1), loss=np.float64(0.9), ok=np.bool_(True), note=np.str_("x"))
    run.log_table("table", {"alpha": np.array([0.1, 0.2]), "mse": [np.float64(3.0), np.float32(2.5)],
                            "n": np.arange(2)})

    refused = {}
    for what, f in [("complex", lambda: run.log("bad", np.complex128(1 + 2j))),
                    ("array", lambda: run.log("bad", np.array([1.0, 2.0]))),
                    ("one-element array", lambda: run.log("bad", np.array([1.0]))),
                    ("datetime", lambda: run.log("bad", np.datetime64("2020-01-01"))),
                    ("complex in a list", lambda: run.log_list("bad", np.array([1j]))),
                    ("datetime in a row", lambda: run.log_row("bad", t=np.datetime64("2020-01-01")))]:
        try:
            f()
        except (TypeError, ValueError) as e:
            refused[what] = str(e)
    run.flush()
    print(json.dumps({"numpy": np.__version__, "refused": refused}))
""")


@pytest.mark.parametrize("which", sorted(NUMPYS))
def test_numpy_values_reach_the_server_as_numbers(ws, run, tmp_path, which):
    py = _venv_python(which)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    p = subprocess.run([py, str(script)], env=run_env(ws, run), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["numpy"].startswith("1." if which == "numpy1" else "2."), out

    assert sorted(out["refused"]) == sorted(["complex", "array", "one-element array", "datetime",
                                             "complex in a list", "datetime in a row"])
    for what, msg in out["refused"].items():
        assert "'bad'" in msg, (what, msg)
    assert "complex" in out["refused"]["complex"] and "shape (2,)" in out["refused"]["array"]

    def values(name):
        # The raw JSON the server answers: numbers stay numbers, only NaN/Infinity are strings.
        return api(ws, "GET", "/runs/%s/metric-history" % run.id, query={"name": name})["values"]

    assert values("valid") == [1.0]
    assert values("rmse") == [math.sqrt(44.5)]
    assert values("f64") == [57.4]
    assert values("f32") == [0.5] and values("f16") == [1.5] and values("longdouble") == [2.5]
    assert values("ints") == [-3, 300, -70000, 2 ** 40]
    assert values("uints") == [255, float(2 ** 64 - 1)]
    assert values("bool") == [1.0]
    assert values("array0d") == [2.5, 7]
    assert values("nonfinite") == ["NaN", "Infinity"]
    assert values("decimal") == [0.1]
    assert values("big") == [float(2 ** 64 + 1)]
    assert values("stepped") == [0.5]
    assert api(ws, "GET", "/runs/%s/metric-history" % run.id, query={"name": "stepped"})["steps"] == [3]
    for name in ("valid", "rmse", "f64", "ints", "array0d", "big"):
        assert all(isinstance(v, (int, float)) for v in values(name)), name

    def record(name):
        return api(ws, "GET", "/runs/%s/metric-records" % run.id, query={"name": name})["records"][0]["value"]
    assert record("list_array") == [0.1, 0.2]
    assert record("list_scalars") == [1.5, 2, False, "NaN", 2 ** 64 - 1]
    assert record("row") == {"epoch": 1, "loss": 0.9, "ok": True, "note": "x"}
    assert record("table") == {"alpha": [0.1, 0.2], "mse": [3.0, 2.5], "n": [0, 1]}
    names = {m["name"] for m in api(ws, "GET", "/runs/%s/metrics" % run.id)["metrics"]}
    assert "bad" not in names
