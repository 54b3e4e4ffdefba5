"""The same score.py files and requests against atelier's runtime and Microsoft's
azureml-inference-server-http 1.5.1: the status, the body and the headers a client reads must be
the same, byte for byte.

Microsoft's server (with Flask, gunicorn and inference-schema) lives in a virtualenv cached under
$ATELIER_TEST_CACHE, built from PyPI the first time; its default host is patched to 127.0.0.1
(it binds 0.0.0.0 and has no flag for it). Without PyPI the comparison is skipped. Both servers
run with that virtualenv's Python, so score.py sees the same libraries.
"""

import glob
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import CACHE, SCRIPTS

AML_PACKAGES = ["azureml-inference-server-http==1.5.1", "scikit-learn"]
COMPARED = ("content-type", "x-ms-run-function-failed", "x-ms-request-id", "x-ms-client-request-id", "x-reversed")


@pytest.fixture(scope="session")
def aml_venv():
    venv = os.path.join(CACHE, "azmlinfsrv-venv-py%d%d" % sys.version_info[:2])
    marker = os.path.join(venv, ".installed")
    if not os.path.exists(marker):
        if os.path.exists(venv):
            shutil.rmtree(venv)
        os.makedirs(CACHE, exist_ok=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q"] + AML_PACKAGES,
                           check=True, timeout=900)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.skip("cannot install azureml-inference-server-http from PyPI (%s)" % e)
        open(marker, "w").close()
    for constants in glob.glob(os.path.join(venv, "lib", "python3*", "site-packages", "azureml_inference_server_http", "constants.py")):
        src = open(constants).read()
        if 'DEFAULT_HOST = "0.0.0.0"' in src:
            with open(constants, "w") as f:
                f.write(src.replace('DEFAULT_HOST = "0.0.0.0"', 'DEFAULT_HOST = "127.0.0.1"'))
    return venv


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(port, method, path, body, headers):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders() if k.lower() in COMPARED}, data
    finally:
        c.close()


@pytest.fixture
def microsoft(aml_venv, tmp_path):
    procs = []

    def _start(script):
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "ATELIER_"))}
        env["AZUREML_MODEL_DIR"] = str(tmp_path)
        log = open(tmp_path / ("azmlinfsrv-%d.log" % port), "w")
        p = subprocess.Popen([os.path.join(aml_venv, "bin", "azmlinfsrv"), "--entry_script", os.path.join(SCRIPTS, script),
                              "--port", str(port)], env=env, cwd=str(tmp_path), stdout=log, stderr=log, start_new_session=True)
        procs.append(p)
        deadline = time.monotonic() + 120
        while True:
            try:
                if _request(port, "GET", "/", None, {})[0] == 200:
                    return port
            except OSError:
                pass
            if p.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("Microsoft's server did not start:\n" + open(log.name).read())
            time.sleep(0.2)

    yield _start
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=30)


H = {"x-ms-request-id": "parity-1"}
J = dict(H, **{"Content-Type": "application/json"})

CASES = {
    "echo_score.py": [
        ("POST", "/score", b'{"data": [1, 2]}', J),
        ("POST", "/score", b'{"fail": "x"}', J),
        ("POST", "/score", b'{"text": "{\\"a\\": 1}"}', J),
        ("POST", "/score", b'{"data": "\xff"}', J),
        ("GET", "/score?data=[1,2]&x=y&x=z", None, H),
        ("GET", "/score", None, {"x-ms-client-request-id": "c-2"}),
        ("OPTIONS", "/score", None, H),
        ("GET", "/swagger.json", None, H),
        ("GET", "/swagger.json?version=3", None, H),
        ("GET", "/swagger.json?version=3.1", None, H),
        ("GET", "/swagger.json?version=9", None, H),
        ("POST", "/score", b"{}", {"x-request-id": "y" * 101}),
    ],
    "rawhttp_score.py": [
        ("GET", "/score?a=1&b=x", None, H),
        ("POST", "/score", b"abc", H),
        ("OPTIONS", "/score", None, H),
        ("POST", "/score", b'--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--XyZ\r\n'
                           b'Content-Disposition: form-data; name="image"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
                           b'\x00\x01\xff\r\n--XyZ--\r\n', dict(H, **{"Content-Type": "multipart/form-data; boundary=XyZ"})),
    ],
    "schema_score.py": [
        ("POST", "/score", b'{"data": [[1, 2, 3, 4]], "scale": 2}', J),
        ("POST", "/score", b'{"data": [[1, 2, 3, 4]]}', J),
        ("POST", "/score", b'{"scale": 2}', J),
        ("POST", "/score", b'{"data": [[1, 2, 3, 4]]}', dict(H, **{"Content-Type": "text/plain"})),
        ("POST", "/score", b"[1]", J),
        ("POST", "/score", b"{nope", J),
        ("POST", "/score", b"", J),
        ("GET", "/score?data=[[1,1,1,1]]&scale=3", None, H),
        ("GET", "/swagger.json", None, H),
        ("GET", "/swagger.json?version=3", None, H),
        ("GET", "/swagger.json?version=3.1", None, H),
    ],
    "headers_score.py": [
        ("POST", "/score", b"hi", dict(H, **{"User-Agent": "probe/1", "X-Custom": "v"})),
    ],
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_same_answers_as_microsoft(start, microsoft, aml_venv, script):
    ours = start(script, python=os.path.join(aml_venv, "bin", "python"))
    theirs = microsoft(script)
    for method, path, body, headers in CASES[script]:
        got = _request(ours.port, method, path, body, headers)
        want = _request(theirs, method, path, body, headers)
        assert got == want, "%s %s %r" % (method, path, body)
