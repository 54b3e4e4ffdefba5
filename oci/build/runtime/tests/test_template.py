"""The runtime as a template (ATELIER_TEMPLATE_SOCKET): score.py imported once, a replica forked
for each request on the control socket, its output on the descriptor the request carries."""

import array
import http.client
import json
import os
import socket
import subprocess
import time

import pytest

from conftest import SCRIPTS, spawn
from test_ml import TRAIN

COUNTING = """import os
HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "imports"), "a") as f:
    f.write("%d\\n" % os.getpid())

def init():
    with open(os.path.join(HERE, "inits"), "a") as f:
        f.write("%d\\n" % os.getpid())
    print("init of replica", os.environ["ATELIER_REPLICA"])

def run(raw):
    return {"pid": os.getpid()}
"""


class Replica:
    """A replica asked of a template: its control connection and its output."""

    def __init__(self, template, n):
        self.sock_path = os.path.join(template.dir, "%d.sock" % n)
        self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ctl.settimeout(60)
        self.ctl.connect(template.path)
        r, w = os.pipe()
        req = json.dumps({"n": n, "socket": self.sock_path}).encode() + b"\n"
        self.ctl.sendmsg([req], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w]).tobytes())])
        os.close(w)
        self.out = os.fdopen(r, "r")
        self.replies = self.ctl.makefile("r")
        self.pid = json.loads(self.replies.readline())["pid"]

    def ready(self):
        """Reads the replica's output up to its ready line; the lines before it."""
        seen = []
        for line in self.out:
            if line.startswith("atelier scoring runtime ready on "):
                return seen
            seen.append(line)
        raise AssertionError("the replica exited before it was ready:\n" + "".join(seen))

    def exit_code(self):
        line = self.replies.readline()
        assert line, "the template closed the connection without the exit"
        return json.loads(line)["exit"]

    def score(self, body=b"{}"):
        c = http.client.HTTPConnection("localhost", timeout=30)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.sock_path)
        c.sock = s
        c.request("POST", "/score", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data


class Template:
    def __init__(self, proc, path, err):
        self.proc, self.path, self.err = proc, path, err
        self.dir = os.path.dirname(path or "")


@pytest.fixture
def template(tmp_path):
    """template(script, python=None, env=None) -> a ready template, stopped after the test."""
    procs = []

    def _start(script, python=None, env=None):
        path = str(tmp_path / "sock" / "template.sock")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        e = {"ATELIER_TEMPLATE_SOCKET": path, "ATELIER_ACCESS_LOG": "0"}
        e.setdefault("AZUREML_MODEL_DIR", str(tmp_path))
        e.update(env or {})
        proc, out, err = spawn(script, python, e, cwd=str(tmp_path))
        procs.append(proc)
        line = out.get(timeout=120)
        if line is None:
            proc.wait(timeout=30)
            return Template(proc, None, err)
        assert line == "atelier scoring template ready on %s\n" % path, line
        return Template(proc, path, err)

    yield _start
    for p in procs:
        p.kill()
        p.wait()


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(cond, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "still waiting for " + what
        time.sleep(0.02)


def test_replicas_are_forks_that_each_call_init(template, tmp_path):
    script = tmp_path / "score.py"
    script.write_text(COUNTING)
    t = template(str(script))
    replicas = [Replica(t, n) for n in range(3)]
    for n, r in enumerate(replicas):
        before = r.ready()
        assert "init of replica %d\n" % n in before, before
    imports = (tmp_path / "imports").read_text().split()
    inits = (tmp_path / "inits").read_text().split()
    assert imports == [str(t.proc.pid)], "score.py's module level ran %r" % imports
    assert sorted(inits) == sorted(str(r.pid) for r in replicas) and len(set(inits)) == 3
    for r in replicas:
        status, body = r.score()
        assert status == 200 and json.loads(body) == {"pid": r.pid}
    # "term" stops a replica with SIGTERM; the template says how it exited.
    replicas[0].ctl.sendall(b"term\n")
    assert replicas[0].exit_code() == -15
    # A replica killed from outside: its exit is reported too.
    os.kill(replicas[1].pid, 9)
    assert replicas[1].exit_code() == -9
    # The connection closed: the template kills the replica it asked for.
    replicas[2].replies.close()
    replicas[2].ctl.close()
    wait_until(lambda: not alive(replicas[2].pid), "the abandoned replica to be killed")
    assert t.proc.poll() is None, "the template exited"


def test_what_init_imports_is_imported_in_the_template(template, tmp_path):
    # init() imports a module (as unpickling a model imports scikit-learn): the first replica
    # reports it, the template imports it, and the next replicas do not import it again.
    (tmp_path / "heavy.py").write_text("import os\nwith open(os.path.join(os.path.dirname(__file__), 'heavy'), 'a') as f:\n"
                                       "    f.write('%d\\n' % os.getpid())\n")
    script = tmp_path / "score.py"
    script.write_text("def init():\n    import heavy\n\ndef run(raw):\n    import heavy\n    return 'ok'\n")
    t = template(str(script))
    first = Replica(t, 0)
    first.ready()
    wait_until(lambda: "template imported 1 modules" in "".join(t.err), "the template to import what init() imported")
    assert (tmp_path / "heavy").read_text().split() == [str(first.pid), str(t.proc.pid)]
    more = [Replica(t, n) for n in (1, 2)]
    for r in more:
        r.ready()
        assert r.score()[0] == 200
    assert (tmp_path / "heavy").read_text().split() == [str(first.pid), str(t.proc.pid)]
    # Recorded for the next template of the image, which imports them before it is ready.
    learnt = os.path.join(t.dir, "learnt.json")
    with open(learnt) as f:
        assert json.load(f) == ["heavy"]
    t.proc.kill()
    t.proc.wait()
    os.rename(learnt, os.path.join(t.dir, "preload.json"))
    t2 = template(str(script))
    assert (tmp_path / "heavy").read_text().split() == [str(first.pid), str(t.proc.pid), str(t2.proc.pid)]
    assert "template imported 1 modules that init() imported in an earlier template" in "".join(t2.err)
    r = Replica(t2, 3)
    r.ready()
    assert (tmp_path / "heavy").read_text().split() == [str(first.pid), str(t.proc.pid), str(t2.proc.pid)]


def test_replicas_die_with_the_template(template, tmp_path):
    script = tmp_path / "score.py"
    script.write_text(COUNTING)
    t = template(str(script))
    replicas = [Replica(t, n) for n in range(2)]
    for r in replicas:
        r.ready()
    t.proc.kill()
    wait_until(lambda: not any(alive(r.pid) for r in replicas), "the replicas to die with their template")


def test_init_failure_in_a_replica(template):
    t = template(os.path.join(SCRIPTS, "init_fails_score.py"))
    r = Replica(t, 0)
    out = r.out.read()
    assert "Traceback" in out and "FileNotFoundError: no model at" in out, out
    assert "ready on" not in out
    assert r.exit_code() == 3
    # The template still forks the next replica (the pool decides not to ask again).
    assert Replica(t, 1).exit_code() == 3


def test_import_failure_fails_the_template(template, tmp_path):
    script = tmp_path / "score.py"
    script.write_text("raise ImportError('no such library')\ndef init():\n    pass\ndef run(raw):\n    return raw\n")
    t = template(str(script))
    assert t.path is None and t.proc.returncode == 3
    assert "ImportError: no such library" in "".join(t.err)


def test_sklearn_replicas_forked_after_the_imports(template, ml_python, tmp_path):
    models = tmp_path / "azureml-models" / "sklearn_regression_model" / "1"
    models.mkdir(parents=True)
    subprocess.run([ml_python, "-c", TRAIN, str(models / "sklearn_regression_model.pkl")], check=True, timeout=300)
    t = template(os.path.join(SCRIPTS, "sklearn_score.py"), python=ml_python, env={"AZUREML_MODEL_DIR": str(models)})
    replicas = [Replica(t, n) for n in range(2)]
    for r in replicas:
        r.ready()
    rows = {"data": [[0.0] * 10, [1.0] * 10]}
    for r in replicas:
        status, body = r.score(json.dumps(rows).encode())
        assert status == 200, body
        got = json.loads(body)
        assert abs(got[0] - 5) < 0.5 and abs(got[1] - 60) < 0.5, got
