"""Images from the SDK (Azure ML v1's Image / ContainerImage / InferenceConfig shape) against a real
atelier server that builds them on a tiny base image: create, wait_for_creation, list, the
properties, export, the model guard, refusals."""

import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import tarfile
import uuid

import pytest

import atelier
from atelier import AtelierError, ContainerImage, Environment, Image, ImageBuildError, InferenceConfig, Model
from conftest import Server

SCORE = """import json
import os


def init():
    global model_dir
    model_dir = os.environ.get("AZUREML_MODEL_DIR")


def run(raw):
    return {"model_dir": model_dir, "echo": json.loads(raw)}
"""


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def _blob(root, data):
    d = hashlib.sha256(data).hexdigest()
    p = os.path.join(root, "blobs", "sha256")
    os.makedirs(p, exist_ok=True)
    with open(os.path.join(p, d), "wb") as f:
        f.write(data)
    return "sha256:" + d


def make_base(root):
    """A tiny base image as an OCI layout: one layer with /etc/os-release, a config declaring
    Python 3.11 at /usr/bin/python3 (the builder checks scripts with the host's python3), as
    oci/build/buildtest writes it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        content = b"ID=atelier-test\n"
        d = tarfile.TarInfo("etc/")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(d)
        f = tarfile.TarInfo("etc/os-release")
        f.size, f.mode = len(content), 0o644
        tf.addfile(f, io.BytesIO(content))
    layer = raw.getvalue()
    gz = gzip.compress(layer, mtime=0)
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    config = json.dumps({
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
                   "Labels": {"ai.atelier.python": "/usr/bin/python3", "ai.atelier.python.version": "3.11"}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config),
                   "digest": _blob(root, config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": len(gz),
                    "digest": _blob(root, gz)}],
    }).encode()
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": len(manifest),
                            "digest": _blob(root, manifest)}]}
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return root


@pytest.fixture(scope="module")
def iws(binary, tmp_path_factory):
    """A workspace on a server of its own that builds images on a tiny base."""
    if shutil.which("python3") is None:
        pytest.skip("the image builder checks entry scripts with the host python3")
    root = tmp_path_factory.mktemp("images")
    base = make_base(str(root / "base"))
    wheels = root / "wheels"
    wheels.mkdir()
    srv = Server(binary, root / "data", "--image-base", base, "--image-pip-args", "--no-index --find-links " + str(wheels))
    try:
        yield atelier.Workspace(srv.url, srv.token, "default")
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def model(iws, tmp_path_factory):
    d = tmp_path_factory.mktemp("model") / "model.pkl"
    d.write_bytes(b"weights")
    return Model.register(iws, model_path=str(d), model_name=unique("diabetes"))


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_create_wait_and_properties(iws, model, tmp_path, capsys):
    script = write(tmp_path / "serve" / "score.py", SCORE)
    config = ContainerImage.image_configuration(execution_script=script, runtime="python", tags={"team": "risk"},
                                                description="risk scoring")
    name = unique("svc")
    image = Image.create(iws, name, models=[model], image_config=config)
    assert (image.name, image.version, image.id) == (name, 1, name + ":1")
    assert image.creation_state in ("Queued", "Building", "Succeeded")
    image.wait_for_creation(show_output=True)
    out = capsys.readouterr().out
    assert "layer models" in out
    assert image.creation_state == "Succeeded"
    assert image.digest.startswith("sha256:") and image.size > 0
    host = iws.server.split("://", 1)[1]
    assert image.image_location == "%s/default/%s:1" % (host, name)
    assert image.models == [model.id]
    assert image.tags == {"team": "risk"} and image.description == "risk scoring"
    assert image.entry_script == "score.py"
    assert image.created_time is not None

    # Looked up again: by name (the latest), name:version, version=.
    assert Image(iws, name).digest == image.digest
    assert Image(iws, name + ":1").id == image.id
    assert Image(iws, name, version=1) == image
    assert image in Image.list(iws, image_name=name)
    assert image in Image.list(iws, model_name=model.name)
    assert image in Image.list(iws, tags={"team": "risk"})
    assert image not in Image.list(iws, tags={"team": "other"})
    assert "built default/%s:1" % name in image.get_logs()

    # Exported as a docker-archive and an OCI layout.
    tar = image.export(str(tmp_path / "img.tar"))
    with tarfile.open(tar) as tf:
        assert "manifest.json" in tf.getnames()
    with tarfile.open(image.export(str(tmp_path / "oci.tar"), format="oci")) as tf:
        assert "oci-layout" in tf.getnames()

    # The model is in use while the image exists; the error names the image.
    with pytest.raises(AtelierError) as e:
        model.delete()
    assert e.value.code == "conflict" and name + ":1" in e.value.message
    image.delete()
    with pytest.raises(AtelierError) as e:
        Image(iws, name, version=1)
    assert e.value.code == "not_found"


def test_inference_config_and_model_package(iws, model, tmp_path):
    src = tmp_path / "src"
    write(src / "score.py", SCORE)
    write(src / "lib" / "helper.py", "X = 1\n")
    cfg = InferenceConfig(entry_script="score.py", source_directory=str(src), environment=Environment(name="env"))
    image = Model.package(iws, [model], cfg, image_name=unique("pkg"))
    image.wait_for_creation()
    assert image.creation_state == "Succeeded"
    assert image.image_location.endswith("/default/%s:1" % image.name)
    again = Image.create(iws, image.name, [model.id], cfg, wait=True)
    assert again.version == 2
    # The same inputs make the same layers, taken from the build cache the second time.
    layers = {layer["name"]: layer for layer in again.get_details()["layers"]}
    assert {n: lay["digest"] for n, lay in layers.items()} == {
        lay["name"]: lay["digest"] for lay in image.get_details()["layers"]}
    assert all(lay["cached"] for lay in layers.values()), layers
    again.delete()
    image.delete()


def test_build_failures(iws, model, tmp_path):
    # A score.py without run(): the build fails and says why.
    norun = write(tmp_path / "norun" / "score.py", "def init():\n    pass\n")
    image = Image.create(iws, unique("norun"), [model], ContainerImage.image_configuration(norun))
    with pytest.raises(ImageBuildError) as e:
        image.wait_for_creation()
    assert "run()" in str(e.value)
    assert image.creation_state == "Failed" and "run()" in image.error
    image.delete()

    # A requirement pip cannot find: Failed, with pip's error in the log.
    src = tmp_path / "deps"
    write(src / "score.py", SCORE)
    req = write(src / "requirements.txt", "nosuchpackage==1.0\n")
    cfg = InferenceConfig("score.py", source_directory=str(src), environment=Environment.from_pip_requirements("e", req))
    image = Image.create(iws, unique("deps"), [model], cfg)
    with pytest.raises(ImageBuildError):
        image.wait_for_creation()
    assert "nosuchpackage" in image.get_logs()
    image.delete()

    # A conda file naming conda packages other than python, pip, setuptools and wheel: refused
    # when the image is created, naming them (nothing is queued); images have no conda.
    conda = write(src / "env.yml", "dependencies:\n  - python=3.11\n  - numpy\n  - pip:\n    - joblib\n")
    name = unique("conda")
    with pytest.raises(AtelierError) as e:
        Image.create(iws, name, [model], ContainerImage.image_configuration(str(src / "score.py"), conda_file=conda))
    assert e.value.status == 400 and "conda packages numpy cannot be installed" in str(e.value)
    assert [i for i in Image.list(iws) if i.name == name] == []


def test_refusals(iws, model, tmp_path):
    script = write(tmp_path / "s" / "score.py", SCORE)
    cfg = ContainerImage.image_configuration(script)
    with pytest.raises(AtelierError) as e:
        Image.create(iws, "Bad_Name", [model], cfg)
    assert e.value.code == "invalid" and "Bad_Name" in e.value.message
    with pytest.raises(AtelierError) as e:
        Image.create(iws, unique("x"), ["nosuchmodel:1"], cfg)
    assert e.value.status == 400 and "nosuchmodel:1 not found" in e.value.message
    with pytest.raises(AtelierError) as e:
        Image.create(iws, unique("x"), [model], ContainerImage.image_configuration(str(tmp_path / "s" / "missing.py")))
    assert "missing.py is not in the source directory" in e.value.message
    with pytest.raises(AtelierError) as e:
        Image.create(iws, unique("x"), [model], ContainerImage.image_configuration(script, base_image="nothere:1"))
    assert e.value.status == 400 and "nothere:1 not found" in e.value.message
    with pytest.raises(ValueError):
        ContainerImage.image_configuration(script, runtime="spark-py")
    with pytest.raises(ValueError):
        ContainerImage.image_configuration(script, docker_file="Dockerfile")
    with pytest.raises(AtelierError) as e:
        Image(iws, "nosuchimage")
    assert e.value.code == "not_found"
