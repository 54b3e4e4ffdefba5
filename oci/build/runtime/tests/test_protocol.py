"""The Azure ML scoring contract as Microsoft's azureml-inference-server-http 1.5 answers it, the
Open Inference Protocol, and bad input, against the real runtime with stdlib-only score.py files."""

import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

from conftest import RUNTIME, SCRIPTS, spawn

MS_RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."


def test_health_and_score(start):
    rt = start("echo_score.py")
    status, headers, body = rt.request("GET", "/")
    assert (status, body) == (200, b"Healthy")
    status, headers, body = rt.post_json("/score", {"data": [1, 2, 3]})
    assert status == 200, body
    assert json.loads(body) == {"data": [1, 2, 3], "doubled": [2, 4, 6], "inits": 1}
    assert headers["content-type"] == "application/json"
    assert float(headers["x-ms-run-fn-exec-ms"]) >= 0
    assert headers["x-ms-run-function-failed"] == "False"
    # No request id from the client: a new uuid, as x-request-id and x-ms-request-id.
    uuid.UUID(headers["x-request-id"])
    assert headers["x-ms-request-id"] == headers["x-request-id"]


def test_request_ids_are_echoed(start):
    rt = start("echo_score.py")
    _, headers, _ = rt.post_json("/score", {"data": []}, {"x-ms-request-id": "client-42"})
    assert headers["x-ms-request-id"] == "client-42"
    assert headers["x-ms-client-request-id"] == "client-42"
    _, headers, _ = rt.post_json("/score", {"data": []}, {"x-request-id": "r-1", "x-ms-client-request-id": "c-1"})
    assert (headers["x-request-id"], headers["x-ms-request-id"], headers["x-ms-client-request-id"]) == ("r-1", "c-1", "c-1")
    status, _, body = rt.post_json("/score", {"data": []}, {"x-request-id": "x" * 101})
    assert status == 431 and b"must not exceed 100 characters" in body


def test_resource_usage_only_when_asked(start):
    # Model.profile asks for the replica's CPU seconds and memory with x-atelier-usage.
    rt = start("echo_score.py")
    _, headers, _ = rt.post_json("/score", {"data": [1]})
    assert "x-atelier-usage" not in headers
    _, headers, _ = rt.post_json("/score", {"data": [1]}, {"x-atelier-usage": "1"})
    usage = dict(part.strip().split("=") for part in headers["x-atelier-usage"].split(";"))
    assert set(usage) == {"cpu", "rss", "maxrss"}
    assert float(usage["cpu"]) > 0 and int(usage["rss"]) > 1 << 20 and int(usage["maxrss"]) >= int(usage["rss"]) // 2


def test_string_and_bytes_results_are_json_encoded(start):
    # Microsoft's server passes run()'s result through json.dumps, strings included: a score.py
    # returning json.dumps(...) gives its clients a JSON string, and so does this one.
    rt = start("echo_score.py")
    status, _, body = rt.post_json("/score", {"text": '{"a": 1}'})
    assert status == 200 and json.loads(body) == '{"a": 1}'
    status, _, body = rt.post_json("/score", {"bytes": "h\u00e9"})
    assert status == 200 and json.loads(body) == "h\u00e9"


def test_get_score_passes_query_as_json(start):
    rt = start("echo_score.py")
    status, _, body = rt.request("GET", "/score?data=%5B1%2C2%5D")
    assert status == 200 and json.loads(body)["doubled"] == [2, 4]


def test_run_raises_gives_500_and_traceback_in_log(start):
    rt = start("echo_score.py")
    status, headers, body = rt.post_json("/score", {"fail": "boom"})
    assert status == 500
    assert json.loads(body) == {"message": MS_RUN_FAILED}
    assert headers["x-ms-run-function-failed"] == "True"
    rt.wait_stderr("ValueError: asked to fail: boom")
    rt.wait_stderr("Traceback (most recent call last)")
    # The replica keeps serving.
    assert rt.post_json("/score", {"data": [1]})[0] == 200


def test_not_json_serializable_gives_500(start):
    rt = start("echo_score.py")
    status, _, body = rt.post_json("/score", {"set": [1, 2]})
    assert status == 500
    message = json.loads(body)["message"]
    assert "not JSON serializable" in message and "set" in message


def test_non_utf8_body_gives_400(start):
    rt = start("echo_score.py")
    status, _, body = rt.request("POST", "/score", b'{"data": "\xff\xfe"}', {"Content-Type": "application/json"})
    assert status == 400
    assert json.loads(body)["message"].startswith("Input cannot be decoded as UTF-8")


def test_oversized_body_gives_413(start):
    rt = start("echo_score.py", env={"ATELIER_MAX_BODY": "1000"})
    status, _, body = rt.request("POST", "/score", b"x" * 1001, {"Content-Type": "application/json"})
    assert status == 413 and b"ATELIER_MAX_BODY" in body
    # A client still sending its body reads the 413 (the rest is drained, not reset).
    status, _, body = rt.request("POST", "/score", b"x" * (5 << 20), {"Content-Type": "application/json"})
    assert status == 413, body
    # Exactly the limit is read and scored.
    payload = json.dumps({"data": [1] * 300}).encode()
    payload += b" " * (1000 - len(payload))
    assert rt.request("POST", "/score", payload, {"Content-Type": "application/json"})[0] == 200


def test_default_limit_refuses_a_100mb_body_without_reading_it(start):
    rt = start("echo_score.py")
    s = socket.create_connection((rt.host, rt.port), timeout=30)
    s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (100 * 1024 * 1024 + 1))
    answer = s.recv(4096)
    s.close()
    assert answer.startswith(b"HTTP/1.1 413 "), answer


def test_unknown_path_and_method(start):
    rt = start("echo_score.py")
    status, _, body = rt.request("GET", "/nope")
    assert status == 404 and json.loads(body)["message"].startswith("The requested URL was not found")
    status, _, _ = rt.request("PUT", "/score", b"{}")
    assert status == 405
    status, _, body = rt.request("OPTIONS", "/score")
    assert (status, body) == (200, b"")


def test_swagger_of_an_undecorated_run(start):
    # As Microsoft's server: every version, with empty input and output schemas.
    rt = start("echo_score.py", env={"ATELIER_SERVICE_NAME": "diabetes", "ATELIER_SERVICE_PATH_PREFIX": "/services/ws/diabetes"})
    status, _, body = rt.request("GET", "/swagger.json")
    assert status == 200
    doc = json.loads(body)
    assert doc["swagger"] == "2.0" and doc["info"]["title"] == "diabetes"
    assert doc["definitions"]["ServiceInput"] == {"type": "object", "example": {}}
    assert set(doc["paths"]) == {"/services/ws/diabetes/", "/services/ws/diabetes/score", "/services/ws/diabetes/swagger.json"}
    assert json.loads(rt.request("GET", "/swagger.json?version=3")[2])["openapi"] == "3.0.3"
    status, _, body = rt.request("GET", "/swagger.json?version=7")
    assert status == 404
    assert json.loads(body)["message"] == "Swagger version [7] is not valid. Supported versions: [2, 3, 3.1]."


def test_user_swagger_file_is_served(start, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "score.py").write_text(open(os.path.join(SCRIPTS, "echo_score.py")).read())
    (app / "swagger.json").write_text(json.dumps({"swagger": "2.0", "info": {"title": "mine"}}))
    rt = start(str(app / "score.py"))
    status, _, body = rt.request("GET", "/swagger.json?version=2.0")
    assert status == 200 and json.loads(body)["info"]["title"] == "mine"


def test_request_headers_parameter(start):
    rt = start("headers_score.py")
    status, _, body = rt.request("POST", "/score", b"hi", {"User-Agent": "probe/1", "X-Custom": "v"})
    assert status == 200
    assert json.loads(body) == {"body": "hi", "agent": "probe/1", "custom": "v"}


def test_rawhttp_sample(start):
    rt = start("rawhttp_score.py")
    status, _, body = rt.request("GET", "/score?a=1&b=x")
    assert (status, body) == (200, b"/score?a=1&b=x")
    status, headers, body = rt.request("POST", "/score", b"abc")
    assert (status, body) == (201, b"cba")
    assert headers["x-reversed"] == "yes"
    assert float(headers["x-ms-run-fn-exec-ms"]) >= 0
    boundary = "XyZ"
    form = ("--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            "--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + bytes(range(256)) + b"\r\n--XyZ--\r\n"
    status, headers, body = rt.request("POST", "/score", form, {"Content-Type": "multipart/form-data; boundary=" + boundary})
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"file": "a.jpg", "size": 256, "field": "hello"}
    # init()'s print went to stderr (the ready line stays the first line on stdout).
    rt.wait_stderr("This is init()")


def test_large_answer(start):
    rt = start("echo_score.py")
    c = rt.connect()
    for _ in range(3):
        status, _, body = rt.request("POST", "/score", b'{"big": 20000}', conn=c)
        assert status == 200 and len(json.loads(body)) == 20000
    c.close()


def test_keep_alive_and_pipelining(start):
    rt = start("echo_score.py")
    c = rt.connect()
    for i in range(50):
        status, _, body = rt.request("POST", "/score", json.dumps({"data": [i]}).encode(), conn=c)
        assert status == 200 and json.loads(body)["doubled"] == [2 * i]
    c.close()
    # Two requests in one write are answered in order.
    s = socket.create_connection((rt.host, rt.port), timeout=30)
    one = b'{"data": [1]}'
    req = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(one), one)
    s.sendall(req + req.replace(b"[1]", b"[5]"))
    got = b""
    while got.count(b"doubled") < 2:
        chunk = s.recv(65536)
        assert chunk, got
        got += chunk
    s.close()
    assert got.index(b"[2]") < got.index(b"[10]")


def test_clients_that_vanish_do_not_stop_it(start):
    rt = start("echo_score.py")
    big = b'{"big": 5000}'
    socks = []
    for i in range(60):
        s = socket.create_connection((rt.host, rt.port), timeout=30)
        if i % 3 == 0:
            s.sendall(b"POST /score HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")  # never finished
        elif i % 3 == 1:
            s.sendall(b"POST /score HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big))  # answer never read
        socks.append(s)
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset on close
        s.close()
    status, _, body = rt.post_json("/score", {"data": [3]})
    assert status == 200 and json.loads(body)["doubled"] == [6]
    assert rt.proc.poll() is None


def test_chunked_body(start):
    rt = start("echo_score.py")
    s = socket.create_connection((rt.host, rt.port), timeout=30)
    s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
              b"6\r\n{\"data\r\n9\r\n\": [4, 5]\r\n1\r\n}\r\n0\r\n\r\n")
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    assert got.startswith(b"HTTP/1.1 200 ") and b'"doubled": [8, 10]' in got


def test_malformed_request_gives_400(start):
    rt = start("echo_score.py")
    s = socket.create_connection((rt.host, rt.port), timeout=30)
    s.sendall(b"NONSENSE\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 400 ")
    s.close()
    assert rt.request("GET", "/")[0] == 200


def test_default_address_is_loopback(tmp_path):
    env = dict(os.environ, AZUREML_ENTRY_SCRIPT=os.path.join(SCRIPTS, "noop_score.py"), ATELIER_SCORE_PORT="0")
    env.pop("ATELIER_SCORE_HOST", None)
    env.pop("ATELIER_SCORE_SOCKET", None)
    p = subprocess.Popen([sys.executable, RUNTIME], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert p.stdout.readline().startswith("atelier scoring runtime ready on 127.0.0.1:")
    finally:
        p.terminate()
        p.wait(timeout=30)


def test_unix_socket(start, tmp_path):
    sock = str(tmp_path / "score.sock")
    rt = start("echo_score.py", env={"ATELIER_SCORE_SOCKET": sock})
    assert rt.addr == sock
    status, _, body = rt.post_json("/score", {"data": [21]})
    assert status == 200 and json.loads(body)["doubled"] == [42]


@pytest.mark.parametrize("script,text", [
    ("init_fails_score.py", "FileNotFoundError: no model at"),
    ("import_fails_score.py", "ModuleNotFoundError: No module named 'this_module_does_not_exist'"),
])
def test_init_or_import_fails_exits_3_without_ready_line(tmp_path, script, text):
    proc, out, err = spawn(os.path.join(SCRIPTS, script), env={"AZUREML_MODEL_DIR": str(tmp_path)})
    assert proc.wait(timeout=60) == 3
    assert out.get(timeout=10) is None  # nothing on stdout: no ready line
    for _ in range(1000):
        if text in "".join(err):
            break
        time.sleep(0.01)
    assert text in "".join(err) and "Traceback" in "".join(err)


def test_missing_run_exits_3(tmp_path):
    script = tmp_path / "score.py"
    script.write_text("def init():\n    pass\n")
    proc, out, err = spawn(str(script))
    assert proc.wait(timeout=60) == 3
    assert out.get(timeout=10) is None


def test_v2_protocol(start, tmp_path):
    models = tmp_path / "azureml-models" / "diabetes" / "3"
    models.mkdir(parents=True)
    rt = start("echo_score.py", env={"AZUREML_MODEL_DIR": str(models)})
    assert rt.request("GET", "/v2/health/live")[0] == 200
    assert rt.request("GET", "/v2/health/ready")[0] == 200
    status, _, body = rt.request("GET", "/v2/models/diabetes")
    assert status == 200 and json.loads(body)["versions"] == ["3"]
    assert rt.request("GET", "/v2/models/diabetes/versions/3/ready")[0] == 200
    assert rt.request("GET", "/v2/models/other")[0] == 404
    assert rt.request("GET", "/v2/models/diabetes/versions/4")[0] == 404
    req = {"id": "q1", "inputs": [{"name": "input-0", "shape": [3], "datatype": "FP64", "data": [1.5, 2, 3]}]}
    status, headers, body = rt.post_json("/v2/models/diabetes/versions/3/infer", req)
    assert status == 200, body
    got = json.loads(body)
    assert got["id"] == "q1" and got["model_name"] == "diabetes" and got["model_version"] == "3"
    outs = {o["name"]: o for o in got["outputs"]}
    assert outs["doubled"] == {"name": "doubled", "datatype": "FP64", "shape": [3], "data": [3.0, 4, 6]}
    # A bad shape, a run() that raises.
    bad = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3]}]}
    assert rt.post_json("/v2/models/diabetes/infer", bad)[0] == 400
    assert rt.post_json("/v2/models/diabetes/infer", {"inputs": []})[0] == 400
    status, _, body = rt.post_json("/v2/models/diabetes/infer", {"inputs": [
        {"name": "data", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "fail", "shape": [1], "datatype": "BYTES", "data": ["x"]}]})
    assert status == 500 and json.loads(body)["message"] == MS_RUN_FAILED


def test_v2_name_is_the_service_name(start):
    rt = start("echo_score.py", env={"ATELIER_SERVICE_NAME": "svc"})
    req = {"inputs": [{"name": "x", "shape": [2, 1], "datatype": "INT64", "data": [1, 2]}]}
    status, _, body = rt.post_json("/v2/models/svc/infer", req)
    assert status == 200
    assert {o["name"]: o for o in json.loads(body)["outputs"]}["data"]["shape"] == [2, 1]


def test_access_log_can_be_turned_off(start):
    rt = start("echo_score.py", env={"ATELIER_ACCESS_LOG": "0"})
    rt.request("GET", "/")
    rt2 = start("echo_score.py")
    rt2.request("GET", "/")
    rt2.wait_stderr("GET / 200")
    assert "GET / 200" not in rt.stderr()


def test_model_get_model_path(start, tmp_path):
    root = tmp_path / "azureml-models"
    for name, version, child in (("a", "1", "a.pkl"), ("a", "2", "a.pkl"), ("b", "1", "folder")):
        d = root / name / version
        d.mkdir(parents=True)
        (d / child).write_text("x")
    script = tmp_path / "score.py"
    script.write_text(
        "from azureml.core.model import Model\n"
        "def init():\n    pass\n"
        "def run(raw):\n"
        "    import json\n    a = json.loads(raw)\n"
        "    return Model.get_model_path(a['name'], version=a.get('version'))\n")
    # Several models: AZUREML_MODEL_DIR is the models root.
    rt = start(str(script), env={"AZUREML_MODEL_DIR": str(root)})
    assert json.loads(rt.post_json("/score", {"name": "a"})[2]) == str(root / "a" / "2" / "a.pkl")
    assert json.loads(rt.post_json("/score", {"name": "a", "version": 1})[2]) == str(root / "a" / "1" / "a.pkl")
    assert json.loads(rt.post_json("/score", {"name": "b"})[2]) == str(root / "b" / "1" / "folder")
    assert rt.post_json("/score", {"name": "zzz"})[0] == 500
    rt.wait_stderr("Model zzz not found")
    # One model: AZUREML_MODEL_DIR is that model's version directory.
    rt = start(str(script), env={"AZUREML_MODEL_DIR": str(root / "b" / "1")})
    assert json.loads(rt.post_json("/score", {"name": "b"})[2]) == str(root / "b" / "1" / "folder")


def test_bad_max_body_setting(tmp_path):
    env = dict(os.environ, AZUREML_ENTRY_SCRIPT=os.path.join(SCRIPTS, "echo_score.py"), ATELIER_MAX_BODY="lots")
    p = subprocess.run([sys.executable, RUNTIME], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "ATELIER_MAX_BODY" in p.stderr
