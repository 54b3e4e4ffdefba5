"""The model registry: named models with numbered versions, modelled on Azure ML's Model class.

    from atelier import Model
    model = Model.register(ws, model_path="outputs/model", model_name="diabetes", tags={"stage": "dev"})
    model = Model(ws, "diabetes")            # the latest version; "diabetes:3" or "diabetes@prod" work too
    path = model.download(target_dir="/tmp/m")

A version's files are stored by content: registering from a run's outputs refers to the run's
stored files, and registering local files uploads them in one pass (the server hashes them as it
stores them).
"""

import datetime
import hashlib
import os
import re
import tarfile
import tempfile
import threading

from ._http import AtelierError, quote_path, quote_seg

__all__ = ["Model"]

_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._ -]{0,253}[A-Za-z0-9._-])?$")
_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:?\d\d)?$")
_PAGE_SIZE = 1000
_WORKERS = 8
_STREAMS = 4  # tar streams of one local upload, as the CLI sends (cmd/atelier/model.go uploadStreams)


def _check_model_name(name):
    if not isinstance(name, str):
        raise TypeError("model name must be a str, not %s" % type(name).__name__)
    if not _NAME.match(name):
        raise AtelierError("invalid model name %r: use 1-255 letters, digits, '.', '_', '-' or spaces, starting "
                           "with a letter or digit and not ending with a space" % name, code="invalid", status=400)


def _parse_time(s):
    """An RFC 3339 time as the server writes it (up to nanoseconds) as an aware datetime."""
    if not s:
        return None
    m = _TIME.match(s)
    if not m:
        return None
    y, mo, d, h, mi, sec, frac, tz = m.groups()
    us = int((frac or "0")[:6].ljust(6, "0"))
    if not tz or tz in ("Z", "z"):
        tzinfo = datetime.timezone.utc
    else:
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        tzinfo = datetime.timezone(sign * datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        return datetime.datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec), us, tzinfo=tzinfo)
    except ValueError:
        return None


def _str_map(kind, d):
    if d is None:
        return None
    if not isinstance(d, dict):
        raise TypeError("%s must be a dict, not %s" % (kind, type(d).__name__))
    return {str(k): "" if v is None else str(v) for k, v in d.items()}


def _key_filters(kind, filters):
    """Tag or property filters as the server takes them: "key" or "key=value". Accepts a string,
    a dict (None values mean "the key is set"), or a list of "key", "key=value", [key, value]
    and (key, value)."""
    if filters is None:
        return []
    if isinstance(filters, str):
        return [filters]
    if isinstance(filters, dict):
        return [str(k) if v is None else "%s=%s" % (k, v) for k, v in filters.items()]
    out = []
    for f in filters:
        if isinstance(f, str):
            out.append(f)
        elif isinstance(f, (list, tuple)) and len(f) == 2:
            out.append(str(f[0]) if f[1] is None else "%s=%s" % (f[0], f[1]))
        elif isinstance(f, (list, tuple)) and len(f) == 1:
            out.append(str(f[0]))
        else:
            raise ValueError("invalid %s filter %r: use \"key\", \"key=value\" or [key, value]" % (kind, f))
    return out


def _dataset_names(datasets):
    """Data set names: strings, objects with a name, or Azure's (scenario, dataset) pairs."""
    out = []
    for d in datasets or []:
        if isinstance(d, (list, tuple)) and len(d) == 2:
            d = d[1]
        if not isinstance(d, str):
            d = getattr(d, "name", None) or str(d)
        out.append(d)
    return out


def _scan(model_path, child_paths=None):
    """[(model path, local file)] of a file or of every regular file under a folder (nothing is
    ignored: a model folder is taken whole), named from the path's last element."""
    root = os.path.abspath(os.fspath(model_path))
    if not os.path.exists(root):
        raise AtelierError("model path %s does not exist" % os.fspath(model_path), code="not_found", status=404)
    base = os.path.basename(root)
    if not os.path.isdir(root):
        if not os.path.isfile(root):
            raise AtelierError("model path %s is not a regular file or a folder" % os.fspath(model_path),
                               code="invalid", status=400)
        return [(base, root)]
    out = []
    if child_paths is not None:
        for c in child_paths:
            full = os.path.abspath(os.path.join(root, os.fspath(c)))
            if os.path.commonpath([root, full]) != root:
                raise AtelierError("child path %s is outside %s" % (c, model_path), code="invalid", status=400)
            if os.path.isdir(full):
                out.extend((base + "/" + os.path.relpath(p, root).replace(os.sep, "/"), p) for _, p in _walk(full))
            elif os.path.isfile(full):
                out.append((base + "/" + os.path.relpath(full, root).replace(os.sep, "/"), full))
            else:
                raise AtelierError("child path %s does not exist in %s" % (c, model_path), code="not_found", status=404)
        out = sorted(dict(out).items())
    else:
        out = [(base + "/" + rel, p) for rel, p in _walk(root)]
    if not out:
        raise AtelierError("model folder %s holds no files" % os.fspath(model_path), code="invalid", status=400)
    return out


def _walk(root):
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for fn in sorted(files):
            p = os.path.join(d, fn)
            if os.path.isfile(p):  # follows links to files; skips sockets, pipes and broken links
                yield os.path.relpath(p, root).replace(os.sep, "/"), p


def _map(client, fn, items):
    """fn over items, in parallel when there are several; the results in order, or the first
    error raised. Each worker closes its keep-alive connection to the server when done."""
    items = list(items)
    if len(items) <= 1:
        return [fn(x) for x in items]
    results = [None] * len(items)
    errors = []
    todo = iter(range(len(items)))
    lock = threading.Lock()

    def work():
        try:
            while True:
                with lock:
                    if errors:
                        return
                    i = next(todo, None)
                if i is None:
                    return
                try:
                    results[i] = fn(items[i])
                except BaseException as e:  # noqa: B036 - handed to the caller
                    with lock:
                        errors.append(e)
                    return
        finally:
            client._drop_conn()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(_WORKERS, len(items)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def _upload_files(workspace, model_path, child_paths=None):
    """Uploads the local files in one pass and returns the manifest: _STREAMS tar streams that
    take files from one queue, largest first; the server hashes each file as it stores it."""
    files = _scan(model_path, child_paths)
    c = workspace._client
    path = "/api/v1/workspaces/%s/models/uploads" % quote_seg(workspace.name)
    queue = iter(sorted(files, key=lambda f: -os.path.getsize(f[1])))
    lock = threading.Lock()

    def take():
        with lock:
            return next(queue, None)

    def send(_):
        first = take()
        if first is None:  # the other streams emptied the queue
            return []
        d = c.request("POST", path, body=_tar_stream(first, take), headers={"Content-Type": "application/x-tar"})
        return (d or {}).get("files") or []

    stored = {}
    for part in _map(c, send, range(min(_STREAMS, len(files)))):
        stored.update((f["path"], f) for f in part)
    return [{"path": name, "digest": stored[name]["digest"], "size": stored[name]["size"]} for name, _ in files]


def _tar_stream(first, take):
    """Yields a tar stream of first and of the files take() gives until None: each file read
    exactly to the size it had when opened, and checked unchanged once read."""
    f = first
    while f is not None:
        name, local = f
        with open(local, "rb") as fh:
            st = os.fstat(fh.fileno())
            info = tarfile.TarInfo(name)
            info.size, info.mode = st.st_size, 0o644
            yield info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")
            left = st.st_size
            while left:
                blk = fh.read(min(1 << 20, left))
                if not blk:
                    break
                left -= len(blk)
                yield blk
            after = os.fstat(fh.fileno())
            if left or (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                raise AtelierError("%s changed while it was uploaded: register it once it is written" % local,
                                   code="invalid", status=400)
        if st.st_size % tarfile.BLOCKSIZE:
            yield tarfile.NUL * (tarfile.BLOCKSIZE - st.st_size % tarfile.BLOCKSIZE)
        f = take()
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)


def _parse_ref(name, version=None):
    """(name, selector) from a name or "name:3", "name:latest", "name@alias" and a version (a
    number, "latest" or an alias)."""
    if not isinstance(name, str) or not name:
        raise TypeError("a model needs a name (a str)")
    sel = None
    if "@" in name:
        name, sel = name.split("@", 1)
        if not sel:
            raise AtelierError("invalid model reference %r: give an alias after '@'" % (name + "@"),
                               code="invalid", status=400)
    elif ":" in name:
        name, sel = name.split(":", 1)
    if version is not None:
        if sel is not None and str(version) != sel:
            raise ValueError("model %s: the version is given twice (%s and %s)" % (name, sel, version))
        sel = version
    if sel is None or sel == "":
        sel = "latest"
    if isinstance(sel, bool):
        raise TypeError("model version must be an int or a str")
    if isinstance(sel, int):
        if sel < 1:
            raise AtelierError("invalid model version %d: want a positive integer" % sel, code="invalid", status=400)
        sel = str(sel)
    return name, str(sel)


class Model:
    """A registered model version.

    ``Model(workspace, name)`` is the latest version of name; ``version`` (or ``name:3``,
    ``name@alias``, ``id="name:3"``) picks another. With tags, properties or run_id, it is the
    newest version of name that matches them."""

    def __init__(self, workspace, name=None, id=None, tags=None, properties=None, version=None, run_id=None,
                 _details=None, **kwargs):
        self.workspace = workspace
        self._client = workspace._client
        if _details is not None:
            self._details = _details
            return
        if id is not None:
            if name is not None and name != id.split(":")[0].split("@")[0]:
                raise ValueError("Model: name %r and id %r disagree" % (name, id))
            name = id
        if not name:
            raise ValueError("Model needs a name or an id")
        name, sel = _parse_ref(name, version)
        if tags is not None or properties is not None or run_id is not None:
            if sel != "latest":
                raise ValueError("Model: give a version or filters (tags, properties, run_id), not both")
            found = Model.list(workspace, name=name, tags=tags, properties=properties, run_id=run_id,
                               latest=True)
            if not found:
                raise AtelierError("no version of model %s matches the filters" % name, code="not_found", status=404)
            self._details = found[0]._version_details()
            return
        self._details = self._client.request("GET", _versions_path(workspace, name, sel))

    # attributes

    @property
    def name(self):
        return self._details.get("name")

    @property
    def version(self):
        return self._details.get("version")

    @property
    def id(self):
        """name:version, Azure's model id."""
        return "%s:%s" % (self.name, self.version)

    @property
    def description(self):
        return self._details.get("description") or ""

    @property
    def tags(self):
        return dict(self._details.get("tags") or {})

    @property
    def properties(self):
        return dict(self._details.get("properties") or {})

    @property
    def framework(self):
        return self._details.get("framework") or ""

    model_framework = framework

    @property
    def framework_version(self):
        return self._details.get("framework_version") or ""

    model_framework_version = framework_version

    @property
    def run_id(self):
        return self._details.get("run_id") or None

    @property
    def experiment(self):
        """The name of the experiment of the run the model came from (None without a run)."""
        return self._details.get("experiment") or None

    experiment_name = experiment

    @property
    def run(self):
        """The run the model was registered from, or None."""
        if not self.run_id:
            return None
        return self.workspace.get_run(self.run_id)

    @property
    def path(self):
        """Where the files were registered from: a path of the run, or a local base name."""
        return self._details.get("path") or ""

    @property
    def datasets(self):
        return list(self._details.get("datasets") or [])

    @property
    def aliases(self):
        return list(self._details.get("aliases") or [])

    @property
    def size(self):
        return self._details.get("size", 0)

    @property
    def created_by(self):
        return self._details.get("created_by") or ""

    @property
    def created_time(self):
        return _parse_time(self._details.get("created_at"))

    @property
    def updated_time(self):
        return _parse_time(self._details.get("updated_at"))

    @property
    def files(self):
        """The version's files: dicts of path, digest and size."""
        return [dict(f) for f in self._version_details().get("files") or []]

    def __repr__(self):
        return "Model(workspace=%r, name=%s, id=%s, version=%s, tags=%s, properties=%s)" % (
            self.workspace, self.name, self.id, self.version, self.tags, self.properties)

    def __eq__(self, other):
        return isinstance(other, Model) and (self.workspace, self.id) == (other.workspace, other.id)

    def __hash__(self):
        return hash((self.workspace, self.id))

    def _path(self, *tail):
        return _versions_path(self.workspace, self.name, self.version) + "".join("/" + t for t in tail)

    def _version_details(self):
        if "files" not in self._details:  # lists leave the files out
            self._details = self._client.request("GET", self._path())
        return self._details

    def get_details(self):
        """The version's JSON as the server has it now (refreshed)."""
        self._details = self._client.request("GET", self._path())
        return dict(self._details)

    def serialize(self):
        return dict(self._version_details())

    # registration

    @staticmethod
    def register(workspace, model_path, model_name, tags=None, properties=None, description=None, datasets=None,
                 model_framework=None, model_framework_version=None, child_paths=None, run_id=None, **kwargs):
        """Registers a new version of model_name from a local file or folder: the files are
        hashed (sha256), those the server does not hold yet are uploaded, and the version is
        registered with the manifest. Files are named from model_path's last element (a folder
        ./out/model gives model/...). child_paths limits a folder to those relative paths;
        run_id records a run as the model's lineage. Returns the new Model."""
        _check_model_name(model_name)
        if model_path is None:
            raise TypeError("Model.register needs a model_path")
        body = {"name": model_name, "files": _upload_files(workspace, model_path, child_paths)}
        _metadata(body, tags, properties, description, datasets, model_framework, model_framework_version)
        if run_id:
            body["run_id"] = run_id
        d = workspace._client.request("POST", "/api/v1/workspaces/%s/models" % quote_seg(workspace.name), body=body)
        return Model(workspace, _details=d)

    @staticmethod
    def _register_run_files(run, model_name, model_path, tags=None, properties=None, description=None,
                            datasets=None, model_framework=None, model_framework_version=None):
        _check_model_name(model_name)
        if not model_path or not isinstance(model_path, str):
            raise TypeError("register_model needs a model_path in the run, e.g. \"outputs/model.pkl\"")
        p = model_path.replace("\\", "/").strip("/")
        while p.startswith("./"):
            p = p[2:]
        body = {"name": model_name, "run_id": run.id, "path": p}
        _metadata(body, tags, properties, description, datasets, model_framework, model_framework_version)
        ws = run.experiment.workspace
        d = ws._client.request("POST", "/api/v1/workspaces/%s/models" % quote_seg(ws.name), body=body)
        return Model(ws, _details=d)

    # queries

    @staticmethod
    def list(workspace, name=None, tags=None, properties=None, run_id=None, latest=False, name_contains=None,
             model_framework=None, order_by=None, **kwargs):
        """Model versions matching every filter, newest first. tags and properties are lists of
        "key" (set) or "key=value" (or [key, value] pairs, or a dict); with latest, only the
        newest matching version of each model is kept."""
        q = {"limit": _PAGE_SIZE}
        if name:
            _check_model_name(name)
            q["name"] = name
        if name_contains:
            q["name_contains"] = name_contains
        if run_id:
            q["run_id"] = run_id
        if order_by:
            q["order_by"] = order_by
        q["tags"] = _key_filters("tag", tags)
        q["properties"] = _key_filters("property", properties)
        path = "/api/v1/workspaces/%s/models/search" % quote_seg(workspace.name)
        out = []
        while True:
            page = workspace._client.request("POST", path, body=q) or {}
            for d in page.get("versions") or []:
                if model_framework is None or (d.get("framework") or "").lower() == model_framework.lower():
                    out.append(Model(workspace, _details=d))
            token = page.get("next_page_token")
            if not token:
                break
            q["page_token"] = token
        if latest:
            best = {}
            for m in out:
                if m.name not in best or m.version > best[m.name].version:
                    best[m.name] = m
            out = [m for m in out if best[m.name] is m]
        return out

    # changes

    def _patch(self, body):
        self._details = self._client.request("PATCH", self._path(), body=body)
        return self

    def add_tags(self, tags):
        """Sets tags (a dict) on this version."""
        return self._patch({"tags": _str_map("tags", tags)})

    def remove_tags(self, tags):
        """Removes tags (a key or a list of keys); keys not set are ignored."""
        if isinstance(tags, str):
            tags = [tags]
        return self._patch({"delete_tags": [str(k) for k in tags]})

    def add_properties(self, properties):
        """Adds properties (a dict). Properties are immutable: changing one raises AtelierError
        (conflict, 409)."""
        return self._patch({"properties": _str_map("properties", properties)})

    def update(self, tags=None, description=None, **kwargs):
        """Replaces the tags (when given: tags not in the dict are removed) and the description."""
        body = {}
        if description is not None:
            body["description"] = str(description)
        if tags is not None:
            tags = _str_map("tags", tags)
            body["tags"] = tags
            gone = [k for k in self.tags if k not in tags]
            if gone:
                body["delete_tags"] = gone
        return self._patch(body) if body else self

    def update_tags_properties(self, add_tags=None, remove_tags=None, add_properties=None, remove_properties=None):
        """Azure's combined update. Properties cannot be removed."""
        if remove_properties:
            raise AtelierError("model properties are immutable: they cannot be removed", code="invalid", status=400)
        body = {}
        if add_tags:
            body["tags"] = _str_map("tags", add_tags)
        if remove_tags:
            body["delete_tags"] = [remove_tags] if isinstance(remove_tags, str) else [str(k) for k in remove_tags]
        if add_properties:
            body["properties"] = _str_map("properties", add_properties)
        return self._patch(body) if body else self

    def set_alias(self, alias):
        """Points alias (e.g. "prod") at this version, moving it from another version."""
        self._details = self._client.request(
            "PUT", "/api/v1/workspaces/%s/models/%s/aliases/%s" % (
                quote_seg(self.workspace.name), quote_seg(self.name), quote_seg(alias)),
            body={"version": self.version})
        return self

    def remove_alias(self, alias):
        """Removes alias from the model (whichever version it points at)."""
        self._client.request("DELETE", "/api/v1/workspaces/%s/models/%s/aliases/%s" % (
            quote_seg(self.workspace.name), quote_seg(self.name), quote_seg(alias)))
        if alias in (self._details.get("aliases") or []):
            self._details["aliases"] = [a for a in self._details["aliases"] if a != alias]

    @staticmethod
    def package(workspace, models, inference_config=None, generate_dockerfile=False, image_name=None,
                image_label=None):
        """Builds models and inference_config (an InferenceConfig) into an image, as Azure's
        Model.package: returns the Image (Queued), whose wait_for_creation follows the build and
        whose image_location names it. image_name defaults to the first model's name + "-package"."""
        from .image import Image

        if generate_dockerfile:
            raise ValueError("generate_dockerfile is not supported: atelier builds the image itself, without Docker")
        if inference_config is None:
            raise ValueError("Model.package needs an inference_config (InferenceConfig(entry_script, ...))")
        models = list(models or [])
        if image_name is None:
            if not models:
                raise ValueError("Model.package needs an image_name when it packages no model")
            first = getattr(models[0], "name", None) or str(models[0]).split(":")[0].split("@")[0]
            image_name = re.sub(r"[^a-z0-9]+", "-", first.lower()).strip("-") + "-package"
        tags = dict(inference_config.tags)
        if image_label:
            tags["label"] = str(image_label)
        cfg = inference_config
        if tags != cfg.tags:
            import copy

            cfg = copy.copy(cfg)
            cfg.tags = tags
        return Image.create(workspace, image_name, models, cfg)

    @staticmethod
    def deploy(workspace, name, models, inference_config=None, deployment_config=None, deployment_target=None,
               overwrite=False, show_output=False):
        """Deploys models as web service name, as Azure's Model.deploy: builds an image of them
        with inference_config (named <name>-image; this call waits for the build), then deploys
        it with deployment_config (LocalWebservice/AciWebservice/AksWebservice.deploy_configuration).
        Returns the Webservice, Transitioning: wait_for_deployment() waits until it is Healthy."""
        from .image import Image
        from .webservice import Webservice

        if inference_config is None:
            inference_config = _no_code_config(models)
        image = Image.create(workspace, re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + "-image", models,
                             inference_config)
        image.wait_for_creation(show_output=show_output)
        service = Webservice.deploy_from_image(workspace, name, image, deployment_config, deployment_target, overwrite)
        service._deployed = (list(models or []), inference_config)  # for reload() and update(models=...)
        return service

    @staticmethod
    def profile(workspace, profile_name, models, inference_config, input_dataset=None, cpu=None, memory_in_gb=None,
                description=None, input_data=None):
        """Azure's Model.profile: deploys models with inference_config as a temporary web service
        (cpu cores and memory_in_gb requested, 3.5 and 15 by default, as Azure's), sends each row
        of input_dataset (a one-column TabularDataset, or a list of request bodies) to it as a
        scoring request, measures the latency and the replica's CPU and memory, deletes the
        service and its image, and returns the ModelProfile (Running: wait_for_completion()
        waits; get_details() has Azure's keys). See webservice.ModelProfile."""
        from .webservice import ModelProfile

        return ModelProfile._start(workspace, profile_name, models, inference_config,
                                   input_dataset if input_dataset is not None else input_data, cpu, memory_in_gb,
                                   description)

    def delete(self):
        """Deletes this version. While an image or a service uses it, AtelierError (conflict,
        409) says which; its details["references"] lists them."""
        self._client.request("DELETE", self._path())

    # files

    def download(self, target_dir=".", exist_ok=False, exists_ok=None, as_zip=False):
        """Downloads the version's files under target_dir (streamed to disk, each checked against
        its sha256) and returns the path of the model: the file or folder named like the
        registered one. With as_zip, writes target_dir/NAME-VERSION.zip instead and returns its
        path. An existing file raises FileExistsError unless exist_ok."""
        if exists_ok is not None:
            exist_ok = exists_ok
        target_dir = os.fspath(target_dir)
        os.makedirs(target_dir, exist_ok=True)
        if as_zip:
            dest = os.path.join(target_dir, "%s-%s.zip" % (self.name, self.version))
            if os.path.exists(dest) and not exist_ok:
                raise FileExistsError("%s already exists (pass exist_ok=True to overwrite)" % dest)
            self._download(self._path("zip"), dest)
            return dest
        files = self.files
        dests = []
        for f in files:
            parts = f["path"].split("/")
            if any(p in ("", ".", "..") for p in parts):
                raise AtelierError("model file %r has an unsafe path" % f["path"], code="invalid")
            dest = os.path.join(target_dir, *parts)
            if os.path.exists(dest) and not exist_ok:
                raise FileExistsError("%s already exists (pass exist_ok=True to overwrite)" % dest)
            dests.append(dest)
        for f, dest in zip(files, dests):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
        _map(self._client, lambda fd: self._download(self._path("files", quote_path(fd[0]["path"])), fd[1], fd[0]["digest"]),
             zip(files, dests))
        tops = {f["path"].split("/")[0] for f in files}
        if len(tops) == 1:
            return os.path.join(target_dir, tops.pop())
        return target_dir

    def _download(self, path, dest, digest=None):
        resp = self._client.stream("GET", path)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dest)), prefix=".atelier-")
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                while True:
                    blk = resp.read(1 << 20)
                    if not blk:
                        break
                    h.update(blk)
                    out.write(blk)
            if digest is not None and h.hexdigest() != digest:
                raise AtelierError("downloading %s: the content does not match its digest" % dest, code="internal")
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


def _versions_path(workspace, name, sel):
    return "/api/v1/workspaces/%s/models/%s/versions/%s" % (quote_seg(workspace.name), quote_seg(name), quote_seg(sel))


def _metadata(body, tags, properties, description, datasets, framework, framework_version):
    if tags:
        body["tags"] = _str_map("tags", tags)
    if properties:
        body["properties"] = _str_map("properties", properties)
    if description:
        body["description"] = str(description)
    if datasets:
        body["datasets"] = _dataset_names(datasets)
    if framework:
        body["framework"] = str(framework)
    if framework_version:
        body["framework_version"] = str(framework_version)


_SKLEARN = ("scikitlearn", "scikit-learn", "sklearn")

# The scoring script of a scikit-learn model deployed without one, answering as Azure's no-code
# deployment does: {"data": [[...], ...], "method": "predict"} (or predict_proba...) gives the list.
_NO_CODE_SCORE = """import json
import os

import joblib
import numpy


def init():
    global model
    root = os.environ["AZUREML_MODEL_DIR"]
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
                   if f.endswith((".pkl", ".pickle", ".joblib", ".sav")))
    if not files:
        raise RuntimeError("no .pkl, .pickle, .joblib or .sav file in the model's folder " + root)
    model = joblib.load(files[0])


def run(raw_data):
    body = json.loads(raw_data)
    method = body.get("method", "predict")
    if method not in ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform"):
        raise ValueError("method %r: predict, predict_proba, predict_log_proba, decision_function or transform"
                         % (method,))
    return getattr(model, method)(numpy.array(body["data"])).tolist()
"""


def _no_code_config(models):
    """The InferenceConfig of a no-code deployment, as Azure's: one scikit-learn model
    (registered with model_framework ScikitLearn) gets a generated score.py and an environment
    with scikit-learn (its model_framework_version), joblib and numpy."""
    from .image import InferenceConfig
    from .submit import Environment

    models = list(models or [])
    fws = [str(getattr(m, "framework", "") or "").lower() for m in models]
    if len(models) != 1 or fws[0] not in _SKLEARN:
        raise ValueError("Model.deploy without an inference_config deploys one scikit-learn model (registered with "
                         "model_framework=Model.Framework.SCIKITLEARN) with a generated score.py; for other models "
                         "pass InferenceConfig(entry_script, ...) (MLflow models: mlflow models serve)")
    version = getattr(models[0], "framework_version", "") or ""
    src = tempfile.mkdtemp(prefix="atelier-no-code-")
    with open(os.path.join(src, "score.py"), "w", encoding="utf-8") as f:
        f.write(_NO_CODE_SCORE)
    req = os.path.join(src, "requirements.txt")
    with open(req, "w", encoding="utf-8") as f:
        f.write("scikit-learn%s\njoblib\nnumpy\n" % ("==" + version if re.match(r"^[0-9][0-9.]*$", version) else ""))
    return InferenceConfig(entry_script="score.py", source_directory=src,
                           environment=Environment(name="no-code-scikit-learn", requirements=req))
