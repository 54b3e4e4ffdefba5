"""Real Azure ML score.py files with their real dependencies (scikit-learn, inference_schema) and an
MLflow model without a score.py, served by the runtime from a Python that has those packages."""

import csv
import datetime
import json
import os
import subprocess
import textwrap
import time

import pytest

TRAIN = textwrap.dedent("""
    import sys, joblib, numpy as np
    from sklearn.linear_model import Ridge
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 10)); w = np.arange(1, 11, dtype=float)
    model = Ridge(alpha=0.1).fit(X, X @ w + 5)
    joblib.dump(model, sys.argv[1])
""")


@pytest.fixture
def sklearn_models(ml_python, tmp_path):
    """A models root holding sklearn_regression_model version 1, as an image lays it out."""
    d = tmp_path / "azureml-models" / "sklearn_regression_model" / "1"
    d.mkdir(parents=True)
    subprocess.run([ml_python, "-c", TRAIN, str(d / "sklearn_regression_model.pkl")], check=True, timeout=300)
    return d


def test_sklearn_sample_with_model_data_collection(start, ml_python, sklearn_models, tmp_path):
    data_dir = tmp_path / "modeldata"
    rt = start("sklearn_score.py", python=ml_python,
               env={"AZUREML_MODEL_DIR": str(sklearn_models), "ATELIER_MODEL_DATA_DIR": str(data_dir)})
    rows = [[0.0] * 10, [1.0] * 10]
    status, headers, body = rt.post_json("/score", {"data": rows}, {"x-ms-request-id": "req-7"})
    assert status == 200, body
    got = json.loads(body)
    assert abs(got[0] - 5) < 0.5 and abs(got[1] - 60) < 0.5, got
    day = datetime.datetime.now(datetime.timezone.utc)
    parts = ("%04d" % day.year, "%02d" % day.month, "%02d" % day.day)
    inputs = data_dir.joinpath("sklearn_regression_model", "1", "inputs", *parts, "data.csv")
    preds = data_dir.joinpath("sklearn_regression_model", "1", "predictions", *parts, "data.csv")
    with open(inputs) as f:
        table = list(csv.reader(f))
    assert table[0][3:] == ["f%d" % i for i in range(10)]
    assert [r[0] for r in table[1:]] == ["req-7", "req-7"]
    assert [float(x) for x in table[2][3:]] == [1.0] * 10
    with open(preds) as f:
        table = list(csv.reader(f))
    assert table[0][3:] == ["prediction"] and abs(float(table[2][3]) - 60) < 0.5
    # A malformed request is run()'s exception: 500 and the traceback in the log.
    status, _, body = rt.post_json("/score", {"data": [[1, 2]]})
    assert status == 500
    rt.wait_stderr("ValueError")


def test_sklearn_over_v2(start, ml_python, sklearn_models):
    rt = start("sklearn_score.py", python=ml_python, env={"AZUREML_MODEL_DIR": str(sklearn_models)})
    req = {"inputs": [{"name": "input-0", "shape": [2, 10], "datatype": "FP64", "data": [0.0] * 10 + [1.0] * 10}]}
    status, _, body = rt.post_json("/v2/models/sklearn_regression_model/versions/1/infer", req)
    assert status == 200, body
    out = json.loads(body)["outputs"][0]
    assert out["name"] == "predict" and out["shape"] == [2] and out["datatype"] == "FP64"
    assert abs(out["data"][1] - 60) < 0.5


def test_inference_schema_sample(start, ml_python):
    rt = start("schema_score.py", python=ml_python)
    status, headers, body = rt.post_json("/score", {"data": [[1, 2, 3, 4], [0, 0, 0, 1]], "scale": 2})
    assert status == 200, body
    assert json.loads(body) == [20.0, 2.0]
    # The optional parameter's default applies; a missing one is a 400 naming it.
    assert json.loads(rt.post_json("/score", {"data": [[1, 1, 1, 1]]})[2]) == [4.0]
    status, _, body = rt.post_json("/score", {"scale": 2})
    assert status == 400 and json.loads(body)["message"] == "A value is not provided for the 'data' parameter."
    status, _, body = rt.request("POST", "/score", b'{"data": [[1,1,1,1]]}', {"Content-Type": "text/plain"})
    assert status == 415 and json.loads(body)["message"] == "Expects Content-Type to be application/json"
    status, _, body = rt.request("POST", "/score", b"[1]", {"Content-Type": "application/json"})
    assert status == 400 and json.loads(body)["message"] == "POST body should be a JSON dictionary."
    status, _, body = rt.request("POST", "/score", b"{nope", {"Content-Type": "application/json"})
    assert status == 400 and "could not be decoded as JSON" in json.loads(body)["message"]
    # GET /score: the query's values, parsed as JSON.
    status, _, body = rt.request("GET", "/score?data=%5B%5B1%2C1%2C1%2C1%5D%5D&scale=3")
    assert status == 200 and json.loads(body) == [12.0]

    status, _, body = rt.request("GET", "/swagger.json")
    assert status == 200, body
    doc = json.loads(body)
    assert doc["swagger"] == "2.0"
    props = doc["definitions"]["ServiceInput"]["properties"]
    assert props["data"]["type"] == "array" and props["scale"]["type"] == "number"
    assert doc["definitions"]["ServiceOutput"]["type"] == "array"
    assert "/score" in doc["paths"]
    status, _, body = rt.request("GET", "/swagger.json?version=3")
    assert status == 200 and json.loads(body)["openapi"] == "3.0.3"
    assert json.loads(body)["components"]["schemas"]["ServiceInput"]["properties"]["data"]["type"] == "array"
    status, _, body = rt.request("GET", "/swagger.json?version=3.1")
    assert status == 200 and json.loads(body)["openapi"] == "3.1.0"


MLFLOW_MODEL = textwrap.dedent("""
    import sys, numpy as np, pandas as pd, mlflow.sklearn
    from sklearn.linear_model import LinearRegression
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LinearRegression().fit(X, 2 * X["a"] + 3 * X["b"] + 1)
    mlflow.sklearn.save_model(model, sys.argv[1], serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE)
""")


@pytest.fixture
def mlflow_model(ml_python, tmp_path):
    d = tmp_path / "azureml-models" / "regressor" / "2"
    d.mkdir(parents=True)
    p = subprocess.run([ml_python, "-c", MLFLOW_MODEL, str(d / "model")], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        pytest.fail("saving an MLflow model failed:\n" + p.stderr)
    return d


def test_mlflow_model_without_score_py(start, ml_python, mlflow_model):
    rt = start("", python=ml_python, env={"AZUREML_MODEL_DIR": str(mlflow_model)})
    assert rt.request("GET", "/ping")[0] == 200
    assert rt.request("GET", "/health")[0] == 200
    assert rt.request("GET", "/")[0] == 200
    want = [1.0, 6.0]
    for payload in (
        {"dataframe_split": {"columns": ["a", "b"], "data": [[0, 0], [1, 1]]}},
        {"dataframe_records": [{"a": 0, "b": 0}, {"a": 1, "b": 1}]},
        {"instances": [[0, 0], [1, 1]]},
        {"inputs": [[0, 0], [1, 1]]},
    ):
        status, _, body = rt.post_json("/invocations", payload)
        assert status == 200, (payload, body)
        got = json.loads(body)["predictions"]
        assert [round(x, 6) for x in got] == want, (payload, got)
    status, _, body = rt.request("POST", "/invocations", b"a,b\n0,0\n1,1\n", {"Content-Type": "text/csv"})
    assert status == 200 and [round(x, 6) for x in json.loads(body)["predictions"]] == want
    status, _, body = rt.post_json("/invocations", {"data": [[0, 0]]})
    assert status == 400 and json.loads(body)["error_code"] == "BAD_REQUEST"
    status, _, _ = rt.request("POST", "/invocations", b"x", {"Content-Type": "application/xml"})
    assert status == 415
    # The same model over the Open Inference Protocol.
    req = {"inputs": [{"name": "a", "shape": [2], "datatype": "FP64", "data": [0, 1]},
                      {"name": "b", "shape": [2], "datatype": "FP64", "data": [0, 1]}]}
    status, _, body = rt.post_json("/v2/models/regressor/versions/2/infer", req)
    assert status == 200, body
    assert [round(x, 6) for x in json.loads(body)["outputs"][0]["data"]] == want


def test_no_entry_script_and_no_mlflow_model_exits_3(tmp_path):
    from conftest import spawn

    proc, out, err = spawn("", env={"AZUREML_MODEL_DIR": str(tmp_path)})
    assert proc.wait(timeout=60) == 3
    assert out.get(timeout=10) is None
    for _ in range(1000):
        if "no MLflow model" in "".join(err):
            break
        time.sleep(0.01)
    assert "no entry script (AZUREML_ENTRY_SCRIPT) and no MLflow model" in "".join(err)


def test_ml_python_is_not_the_runtime_requirement(ml_python):
    # The runtime imports nothing outside the standard library at start-up.
    runtime = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "atelier_runtime.py")
    src = open(runtime).read()
    for mod in ("numpy", "flask", "pandas", "inference_schema"):
        assert "import %s" % mod not in src


def test_entry_script_naming_a_directory_is_mlflow_mode(start, ml_python, mlflow_model, tmp_path):
    # An image built without an entry script sets AZUREML_ENTRY_SCRIPT to its app directory.
    rt = start(str(tmp_path), python=ml_python, env={"AZUREML_MODEL_DIR": str(mlflow_model)})
    status, _, body = rt.post_json("/invocations", {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 1]]}})
    assert status == 200 and round(json.loads(body)["predictions"][0], 6) == 6.0
