"""Fixtures that run atelier's scoring runtime as a real subprocess on real score.py files.

The protocol tests need only the standard library (the runtime's own requirement). The
scikit-learn, inference_schema and MLflow cases run the runtime with a Python that has those
packages: a virtualenv cached under $ATELIER_TEST_CACHE (default ~/.cache/atelier-test), built
from PyPI the first time; without PyPI (and no cached venv) those cases are skipped.

Run from the repository root:  python3 -m pytest -q oci/build/runtime/tests
"""

import http.client
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIME = os.path.join(os.path.dirname(HERE), "atelier_runtime.py")
SCRIPTS = os.path.join(HERE, "scripts")
CACHE = os.environ.get("ATELIER_TEST_CACHE", os.path.expanduser("~/.cache/atelier-test"))
PACKAGES = ["scikit-learn", "joblib", "inference-schema", "mlflow-skinny", "pandas"]


class Runtime:
    """A running scoring runtime: its address, its process and what it wrote to stderr."""

    def __init__(self, proc, addr, stderr_lines):
        self.proc, self.addr, self._err = proc, addr, stderr_lines
        self.unix = addr.startswith("/")
        if not self.unix:
            self.host, port = addr.rsplit(":", 1)
            self.port = int(port)

    def connect(self, timeout=30):
        if self.unix:
            c = http.client.HTTPConnection("localhost", timeout=timeout)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(self.addr)
            c.sock = s
            return c
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None):
        """(status, headers as a dict with lower-case names, body bytes)."""
        c = conn or self.connect()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            if conn is None:
                c.close()

    def post_json(self, path, obj, headers=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return self.request("POST", path, json.dumps(obj).encode(), h)

    def stderr(self):
        return "".join(self._err)

    def wait_stderr(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            if time.monotonic() > deadline:
                raise AssertionError("%r never reached the runtime's stderr:\n%s" % (text, self.stderr()))
            time.sleep(0.01)


def spawn(script, python=None, env=None, cwd=None):
    """Starts the runtime; returns (proc, stdout line queue, stderr lines list)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "ATELIER_"))}
    e["PYTHONDONTWRITEBYTECODE"] = "1"
    e["AZUREML_ENTRY_SCRIPT"] = script or ""
    e["ATELIER_SCORE_HOST"] = "127.0.0.1"
    e["ATELIER_SCORE_PORT"] = "0"
    e.update(env or {})
    proc = subprocess.Popen([python or sys.executable, RUNTIME], env=e, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = queue.Queue(), []

    def pump_out():
        for line in proc.stdout:
            out.put(line)
        out.put(None)

    def pump_err():
        for line in proc.stderr:
            err.append(line)

    threading.Thread(target=pump_out, daemon=True).start()
    threading.Thread(target=pump_err, daemon=True).start()
    return proc, out, err


@pytest.fixture
def start(tmp_path):
    """start(script, python=None, env=None) -> a ready Runtime, stopped after the test."""
    procs = []

    def _start(script, python=None, env=None, timeout=120):
        if script and not os.path.isabs(script):
            script = os.path.join(SCRIPTS, script)
        env = dict(env or {})
        env.setdefault("AZUREML_MODEL_DIR", str(tmp_path / "models"))
        proc, out, err = spawn(script, python, env, cwd=str(tmp_path))
        procs.append(proc)
        try:
            line = out.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the runtime printed nothing in %ds:\n%s" % (timeout, "".join(err)))
        if line is None:
            proc.wait(timeout=30)
            raise AssertionError("the runtime exited %s before it was ready:\n%s" % (proc.returncode, "".join(err)))
        prefix = "atelier scoring runtime ready on "
        assert line.startswith(prefix), line
        return Runtime(proc, line[len(prefix):].strip(), err)

    yield _start
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _venv_python():
    tag = "py%d%d" % sys.version_info[:2]
    venv = os.path.join(CACHE, "scoring-venv-" + tag)
    py = os.path.join(venv, "bin", "python")
    marker = os.path.join(venv, ".installed")
    if os.path.exists(marker):
        return py
    if os.path.exists(venv):
        shutil.rmtree(venv)
    os.makedirs(CACHE, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q"] + PACKAGES, check=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(venv, ignore_errors=True)
        pytest.skip("cannot install %s from PyPI (%s): the scikit-learn, inference_schema and MLflow cases need them"
                    % (" ".join(PACKAGES), e))
    open(marker, "w").close()
    return py


@pytest.fixture(scope="session")
def ml_python():
    """A python with scikit-learn, inference-schema, mlflow-skinny and pandas."""
    return _venv_python()
