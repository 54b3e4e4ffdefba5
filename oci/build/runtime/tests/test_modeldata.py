"""The model data pull (POST /__atelier/modeldata): what the server of a kubernetes target reads
of the rows score.py's ModelDataCollector wrote in the pod, and who may read them."""

import json

PATH = "/__atelier/modeldata"
HEADER = "x-atelier-model-data-token"
TOKEN = "s3cret-token-of-the-service"

SCORE = """import json
from azureml.monitoring import ModelDataCollector

def init():
    global inputs, outputs
    inputs = ModelDataCollector("m", designation="inputs", feature_names=["a", "b"])
    outputs = ModelDataCollector("m", designation="predictions", feature_names=["y"])

def run(raw):
    data = json.loads(raw)["data"]
    inputs.collect(data)
    outputs.collect([sum(r) for r in data])
    return "ok"
"""


def collecting(start, tmp_path, env):
    script = tmp_path / "score.py"
    script.write_text(SCORE)
    e = {"ATELIER_MODEL_DATA_DIR": str(tmp_path / "modeldata")}
    e.update(env)
    return start(str(script), env=e)


def pull(rt, offsets=None, token=TOKEN, limit=None):
    body = {"offsets": offsets or {}}
    if limit:
        body["limit"] = limit
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers[HEADER] = token
    status, _, data = rt.request("POST", PATH, json.dumps(body).encode(), headers)
    if status != 200:
        return status, data, {}
    head, _, rest = data.partition(b"\n")
    head = json.loads(head)
    files, pos = {}, 0
    for f in head["files"]:
        files[f["path"]] = (f["offset"], rest[pos:pos + f["length"]])
        pos += f["length"]
    assert pos == len(rest)
    return status, head, files


def score(rt, data):
    status, _, body = rt.post_json("/score", {"data": data})
    assert status == 200, body


def test_pull_returns_what_was_appended_since_the_offsets(start, tmp_path):
    rt = collecting(start, tmp_path, {"ATELIER_MODEL_DATA_TOKEN": TOKEN})
    score(rt, [[1, 2], [3, 4]])
    status, head, files = pull(rt)
    assert status == 200 and head["more"] is False
    inputs = [p for p in files if "/inputs/" in p][0]
    preds = [p for p in files if "/predictions/" in p][0]
    # Azure's layout below the folder: <model>/<version>/<designation>/<yyyy>/<mm>/<dd>/data.csv
    assert inputs.startswith("m/default/inputs/") and inputs.endswith("/data.csv"), inputs
    off, data = files[inputs]
    lines = data.decode().splitlines()
    assert off == 0 and lines[0].endswith(",a,b") and len(lines) == 3 and lines[1].endswith(",1,2"), lines
    offsets = {p: o + len(d) for p, (o, d) in files.items()}
    # Nothing new: nothing returned.
    assert pull(rt, offsets)[2] == {}
    score(rt, [[5, 6]])
    _, _, files = pull(rt, offsets)
    off, data = files[inputs]
    assert off == offsets[inputs] and data.decode().endswith(",5,6\n") and data.count(b"\n") == 1, data
    assert files[preds][1].decode().endswith(",11\n")
    # An offset past the end (the file is not the one the server knew) starts over.
    _, _, files = pull(rt, {inputs: 10**9})
    assert files[inputs][0] == 0


def test_pull_is_cut_after_whole_lines_at_the_limit(start, tmp_path):
    rt = collecting(start, tmp_path, {"ATELIER_MODEL_DATA_TOKEN": TOKEN})
    score(rt, [[i, i] for i in range(50)])
    _, head, files = pull(rt, limit=200)
    assert head["more"] is True
    got = b"".join(d for _, d in files.values())
    assert 0 < len(got) <= 200 and got.endswith(b"\n"), got
    offsets = {p: o + len(d) for p, (o, d) in files.items()}
    whole = b""
    for _ in range(100):
        whole += b"".join(d for p, (o, d) in sorted(files.items()) if "/inputs/" in p)
        _, head, files = pull(rt, offsets, limit=200)
        for p, (o, d) in files.items():
            offsets[p] = o + len(d)
        if not head["more"] and not files:
            break
    lines = whole.decode().splitlines()
    assert len(lines) == 51 and lines[-1].endswith(",49,49"), lines[-3:]


def test_pull_needs_the_token(start, tmp_path):
    rt = collecting(start, tmp_path, {"ATELIER_MODEL_DATA_TOKEN": TOKEN})
    score(rt, [[1, 2]])
    for token in (None, "", "wrong", TOKEN[:-1], TOKEN + "x"):
        status, body, _ = pull(rt, token=token)
        assert status == 401, (token, status, body)
        assert b"1,2" not in body
    # Not a GET either, even with the token.
    status, _, _ = rt.request("GET", PATH, None, {HEADER: TOKEN})
    assert status == 405
    # Bad offsets are a 400.
    status, _, body = rt.request("POST", PATH, b'{"offsets": {"x": "y"}}', {HEADER: TOKEN})
    assert status == 400 and b"offsets" in body, body
    assert pull(rt)[0] == 200


def test_no_endpoint_without_a_token(start, tmp_path):
    rt = collecting(start, tmp_path, {})
    score(rt, [[1, 2]])
    for token in (None, "", TOKEN):
        status, body, _ = pull(rt, token=token)
        assert status == 404 and b"was not found on the server" in body, (status, body)


def test_score_py_does_not_see_the_token(start, tmp_path):
    script = tmp_path / "score.py"
    script.write_text("import os\ndef init():\n    pass\ndef run(raw):\n    return os.environ.get('ATELIER_MODEL_DATA_TOKEN', 'absent')\n")
    rt = start(str(script), env={"ATELIER_MODEL_DATA_TOKEN": TOKEN, "ATELIER_MODEL_DATA_DIR": str(tmp_path / "md")})
    status, _, body = rt.post_json("/score", {"data": 1})
    assert status == 200 and json.loads(body) == "absent", body


def test_a_file_pulled_whole_is_emptied_and_its_offsets_go_on(start, tmp_path):
    rt = collecting(start, tmp_path, {"ATELIER_MODEL_DATA_TOKEN": TOKEN, "ATELIER_MODEL_DATA_KEEP": "1"})
    score(rt, [[1, 2], [3, 4]])
    _, _, files = pull(rt)
    inputs = [p for p in files if "/inputs/" in p][0]
    offsets = {p: o + len(d) for p, (o, d) in files.items()}
    in_pod = tmp_path / "modeldata" / inputs
    assert in_pod.stat().st_size == offsets[inputs]
    # The server has it all: the pull that says so empties the pod's files.
    assert pull(rt, offsets)[2] == {}
    assert in_pod.stat().st_size == 0
    # The next rows come at the offsets the server has, with no second header.
    score(rt, [[5, 6]])
    _, _, files = pull(rt, offsets)
    off, data = files[inputs]
    assert off == offsets[inputs] and data.decode().endswith(",5,6\n") and data.count(b"\n") == 1, (off, data)
    # A server that lost its offsets gets what the pod still holds, from where it starts.
    _, _, files = pull(rt, {})
    assert files[inputs] == (offsets[inputs], data) and not any(p.split("/")[-1].startswith(".") for p in files), files
    # A file under the size it may keep is not emptied.
    (tmp_path / "second").mkdir()
    rt2 = collecting(start, tmp_path / "second", {"ATELIER_MODEL_DATA_TOKEN": TOKEN})
    score(rt2, [[1, 2]])
    _, _, files = pull(rt2)
    offsets = {p: o + len(d) for p, (o, d) in files.items()}
    pull(rt2, offsets)
    for p, end in offsets.items():
        assert (tmp_path / "second" / "modeldata" / p).stat().st_size == end
