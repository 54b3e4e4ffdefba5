"""An interactive MLflow run (mlflow.start_run() on a laptop) survives a restart of the
server, even one killed with SIGKILL, and its client ends it afterwards (issue 17)."""

import json
import os
import signal
import subprocess
import textwrap
import time
import urllib.request

from conftest import _free_port


def _start(binary, data, port, log):
    proc = subprocess.Popen([binary, "server", "--data", str(data), "--addr", "127.0.0.1:%d" % port],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/health" % port, timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("atelier server did not start")
        time.sleep(0.05)


def test_interactive_run_survives_kill9(mlflow_python, server, tmp_path):
    data, port = tmp_path / "data", _free_port()
    log = open(tmp_path / "server.log", "wb")
    proc = _start(server.binary, data, port, log)
    try:
        token = (data / "admin-token").read_text().strip()
        snippet = tmp_path / "laptop.py"
        snippet.write_text(textwrap.dedent("""
            import json, os, time, mlflow
            mlflow.set_experiment("laptop")
            with mlflow.start_run() as run:
                mlflow.log_metric("loss", 0.5)
                open("started", "w").write(run.info.run_id)
                while not os.path.exists("go"):
                    time.sleep(0.05)
                mlflow.log_metric("loss", 0.25)
            got = mlflow.get_run(run.info.run_id)
            print("__RESULT__" + json.dumps({"status": got.info.status, "loss": got.data.metrics["loss"]}))
            """))
        env = dict(os.environ, MLFLOW_TRACKING_URI="http://127.0.0.1:%d" % port, MLFLOW_TRACKING_TOKEN=token,
                   GIT_PYTHON_REFRESH="quiet", PYTHONUNBUFFERED="1")
        client = subprocess.Popen([mlflow_python, str(snippet)], cwd=str(tmp_path), env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not (tmp_path / "started").exists():
            assert client.poll() is None, client.communicate()
            assert time.monotonic() < deadline, "the mlflow client did not start its run"
            time.sleep(0.05)
        run_id = (tmp_path / "started").read_text()

        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = _start(server.binary, data, port, log)
        (tmp_path / "go").write_text("")
        out, err = client.communicate(timeout=120)
        assert client.returncode == 0, err[-4000:]
        result = json.loads([l for l in out.splitlines() if l.startswith("__RESULT__")][-1][len("__RESULT__"):])
        assert result == {"status": "FINISHED", "loss": 0.25}, result

        req = urllib.request.Request("http://127.0.0.1:%d/api/v1/workspaces/default/runs/%s" % (port, run_id),
                                     headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["status"] == "Completed"
    finally:
        proc.kill()
        proc.wait()
        log.close()
