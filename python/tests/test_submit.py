"""Submission against a fake server that records requests, and the gitignore matcher."""

import hashlib
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import atelier
from atelier._ignore import IgnoreRules, walk


class Fake:
    def __init__(self):
        self.requests = []
        self.objects = {}
        self.status_seq = ["Running", "Completed"]
        self.final_error = ""
        self.log = b"epoch 1 loss 0.9\nepoch 2 loss 0.5\n"


def make_server(fake):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _json(self, status, obj):
            b = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def _run(self, status):
            return {"id": "r1", "workspace": "default", "experiment": "exp", "parent_id": "", "name": "",
                    "status": status, "error": fake.final_error if status == "Failed" else "", "params": {},
                    "tags": {}, "properties": {}, "metrics": {}, "child_count": 0}

        def do_POST(self):
            body = self._body()
            fake.requests.append(("POST", self.path, body, dict(self.headers)))
            base = "/api/v1/workspaces/default"
            if self.path == base + "/objects/missing":
                ds = json.loads(body)["digests"]
                return self._json(200, {"missing": [d for d in ds if d not in fake.objects]})
            if self.path == base + "/snapshots":
                return self._json(201, {"id": "snap1", "workspace": "default",
                                        "file_count": len(json.loads(body)["entries"])})
            if self.path == base + "/runs/submit":
                return self._json(201, self._run("Queued"))
            if self.path == base + "/runs/r1/cancel":
                return self._json(200, self._run("CancelRequested"))
            return self._json(404, {"code": "not_found", "message": "no such endpoint"})

        def do_PUT(self):
            body = self._body()
            fake.requests.append(("PUT", self.path, body, dict(self.headers)))
            m = re.match(r"^/api/v1/workspaces/default/objects/([0-9a-f]{64})$", self.path)
            if not m or hashlib.sha256(body).hexdigest() != m.group(1):
                return self._json(400, {"code": "invalid", "message": "digest mismatch"})
            fake.objects[m.group(1)] = body
            return self._json(201, {"digest": m.group(1), "size": len(body)})

        def do_GET(self):
            fake.requests.append(("GET", self.path, b"", dict(self.headers)))
            if self.path == "/api/v1/workspaces/default/runs/r1":
                st = fake.status_seq.pop(0) if len(fake.status_seq) > 1 else fake.status_seq[0]
                return self._json(200, self._run(st))
            if self.path.startswith("/api/v1/workspaces/default/runs/r1/logs/logs/std_log.txt"):
                off = int(re.search(r"offset=(\d+)", self.path).group(1))
                data = fake.log[off:]
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            return self._json(404, {"code": "not_found", "message": "not found"})

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def fake():
    f = Fake()
    srv = make_server(f)
    f.url = "http://127.0.0.1:%d" % srv.server_address[1]
    yield f
    srv.shutdown()
    srv.server_close()


def make_source(tmp_path):
    src = tmp_path / "src"
    for rel, text in {
        "train.py": "print('hi')\n",
        "lib/util.py": "x = 1\n",
        "lib/cache/blob.bin": "junk",
        "debug.log": "noise",
        "build/out.o": "obj",
        "sub/build/keep.txt": "kept: /build/ is anchored",
        "secret.key": "s",
        "secret_ok.txt": "re-included",
        "notes/.gitignore": "*.tmp\n",
        "notes/a.tmp": "t",
        "notes/a.md": "m",
        ".git/HEAD": "ref",
    }.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (src / ".gitignore").write_text("# comment\n*.log\n/build/\nsecret*\n!secret_ok.txt\n**/cache/**\n")
    os.chmod(src / "train.py", 0o755)
    return src


def test_submit_uploads_snapshot_and_streams(fake, tmp_path, capsys):
    src = make_source(tmp_path)
    req = tmp_path / "requirements.txt"  # outside the source directory
    req.write_text("requests\n")
    ws = atelier.Workspace(fake.url, "tok")
    env = atelier.Environment.from_pip_requirements("env", str(req))
    env.python = "python3"
    env.variables = {"MODE": "fast"}
    cfg = atelier.ScriptRunConfig(source_directory=str(src), script="train.py", arguments=["--alpha", 0.5],
                                  compute_target="local", environment=env)
    run = atelier.Experiment(ws, "exp").submit(cfg, tags={"t": "1"})
    assert run.id == "r1" and run.get_details()["status"] in ("Running", "Completed")

    posts = {p: json.loads(b) for m, p, b, h in fake.requests if m == "POST"}
    snap = posts["/api/v1/workspaces/default/snapshots"]
    paths = sorted(e["path"] for e in snap["entries"])
    assert paths == [".atelier/requirements.txt", ".gitignore", "lib/util.py", "notes/.gitignore", "notes/a.md",
                     "secret_ok.txt", "sub/build/keep.txt", "train.py"]
    by_path = {e["path"]: e for e in snap["entries"]}
    assert by_path["train.py"]["executable"] is True and "executable" not in by_path["lib/util.py"]
    assert by_path["train.py"]["digest"] == hashlib.sha256(b"print('hi')\n").hexdigest()
    assert by_path["train.py"]["size"] == len("print('hi')\n")
    assert all(fake.objects[e["digest"]] is not None for e in snap["entries"])
    assert all(h.get("Authorization") == "Bearer tok" for m, p, b, h in fake.requests)

    sub = posts["/api/v1/workspaces/default/runs/submit"]
    assert sub["experiment"] == "exp" and sub["snapshot_id"] == "snap1" and sub["tags"] == {"t": "1"}
    assert sub["config"] == {"script": "train.py", "arguments": ["--alpha", "0.5"], "compute": "local",
                             "environment": {"python": "python3", "requirements": ".atelier/requirements.txt",
                                             "variables": {"MODE": "fast"}}}

    # a second submit sends no object again
    n_puts = sum(1 for r in fake.requests if r[0] == "PUT")
    fake.status_seq = ["Running", "Running", "Completed"]
    run = atelier.Experiment(ws, "exp").submit(cfg)
    assert sum(1 for r in fake.requests if r[0] == "PUT") == n_puts

    capsys.readouterr()
    details = run.wait_for_completion(show_output=True, poll_interval=0.05)
    assert details["status"] == "Completed"
    out = capsys.readouterr().out
    assert "epoch 1 loss 0.9\nepoch 2 loss 0.5\n" in out and "RunId: r1" in out
    follow = [p for m, p, b, h in fake.requests if "std_log.txt" in p]
    assert follow and "follow=true" in follow[0] and "offset=0" in follow[0]
    assert any("offset=%d" % len(fake.log) in p for p in follow)  # resumed where it left off


def test_wait_raises_on_failure(fake, tmp_path):
    src = make_source(tmp_path)
    ws = atelier.Workspace(fake.url, "tok")
    run = atelier.Experiment(ws, "exp").submit(atelier.ScriptRunConfig(str(src), "train.py"))
    fake.status_seq = ["Failed"]
    fake.final_error = "exit status 1"
    with pytest.raises(atelier.ActivityFailedError) as ei:
        run.wait_for_completion(poll_interval=0.05)
    assert "exit status 1" in str(ei.value) and ei.value.details["status"] == "Failed"
    assert isinstance(ei.value, atelier.AtelierError)
    assert run.wait_for_completion(raise_on_error=False, poll_interval=0.05)["status"] == "Failed"
    run.cancel()
    assert ("POST", "/api/v1/workspaces/default/runs/r1/cancel") in [(m, p) for m, p, b, h in fake.requests]


def test_submit_without_environment(fake, tmp_path):
    src = make_source(tmp_path)
    (src / "requirements.txt").write_text("numpy\n")
    ws = atelier.Workspace(fake.url, "tok")
    env = atelier.Environment(requirements="requirements.txt")
    atelier.Experiment(ws, "exp").submit(atelier.ScriptRunConfig(str(src), "train.py", environment=env,
                                                                 max_run_duration_seconds=60))
    sub = [json.loads(b) for m, p, b, h in fake.requests if p.endswith("/runs/submit")][0]
    assert sub["config"]["environment"] == {"requirements": "requirements.txt"}
    assert sub["config"]["timeout"] == 60 and sub["config"]["arguments"] == []


@pytest.mark.parametrize("patterns,path,is_dir,want", [
    ("*.log", "a.log", False, True),
    ("*.log", "x/y/a.log", False, True),
    ("*.log", "a.logs", False, False),
    ("/build", "build", True, True),
    ("/build", "x/build", True, False),
    ("build/", "x/build", True, True),
    ("build/", "build", False, False),
    ("doc/*.txt", "doc/a.txt", False, True),
    ("doc/*.txt", "doc/sub/a.txt", False, False),
    ("doc/**/*.txt", "doc/sub/deep/a.txt", False, True),
    ("doc/**/*.txt", "doc/a.txt", False, True),
    ("**/foo", "a/b/foo", False, True),
    ("**/foo", "foo", False, True),
    ("abc/**", "abc/x/y", False, True),
    ("abc/**", "abc", True, False),
    ("a?c", "abc", False, True),
    ("a?c", "a/c", False, False),
    ("[a-c]x", "bx", False, True),
    ("[!a-c]x", "bx", False, False),
    ("*.py\n!keep.py", "keep.py", False, False),
    ("*.py\n!keep.py", "other.py", False, True),
    ("\\#hash", "#hash", False, True),
    ("# comment\n\n", "# comment", False, False),
    ("\\!bang", "!bang", False, True),
])
def test_ignore_patterns(patterns, path, is_dir, want):
    assert IgnoreRules().extended("", patterns).ignored(path, is_dir) is want


def test_nested_ignore_and_amlignore(tmp_path):
    src = make_source(tmp_path)
    got = [rel for rel, _ in walk(str(src))]
    assert "notes/a.tmp" not in got and "notes/a.md" in got and "debug.log" not in got
    (src / ".amlignore").write_text("lib/\n")  # .amlignore replaces .gitignore
    got = [rel for rel, _ in walk(str(src))]
    assert "debug.log" in got and "lib/util.py" not in got and "notes/a.tmp" in got
    assert not any(g.startswith(".git/") for g in got)
