"""Images: registered models and a scoring script built as OCI images, modelled on Azure ML v1's
Image and ContainerImage classes, so deployment scripts port with an import change::

    from atelier import ContainerImage, Image, Model
    config = ContainerImage.image_configuration(execution_script="serve/score.py", runtime="python",
                                                requirements_file="serve/requirements.txt")
    image = Image.create(ws, "diabetes-svc", models=[Model(ws, "diabetes")], image_config=config)
    image.wait_for_creation(show_output=True)
    print(image.image_location)            # 127.0.0.1:8600/default/diabetes-svc:1

The server builds the image (no Docker needed) into the workspace image registry it serves under
/v2/: pull it with ``podman pull --tls-verify=false <image_location>`` after
``podman login <host> -u <user> -p <token>``. The source directory (the directory of the execution
script, or ``source_directory``) is uploaded as a snapshot, as a submitted run's is.

``InferenceConfig(entry_script, source_directory, environment)`` is accepted wherever an image
configuration is, and ``Model.package(ws, models, inference_config, image_name=...)`` builds one.
"""

import os
import re
import sys
import time
import urllib.parse

from ._http import ActivityFailedError, AtelierError, quote_seg
from .model import _parse_time

__all__ = ["ContainerImage", "ContainerImageConfig", "Image", "InferenceConfig", "ImageBuildError"]

_NAME = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*$")
_ENDED = ("Succeeded", "Failed")
_URL_FILE = "server-url"


class ImageBuildError(ActivityFailedError):
    """An image waited for ended Failed; ``details`` is the image's details dict (its "error"
    says why; ``Image.get_logs()`` has the build log)."""

    def __init__(self, message, details=None):
        super().__init__(message, details)
        self.code = "build_failed"


class ContainerImageConfig:
    """What an image is built from besides its models: the scoring script (with init() and run())
    in its source directory, and its pip requirements. Make one with
    ``ContainerImage.image_configuration``."""

    def __init__(self, execution_script, runtime="python", conda_file=None, dependencies=None, description=None,
                 tags=None, base_image=None, source_directory=None, requirements_file=None):
        if not execution_script:
            raise ValueError("an image configuration needs an execution_script (the scoring script, with init() "
                             "and run())")
        if runtime is not None and str(runtime).lower() != "python":
            raise ValueError("runtime %r is not supported: images run Python scoring scripts (runtime=\"python\")"
                             % (runtime,))
        self.execution_script = os.fspath(execution_script)
        self.runtime = "python"
        self.conda_file = os.fspath(conda_file) if conda_file is not None else None
        self.requirements_file = os.fspath(requirements_file) if requirements_file is not None else None
        self.dependencies = [os.fspath(d) for d in (dependencies or [])]
        self.description = description
        self.tags = dict(tags or {})
        self.base_image = base_image
        self.source_directory = os.fspath(source_directory) if source_directory is not None else None

    def __repr__(self):
        return "ContainerImageConfig(execution_script=%r, source_directory=%r, requirements_file=%r)" % (
            self.execution_script, self.source_directory, self.requirements_file)

    def _resolve(self):
        """(source directory, entry script, requirements, conda, extra files): the files named as
        paths in the source directory. The entry script and the dependencies must lie in it; a
        requirements or conda file elsewhere is added to the snapshot under .atelier/, as a
        submitted run's is."""
        from .submit import EXTRA_DIR

        script = self.execution_script
        if self.source_directory is not None:
            src = os.path.abspath(self.source_directory)
        else:
            src = os.path.dirname(os.path.abspath(script))
            script = os.path.basename(script)
        if not os.path.isdir(src):
            raise AtelierError("source directory %s does not exist" % src, code="invalid", status=400)
        entry = _inside(src, script, "execution_script")
        if entry is None:
            raise AtelierError("execution script %s is not in the source directory %s" % (script, src),
                               code="invalid", status=400)
        for d in self.dependencies:
            if _inside(src, d, "dependency", any_kind=True) is None:
                raise AtelierError("dependency %s is not in the source directory %s: the image holds that directory "
                                   "only" % (d, src), code="invalid", status=400)
        extra = {}

        def dep_file(p, what):
            if p is None:
                return None
            rel = _inside(src, p, what)
            if rel is not None:
                return rel
            full = p if os.path.isabs(p) else os.path.abspath(p)
            if not os.path.isfile(full):
                raise AtelierError("%s %s does not exist" % (what, p), code="invalid", status=400)
            dest = EXTRA_DIR + "/" + os.path.basename(full)
            extra[dest] = full
            return dest

        return (src, entry, dep_file(self.requirements_file, "requirements file"),
                dep_file(self.conda_file, "conda file"), extra)


def _inside(src, p, what, any_kind=False):
    """p (relative to src, or a path from here) as a path in src, or None when it is not there."""
    p = os.fspath(p)
    ok = os.path.exists if any_kind else os.path.isfile
    cands = [p] if os.path.isabs(p) else [os.path.join(src, p), os.path.abspath(p)]
    for c in cands:
        c = os.path.abspath(c)
        if ok(c):
            rel = os.path.relpath(c, src)
            if rel != ".." and not rel.startswith(".." + os.sep):
                return rel.replace(os.sep, "/")
    return None


class ContainerImage:
    """Azure ML's ContainerImage: ``ContainerImage.image_configuration(...)`` makes the
    configuration ``Image.create`` takes."""

    @staticmethod
    def image_configuration(execution_script, runtime="python", conda_file=None, docker_file=None, schema_file=None,
                            dependencies=None, enable_gpu=None, tags=None, properties=None, description=None,
                            base_image=None, base_image_registry=None, cuda_version=None, source_directory=None,
                            requirements_file=None):
        """The configuration of an image: execution_script (score.py, with init() and run()) in the
        source directory (its directory, or source_directory), its pip requirements_file, tags,
        description and base_image (an image of the workspace registry, REPO:TAG; the server's
        Python base when None). docker_file, enable_gpu, cuda_version and a base_image_registry are
        not supported. conda_file is passed to the server, which installs its pip: section; its
        conda dependencies may only be python (the base's version), pip, setuptools and wheel."""
        for name, v in (("docker_file", docker_file), ("enable_gpu", enable_gpu), ("cuda_version", cuda_version),
                        ("base_image_registry", base_image_registry)):
            if v:
                raise ValueError("%s is not supported: atelier builds images without Docker, on a Python base "
                                 "image of the workspace registry" % name)
        deps = list(dependencies or [])
        if schema_file:
            deps.append(schema_file)
        return ContainerImageConfig(execution_script, runtime=runtime, conda_file=conda_file, dependencies=deps,
                                    description=description, tags=tags, base_image=base_image,
                                    source_directory=source_directory, requirements_file=requirements_file)


class InferenceConfig(ContainerImageConfig):
    """Azure ML's InferenceConfig: ``InferenceConfig(entry_script, source_directory=None,
    environment=None)``; the environment's pip requirements (``Environment.from_pip_requirements``)
    or conda file are installed in the image."""

    def __init__(self, entry_script=None, runtime=None, conda_file=None, extra_docker_file_steps=None,
                 source_directory=None, enable_gpu=None, description=None, base_image=None,
                 base_image_registry=None, cuda_version=None, environment=None, execution_script=None):
        entry_script = entry_script or execution_script
        if enable_gpu or cuda_version or extra_docker_file_steps or base_image_registry:
            raise ValueError("enable_gpu, cuda_version, extra_docker_file_steps and base_image_registry are not "
                             "supported: atelier builds images without Docker")
        requirements = getattr(environment, "requirements", None)
        conda_file = conda_file or getattr(environment, "conda", None)
        super().__init__(entry_script, runtime=runtime or "python", conda_file=conda_file, description=description,
                         base_image=base_image, source_directory=source_directory, requirements_file=requirements)
        self.entry_script = self.execution_script
        self.environment = environment


def _model_ref(m):
    if isinstance(m, str):
        return m
    name, version = getattr(m, "name", None), getattr(m, "version", None)
    if not name:
        raise TypeError("models are Model objects or references (\"name\", \"name:3\", \"name@alias\"), not %r" % (m,))
    return "%s:%s" % (name, version) if version else name


def _registry_host(workspace):
    """host:port of the server's registry, as podman names it."""
    server = workspace._client.server
    if server.startswith("unix://"):
        # The socket is in the data directory, beside the address the server listens on.
        try:
            with open(os.path.join(os.path.dirname(server[len("unix://"):]), _URL_FILE), encoding="utf-8") as f:
                server = f.read().strip()
        except OSError:
            return "HOST"
    return urllib.parse.urlsplit(server).netloc or "HOST"


class Image:
    """An image version: ``Image(workspace, name)`` is the latest version of name; ``version``
    (or ``name:3``, ``id="name:3"``) picks another."""

    def __init__(self, workspace, name=None, id=None, tags=None, properties=None, version=None, _details=None):
        self.workspace = workspace
        self._client = workspace._client
        if _details is not None:
            self._details = _details
            return
        if id is not None:
            name = id
        if not name:
            raise ValueError("Image needs a name or an id")
        if ":" in name:
            name, v = name.split(":", 1)
            if version is not None and str(version) != v:
                raise ValueError("image %s: the version is given twice (%s and %s)" % (name, v, version))
            version = v
        if tags:
            found = Image.list(workspace, image_name=name, tags=tags)
            if version is not None:
                found = [i for i in found if str(i.version) == str(version)]
            if not found:
                raise AtelierError("no version of image %s has the tags %r" % (name, tags), code="not_found",
                                   status=404)
            self._details = found[0]._details
            return
        ref = name if version is None else "%s:%s" % (name, version)
        self._details = self._client.request("GET", _images_path(workspace, ref))

    # creating

    @staticmethod
    def create(workspace, name, models, image_config, wait=False, show_output=False):
        """Uploads the configuration's source directory and queues the build of the next version
        of image name holding models (Model objects or references). Returns the Image (Queued);
        ``wait_for_creation`` follows its build. Bad input (no such model, the entry script not
        in the source directory, an invalid name) raises AtelierError (invalid, 400)."""
        from .submit import upload_snapshot

        if not isinstance(name, str) or not _NAME.match(name) or len(name) > 128:
            raise AtelierError("invalid image name %r: use lowercase letters and digits, separated by single '.', "
                               "'_' or '-' (an image name is a registry repository name)" % (name,),
                               code="invalid", status=400)
        if not isinstance(image_config, ContainerImageConfig):
            raise TypeError("image_config is a ContainerImage.image_configuration(...) or an InferenceConfig, "
                            "not %s" % type(image_config).__name__)
        models = [_model_ref(m) for m in (models or [])]
        src, entry, requirements, conda, extra = image_config._resolve()
        snap = upload_snapshot(workspace, src, extra_files=extra)
        body = {"name": name, "models": models, "entry_script": entry, "snapshot_id": snap["id"]}
        if requirements:
            body["requirements"] = requirements
        if conda:
            body["conda"] = conda
        if image_config.base_image:
            body["base"] = image_config.base_image
        if image_config.description:
            body["description"] = image_config.description
        if image_config.tags:
            body["tags"] = {str(k): str(v) for k, v in image_config.tags.items()}
        d = workspace._client.request("POST", "/api/v1/workspaces/%s/images" % quote_seg(workspace.name), body=body)
        img = Image(workspace, _details=d)
        if wait:
            img.wait_for_creation(show_output=show_output)
        return img

    @staticmethod
    def list(workspace, image_name=None, model_name=None, model_id=None, tags=None, properties=None):
        """The workspace's images, newest first: of one name, holding a model (model_name, or
        model_id "name:3" for its name), with tags (a dict, or a list of "key=value")."""
        if model_id and not model_name:
            model_name = str(model_id).split(":")[0]
        query = []
        if image_name:
            query.append(("name", image_name))
        if model_name:
            query.append(("model", model_name))
        if isinstance(tags, dict):
            tags = ["%s=%s" % (k, v) for k, v in tags.items()]
        for t in tags or []:
            if isinstance(t, (list, tuple)):
                t = "%s=%s" % tuple(t)
            query.append(("tag", t))
        path = "/api/v1/workspaces/%s/images" % quote_seg(workspace.name)
        if query:
            path += "?" + urllib.parse.urlencode(query)
        d = workspace._client.request("GET", path) or {}
        return [Image(workspace, _details=i) for i in d.get("images") or []]

    # following a build

    def update_creation_state(self):
        """Reads the image's status (creation_state) again."""
        self._details = self._client.request("GET", self._path())

    def get_logs(self, offset=0):
        """The build log (from byte offset)."""
        data = self._client.request("GET", self._path("log"), query={"offset": offset}, raw=True)
        return data.decode("utf-8", "replace")

    def wait_for_creation(self, show_output=False, timeout=None):
        """Waits until the build ends, printing its log as it is written with show_output. Raises
        ImageBuildError when it Failed, TimeoutError after timeout seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        offset, delay = 0, 0.1
        while True:
            self.update_creation_state()
            if show_output:
                text = self._client.request("GET", self._path("log"), query={"offset": offset}, raw=True)
                if text:
                    offset += len(text)
                    sys.stdout.write(text.decode("utf-8", "replace"))
                    sys.stdout.flush()
                    delay = 0.1
            if self.creation_state in _ENDED:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("image %s is still %s after %ss" % (self.id, self.creation_state, timeout))
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        if show_output:
            print("%s %s %s" % (self.id, self.creation_state, self.digest or self.error or ""))
        if self.creation_state != "Succeeded":
            raise ImageBuildError("image %s %s: %s" % (self.id, self.creation_state, self.error), self.get_details())
        return self

    # attributes

    @property
    def name(self):
        return self._details.get("name")

    @property
    def version(self):
        return self._details.get("version")

    @property
    def id(self):
        """name:version, as Azure's image id."""
        return "%s:%s" % (self.name, self.version)

    @property
    def creation_state(self):
        """Queued, Building, Succeeded or Failed."""
        return self._details.get("status")

    @property
    def error(self):
        return self._details.get("error") or None

    @property
    def digest(self):
        return self._details.get("digest") or None

    @property
    def size(self):
        return self._details.get("size") or 0

    @property
    def location(self):
        """<workspace>/<name>:<version>, the image's name in the registry without its host."""
        return self._details.get("location")

    @property
    def image_location(self):
        """host:port/<workspace>/<name>:<version>, what podman pull takes."""
        return "%s/%s" % (_registry_host(self.workspace), self.location)

    @property
    def description(self):
        return self._details.get("description") or ""

    @property
    def tags(self):
        return dict(self._details.get("tags") or {})

    @property
    def models(self):
        """The model versions the image holds, as "name:version"."""
        return ["%s:%s" % (m["name"], m["version"]) for m in self._details.get("models") or []]

    @property
    def entry_script(self):
        return self._details.get("entry_script")

    @property
    def created_time(self):
        return _parse_time(self._details.get("created_at"))

    @property
    def created_by(self):
        return self._details.get("created_by")

    def get_details(self):
        return dict(self._details)

    def serialize(self):
        return self.get_details()

    def __repr__(self):
        return "Image(workspace=%r, name=%r, version=%r, creation_state=%r)" % (
            self.workspace.name, self.name, self.version, self.creation_state)

    def __eq__(self, other):
        return isinstance(other, Image) and (self.workspace, self.id) == (other.workspace, other.id)

    def __hash__(self):
        return hash((self.workspace, self.id))

    # changing

    def delete(self):
        """Deletes this version: its record and its tag in the registry."""
        self._client.request("DELETE", self._path())

    def export(self, path, format="docker"):
        """Writes the built image to path as a docker-archive tarball (format "docker", what
        docker/podman load read) or an OCI image layout tarball ("oci"). Returns path."""
        if format not in ("docker", "oci"):
            raise ValueError("format %r: docker (a docker-archive) or oci (an OCI image layout)" % (format,))
        resp = self._client.stream("GET", self._path("export"), query={"format": format})
        tmp = "%s.part" % path
        try:
            with open(tmp, "wb") as f:
                while True:
                    blk = resp.read(1 << 20)
                    if not blk:
                        break
                    f.write(blk)
            os.replace(tmp, path)
        finally:
            resp.close()
            resp._atelier_conn.close()
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    def _path(self, *tail):
        return "/".join([_images_path(self.workspace, self.id)] + list(tail))


def _images_path(workspace, ref):
    return "/api/v1/workspaces/%s/images/%s" % (quote_seg(workspace.name), quote_seg(ref))
