"""Datastores: a workspace's named storage (a folder of the server, S3, Azure Blob, GCS), modelled
on Azure ML's Datastore class.

    from atelier import Datastore
    ds = Datastore.register_s3(ws, "lake", bucket="data", access_key="...", secret_key="...",
                               endpoint="http://127.0.0.1:7070", path_style=True)
    ds.upload("./diabetes", target_path="diabetes")     # sends only what changed
    ds.download("/tmp/data", prefix="diabetes/")        # /tmp/data/diabetes/...

Credentials are sent once, when the datastore is registered, and never come back: the server
keeps them encrypted and a Datastore shows only which kinds are set (``credentials``).
"""

import hashlib
import http.client
import json
import os
import sys
import tempfile
import threading
import time

from ._http import AtelierError, error_from_response, quote_path, quote_seg
from .model import _map, _parse_time, _walk

__all__ = ["Datastore", "UploadResult", "DownloadResult"]

_BLOCK = 1 << 20
_PAGE_SIZE = 10000  # the server's largest page (atelier.MaxPageSize)
_MAX_DIGESTS = 1000  # paths per request for digests (atelier.MaxDatastoreDigests)
_SHA256_HEADER = "X-Content-Sha256"
_TYPES = {"files": "Files", "s3": "S3", "azureblob": "AzureBlob", "gcs": "GCS"}
# The configuration a registration sets (secrets aside), as the server names it.
_CONFIG = ("kind", "path", "endpoint", "region", "bucket", "account", "container", "prefix", "path_style")


def _invalid(message):
    return AtelierError(message, code="invalid", status=400)


def _check_path(p, what):
    """p as the server accepts a datastore path: relative, '/'-separated, no empty, '.' or '..'
    element. Checked before anything is sent, so a bad path fails the whole call at once."""
    if not isinstance(p, str):
        raise TypeError("%s must be a str, not %s" % (what, type(p).__name__))
    if not p or p.startswith("/") or "\\" in p or "\x00" in p or (len(p) > 1 and p[1] == ":"):
        raise _invalid("invalid %s %r: a relative path with '/' separators" % (what, p))
    if any(el in ("", ".", "..") for el in p.split("/")):
        raise _invalid("invalid %s %r: empty, '.' and '..' elements are not allowed" % (what, p))
    return p


def _folder(target_path, what="target_path"):
    """A datastore folder given by the user ("", "/", "a/b/", "a/b") as "" or "a/b"."""
    if target_path is None:
        return ""
    t = os.fspath(target_path).strip("/")
    return "" if t in ("", ".") else _check_path(t, what)


def _files(n):
    """'1 file', '2 files'."""
    return "%d file%s" % (n, "" if n == 1 else "s")


def _human(n):
    if n < 1024:
        return "%d B" % n
    for unit in "KMGTPE":
        n /= 1024.0
        if n < 1024:
            break
    return "%.1f %siB" % (n, unit)


def _hash_file(path, algo):
    """The hex sha256 (or md5) of a local file, read in blocks."""
    h = hashlib.md5(usedforsecurity=False) if algo == "md5" else hashlib.sha256()
    buf = bytearray(_BLOCK)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


class _Progress:
    """One updating line on a terminal (every 0.2 s), plain lines every 5 s otherwise."""

    def __init__(self, label, total, enabled):
        out = sys.stderr
        self.out = out if enabled and out is not None else None
        self.tty = self.out is not None and hasattr(out, "isatty") and out.isatty()
        self.label, self.total = label, total
        self.done = self.moved = 0  # done counts skipped files too; moved only what was sent
        self.start = self.last = time.monotonic()
        self.lock = threading.Lock()

    def add(self, n, moved=True):
        with self.lock:
            self.done += n
            if moved:
                self.moved += n
            now = time.monotonic()
            if self.out is not None and now - self.last >= (0.2 if self.tty else 5.0):
                self.last = now
                self._print(now)

    def _print(self, now):
        rate = self.moved / max(now - self.start, 0.001)
        pct = 100.0 * self.done / self.total if self.total else 100.0
        line = "%s %s / %s (%.0f%%) %s/s" % (self.label, _human(self.done), _human(self.total), pct, _human(rate))
        if self.tty:
            self.out.write("\r\033[K" + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def finish(self, summary):
        if self.out is None:
            return
        if self.tty:
            self.out.write("\r\033[K")
        self.out.write("%s in %.1f s\n" % (summary, time.monotonic() - self.start))
        self.out.flush()


class UploadResult:
    """What an upload did: ``uploaded`` files (``bytes`` sent), ``skipped`` unchanged ones, and
    the datastore folder they went to (``path_on_datastore``, "" for the root)."""

    def __init__(self, datastore, path_on_datastore, uploaded, skipped, bytes):
        self.datastore = datastore
        self.path_on_datastore = path_on_datastore
        self.uploaded = uploaded
        self.skipped = skipped
        self.bytes = bytes

    def __repr__(self):
        return "UploadResult(datastore=%r, path_on_datastore=%r, uploaded=%d, skipped=%d, bytes=%d)" % (
            self.datastore.name, self.path_on_datastore, self.uploaded, self.skipped, self.bytes)


class DownloadResult(int):
    """The number of files downloaded (Azure ML's return value), with ``skipped``: how many
    existing local files were left alone (overwrite=False), and ``bytes`` received."""

    def __new__(cls, downloaded, skipped=0, bytes=0):
        self = super().__new__(cls, downloaded)
        self.skipped = skipped
        self.bytes = bytes
        return self

    @property
    def downloaded(self):
        return int(self)

    def __repr__(self):
        return "DownloadResult(downloaded=%d, skipped=%d, bytes=%d)" % (int(self), self.skipped, self.bytes)

    __str__ = int.__repr__


class _Item:
    __slots__ = ("local", "remote", "size")

    def __init__(self, local, remote, size):
        self.local, self.remote, self.size = local, remote, size


class Datastore:
    """A registered datastore of a workspace: ``Datastore(workspace, name)``, or the workspace's
    default datastore without a name. Every workspace has the built-in datastore "default", a
    folder the server manages.

    Attributes show the configuration (``kind``, ``bucket``, ``container_name``, ``prefix``, ...)
    and ``credentials``, the names of the kinds of secret stored (e.g. ["access_key",
    "secret_key"]), never their values."""

    def __init__(self, workspace, name=None, _details=None):
        self.workspace = workspace
        self._client = workspace._client
        if _details is not None:
            self._details = _details
        elif name is None:
            self._details = Datastore.get_default(workspace)._details
        else:
            self._details = self._client.request("GET", _ds_path(workspace, _check_name(name)))

    # attributes

    name = property(lambda self: self._details.get("name"))
    kind = property(lambda self: self._details.get("kind"), doc="files, s3, azureblob or gcs")
    datastore_type = property(lambda self: _TYPES.get(self.kind, self.kind), doc="Files, S3, AzureBlob or GCS")
    is_default = property(lambda self: bool(self._details.get("is_default")))
    path = property(lambda self: self._details.get("path") or None, doc="the folder of a files datastore")
    endpoint = property(lambda self: self._details.get("endpoint") or None)
    region = property(lambda self: self._details.get("region") or None)
    bucket = property(lambda self: self._details.get("bucket") or None)
    bucket_name = bucket
    account_name = property(lambda self: self._details.get("account") or None)
    container_name = property(lambda self: self._details.get("container") or None)
    prefix = property(lambda self: self._details.get("prefix") or None)
    path_style = property(lambda self: bool(self._details.get("path_style")))
    credentials = property(lambda self: list(self._details.get("credentials") or []))
    created_by = property(lambda self: self._details.get("created_by") or "")
    created_time = property(lambda self: _parse_time(self._details.get("created_at")))
    updated_time = property(lambda self: _parse_time(self._details.get("updated_at")))

    def __repr__(self):
        return "Datastore(name=%r, kind=%r, workspace=%r, is_default=%r)" % (
            self.name, self.kind, self.workspace.name, self.is_default)

    def __eq__(self, other):
        return isinstance(other, Datastore) and (self.workspace, self.name) == (other.workspace, other.name)

    def __hash__(self):
        return hash((self.workspace, self.name))

    def _path(self, *tail):
        return _ds_path(self.workspace, self.name, *tail)

    def get_details(self):
        """The datastore's JSON as the server has it now (refreshed); it holds no secret."""
        self._details = self._client.request("GET", self._path())
        return dict(self._details)

    def serialize(self):
        return dict(self._details)

    # the registry

    @staticmethod
    def get(workspace, datastore_name=None, name=None):
        """The datastore named datastore_name (or name); AtelierError not_found (404) if the
        workspace has none by that name."""
        name = datastore_name if datastore_name is not None else name
        if name is None:
            raise TypeError("Datastore.get needs a datastore name")
        return Datastore(workspace, name)

    @staticmethod
    def list(workspace):
        """The workspace's datastores (the built-in "default" included)."""
        d = workspace._client.request("GET", "/api/v1/workspaces/%s/datastores" % quote_seg(workspace.name)) or {}
        return [Datastore(workspace, _details=x) for x in d.get("datastores") or []]

    @staticmethod
    def get_default(workspace):
        """The workspace's default datastore (the built-in "default" unless another was set)."""
        for ds in Datastore.list(workspace):
            if ds.is_default:
                return ds
        return Datastore(workspace, "default")

    def set_as_default(self):
        """Makes this datastore the workspace's default."""
        self._details = self._client.request("POST", self._path("default"))
        return self

    def unregister(self, force=False):
        """Forgets the datastore: the server drops its configuration and credentials, the files
        stay in their storage. The default datastore, or one that runs read or wrote, needs
        force (the built-in "default" becomes the default again); "default" itself cannot be
        unregistered."""
        self._client.request("DELETE", self._path(), query={"force": True if force else None})

    @staticmethod
    def register_files(workspace, name, path, overwrite=False):
        """Registers a folder of the server (server administrators only). A relative path is
        made absolute here, which is right when the server runs on this machine."""
        path = os.path.abspath(os.fspath(path))
        return _register(workspace, {"name": name, "kind": "files", "path": path}, overwrite)

    @staticmethod
    def register_s3(workspace, name, bucket, access_key, secret_key, endpoint=None, region=None, prefix=None,
                    path_style=False, overwrite=False):
        """Registers an S3 bucket, or one of an S3-compatible server (endpoint, usually with
        path_style=True). prefix limits the datastore to a folder of the bucket."""
        spec = {"name": name, "kind": "s3", "bucket": bucket, "endpoint": endpoint, "region": region,
                "prefix": prefix, "path_style": bool(path_style), "access_key": access_key, "secret_key": secret_key}
        return _register(workspace, spec, overwrite)

    @staticmethod
    def register_azure_blob_container(workspace, datastore_name, container_name, account_name, sas_token=None,
                                      account_key=None, protocol=None, endpoint=None, overwrite=False,
                                      create_if_not_exists=False, connection_string=None, prefix=None, **kwargs):
        """Registers an Azure Blob container with exactly one of sas_token, account_key or
        connection_string (then account_name may be None). Azure ML's parameters, in its order:
        endpoint is a service URL ("http://127.0.0.1:10000/devstoreaccount1" for Azurite) or,
        as in Azure ML, a storage suffix ("core.windows.net", made into
        "<protocol>://<account>.blob.<suffix>"). The container must exist: create_if_not_exists
        is refused, and Azure's other parameters (skip_validation, blob_cache_timeout,
        grant_workspace_access, subscription_id, resource_group) have no meaning here and are
        ignored."""
        if create_if_not_exists:
            raise _invalid("atelier does not create containers: create %r first" % container_name)
        if endpoint and "://" not in endpoint:
            endpoint = "%s://%s.blob.%s" % (protocol or "https", account_name, endpoint.strip("."))
        spec = {"name": datastore_name, "kind": "azureblob", "account": account_name, "container": container_name,
                "endpoint": endpoint, "prefix": prefix, "account_key": account_key, "sas": sas_token,
                "connection_string": connection_string}
        return _register(workspace, spec, overwrite)

    @staticmethod
    def register_gcs(workspace, name, bucket, credentials_file=None, credentials_json=None, endpoint=None, prefix=None,
                     overwrite=False):
        """Registers a GCS bucket with a service account key: credentials_file (its path) or
        credentials_json (its content, a str or a dict)."""
        if (credentials_file is None) == (credentials_json is None):
            raise TypeError("register_gcs needs one of credentials_file or credentials_json")
        if credentials_file is not None:
            with open(os.fspath(credentials_file), encoding="utf-8") as f:
                credentials_json = f.read()
        elif isinstance(credentials_json, dict):
            credentials_json = json.dumps(credentials_json)
        spec = {"name": name, "kind": "gcs", "bucket": bucket, "endpoint": endpoint, "prefix": prefix,
                "credentials_json": credentials_json}
        return _register(workspace, spec, overwrite)

    # files

    def list_files(self, prefix=None, recursive=True):
        """The datastore's files whose path starts with prefix ("data/" for a folder), as dicts
        (path, size, modified_at, and md5 where the storage lists one). Without recursive,
        sub-folders are entries with dir=True and a path ending in '/'."""
        q = {"prefix": _prefix(prefix) or None, "recursive": bool(recursive), "limit": _PAGE_SIZE}
        out = []
        while True:
            page = self._client.request("GET", self._path("files"), query=q) or {}
            out.extend(page.get("files") or [])
            token = page.get("next_page_token")
            if not token:
                return out
            q["page_token"] = token

    def delete_files(self, path, recursive=False):
        """Deletes a file, or with recursive the folder path and everything under it; returns
        how many files were deleted."""
        p = _check_path(os.fspath(path).strip("/"), "path")
        d = self._client.request("DELETE", self._path("files", quote_path(p)),
                                 query={"recursive": True if recursive else None}) or {}
        return d.get("deleted", 0)

    def upload(self, src_dir, target_path=None, overwrite=False, show_progress=True):
        """Uploads every file under the local folder src_dir to target_path (a folder of the
        datastore; None is its root, as in Azure ML, where the CLI would use src_dir's name),
        keeping their relative paths, 8 files at a time, each streamed from disk; a single file
        goes to target_path/<its name>. Returns an UploadResult (uploaded, skipped, bytes).

        With overwrite=False, a file already in the datastore with the same size and the same
        content is skipped (compared by the MD5 the storage lists, or else by the sha256 the
        server reports), and a changed one is uploaded again, as ``atelier datastore upload``
        does. Azure ML's overwrite=False skips every file that exists, changed or not: here a
        second upload of a folder brings the datastore up to date instead of silently keeping
        stale data, at the cost of reading each file of the same size once to hash it.
        overwrite=True uploads everything without comparing.

        A file that changes while it is sent (its size or modification time differ at the
        end from when it was opened) is not stored: the connection is closed before its last
        byte, so the server sees a short body and keeps nothing (a previous version stays), and
        AtelierError says which file. To cloud storage each file is hashed before it is sent
        and its sha256 travels with it: the server refuses content that differs and stores the
        digest, so the next upload can skip the file."""
        src = os.fspath(src_dir)
        if os.path.isfile(src):
            return self.upload_files([src], target_path=target_path, overwrite=overwrite,
                                     show_progress=show_progress)
        if not os.path.isdir(src):
            raise AtelierError("%s does not exist" % src, code="not_found", status=404)
        root = _folder(target_path)
        items = []
        for rel, local in _walk(src):
            remote = root + "/" + rel if root else rel
            _check_path(remote, "datastore path of %s" % local)
            items.append(_Item(local, remote, os.path.getsize(local)))
        if not items:
            raise _invalid("%s holds no files" % src)
        return self._upload(items, root, overwrite, show_progress)

    def upload_files(self, files, relative_root=None, target_path=None, overwrite=False, show_progress=True):
        """Uploads local files to target_path (None: the datastore's root), each at its path
        relative to relative_root (by default the folder all the files have in common): with
        relative_root="/data", /data/a/b.csv goes to <target_path>/a/b.csv. Otherwise as
        upload()."""
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        paths = [os.path.abspath(os.fspath(f)) for f in files]
        if not paths:
            raise _invalid("upload_files needs at least one file")
        for p in paths:
            if not os.path.exists(p):
                raise AtelierError("%s does not exist" % p, code="not_found", status=404)
            if not os.path.isfile(p):
                raise _invalid("%s is %s" % (p, "a folder: upload it with upload()" if os.path.isdir(p)
                                             else "not a regular file"))
        base = os.path.abspath(os.fspath(relative_root)) if relative_root is not None else \
            os.path.commonpath([os.path.dirname(p) for p in paths])
        root = _folder(target_path)
        items, seen = [], set()
        for p in paths:
            rel = os.path.relpath(p, base)
            if rel.startswith(os.pardir + os.sep) or rel == os.pardir or os.path.isabs(rel):
                raise _invalid("%s is not under relative_root %s" % (p, base))
            rel = rel.replace(os.sep, "/")
            remote = root + "/" + rel if root else rel
            _check_path(remote, "datastore path of %s" % p)
            if remote not in seen:
                seen.add(remote)
                items.append(_Item(p, remote, os.path.getsize(p)))
        return self._upload(items, root, overwrite, show_progress)

    def _upload(self, items, root, overwrite, show_progress):
        details = self.get_details()  # its kind, and a clear not_found before any file is read
        cloud = details.get("kind") != "files"
        remote = {}
        if not overwrite:
            prefix = root + "/" if root else None
            if len(items) == 1:
                prefix = items[0].remote  # one file: only what starts with its path
            remote = {f["path"]: f for f in self.list_files(prefix) if not f.get("dir")}
            self._fill_digests(items, remote)
        total = sum(it.size for it in items)
        bar = _Progress("uploading to %s" % self.name, total, show_progress)
        counts = {"uploaded": 0, "skipped": 0, "bytes": 0}
        lock = threading.Lock()

        def one(it):
            sha = None
            r = remote.get(it.remote)
            if r is not None and r.get("size") == it.size and (r.get("md5") or r.get("sha256")):
                # Only the digest compared is computed; the sha256 is reused as the upload's.
                if r.get("md5"):
                    same = _hash_file(it.local, "md5") == r["md5"].lower()
                else:
                    sha = _hash_file(it.local, "sha256")
                    same = sha == r["sha256"]
                if same:
                    bar.add(it.size, moved=False)
                    with lock:
                        counts["skipped"] += 1
                    return
            if sha is None and cloud:
                sha = _hash_file(it.local, "sha256")
            n = self._put(it, sha, bar)
            with lock:
                counts["uploaded"] += 1
                counts["bytes"] += n

        try:
            _map(self._client, one, items)
        finally:
            bar.finish("uploaded %s (%s) to %s, skipped %d unchanged" % (
                _files(counts["uploaded"]), _human(counts["bytes"]), self.name, counts["skipped"]))
        return UploadResult(self, root, counts["uploaded"], counts["skipped"], counts["bytes"])

    def _fill_digests(self, items, remote):
        """Asks the server for the sha256 of the remote files that may be unchanged (same size)
        but are listed without an MD5 to compare."""
        paths = [it.remote for it in items
                 if it.remote in remote and remote[it.remote].get("size") == it.size
                 and not remote[it.remote].get("md5") and not remote[it.remote].get("sha256")]
        for i in range(0, len(paths), _MAX_DIGESTS):
            d = self._client.request("POST", self._path("digests"),
                                     body={"paths": paths[i:i + _MAX_DIGESTS]}) or {}
            for f in d.get("files") or []:
                r = remote.get(f.get("path"))
                if r is not None and f.get("size") == r.get("size") and f.get("sha256"):
                    r["sha256"] = f["sha256"]

    def _put(self, it, sha, bar):
        """Sends one file with a fixed Content-Length, its size when opened; returns the bytes
        sent."""
        with open(it.local, "rb") as fh:
            st = os.fstat(fh.fileno())
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(st.st_size)}
            if sha:
                headers[_SHA256_HEADER] = sha
            sent = [0]

            def count(n):
                sent[0] += n
                bar.add(n)

            def body():
                if sent[0]:  # sent again on a fresh connection: the progress starts over
                    bar.add(-sent[0])
                    sent[0] = 0
                fh.seek(0)
                return _unchanging_chunks(fh, st, it.local, count)

            path = self._path("files", quote_path(it.remote))
            try:
                resp = _send(self._client, "PUT", path, headers, body)
                data = _read_answer(self._client, resp)
            except AtelierError as e:
                if e.status == 400 and "does not match sha256" in e.message:
                    raise AtelierError("uploading %s: the file changed after it was hashed, so nothing was stored "
                                       "(%s)" % (it.local, e.message), code=e.code, status=e.status,
                                       details=e.details) from e
                if e.message.startswith("uploading "):
                    raise
                raise AtelierError("uploading %s: %s" % (it.local, e.message), code=e.code, status=e.status,
                                   details=e.details) from e
        f = json.loads(data) if data else {}
        if f.get("size", st.st_size) != st.st_size or (sha and f.get("sha256") and f["sha256"] != sha):
            raise AtelierError("uploading %s: the server stored %s bytes (sha256 %s), the file has %d (sha256 %s)" % (
                it.local, f.get("size"), f.get("sha256") or "?", st.st_size, sha or "?"), code="internal")
        return st.st_size

    def download(self, target_path, prefix=None, overwrite=False, show_progress=True):
        """Downloads every file whose datastore path starts with prefix ("data/" for a folder;
        None: the whole datastore) to target_path/<its datastore path>, as Azure ML does, 8
        files at a time. Each file is written to a temporary name next to it and renamed when
        complete, so a failure leaves no partial file. With overwrite=False an existing local
        file is left alone. Returns the number of files downloaded (a DownloadResult: an int
        with .skipped, the existing files left alone, and .bytes)."""
        target = os.fspath(target_path)
        files = [f for f in self.list_files(prefix) if not f.get("dir")]
        todo, skipped = [], 0
        for f in files:
            try:
                _check_path(f["path"], "datastore path")
            except AtelierError:
                raise AtelierError("datastore %s holds %r, which cannot be a local file name" % (self.name, f["path"]),
                                   code="invalid") from None
            dest = os.path.join(target, *f["path"].split("/"))
            if not overwrite and os.path.lexists(dest):
                skipped += 1
                continue
            todo.append((f, dest))
        for _, dest in todo:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
        mode = _file_mode()
        bar = _Progress("downloading from %s" % self.name, sum(f.get("size") or 0 for f, _ in todo), show_progress)
        counts = {"downloaded": 0, "bytes": 0}
        lock = threading.Lock()

        def one(fd):
            n = self._get(fd[0]["path"], fd[1], mode, bar)
            with lock:
                counts["downloaded"] += 1
                counts["bytes"] += n

        try:
            _map(self._client, one, todo)
        finally:
            summary = "downloaded %s (%s) from %s" % (_files(counts["downloaded"]), _human(counts["bytes"]), self.name)
            if skipped:
                summary += ", left %d existing %s alone (overwrite=False)" % (skipped, "file" if skipped == 1 else "files")
            if not files:
                summary = "no file of %s starts with %r" % (self.name, prefix or "")
            bar.finish(summary)
        return DownloadResult(counts["downloaded"], skipped, counts["bytes"])

    def _get(self, remote, dest, mode, bar):
        resp = _send(self._client, "GET", self._path("files", quote_path(remote)))
        n, tmp = 0, None
        try:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dest)), prefix=".atelier-", suffix=".part")
            length = resp.getheader("Content-Length")
            with os.fdopen(fd, "wb") as out:
                while True:
                    try:
                        blk = resp.read(_BLOCK)
                    except (OSError, http.client.HTTPException) as e:
                        raise AtelierError("downloading %s: %s" % (remote, e), code="unavailable") from e
                    if not blk:
                        break
                    out.write(blk)  # a local error (a full disk) is raised as it is
                    n += len(blk)
                    bar.add(len(blk))
            if length is not None and n != int(length):
                raise AtelierError("downloading %s: got %d of %s bytes" % (remote, n, length), code="unavailable")
            os.chmod(tmp, mode)
            os.replace(tmp, dest)
        except BaseException:
            self._client._drop_conn()
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            raise
        if resp.will_close:
            self._client._drop_conn()
        return n


def _ds_path(workspace, name, *tail):
    p = "/api/v1/workspaces/%s/datastores/%s" % (quote_seg(workspace.name), quote_seg(name))
    return p + "".join("/" + t for t in tail)


def _check_name(name):
    if not isinstance(name, str) or not name:
        raise TypeError("a datastore name must be a non-empty str")
    return name


def _prefix(prefix):
    """A listing prefix: kept as given (Azure's blob prefix: "data" also matches "data2/"), but
    checked for '..' and the like so the error is clear."""
    if prefix is None:
        return ""
    p = os.fspath(prefix).lstrip("/")
    if p:
        _check_path(p[:-1] if p.endswith("/") else p, "prefix")
    return p


def _register(workspace, spec, overwrite):
    _check_name(spec["name"])
    body = {k: v for k, v in spec.items() if v not in (None, "", False)}
    c = workspace._client
    try:
        d = c.request("POST", "/api/v1/workspaces/%s/datastores" % quote_seg(workspace.name), body=body)
    except AtelierError as e:
        if not (overwrite and e.code == "conflict"):
            raise
        return _reregister(workspace, body)
    return Datastore(workspace, _details=d)


def _reregister(workspace, body):
    """overwrite=True on a name that is taken: the same configuration gets the new credentials
    (a key rotation); another configuration is refused, since runs' lineage names the datastore
    and the server cannot change a datastore's location."""
    ds = Datastore.get(workspace, body["name"])
    have = ds._details
    diff = []
    for k in _CONFIG:
        want, got = body.get(k) or None, have.get(k) or None
        if k in ("prefix", "path") and want and got:
            want, got = os.path.normpath(want), os.path.normpath(got)
        if want != got:
            diff.append("%s %r, not %r" % (k, got, want))
    if diff:
        raise AtelierError("datastore %s exists with another configuration (%s): unregister it first, or choose "
                           "another name" % (body["name"], "; ".join(diff)), code="conflict", status=409)
    creds = {k: body[k] for k in ("access_key", "secret_key", "account_key", "sas", "connection_string",
                                  "credentials_json") if k in body}
    if creds:
        ds._details = workspace._client.request("PATCH", ds._path(), body=creds)
    return ds


def _unchanging_chunks(fh, st, local, count):
    """The file's content up to its size when opened, in blocks. The last block is held back
    until the file is found unchanged (same size and modification time, nothing past the end):
    otherwise AtelierError is raised before it is sent, the connection is closed and the server,
    short of Content-Length, stores nothing."""
    left = st.st_size
    held = None
    while left > 0:
        blk = fh.read(min(_BLOCK, left))
        if not blk:
            break
        left -= len(blk)
        if held is not None:
            yield held
            count(len(held))
        held = blk
    after = os.fstat(fh.fileno())
    if left or fh.read(1) or (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
        raise AtelierError("uploading %s: the file changed while it was uploaded, so nothing was stored: upload it "
                           "once it is written" % local, code="invalid", status=400)
    if held is not None:
        yield held
        count(len(held))


def _send(client, method, path, headers=None, body=None):
    """Sends a request on the thread's keep-alive connection and returns the response, whose
    status is below 400 (the caller reads it to its end). body is None or a function returning
    the chunks to send, called again when a kept-alive connection the server had closed is
    replaced (PUT and GET can be repeated). A server that answers an error before it has read the
    whole body (a refused upload) is heard: its message is raised, not the broken pipe."""
    url = client.url(path)
    hdrs = client.headers(headers)
    attempt = 0
    while True:
        attempt += 1
        conn = client._conn()
        reused = getattr(conn, "sock", None) is not None
        try:
            conn.putrequest(method, url, skip_accept_encoding=True)
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.endheaders()
            if body is not None:
                for chunk in body():
                    conn.send(chunk)
            resp = conn.getresponse()
        except AtelierError:
            client._drop_conn()  # raised by the body: the request is cut short
            raise
        except (BrokenPipeError, ConnectionResetError) as e:
            resp = _early_answer(conn)
            if resp is None:
                client._drop_conn()
                if reused and attempt == 1:
                    continue
                raise AtelierError("%s %s: connection to %s lost: %s" % (method, path, client.server, e),
                                   code="unavailable") from e
        except (OSError, http.client.HTTPException) as e:
            client._drop_conn()
            raise AtelierError("%s %s: %s: %s" % (method, path, client.server, e), code="unavailable") from e
        if resp.status >= 400:
            try:
                data = resp.read()
            except (OSError, http.client.HTTPException):
                data = b""
            client._drop_conn()
            raise error_from_response(resp.status, data, method, path)
        return resp


def _early_answer(conn):
    """The response a server sent before the request's body was all sent, if one can be read."""
    try:
        if conn.sock is None:
            return None
        conn.sock.settimeout(5)
        resp = conn.getresponse()
        return resp if resp.status >= 400 else None
    except Exception:
        return None


def _read_answer(client, resp):
    try:
        data = resp.read()
    except (OSError, http.client.HTTPException) as e:
        client._drop_conn()
        raise AtelierError("reading the answer of %s: %s" % (client.server, e), code="unavailable") from e
    if resp.will_close:
        client._drop_conn()
    return data


_mode = []


def _file_mode():
    """The mode open() gives a new file (0666 less the umask), for downloads written through
    mkstemp (0600). Read once: the umask can only be read by setting it."""
    if not _mode:
        um = os.umask(0o22)
        os.umask(um)
        _mode.append(0o666 & ~um)
    return _mode[0]
