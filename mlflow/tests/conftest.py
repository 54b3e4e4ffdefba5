"""Fixtures for driving the real mlflow client against a real atelier server.

The mlflow client (newest 3.x from PyPI, with scikit-learn) lives in a virtualenv cached under
$ATELIER_TEST_CACHE (default ~/.cache/atelier-test), keyed by the Python version and upgraded
when older than $ATELIER_MLFLOW_REFRESH_DAYS (default 7); the tests run
mlflow code in that venv's python as subprocesses, so pytest itself needs nothing but the
standard library. Without network access to PyPI (and no cached venv) the suite is skipped.

Run from the repository root:  python3 -m pytest mlflow/tests -q
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("ATELIER_TEST_CACHE", os.path.expanduser("~/.cache/atelier-test"))
PACKAGES = ["mlflow>=3,<4", "scikit-learn"]
REFRESH_SECONDS = float(os.environ.get("ATELIER_MLFLOW_REFRESH_DAYS", "7")) * 86400


def _venv_python():
    tag = "py%d%d" % sys.version_info[:2]
    venv = os.path.join(CACHE, "mlflow-venv-" + tag)
    py = os.path.join(venv, "bin", "python")
    marker = os.path.join(venv, ".installed")
    if os.path.exists(marker):
        # Issue 19 keeps the suite on the newest mlflow 3.x: a venv older than a week is upgraded
        # (kept as it is when PyPI cannot be reached).
        if time.time() - os.path.getmtime(marker) > REFRESH_SECONDS:
            try:
                subprocess.run([py, "-m", "pip", "install", "-q", "-U"] + PACKAGES, check=True, timeout=900)
                os.utime(marker)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
                print("mlflow venv not upgraded (%s); testing the installed client" % e, file=sys.stderr)
        return py
    if os.path.exists(venv):
        shutil.rmtree(venv)
    os.makedirs(CACHE, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q"] + PACKAGES, check=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(venv, ignore_errors=True)
        pytest.skip("cannot install mlflow from PyPI (%s): the MLflow client tests need it" % e)
    open(marker, "w").close()
    return py


@pytest.fixture(scope="session")
def mlflow_python():
    """Path of a python that has mlflow and scikit-learn."""
    return _venv_python()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url, token, log_path, binary=None):
        self.url, self.token, self.log_path, self.binary = url, token, log_path, binary

    def api(self, method, path, body=None, token=None):
        """Calls atelier's own REST API; returns (status, decoded JSON)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + (token or self.token))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A running atelier server built from this checkout."""
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    tmp = tmp_path_factory.mktemp("atelier")
    binary = str(tmp / "atelier")
    subprocess.run(["go", "build", "-o", binary, "./cmd/atelier"], cwd=REPO_ROOT, check=True)
    data = tmp / "data"
    port = _free_port()
    url = "http://127.0.0.1:%d" % port
    log_path = tmp / "server.log"
    log = open(log_path, "wb")
    # Submitted runs use the cached mlflow venv as a user-managed interpreter: runs are
    # confined, and the operator makes it readable to them.
    proc = subprocess.Popen([binary, "server", "--data", str(data), "--addr", "127.0.0.1:%d" % port,
                             "--log-level", "debug", "--run-readable", CACHE], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/api/v1/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("atelier server did not start:\n" + log_path.read_text())
            time.sleep(0.05)
        token = (data / "admin-token").read_text().strip()
        yield Server(url, token, log_path, binary)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def run_mlflow(mlflow_python, server, tmp_path):
    """Runs a Python snippet with the mlflow client pointed at the server (tracking URI and
    token in the environment, no retries so a 5xx fails at once) and returns the JSON value the
    snippet passes to out(...)."""

    def run(code, tracking_uri=None, env=None):
        prelude = textwrap.dedent("""
            import json, os, sys, math
            import mlflow
            from mlflow import MlflowClient
            from mlflow.exceptions import MlflowException
            def out(v):
                print("__RESULT__" + json.dumps(v))
            """)
        script = tmp_path / "snippet.py"
        script.write_text(prelude + textwrap.dedent(code))
        e = dict(os.environ)
        e.update({
            "MLFLOW_TRACKING_URI": tracking_uri or server.url,
            "MLFLOW_TRACKING_TOKEN": server.token,
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
            "GIT_PYTHON_REFRESH": "quiet",
            "PYTHONUNBUFFERED": "1",
        })
        e.update(env or {})
        p = subprocess.run([mlflow_python, str(script)], cwd=str(tmp_path), env=e,
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise AssertionError("snippet failed (%d):\n%s\n--- stdout\n%s\n--- server log (tail)\n%s" % (
                p.returncode, p.stderr[-6000:], p.stdout[-2000:], server.log_path.read_text()[-4000:]))
        for line in p.stdout.splitlines()[::-1]:
            if line.startswith("__RESULT__"):
                return json.loads(line[len("__RESULT__"):])
        return None

    return run
