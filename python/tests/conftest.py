"""Fixtures: one real atelier server for the session, built from this checkout."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

PY_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(PY_DIR)
sys.path.insert(0, PY_DIR)

import atelier  # noqa: E402


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What else the session's server offers: "socket", the path of its Unix socket.
SERVER = {}


@pytest.fixture(scope="session")
def binary(tmp_path_factory):
    """The atelier binary, built from this checkout (or $ATELIER_TEST_BINARY, one built already)."""
    if os.environ.get("ATELIER_TEST_BINARY"):
        return os.environ["ATELIER_TEST_BINARY"]
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    path = str(tmp_path_factory.mktemp("bin") / "atelier")
    subprocess.run(["go", "build", "-o", path, "./cmd/atelier"], cwd=REPO_ROOT, check=True)
    return path


class Server:
    """A running `atelier server --data DIR` on a free loopback port."""

    def __init__(self, binary, data, *args, port=None):
        self.data = str(data)
        self.port = port or _free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        os.makedirs(os.path.dirname(self.data), exist_ok=True)
        self.log_path = os.path.join(os.path.dirname(self.data), "server-%d.log" % self.port)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary, "server", "--data", self.data, "--addr", "127.0.0.1:%d" % self.port]
                                     + list(args), stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        with open(os.path.join(self.data, "admin-token")) as f:
            self.token = f.read().strip()

    def _wait_ready(self):
        # Ready once it answers and has written its address (after it opens its socket).
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + "/api/v1/health", timeout=1) as r:
                    if r.status == 200 and os.path.exists(os.path.join(self.data, "server-url")):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(self.log_path) as f:
                    raise RuntimeError("atelier server did not start:\n" + f.read())
            time.sleep(0.05)

    def stop(self, sig=None):
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="session")
def server(binary, tmp_path_factory):
    """(base URL, admin token) of a running atelier server."""
    data = tmp_path_factory.mktemp("atelier") / "data"
    srv = Server(binary, data)
    try:
        SERVER["socket"] = str(data / "atelier.sock")
        yield srv.url, srv.token
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def ws(server):
    url, token = server
    return atelier.Workspace(url, token, "default")


@pytest.fixture
def run(ws, request):
    """A fresh interactive run, completed (if still running) after the test."""
    exp = atelier.Experiment(ws, "pytest")
    r = exp.start_logging(name=request.node.name[:200])
    yield r
    try:
        if r.get_status() == "Running":
            r.complete()
    except atelier.AtelierError:
        pass


def api(ws, method, path, body=None, query=None):
    """A raw API call for checking what the server stored."""
    return ws._client.request(method, "/api/v1/workspaces/%s%s" % (ws.name, path), body=body, query=query)


def run_env(ws, run):
    env = dict(os.environ)
    env.update({"ATELIER_SERVER": ws.server, "ATELIER_TOKEN": ws._client.token, "ATELIER_WORKSPACE": ws.name,
                "ATELIER_RUN_ID": run.id, "ATELIER_EXPERIMENT": run.experiment.name,
                "PYTHONPATH": PY_DIR + os.pathsep + env.get("PYTHONPATH", "")})
    return env


def png_bytes(width=2, height=2, rgb=(255, 0, 0)):
    """A tiny valid PNG, made with the standard library."""
    import struct
    import zlib

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture(autouse=True)
def _reset_context():
    atelier.Run._context = None
    yield
    atelier.Run._context = None


__all__ = ["api", "run_env", "png_bytes", "json", "Server"]
