"""The model registry against a real atelier server."""

import datetime
import hashlib
import io
import os
import uuid
import zipfile

import pytest

import atelier
from atelier import AtelierError, Model
from conftest import api


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def make_folder(root, files):
    for rel, data in files.items():
        p = root.joinpath(*rel.split("/"))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


FOLDER = {"weights.bin": os.urandom(3 << 20) + b"end", "config.json": b'{"layers": 3}',
          "sub/vocab.txt": b"a\nb\nc\n", "sub/empty": b""}


def test_register_folder_and_version_2(ws, tmp_path):
    name = unique("folder")
    src = make_folder(tmp_path / "mymodel", FOLDER)
    m = Model.register(ws, model_path=str(src), model_name=name, tags={"stage": "dev", "n": 1},
                       properties={"accuracy": 0.9}, description="a folder", model_framework="scikit-learn",
                       model_framework_version="1.5", datasets=["diabetes", ("training", "extra")])
    assert (m.name, m.version, m.id) == (name, 1, name + ":1")
    assert m.tags == {"stage": "dev", "n": "1"}
    assert m.properties == {"accuracy": "0.9"}
    assert m.description == "a folder"
    assert (m.framework, m.framework_version) == ("scikit-learn", "1.5")
    assert m.datasets == ["diabetes", "extra"]
    assert m.run_id is None and m.experiment is None
    assert isinstance(m.created_time, datetime.datetime) and m.created_time.tzinfo is not None
    assert abs((datetime.datetime.now(datetime.timezone.utc) - m.created_time).total_seconds()) < 300
    files = {f["path"]: f for f in m.files}
    assert set(files) == {"mymodel/" + k for k in FOLDER}
    for rel, data in FOLDER.items():
        assert files["mymodel/" + rel]["digest"] == hashlib.sha256(data).hexdigest()
        assert files["mymodel/" + rel]["size"] == len(data)

    # The second registration (the same content, stored once) gets version 2.
    m2 = Model.register(ws, str(src), name)
    assert m2.version == 2
    assert Model(ws, name).version == 2
    assert Model(ws, name, version=1).tags == {"stage": "dev", "n": "1"}
    assert Model(ws, name + ":1").description == "a folder"
    assert Model(ws, id=name + ":2").version == 2
    assert Model(ws, name + ":latest").version == 2


def test_tar_stream(tmp_path):
    """The upload body is a tar stream of exactly the files' content, and a file changed while
    it is read fails the upload."""
    import tarfile
    from atelier.model import _tar_stream
    src = make_folder(tmp_path / "m", {"a.bin": b"x" * 1000, "b/c.txt": b"", "d": os.urandom(1 << 21)})
    rest = [("m/b/c.txt", str(src / "b" / "c.txt")), ("m/d", str(src / "d"))]
    data = b"".join(_tar_stream(("m/a.bin", str(src / "a.bin")), lambda: rest.pop(0) if rest else None))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        got = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}
    assert got == {"m/a.bin": b"x" * 1000, "m/b/c.txt": b"", "m/d": (src / "d").read_bytes()}

    gen = _tar_stream(("m/a.bin", str(src / "a.bin")), lambda: None)
    next(gen)  # the header: the size is taken
    (src / "a.bin").write_bytes(b"y" * 2000)
    with pytest.raises(AtelierError, match="changed while it was uploaded"):
        list(gen)


def test_register_single_file_and_download(ws, tmp_path):
    name = unique("file")
    data = os.urandom(100000)
    src = tmp_path / "model.pkl"
    src.write_bytes(data)
    m = Model.register(ws, src, name)  # a PathLike works too
    assert [f["path"] for f in m.files] == ["model.pkl"]
    assert m.path == "" or m.path == "model.pkl"

    out = tmp_path / "out"
    got = m.download(target_dir=str(out))
    assert got == os.path.join(str(out), "model.pkl")
    with open(got, "rb") as f:
        assert f.read() == data
    with pytest.raises(FileExistsError):
        m.download(target_dir=str(out))
    assert m.download(target_dir=str(out), exist_ok=True) == got
    assert not [p for p in os.listdir(out) if p.startswith(".atelier-")]  # no temp files left

    z = m.download(target_dir=str(tmp_path / "zip"), as_zip=True)
    assert z.endswith("%s-1.zip" % name)
    with zipfile.ZipFile(z) as zf:
        assert zf.read("model.pkl") == data


def test_download_folder(ws, tmp_path):
    name = unique("dl")
    src = make_folder(tmp_path / "net", FOLDER)
    Model.register(ws, str(src), name)
    got = Model(ws, name).download(str(tmp_path / "out"))
    assert got == os.path.join(str(tmp_path / "out"), "net")
    for rel, data in FOLDER.items():
        with open(os.path.join(got, *rel.split("/")), "rb") as f:
            assert f.read() == data


def test_register_child_paths(ws, tmp_path):
    name = unique("child")
    src = make_folder(tmp_path / "m", FOLDER)
    m = Model.register(ws, str(src), name, child_paths=["config.json", "sub"])
    assert sorted(f["path"] for f in m.files) == ["m/config.json", "m/sub/empty", "m/sub/vocab.txt"]


def test_run_register_model(ws, run, tmp_path):
    name = unique("fromrun")
    data = b"pickled model bytes"
    src = tmp_path / "model.pkl"
    src.write_bytes(data)
    run.upload_file("outputs/model.pkl", str(src))
    run.upload_file("outputs/dir/a.txt", io.BytesIO(b"A"))
    run.upload_file("outputs/dir/b/c.txt", io.BytesIO(b"C"))
    run.log("rmse", 0.5)

    m = run.register_model(model_name=name, model_path="outputs/model.pkl", tags={"stage": "dev"},
                           properties={"rmse": 0.5}, description="from a run", model_framework="sklearn")
    assert m.version == 1
    assert m.run_id == run.id
    assert m.experiment == "pytest"
    assert m.path == "outputs/model.pkl"
    assert m.run.id == run.id
    assert [f["path"] for f in m.files] == ["model.pkl"]
    assert m.files[0]["digest"] == hashlib.sha256(data).hexdigest()
    got = Model(ws, name).download(str(tmp_path / "out"))
    with open(got, "rb") as f:
        assert f.read() == data

    m2 = run.register_model(name, "outputs/dir/")
    assert m2.version == 2
    assert sorted(f["path"] for f in m2.files) == ["dir/a.txt", "dir/b/c.txt"]
    assert {x.id for x in run.get_models()} == {name + ":1", name + ":2"}

    with pytest.raises(AtelierError) as e:
        run.register_model(name, "outputs/nothing.pkl")
    assert e.value.status == 404 and e.value.code == "not_found"


def test_model_not_found(ws):
    with pytest.raises(AtelierError) as e:
        Model(ws, unique("nosuch"))
    assert e.value.status == 404
    name = unique("v")
    with pytest.raises(AtelierError) as e:
        Model(ws, name, version=7)
    assert e.value.status == 404


def test_list_filters(ws, tmp_path):
    prefix = unique("list")
    src = tmp_path / "m.bin"
    src.write_bytes(b"x")
    a1 = Model.register(ws, str(src), prefix + "-a", tags={"stage": "dev", "team": "x"}, properties={"p": "1"})
    a2 = Model.register(ws, str(src), prefix + "-a", tags={"stage": "prod"})
    b1 = Model.register(ws, str(src), prefix + "-b", tags={"stage": "prod"}, model_framework="torch")

    def ids(models):
        return sorted(m.id for m in models if m.name.startswith(prefix))

    assert ids(Model.list(ws, name=prefix + "-a")) == [a1.id, a2.id]
    assert ids(Model.list(ws, name_contains=prefix)) == [a1.id, a2.id, b1.id]
    assert ids(Model.list(ws, tags=["stage=prod"])) == [a2.id, b1.id]
    assert ids(Model.list(ws, tags=[["stage", "prod"]])) == [a2.id, b1.id]
    assert ids(Model.list(ws, tags=[("stage", "dev")])) == [a1.id]
    assert ids(Model.list(ws, tags=["team"])) == [a1.id]
    assert ids(Model.list(ws, tags={"team": None})) == [a1.id]
    assert ids(Model.list(ws, tags=["stage=prod"], name=prefix + "-b")) == [b1.id]
    assert ids(Model.list(ws, tags=["stage", "team=x"])) == [a1.id]
    assert ids(Model.list(ws, properties=["p=1"])) == [a1.id]
    assert ids(Model.list(ws, properties=["p=2"])) == []
    assert ids(Model.list(ws, name_contains=prefix, latest=True)) == [a2.id, b1.id]
    assert ids(Model.list(ws, name_contains=prefix, model_framework="torch")) == [b1.id]
    newest = Model.list(ws, name=prefix + "-a")
    assert [m.version for m in newest] == [2, 1]
    assert newest[0].files == a2.files  # lists leave the files out; they are fetched when asked for
    assert ws.models[prefix + "-a"].version == 2
    # Model() with filters gives the newest matching version.
    assert Model(ws, prefix + "-a", tags=["stage=dev"]).version == 1


def test_tags_properties_aliases(ws, tmp_path):
    name = unique("tags")
    src = tmp_path / "m.bin"
    src.write_bytes(b"tags")
    m = Model.register(ws, str(src), name, tags={"a": "1"}, properties={"p": "x"})
    m.add_tags({"b": 2, "a": "one"})
    assert m.tags == {"a": "one", "b": "2"}
    m.remove_tags(["a"])
    assert m.tags == {"b": "2"}
    assert Model(ws, name).tags == {"b": "2"}

    m.add_properties({"q": "y"})
    m.add_properties({"p": "x"})  # the same value again is fine
    assert Model(ws, name).properties == {"p": "x", "q": "y"}
    with pytest.raises(AtelierError) as e:
        m.add_properties({"p": "changed"})
    assert e.value.status == 409 and e.value.code == "conflict"
    assert "p" in e.value.message
    assert Model(ws, name).properties["p"] == "x"

    m.update(tags={"c": "3"}, description="new")
    assert (m.tags, m.description) == ({"c": "3"}, "new")
    m.update_tags_properties(add_tags={"d": "4"}, remove_tags="c", add_properties={"r": "z"})
    assert m.tags == {"d": "4"} and m.properties["r"] == "z"

    m2 = Model.register(ws, str(src), name)
    m.set_alias("prod")
    assert "prod" in m.aliases
    assert Model(ws, name + "@prod").version == 1
    assert Model(ws, name, version="prod").version == 1
    m2.set_alias("prod")
    assert Model(ws, name + "@prod").version == 2
    m2.remove_alias("prod")
    with pytest.raises(AtelierError) as e:
        Model(ws, name + "@prod")
    assert e.value.status == 404


def test_delete(ws, tmp_path):
    name = unique("del")
    src = tmp_path / "m.bin"
    src.write_bytes(b"delete me")
    m1 = Model.register(ws, str(src), name)
    m2 = Model.register(ws, str(src), name)
    m2.delete()
    assert Model(ws, name).version == 1
    with pytest.raises(AtelierError) as e:
        Model(ws, name, version=2)
    assert e.value.status == 404
    with pytest.raises(AtelierError) as e:
        m2.delete()
    assert e.value.status == 404
    m1.delete()
    assert Model.list(ws, name=name) == []


def test_bad_input(ws, tmp_path):
    with pytest.raises(AtelierError) as e:
        Model.register(ws, str(tmp_path / "missing.pkl"), unique("bad"))
    assert e.value.status == 404 and e.value.code == "not_found"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AtelierError) as e:
        Model.register(ws, str(empty), unique("bad"))
    assert e.value.status == 400
    src = tmp_path / "m.bin"
    src.write_bytes(b"x")
    for bad in ("trailing space ", " leading", "-dash", "a:b", "a@b", "", "x" * 256):
        with pytest.raises(AtelierError) as e:
            Model.register(ws, str(src), bad)
        assert e.value.status == 400 and e.value.code == "invalid", bad
    # The server says the same when the SDK does not check first.
    with pytest.raises(AtelierError) as e:
        api(ws, "POST", "/models", body={"name": "trailing space ", "files": [
            {"path": "m.bin", "digest": hashlib.sha256(b"x").hexdigest(), "size": 1}]})
    assert e.value.status == 400 and e.value.code == "invalid"
    # Names may hold spaces inside, as MLflow's registered models do.
    spaced = Model.register(ws, str(src), unique("has space"))
    assert " " in spaced.name and Model(ws, spaced.name).version == spaced.version
    # A manifest naming objects the server lacks is refused.
    with pytest.raises(AtelierError) as e:
        api(ws, "POST", "/models", body={"name": unique("bad"), "files": [
            {"path": "m.bin", "digest": hashlib.sha256(b"never uploaded").hexdigest(), "size": 14}]})
    assert 400 <= e.value.status < 500
    with pytest.raises(AtelierError) as e:
        Model(ws, "bad name ")
    assert e.value.status == 400
    with pytest.raises(AtelierError) as e:
        Model(ws, unique("m"), version=0)
    assert e.value.status == 400


def test_offline_register_model(capsys):
    r = atelier.OfflineRun()
    assert r.register_model("m", "outputs/model.pkl") is None
    assert "register_model m outputs/model.pkl" in capsys.readouterr().out


def test_error_details_from_server(ws):
    # A JSON error answer is kept whole on the exception (a model in use lists its references there).
    with pytest.raises(AtelierError) as e:
        Model(ws, unique("gone"))
    assert e.value.details.get("code") == "not_found"
