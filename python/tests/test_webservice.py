"""Web services from the SDK (Azure ML v1's Model.deploy / Webservice / *Webservice.deploy_configuration
shape) against a real atelier server that builds images on the real CPython base image and runs
their replicas on the local target: deploy, wait_for_deployment, run, keys, logs, update,
list, delete, and Azure ML score.py files unchanged (a raw-HTTP one)."""

import json
import os
import shutil
import uuid

import pytest

import atelier
from atelier import (AksWebservice, AciWebservice, Image, InferenceConfig, LocalWebservice, Model, Webservice,
                     WebserviceException)
from conftest import Server

SCORE = """import json
import os

from azureml.core.model import Model


def init():
    global scale
    path = Model.get_model_path(os.environ["MODEL_NAME"]) if os.environ.get("MODEL_NAME") else os.environ["AZUREML_MODEL_DIR"]
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.json")) as f:
        scale = json.load(f)["scale"]


def run(raw_data):
    data = json.loads(raw_data)["data"]
    if data == "boom":
        raise ValueError("cannot score boom")
    return {"result": [x * scale for x in data]}
"""

# A raw-HTTP score.py as Azure ML's samples write them.
RAW_SCORE = """from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request):
    if request.method == "GET":
        return AMLResponse("method was GET", 200)
    if request.method == "POST":
        body = request.get_data(False)
        return AMLResponse(body[::-1], 200)
    return AMLResponse("bad request", 500)
"""


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:6])


@pytest.fixture(scope="module")
def sws(binary, tmp_path_factory):
    """A workspace on a server of its own that builds on the real CPython base and serves."""
    base = os.environ.get("ATELIER_PYTHON_BASE") or os.path.expanduser("~/.cache/atelier-test/python-base/current")
    missing = []
    if not os.path.exists(os.path.join(base, "index.json")):
        missing.append("no CPython base image in %s (scripts/build-python-base.sh)" % base)
    if shutil.which("bwrap") is None:
        missing.append("bubblewrap is not installed")
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail("; ".join(missing) + " (CI installs them: see .ci/run)")
        pytest.skip("; ".join(missing))
    root = tmp_path_factory.mktemp("services")
    srv = Server(binary, root / "data", "--image-base", base)
    try:
        yield atelier.Workspace(srv.url, srv.token, "default")
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def model(sws, tmp_path_factory):
    d = tmp_path_factory.mktemp("model") / "model.json"
    d.write_text(json.dumps({"scale": 3}))
    return Model.register(sws, model_path=str(d), model_name=unique("diabetes"))


def source(tmp_path, text):
    src = tmp_path / "serve"
    src.mkdir()
    (src / "score.py").write_text(text)
    return src


def test_model_deploy_run_keys_update_delete(sws, model, tmp_path):
    cfg = InferenceConfig(entry_script="score.py", source_directory=str(source(tmp_path, SCORE)))
    name = unique("svc")
    service = Model.deploy(sws, name, [model], cfg, AksWebservice.deploy_configuration(num_replicas=1, tags={"team": "risk"}))
    assert service.state == "Transitioning"
    service.wait_for_deployment(show_output=True)
    assert service.state == "Healthy", service.error
    assert service.scoring_uri.endswith("/services/default/%s/score" % name)
    assert service.swagger_uri.endswith("/swagger.json")
    assert service.tags == {"team": "risk"} and service.auth_enabled

    assert service.run(json.dumps({"data": [1, 2]})) == {"result": [3, 6]}
    assert service.run({"data": [4]}) == {"result": [12]}  # a value is sent as JSON

    # run() raising: a 500 whose message the service answers with; the service stays up.
    with pytest.raises(WebserviceException) as e:
        service.run(json.dumps({"data": "boom"}))
    assert e.value.status == 500
    assert service.run(json.dumps({"data": [1]})) == {"result": [3]}

    primary, secondary = service.get_keys()
    assert primary and secondary and primary != secondary
    service.regen_key("Primary")
    new_primary, new_secondary = service.get_keys()
    assert new_primary != primary and new_secondary == secondary
    assert service.run(json.dumps({"data": [2]})) == {"result": [6]}

    # The log holds the replica's output and the requests.
    assert "request POST /score 200" in service.get_logs()

    service.update(num_replicas=2)
    service.wait_for_deployment()
    assert service.replicas["ready"] == 2 and service.state == "Healthy"

    assert name in [s.name for s in Webservice.list(sws)]
    assert [s.name for s in Webservice.list(sws, tags={"team": "risk"})] == [name]
    assert Webservice(sws, name).image_id == service.image_id

    service.delete()
    with pytest.raises(atelier.AtelierError) as e:
        Webservice(sws, name)
    assert e.value.status == 404


def test_raw_http_score_unchanged(sws, model, tmp_path):
    cfg = InferenceConfig(entry_script="score.py", source_directory=str(source(tmp_path, RAW_SCORE)))
    image = Image.create(sws, unique("raw"), [model], cfg)
    image.wait_for_creation()
    service = Webservice.deploy_from_image(sws, unique("raw"), image, AciWebservice.deploy_configuration())
    service.wait_for_deployment()
    assert not service.auth_enabled  # ACI's default
    assert service.run("hello") == "olleh"
    service.delete()


def test_failed_deployment_says_why(sws, model, tmp_path):
    bad = SCORE.replace("    global scale\n", "    global scale\n    raise RuntimeError('no weights here')\n")
    cfg = InferenceConfig(entry_script="score.py", source_directory=str(source(tmp_path, bad)))
    name = unique("bad")
    service = Model.deploy(sws, name, [model], cfg, LocalWebservice.deploy_configuration())
    with pytest.raises(WebserviceException) as e:
        service.wait_for_deployment()
    assert "no weights here" in str(e.value)
    assert service.state == "Failed"
    service.delete()


def test_bad_names_and_configurations(sws, model):
    with pytest.raises(atelier.AtelierError) as e:
        Webservice.deploy_from_image(sws, "Bad_Name", "x:1")
    assert e.value.status == 400
    with pytest.raises(atelier.AtelierError) as e:
        Webservice.deploy_from_image(sws, unique("svc"), "no-such-image:1")
    assert e.value.status == 400 and "not found" in str(e.value)


COLLECT_SCORE = """import json

from azureml.monitoring import ModelDataCollector


def init():
    global inputs, predictions
    inputs = ModelDataCollector("diabetes", designation="inputs", feature_names=["age", "bmi"])
    predictions = ModelDataCollector("diabetes", designation="predictions", feature_names=["y"])


def run(raw_data):
    data = json.loads(raw_data)["data"]
    inputs.collect(data)
    result = [sum(row) for row in data]
    predictions.collect(result)
    return result
"""


def test_model_data_collection_reaches_the_default_datastore(sws, model, tmp_path):
    cfg = InferenceConfig(entry_script="score.py", source_directory=str(source(tmp_path, COLLECT_SCORE)))
    name = unique("collect")
    service = Model.deploy(sws, name, [model], cfg, AciWebservice.deploy_configuration(collect_model_data=True))
    service.wait_for_deployment()
    assert service.run(json.dumps({"data": [[1, 2], [3, 4]]})) == [3, 7]
    service.delete()  # ships what the last requests collected
    files = sws._client.request("GET", "/api/v1/workspaces/default/datastores/default/files",
                                query={"prefix": "modeldata/default/%s/" % name, "recursive": True})
    paths = sorted(f["path"] for f in files["files"])
    assert any("/inputs/" in p for p in paths), paths
    assert any("/predictions/" in p for p in paths), paths
    inputs = [p for p in paths if "/inputs/" in p][0]
    # Azure's layout: modeldata/<workspace>/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/data.csv
    parts = inputs.split("/")
    assert parts[:4] == ["modeldata", "default", name, "diabetes"] and parts[5] == "inputs" and parts[-1] == "data.csv", inputs
    raw = sws._client.request("GET", "/api/v1/workspaces/default/datastores/default/files/" + inputs, raw=True)
    assert b"age" in raw and b"1" in raw, raw


def test_reload_update_port_and_profile(sws, model, tmp_path):
    """LocalWebservice's reload() serves a rewritten score.py, update(models=...) a new model
    version with the same InferenceConfig, port is the server's; Model.profile deploys a
    temporary service, replays the requests, measures the replica and deletes it."""
    src = source(tmp_path, SCORE)
    cfg = InferenceConfig(entry_script="score.py", source_directory=str(src))
    name = unique("reload")
    service = Model.deploy(sws, name, [model], cfg, LocalWebservice.deploy_configuration(port=6789))
    service.wait_for_deployment()
    assert sws._client.server.endswith(":%d" % service.port)  # the server's, not 6789
    assert service.run(json.dumps({"data": [1]})) == {"result": [3]}

    (src / "score.py").write_text(SCORE.replace('return {"result"', 'return {"reloaded": True, "result"'))
    service.reload()
    assert service.state == "Healthy"
    assert service.run(json.dumps({"data": [1]})) == {"reloaded": True, "result": [3]}

    d = tmp_path / "m2" / "model.json"
    d.parent.mkdir()
    d.write_text(json.dumps({"scale": 5}))
    model2 = Model.register(sws, model_path=str(d), model_name=model.name)
    service.update(models=[model2], wait=True)
    assert service.run(json.dumps({"data": [1]})) == {"reloaded": True, "result": [5]}

    # A Webservice read back by name has no InferenceConfig to reload: it says what to do.
    with pytest.raises(NotImplementedError) as e:
        Webservice(sws, name).reload()
    assert "inference_config" in str(e.value)
    service.delete()

    profile = Model.profile(sws, "profile-" + name, [model2], cfg, input_dataset=[json.dumps({"data": [1, 2]})] * 20,
                            cpu=0.5, memory_in_gb=1)
    profile.wait_for_completion(show_output=True)
    details = profile.get_details()
    assert details["state"] == "Succeeded", details.get("error")
    assert details["totalQueries"] == 20 and details["successQueries"] == 20 and details["successRate"] == 100.0
    assert details["requestedCpu"] == 0.5 and details["requestedMemoryInGB"] == 1.0
    assert details["maxUtilizedMemoryInGB"] > 0 and details["maxUtilizedCpu"] >= 0
    assert details["recommendedCpu"] >= 0.1 and details["recommendedMemoryInGB"] >= details["maxUtilizedMemoryInGB"]
    assert 0 < details["latencyPercentile50InMs"] <= details["latencyPercentile99InMs"]
    # Its temporary service is gone.
    assert not [s for s in Webservice.list(sws) if s.name.startswith("profile-" + name[:10])]


def test_profile_bad_input(sws, model, tmp_path):
    cfg = InferenceConfig(entry_script="score.py", source_directory=str(source(tmp_path, SCORE)))
    with pytest.raises(ValueError, match="cpu must be between 0.1 and 3.5"):
        Model.profile(sws, "p", [model], cfg, input_dataset=["{}"], cpu=8)
    with pytest.raises(ValueError, match="memory_in_gb must be between"):
        Model.profile(sws, "p", [model], cfg, input_dataset=["{}"], memory_in_gb=0)
    with pytest.raises(ValueError, match="needs input_dataset"):
        Model.profile(sws, "p", [model], cfg)
    with pytest.raises(ValueError, match="no rows"):
        Model.profile(sws, "p", [model], cfg, input_dataset=[])
