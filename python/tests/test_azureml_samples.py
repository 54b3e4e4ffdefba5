"""Azure ML v1 notebooks and scripts (examples/azureml-v1) run unchanged against a real server
(issue 24). Each sample's notebook.py runs as a user runs it, in a Python with numpy, pandas,
scikit-learn and matplotlib (a virtualenv cached under $ATELIER_TEST_CACHE; these tests skip
when it cannot be installed from PyPI), from a copy of its folder holding the config.json Azure
writes (plus the server and token). The server's runs get the same packages through PYTHONPATH.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import PY_DIR, REPO_ROOT, Server

CACHE = os.environ.get("ATELIER_TEST_CACHE", os.path.expanduser("~/.cache/atelier-test"))
PACKAGES = ["numpy>=2", "pandas", "scikit-learn", "joblib", "pyarrow", "matplotlib", "tqdm"]
SAMPLES = os.path.join(REPO_ROOT, "examples", "azureml-v1")
PYTHON_BASE = os.environ.get("ATELIER_PYTHON_BASE") or os.path.join(CACHE, "python-base", "current")


@pytest.fixture(scope="session")
def venv():
    """(python, site-packages) of the cached virtualenv with the samples' packages."""
    d = os.path.join(CACHE, "azureml-venv-py%d%d" % sys.version_info[:2])
    py = os.path.join(d, "bin", "python")
    marker = os.path.join(d, ".installed")
    if not os.path.exists(marker):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(CACHE, exist_ok=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", d], check=True)
            subprocess.run([py, "-m", "pip", "install", "-q"] + PACKAGES, check=True, timeout=1200)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            shutil.rmtree(d, ignore_errors=True)
            pytest.skip("cannot install the samples' packages from PyPI (%s)" % e)
        open(marker, "w").close()
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    return py, site


def serving_missing():
    """Why this machine cannot build and serve images (the CPython base image that
    scripts/build-python-base.sh caches, bubblewrap for the local target), or ""."""
    missing = []
    if not os.path.exists(os.path.join(PYTHON_BASE, "index.json")):
        missing.append("no CPython base image in %s (scripts/build-python-base.sh)" % PYTHON_BASE)
    if shutil.which("bwrap") is None:
        missing.append("bubblewrap is not installed")
    return "; ".join(missing)


def needs_serving():
    why = serving_missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why + " (CI installs them: see .ci/run)")
        pytest.skip(why)


@pytest.fixture(scope="session")
def sample_server(binary, venv, tmp_path_factory):
    """A server whose runs import the samples' packages (its PYTHONPATH reaches them), and that
    builds images on the CPython base and serves them when this machine can."""
    _, site = venv
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = site
    serving = [] if serving_missing() else ["--image-base", PYTHON_BASE]
    try:
        srv = Server(binary, tmp_path_factory.mktemp("azureml-samples") / "data", "--run-readable",
                     os.path.dirname(os.path.dirname(os.path.dirname(site))), "--max-local-runs", "2", *serving)
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    yield srv
    srv.stop()


def run_sample(name, venv, sample_server, tmp_path):
    """Runs examples/azureml-v1/<name>/notebook.py from a copy of its folder; returns stdout."""
    py, _ = venv
    work = tmp_path / name
    shutil.copytree(os.path.join(SAMPLES, name), str(work))
    (work / ".azureml").mkdir()
    (work / ".azureml" / "config.json").write_text(json.dumps({
        "subscription_id": "11111111-2222-3333-4444-555555555555", "resource_group": "samples-rg",
        "workspace_name": "default", "server": sample_server.url, "token": sample_server.token}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    env["PYTHONPATH"] = PY_DIR
    env["MPLBACKEND"] = "Agg"
    p = subprocess.run([py, "notebook.py"], cwd=str(work), env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, "%s failed:\n%s\n%s" % (name, p.stdout[-6000:], p.stderr[-6000:])
    return p.stdout


def test_train_on_local(venv, sample_server, tmp_path):
    out = run_sample("train-on-local", venv, sample_server, tmp_path)
    assert "SDK version: 1.60.0" in out
    assert "11111111-2222-3333-4444-555555555555" in out and "samples-rg" in out
    assert "alpha is 0.95, and mse is" in out  # the script's output, streamed by show_output
    assert "When alpha is 0.05, we have min MSE" in out or "When alpha is" in out
    assert "'outputs/ridge_0.40.pkl'" in out
    assert "best_ridge_model 1 aml://asset/best_ridge_model:1" in out
    # A conda package needs conda on the compute target: without it, the run says so.
    if shutil.which("conda") or shutil.which("mamba") or shutil.which("micromamba"):
        assert "system-managed: Completed" in out
    else:
        assert "system-managed: Failed" in out and "neither conda nor mamba" in out


def test_logging_api(venv, sample_server, tmp_path):
    out = run_sample("logging-api", venv, sample_server, tmp_path)
    assert "'Name': 'Logging API run'" in out and "'Magic Number': 42" in out
    assert "'Fibonacci': [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89]" in out
    assert "'Hyperbolic Tangent'" in out
    assert "myfile_in_the_cloud.txt" in out
    assert (tmp_path / "logging-api" / "files" / "myfile_in_the_cloud.txt").read_text() == "This is a dummy file.\n"


def test_train_within_notebook(venv, sample_server, tmp_path):
    out = run_sample("train-within-notebook", venv, sample_server, tmp_path)
    assert "Completed" in out and "'alpha_value': 0.1" in out
    assert "diabetes-ridge\tdiabetes-ridge:1\t1" in out
    assert "reloaded prediction:" in out
    assert (tmp_path / "train-within-notebook" / "azureml-models" / "diabetes-ridge" / "1" / "model.pkl").exists()


def test_manage_runs(venv, sample_server, tmp_path):
    out = run_sample("manage-runs", venv, sample_server, tmp_path)
    assert "Hello, Azure ML!" in out and "metrics: {'greeting': 'hello'}" in out
    assert "{'quality': 'fantastic run'}" in out and "'author': 'azureml-user'" in out
    assert "children: [0, 1, 2]" in out  # ints come back as ints, as Azure keeps them
    assert "interactive children: 3" in out
    assert "canceled: Canceled" in out and "failed: Failed" in out


def test_using_environments(venv, sample_server, tmp_path):
    out = run_sample("using-environments", venv, sample_server, tmp_path)
    assert "AzureML-Minimal 1" in out
    assert "registered myenv 1" in out and "Name myenv" in out
    assert "restored pip packages: ['azureml-defaults', 'six']" in out
    assert "environment: pipenv True" in out or "environment:" in out
    assert "run environment: {'EXAMPLE_VAR': '1'}" in out


def test_datasets(venv, sample_server, tmp_path):
    out = run_sample("datasets", venv, sample_server, tmp_path)
    assert "tabular rows: 150" in out and "first 3: 3" in out
    assert "registered iris 1" in out
    assert "files: ['/iris-1.csv', '/iris-2.csv']" in out
    assert "by name: iris 1 150" in out
    assert "rows: 150 files mounted: ['iris-1.csv', 'iris-2.csv']" in out
    assert "summary: ['iris-summary/summary.txt']" in out
    assert "iris-model 1" in out


def _line(out, prefix):
    for ln in out.splitlines():
        if ln.startswith(prefix):
            return ln[len(prefix):].strip()
    raise AssertionError("no line %r in:\n%s" % (prefix, out[-6000:]))


def test_deploy_to_local(venv, sample_server, tmp_path):
    needs_serving()
    out = run_sample("deploy-to-local", venv, sample_server, tmp_path)
    assert "SDK version: 1.60.0" in out and "registered sklearn_regression_model_local 1" in out
    # Model.profile deployed a temporary service, replayed the 50 rows and measured the replica.
    assert "profile state: Succeeded" in out
    assert "profile requestedCpu: 1.0" in out and "profile requestedMemoryInGB: 0.5" in out
    assert "profile totalQueries: 50" in out and "profile successQueries: 50" in out
    assert float(_line(out, "profile maxUtilizedMemoryInGB:")) > 0.01  # numpy and scikit-learn are loaded
    assert float(_line(out, "profile maxUtilizedCpu:")) >= 0
    assert float(_line(out, "profile recommendedCpu:")) >= 0.1
    assert float(_line(out, "profile recommendedMemoryInGB:")) >= float(_line(out, "profile maxUtilizedMemoryInGB:"))
    p50, p99 = float(_line(out, "profile latencyPercentile50InMs:")), float(_line(out, "profile latencyPercentile99InMs:"))
    assert 0 < p50 <= p99
    # The service: served at the server's port, its log, the model's real predictions.
    assert "Local service state: Healthy" in out
    assert _line(out, "Local service port:") == sample_server.url.rsplit(":", 1)[1]
    assert "atelier scoring runtime ready" in out or "ready" in out
    served, local = json.loads(_line(out, "prediction:")), json.loads(_line(out, "local prediction:"))
    assert len(served) == 2 and served == pytest.approx(local, rel=1e-6)
    # reload() serves the rewritten score.py; update() the second model version.
    assert "after reload: hello from updated score.py" in out
    updated, local2 = json.loads(_line(out, "after update:")), json.loads(_line(out, "local prediction 2:"))
    assert updated == pytest.approx(local2, rel=1e-6) and updated != pytest.approx(local, rel=1e-6)
    # A scikit-learn model deployed without a score.py (generated, as Azure's no-code deployment).
    assert json.loads(_line(out, "no-code:")) == pytest.approx(local2, rel=1e-6)
    assert "services left: []" in out
