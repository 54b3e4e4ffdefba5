"""azureml.data.abstract_dataset: what File and Tabular datasets share.

A dataset is a versioned, registered reference to files of datastores, kept by the atelier
server (/api/v1/workspaces/{ws}/datasets; `atelier dataset list`): its paths, the format of a
tabular one and its transforms. Reading one lists and downloads the files through the
datastore API; a run gets one as a data reference (downloaded before the script starts), and
the server records which dataset versions each submitted run consumed."""

import fnmatch
import json
import os
import shutil
import tempfile

from atelier._http import quote_seg

from .._compat import AtelierError, unsupported
from ..exceptions import DatasetNotFoundError, UserErrorException

KIND = "datasets"


def _datasets(ws, name=None, version=None):
    p = "/api/v1/workspaces/%s/datasets" % quote_seg(ws.name)
    if name is not None:
        p += "/" + quote_seg(name)
        if version is not None:
            p += "/versions/%s" % quote_seg(str(version))
    return p


def from_server(d):
    """A server dataset version as the SDK's document."""
    doc = {"type": d.get("type"), "paths": [{"datastore": p["datastore"], "path": p.get("path") or ""}
                                            for p in d.get("paths") or []],
           "registered_name": d.get("name"), "version": d.get("version"), "description": d.get("description") or None,
           "tags": dict(d.get("tags") or {})}
    if d.get("format"):
        doc["format"] = d["format"]
    if d.get("transforms"):
        doc["transforms"] = d["transforms"]
    return doc
_GLOB = set("*?[")


def _split(path):
    """(the folder before the first glob element, the glob or None)."""
    path = (path or "").strip("/")
    parts = path.split("/") if path else []
    for i, p in enumerate(parts):
        if _GLOB & set(p):
            return "/".join(parts[:i]), path
    return path, None


def _normalize_paths(path):
    """v1's path arguments: (datastore, path), a DataPath, or lists of them, as
    [{"datastore", "path"}]."""
    from .data_reference import DataReference
    from .datapath import DataPath
    items = path if isinstance(path, list) else [path]
    out = []
    for it in items:
        if isinstance(it, DataPath):
            it = it._pair()
        elif isinstance(it, DataReference):  # datastore.path("folder")
            it = (it.datastore, it.path_on_datastore or "")
        if isinstance(it, tuple) and len(it) == 2:
            ds, p = it
            name = ds if isinstance(ds, str) else getattr(ds, "name", None)
            out.append({"datastore": name, "path": (p or "").strip("/")})
        elif isinstance(it, str) and "://" in it:
            raise unsupported("a dataset from a URL (%s)" % it, "atelier reads datasets from its datastores: upload "
                              "the files with Datastore.upload and give (datastore, 'path')")
        elif isinstance(it, str):
            raise UserErrorException("dataset path %r: give (datastore, 'path/on/datastore') or a DataPath; to use "
                                     "local files, upload them first (datastore.upload)" % it)
        else:
            raise TypeError("dataset path: want (datastore, path) or DataPath, not %s" % type(it).__name__)
    if not out:
        raise UserErrorException("a dataset needs at least one path")
    return out


class AbstractDataset:
    _TYPE = None

    def __init__(self, workspace=None, doc=None):
        self._workspace = workspace
        self._doc = doc or {}
        self._local = None  # in a run: the local path of its data reference

    # identity

    name = property(lambda self: self._doc.get("registered_name"))
    version = property(lambda self: self._doc.get("version"))
    description = property(lambda self: self._doc.get("description"))
    tags = property(lambda self: dict(self._doc.get("tags") or {}))
    workspace = property(lambda self: self._workspace)
    data_changed_time = property(lambda self: None)

    @property
    def id(self):
        return "%s:%s" % (self.name, self.version) if self.name else None

    def __repr__(self):
        return "{\n  \"source\": %s,\n  \"definition\": %s,\n  \"registration\": %s\n}" % (
            json.dumps(["('%s', '%s')" % (p["datastore"], p["path"]) for p in self._doc.get("paths") or []]),
            json.dumps(self._doc.get("transforms") or []),
            json.dumps({"name": self.name, "version": self.version}) if self.name else "null")

    def _derive(self, transform):
        doc = json.loads(json.dumps(self._doc))
        doc.pop("registered_name", None)
        doc.pop("version", None)
        doc.setdefault("transforms", []).append(transform)
        d = type(self)(self._workspace, doc)
        d._local = self._local
        return d

    # the registry (the server's datasets, /api/v1/workspaces/{ws}/datasets)

    def register(self, workspace, name, description=None, tags=None, create_new_version=False, _run_id=None):
        """Registers the dataset as name (version 1); an existing name is refused unless
        create_new_version, which adds the next version (an unchanged definition keeps its
        version, as Azure does)."""
        if not name or "/" in name:
            raise UserErrorException("invalid dataset name %r" % (name,))
        body = {"name": name, "type": self._doc.get("type") or self._TYPE, "paths": self._doc.get("paths") or [],
                "description": description or "", "tags": {k: str(v) for k, v in (tags or {}).items()},
                "create_new_version": bool(create_new_version)}
        if self._doc.get("format"):
            body["format"] = self._doc["format"]
        if self._doc.get("transforms"):
            body["transforms"] = self._doc["transforms"]
        # Inside a submitted run, the dataset is the run's output: its token registers it naming
        # the run, which the version records (its lineage); so does an output registered on
        # completion (_run_id: OutputFileDatasetConfig.register_on_complete).
        run_id = _run_id or os.environ.get("ATELIER_RUN_ID")
        if run_id:
            body["run_id"] = run_id
        try:
            d = workspace._client.request("POST", _datasets(workspace), body=body)
        except AtelierError as e:
            if e.status == 409:
                raise UserErrorException("there is already a dataset named %r in workspace %s: pass "
                                         "create_new_version=True to add a version" % (name, workspace.name),
                                         code="conflict", status=409) from None
            if e.status == 400:
                raise UserErrorException(str(e), code="invalid", status=400) from None
            raise
        return type(self)(workspace, from_server(d))

    def add_tags(self, tags=None):
        return self._update(tags=dict(self.tags, **{k: str(v) for k, v in (tags or {}).items()}))

    def remove_tags(self, tags=None):
        return self._update(tags={k: v for k, v in self.tags.items() if k not in (tags or [])})

    def update(self, description=None, tags=None):
        fields = {}
        if description is not None:
            fields["description"] = description
        if tags is not None:
            fields["tags"] = {k: str(v) for k, v in tags.items()}
        return self._update(**fields)

    def _update(self, **fields):
        if not self.name:
            raise UserErrorException("register the dataset before updating it")
        d = self._workspace._client.request("PATCH", _datasets(self._workspace, self.name, self.version),
                                            body=fields)
        self._doc = from_server(d)
        return self

    def unregister_all_versions(self):
        """Deletes every version of the dataset from the workspace (its files stay)."""
        if not self.name:
            raise UserErrorException("the dataset is not registered")
        self._workspace._client.request("DELETE", _datasets(self._workspace, self.name))

    # runs

    def as_named_input(self, name):
        from .dataset_consumption_config import DatasetConsumptionConfig
        return DatasetConsumptionConfig(name, self)

    def as_mount(self, path_on_compute=None):
        return self.as_named_input(self.name or "input").as_mount(path_on_compute)

    def as_download(self, path_on_compute=None):
        return self.as_named_input(self.name or "input").as_download(path_on_compute)

    def _run_source(self):
        """The one datastore folder or file a run downloads for this dataset."""
        paths = self._doc.get("paths") or []
        stores = {p["datastore"] for p in paths}
        if len(stores) != 1:
            raise unsupported("a dataset over several datastores as a run input",
                              "register one dataset per datastore and give each as its own input")
        bases = [_split(p["path"])[0] for p in paths]
        if len(bases) == 1:
            return stores.pop(), bases[0]
        common = os.path.commonpath(["/" + b for b in bases]).strip("/")
        return stores.pop(), common

    def _run_globs(self, root):
        """The dataset's globs relative to root (the folder a run downloads), or None when it
        takes every file there."""
        out = []
        for p in self._doc.get("paths") or []:
            base, glob = _split(p["path"])
            rel = (glob or (base + "/**" if base else "**"))
            out.append(rel[len(root):].lstrip("/") if root else rel)
        return None if all(g == "**" for g in out) else out

    # files

    def _datastore(self, name):
        from ..core.datastore import Datastore
        if self._workspace is None:
            raise UserErrorException("this dataset has no workspace")
        return Datastore.get(self._workspace, name)

    def _remote_files(self):
        """[(datastore, path on it, path relative to the dataset's root)], the globs applied."""
        out = []
        for p in self._doc.get("paths") or []:
            base, glob = _split(p["path"])
            ds = self._datastore(p["datastore"])
            try:
                listed = [f["path"] for f in ds.list_files(base + "/" if base else None) if not f.get("dir")]
            except AtelierError as e:
                raise DatasetNotFoundError("dataset path %s:%s cannot be listed: %s" % (p["datastore"], p["path"], e),
                                           code="not_found", status=404) from None
            if not listed:
                one = [f["path"] for f in ds.list_files(base) if f["path"] == base] if base else []
                listed = one
            if glob:
                listed = [f for f in listed if fnmatch.fnmatchcase(f, glob) or
                          (glob.endswith("/**") and f.startswith(glob[:-3] + "/"))]
            if not listed:
                raise DatasetNotFoundError("dataset path %s:%s matches no file (are the files gone?)" % (
                    p["datastore"], p["path"]), code="not_found", status=404)
            root = base if len(listed) > 1 or listed[0] != base else os.path.dirname(base)
            for f in listed:
                rel = f[len(root):].lstrip("/") if root else f
                out.append((ds, f, rel))
        return out

    def _local_files(self):
        """In a run: the files of the downloaded data reference, relative paths as keys."""
        root = self._local
        if os.path.isfile(root):
            return [(root, os.path.basename(root))]
        out = []
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for f in sorted(files):
                full = os.path.join(d, f)
                out.append((full, os.path.relpath(full, root).replace(os.sep, "/")))
        globs = [_split(p["path"]) for p in self._doc.get("paths") or []]
        if len(globs) == 1 and globs[0][1]:
            base, glob = globs[0]
            g = glob[len(base):].lstrip("/") if base else glob
            out = [(f, r) for f, r in out if fnmatch.fnmatchcase(r, g) or (g.endswith("**") and r.startswith(g[:-2]))]
        return out

    def _fetch(self, target):
        """Downloads the dataset's files under target; returns their local paths."""
        if self._local is not None:
            out = []
            for f, rel in self._local_files():
                dest = os.path.join(target, *rel.split("/"))
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copyfile(f, dest)
                out.append(dest)
            return out
        out = []
        for ds, remote, rel in self._remote_files():
            dest = os.path.join(target, *rel.split("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            _download_one(ds, remote, dest)
            out.append(dest)
        return out


def _download_one(ds, remote, dest):
    from atelier._http import quote_path
    resp = ds._client.stream("GET", ds._path("files", quote_path(remote)))
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dest)), prefix=".azureml-")
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(resp, f, 1 << 20)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        resp.close()
        resp._atelier_conn.close()
