"""Workspace.from_config() in the directory of a server finds that server, and sends the admin
token read from its data directory to it and to no other listener."""

import http.server
import json
import signal
import threading

import pytest

import atelier
from conftest import Server

SECRET = "admin-token-of-this-data-directory"


class Recorder:
    """A listener on a loopback port that records the Authorization header of every request
    and answers 401: what another user's server on the usual port would see."""

    def __init__(self, port=0):
        self.seen = []
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                seen.append((self.command, self.path, self.headers.get("Authorization")))
                body = json.dumps({"code": "unauthorized", "message": "who are you"}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def clean_env(monkeypatch):
    for k in ("ATELIER_SERVER", "ATELIER_TOKEN", "ATELIER_WORKSPACE", "ATELIER_RUN_ID"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.close()


def test_the_server_started_here_by_its_socket(binary, tmp_path, monkeypatch, clean_env):
    proj = tmp_path / "proj"
    srv = Server(binary, proj / ".atelier")
    try:
        monkeypatch.chdir(proj)
        ws = atelier.Workspace.from_config()
        assert ws.server == "unix://" + str(proj / ".atelier" / "atelier.sock")
        assert ws._client.token == srv.token
        assert ws.get_details()["name"] == "default"  # the token is the server's
        # Named by the address it wrote, however spelled, it is the same server: it gets the token.
        for url in (srv.url, srv.url + "/", "http://localhost:%d" % srv.port, "127.0.0.1:%d" % srv.port):
            monkeypatch.setenv("ATELIER_SERVER", url)
            ws = atelier.Workspace.from_config()
            assert ws._client.token == srv.token, url
            assert ws.get_details()["name"] == "default"
    finally:
        srv.stop()
    # Stopped, it left neither its socket nor its address: nothing is guessed.
    assert not (proj / ".atelier" / "atelier.sock").exists()
    assert not (proj / ".atelier" / "server-url").exists()
    monkeypatch.delenv("ATELIER_SERVER")
    with pytest.raises(atelier.AtelierError) as ei:
        atelier.Workspace.from_config()
    assert "ATELIER_SERVER" in ei.value.message and "admin token" in ei.value.message


def test_the_server_started_here_without_a_socket(binary, tmp_path, monkeypatch, clean_env):
    proj = tmp_path / "proj"
    srv = Server(binary, proj / ".atelier", "--socket", "off")
    try:
        assert not (proj / ".atelier" / "atelier.sock").exists()
        monkeypatch.chdir(proj)
        ws = atelier.Workspace.from_config()
        assert ws.server == srv.url and ws._client.token == srv.token
        assert ws.get_details()["name"] == "default"
    finally:
        srv.stop()


def _data_dir(proj, token=SECRET):
    d = proj / ".atelier"
    d.mkdir(parents=True)
    (d / "admin-token").write_text(token + "\n")
    return d


def test_no_server_here_is_an_error_not_a_guess(tmp_path, monkeypatch, clean_env, recorder):
    _data_dir(tmp_path / "proj")
    monkeypatch.chdir(tmp_path / "proj")
    with pytest.raises(atelier.AtelierError) as ei:
        atelier.Workspace.from_config()
    msg = ei.value.message
    assert "ATELIER_SERVER" in msg and "config.json" in msg and "atelier server" in msg, msg
    assert recorder.seen == []


@pytest.mark.parametrize("named_by", ["env", "config"])
def test_the_token_is_not_sent_to_another_server(tmp_path, monkeypatch, clean_env, recorder, named_by):
    proj = tmp_path / "proj"
    _data_dir(proj)
    if named_by == "env":
        monkeypatch.setenv("ATELIER_SERVER", recorder.url)
    else:  # a config further up (the user's usual one) names another server
        (tmp_path / ".atelier").mkdir()
        (tmp_path / ".atelier" / "config.json").write_text(json.dumps({"server": recorder.url}))
    monkeypatch.chdir(proj)
    ws = atelier.Workspace.from_config()
    assert ws.server == recorder.url and ws._client.token == ""
    with pytest.raises(atelier.AtelierError) as ei:
        ws.get_details()
    assert ei.value.status == 401
    assert recorder.seen and all(auth is None for _, _, auth in recorder.seen), recorder.seen


def test_a_dead_servers_address_is_not_trusted(binary, tmp_path, monkeypatch, clean_env):
    """A server killed without cleaning up leaves its socket and server-url; whoever listens on
    its port next must not get its admin token."""
    proj = tmp_path / "proj"
    srv = Server(binary, proj / ".atelier")
    srv.stop(signal.SIGKILL)
    assert (proj / ".atelier" / "atelier.sock").exists()
    assert (proj / ".atelier" / "server-url").read_text().strip() == srv.url
    other = Recorder(port=srv.port)  # the port is someone else's now
    try:
        monkeypatch.chdir(proj)
        with pytest.raises(atelier.AtelierError) as ei:
            atelier.Workspace.from_config()
        assert "does not answer" in ei.value.message
        # Named explicitly, the address gets requests, without the token.
        monkeypatch.setenv("ATELIER_SERVER", srv.url)
        ws = atelier.Workspace.from_config()
        assert ws._client.token == ""
        with pytest.raises(atelier.AtelierError):
            ws.get_details()
        assert other.seen and all(auth is None for _, _, auth in other.seen), other.seen
    finally:
        other.close()
