"""Datastores against a real atelier server: the registry, and uploads and downloads to the
built-in datastore, to a files datastore and (with versitygw) to an S3 one."""

import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

import atelier
from atelier import AtelierError, Datastore
from atelier import datastore as dsmod
from conftest import SERVER, _free_port, api


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def make_tree(root):
    """Nested folders, an empty file and one of 5 MiB (more than one S3 part)."""
    files = {"a.txt": b"alpha\n", "empty": b"", "sub/b.csv": b"x,y\n1,2\n", "sub/deeper/c.bin": os.urandom(4096),
             "sub/deeper/big.bin": os.urandom((5 << 20) + 123)}
    for rel, data in files.items():
        p = root.joinpath(*rel.split("/"))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


def read_tree(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root).replace(os.sep, "/")] = f.read()
    return out


@pytest.fixture
def files_store(ws, tmp_path):
    """A files datastore over a fresh folder."""
    folder = tmp_path / "store"
    folder.mkdir()
    ds = Datastore.register_files(ws, unique("files"), str(folder))
    yield ds
    ds.unregister(force=True)


def round_trip(ds, tmp_path, local_copy=None):
    """Uploads a tree, uploads it again (all skipped), changes a file without changing its size
    (uploaded again), and downloads it all back."""
    src = tmp_path / "src"
    files = make_tree(src)
    total = sum(len(d) for d in files.values())
    target = unique("up")

    res = ds.upload(str(src), target_path=target, show_progress=False)
    assert (res.uploaded, res.skipped, res.bytes, res.path_on_datastore) == (5, 0, total, target)
    listed = {f["path"]: f["size"] for f in ds.list_files(target + "/")}
    assert listed == {target + "/" + rel: len(d) for rel, d in files.items()}
    if local_copy is not None:
        assert read_tree(os.path.join(local_copy, target)) == files
    dl = tmp_path / "dl"
    n = ds.download(str(dl), prefix=target + "/", show_progress=False)
    assert (n, n.skipped, n.bytes) == (5, 0, total)
    assert read_tree(dl / target) == files  # Azure ML's layout: target_path/<datastore path>

    res = ds.upload(str(src), target_path=target, show_progress=False)
    assert (res.uploaded, res.skipped, res.bytes) == (0, 5, 0)

    files["sub/b.csv"] = b"x,y\n3,4\n"
    (src / "sub" / "b.csv").write_bytes(files["sub/b.csv"])
    res = ds.upload(str(src), target_path=target, show_progress=False)
    assert (res.uploaded, res.skipped, res.bytes) == (1, 4, len(files["sub/b.csv"]))

    # overwrite=False leaves local files alone (and says so); overwrite=True replaces them.
    n = ds.download(str(dl), prefix=target + "/", show_progress=False)
    assert (n, n.skipped) == (0, 5)
    assert (dl / target / "sub" / "b.csv").read_bytes() == b"x,y\n1,2\n"
    n = ds.download(str(dl), prefix=target + "/", overwrite=True, show_progress=False)
    assert (n, n.skipped) == (5, 0)
    assert read_tree(dl / target) == files  # and no temporary file left behind

    assert ds.delete_files(target, recursive=True) == 5
    assert ds.list_files(target + "/") == []


def test_upload_download_default(ws, tmp_path):
    round_trip(Datastore.get(ws, "default"), tmp_path)


def test_upload_download_files_datastore(files_store, tmp_path):
    round_trip(files_store, tmp_path, local_copy=files_store.path)


def test_register_get_list_default(ws, tmp_path):
    name = unique("files")
    ds = Datastore.register_files(ws, name, str(tmp_path))
    assert (ds.name, ds.kind, ds.datastore_type, ds.path) == (name, "files", "Files", os.path.realpath(tmp_path))
    assert not ds.is_default and ds.credentials == []
    assert Datastore.get(ws, name) == ds and Datastore.get(ws, datastore_name=name).path == ds.path
    assert {"default", name} <= set(ws.datastores)
    assert name in [d.name for d in Datastore.list(ws)]
    assert Datastore.get_default(ws).name == "default"
    try:
        assert ds.set_as_default().is_default
        assert Datastore.get_default(ws).name == name
        assert ws.get_default_datastore().name == name and Datastore(ws).name == name
        with pytest.raises(AtelierError) as ei:
            ds.unregister()  # the default needs force
        assert (ei.value.code, ei.value.status) == ("conflict", 409)
        ws.set_default_datastore("default")
        assert not Datastore.get(ws, name).is_default
    finally:
        ws.set_default_datastore("default")
    ds.unregister()
    with pytest.raises(AtelierError) as ei:
        Datastore.get(ws, name)
    assert (ei.value.code, ei.value.status) == ("not_found", 404)
    with pytest.raises(AtelierError) as ei:
        Datastore.get(ws, "default").unregister(force=True)
    assert ei.value.code == "conflict" and "cannot be deleted" in ei.value.message


def test_credentials_never_returned(ws):
    secret = "secret-" + uuid.uuid4().hex
    access = "AKIA" + uuid.uuid4().hex[:16].upper()
    created = [
        Datastore.register_s3(ws, unique("s3"), "some-bucket", access, secret, endpoint="http://127.0.0.1:9",
                              region="eu-west-1", prefix="team/", path_style=True),
        Datastore.register_azure_blob_container(ws, unique("az"), "container1", "account1",
                                                sas_token="sv=2022-11-02&sig=" + secret),
        Datastore.register_gcs(ws, unique("gcs"), "bucket-1",
                               credentials_json={"type": "service_account", "private_key": secret}),
    ]
    try:
        s3, az, gcs = created
        assert (s3.bucket, s3.endpoint, s3.region, s3.prefix, s3.path_style) == (
            "some-bucket", "http://127.0.0.1:9", "eu-west-1", "team/", True)
        assert (az.account_name, az.container_name, az.datastore_type) == ("account1", "container1", "AzureBlob")
        assert s3.credentials == ["access_key", "secret_key"] and az.credentials == ["sas"]
        assert gcs.credentials == ["credentials_json"]
        for ds in created:
            for got in (ds, Datastore.get(ws, ds.name), ws.datastores[ds.name]):
                text = json.dumps(got.serialize()) + repr(got) + json.dumps(got.get_details())
                assert secret not in text and access not in text
            assert secret not in json.dumps(api(ws, "GET", "/datastores"))

        # Registering again: refused, unless overwrite with the same configuration (new keys).
        with pytest.raises(AtelierError) as ei:
            Datastore.register_s3(ws, s3.name, "some-bucket", access, "other")
        assert ei.value.code == "conflict"
        again = Datastore.register_s3(ws, s3.name, "some-bucket", access, "rotated", endpoint="http://127.0.0.1:9",
                                      region="eu-west-1", prefix="team/", path_style=True, overwrite=True)
        assert again.name == s3.name and "rotated" not in json.dumps(again.serialize())
        with pytest.raises(AtelierError) as ei:
            Datastore.register_s3(ws, s3.name, "other-bucket", access, "x", overwrite=True)
        assert ei.value.code == "conflict" and "bucket 'some-bucket', not 'other-bucket'" in ei.value.message
    finally:
        for ds in created:
            ds.unregister(force=True)


def test_bad_input(ws, tmp_path):
    with pytest.raises(AtelierError) as ei:
        Datastore.get(ws, "no-such-store")
    assert (ei.value.code, ei.value.status) == ("not_found", 404) and "no-such-store" in ei.value.message
    ghost = Datastore(ws, _details={"name": "no-such-store", "kind": "files"})
    (tmp_path / "f.txt").write_bytes(b"x")
    with pytest.raises(AtelierError) as ei:
        ghost.upload(str(tmp_path), show_progress=False)
    assert ei.value.code == "not_found"

    ds = Datastore.get(ws, "default")
    for call in (lambda: ds.upload(str(tmp_path), target_path="../up", show_progress=False),
                 lambda: ds.upload_files([str(tmp_path / "f.txt")], target_path="a/../../b", show_progress=False),
                 lambda: ds.download(str(tmp_path / "dl"), prefix="../", show_progress=False),
                 lambda: ds.list_files("a/../b"),
                 lambda: ds.delete_files("..")):
        with pytest.raises(AtelierError) as ei:
            call()
        assert ei.value.code == "invalid" and "'..'" in ei.value.message, ei.value.message
    assert not os.path.exists(tmp_path / "dl")

    with pytest.raises(AtelierError) as ei:
        ds.upload(str(tmp_path / "missing"), show_progress=False)
    assert ei.value.code == "not_found" and "missing" in ei.value.message

    # The server's message comes through: a bucket name it refuses, and a path too long for it,
    # answered before the 5 MiB body was read (overwrite: no listing first, which would refuse it).
    with pytest.raises(AtelierError) as ei:
        Datastore.register_s3(ws, unique("s3"), "Bad_Bucket", "a", "b")
    assert ei.value.status == 400 and "invalid S3 bucket name" in ei.value.message
    big = tmp_path / "big" / "big.bin"
    big.parent.mkdir()
    big.write_bytes(os.urandom(5 << 20))
    with pytest.raises(AtelierError) as ei:
        ds.upload_files([str(big)], target_path="x" * 1100, overwrite=True, show_progress=False)
    assert ei.value.status == 400 and "invalid path" in ei.value.message, ei.value
    assert str(big) in ei.value.message


def test_upload_files(ws, tmp_path):
    ds = Datastore.get(ws, "default")
    a = tmp_path / "r" / "x" / "a.txt"
    b = tmp_path / "r" / "y" / "b.txt"
    for p in (a, b):
        p.parent.mkdir(parents=True)
        p.write_text(p.name)
    t = unique("files")
    res = ds.upload_files([str(a), str(b)], target_path=t, show_progress=False)
    assert (res.uploaded, res.skipped) == (2, 0)
    res = ds.upload_files([str(a)], relative_root=str(tmp_path), target_path=t + "/rel", show_progress=False)
    assert res.uploaded == 1
    res = ds.upload(str(b), target_path=t + "/one", show_progress=False)  # a file: to the folder, by its name
    assert res.uploaded == 1
    assert sorted(f["path"] for f in ds.list_files(t + "/")) == [
        t + "/one/b.txt", t + "/rel/r/x/a.txt", t + "/x/a.txt", t + "/y/b.txt"]
    assert ds.upload(str(b), target_path=t + "/one", show_progress=False).skipped == 1
    with pytest.raises(AtelierError, match="not under relative_root"):
        ds.upload_files([str(a)], relative_root=str(b.parent), show_progress=False)
    assert sorted(f["path"] for f in ds.list_files(t + "/", recursive=False)) == [
        t + "/one/", t + "/rel/", t + "/x/", t + "/y/"]
    assert ds.delete_files(t, recursive=True) == 4


def test_file_changed_during_upload_is_not_stored(ws, tmp_path, monkeypatch):
    """A file rewritten in place while it is sent (same size: only its modification time
    tells) is not stored: the previous version stays, whole."""
    ds = Datastore.get(ws, "default")
    target = unique("changing")
    f = tmp_path / "data.bin"
    v1 = os.urandom(3 << 20)
    f.write_bytes(v1)
    assert ds.upload_files([str(f)], target_path=target, show_progress=False).uploaded == 1
    f.write_bytes(os.urandom(3 << 20))
    changed = []
    add = dsmod._Progress.add

    def add_and_change(self, n, moved=True):
        if n > 0 and not changed:  # the first 1 MiB was sent: rewrite a byte, a second later
            changed.append(n)
            st = os.stat(f)
            with open(f, "r+b") as fh:
                fh.write(b"Z")
            os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
        add(self, n, moved)

    monkeypatch.setattr(dsmod._Progress, "add", add_and_change)
    with pytest.raises(AtelierError, match="changed while it was uploaded") as ei:
        ds.upload_files([str(f)], target_path=target, show_progress=False)
    assert changed and str(f) in ei.value.message
    monkeypatch.setattr(dsmod._Progress, "add", add)
    n = ds.download(str(tmp_path / "dl"), prefix=target + "/", show_progress=False)
    assert n == 1 and (tmp_path / "dl" / target / "data.bin").read_bytes() == v1
    # Once it stays still, it goes.
    assert ds.upload_files([str(f)], target_path=target, show_progress=False).uploaded == 1
    assert ds.delete_files(target, recursive=True) == 1


def test_progress(ws, tmp_path, capsys, monkeypatch):
    ds = Datastore.get(ws, "default")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "f.bin").write_bytes(b"z" * 2048)
    t = unique("progress")
    ds.upload(str(tmp_path / "p"), target_path=t)
    ds.download(str(tmp_path / "dl"), prefix=t + "/")
    ds.download(str(tmp_path / "dl"), prefix=t + "/")
    err = capsys.readouterr().err
    assert "uploaded 1 file (2.0 KiB) to default, skipped 0 unchanged in" in err
    assert "downloaded 1 file (2.0 KiB) from default in" in err
    assert "downloaded 0 files (0 B) from default, left 1 existing file alone (overwrite=False) in" in err

    class TTY(io.StringIO):
        def isatty(self):
            return True

    tty = TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    bar = dsmod._Progress("uploading to x", 10 << 20, True)
    bar.last -= 1
    bar.add(5 << 20)
    bar.finish("done")
    assert tty.getvalue().startswith("\r\033[Kuploading to x 5.0 MiB / 10.0 MiB (50%) ")
    assert tty.getvalue().endswith("\r\033[Kdone in 0.0 s\n")
    ds.delete_files(t, recursive=True)


def _versitygw():
    v = os.environ.get("ATELIER_VERSITYGW")
    if v:
        return os.path.join(v, "versitygw") if os.path.isdir(v) else v
    if shutil.which("versitygw"):
        return shutil.which("versitygw")
    gopath = os.environ.get("GOPATH", "").split(os.pathsep)[0]
    if not gopath and shutil.which("go"):
        gopath = subprocess.run(["go", "env", "GOPATH"], capture_output=True, text=True).stdout.strip()
    p = os.path.join(gopath or os.path.expanduser("~/go"), "bin", "versitygw")
    return p if os.path.isfile(p) else None


@pytest.fixture
def s3(tmp_path):
    """(endpoint, access key, secret key, folder of the bucket "atelier-test") of a versitygw
    server over a folder, for the test."""
    binary = _versitygw()
    if not binary:
        pytest.skip("versitygw not found (set ATELIER_VERSITYGW, or go install "
                    "github.com/versity/versitygw/cmd/versitygw@latest): the S3 round trip is skipped")
    root = tmp_path / "s3"
    (root / "atelier-test").mkdir(parents=True)  # the posix backend: each folder is a bucket
    endpoint = "http://127.0.0.1:%d" % _free_port()
    env = dict(os.environ, ROOT_ACCESS_KEY="atelier-test", ROOT_SECRET_KEY="atelier-test-secret")
    proc = subprocess.Popen([binary, "--port", endpoint[len("http://"):], "posix", str(root)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # it answers (403 without a signature)
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("versitygw did not start")
                time.sleep(0.05)
        yield endpoint, "atelier-test", "atelier-test-secret", root / "atelier-test"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_s3_round_trip(ws, tmp_path, s3, monkeypatch):
    endpoint, access, secret, bucket_dir = s3
    ds = Datastore.register_s3(ws, unique("s3"), "atelier-test", access, secret, endpoint=endpoint,
                               prefix="team", path_style=True)
    try:
        assert ds.kind == "s3" and ds.credentials == ["access_key", "secret_key"]
        sent = []
        real_put = Datastore._put

        def put(self, it, sha, bar):
            sent.append(sha)
            return real_put(self, it, sha, bar)

        monkeypatch.setattr(Datastore, "_put", put)
        round_trip(ds, tmp_path, local_copy=bucket_dir / "team")  # versitygw's files, under the prefix
        assert sent and all(s and len(s) == 64 for s in sent)  # each file's sha256 went with it
    finally:
        ds.unregister(force=True)


def test_exports():
    assert atelier.Datastore is Datastore
    assert {"Datastore", "UploadResult", "DownloadResult"} <= set(atelier.__all__)


def test_over_unix_socket(ws, tmp_path):
    """The SDK reaches the server over its Unix socket too (ATELIER_SERVER=unix:///...)."""
    local = atelier.Workspace("unix://" + SERVER["socket"], ws._client.token, "default")
    assert local.server.startswith("unix://")
    ds = Datastore.get(local, "default")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.bin").write_bytes(os.urandom(300000))
    target = unique("unix")
    res = ds.upload(str(src), target_path=target, show_progress=False)
    assert (res.uploaded, res.skipped) == (1, 0)
    out = tmp_path / "out"
    assert ds.download(str(out), prefix=target, show_progress=False) == 1
    assert (out / target / "sub" / "f.bin").read_bytes() == (src / "sub" / "f.bin").read_bytes()
