"""azureml.core.environment: v1's Environment, mapped onto atelier's run environments.

What a run gets (atelier's environment: an interpreter, a pip requirements file or a conda file,
variables; built once per specification and cached by its hash, so a registered environment and
an identical inline one share the cache entry):

- ``python.user_managed_dependencies = True``: the interpreter ``python.interpreter_path`` (the
  server's Python by default) as it is.
- otherwise ``python.conda_dependencies``: its pip packages as a requirements file (azureml-*
  left out: the atelier SDK provides azureml; the conda packages python and pip are the
  interpreter's); other conda packages make it a conda file, which needs conda or mamba on the
  compute target, unless ATELIER_CONDA_AS_PIP=1 where the run is submitted: then they are
  installed with pip under the same names.
- ``from_pip_requirements`` passes its file as it is; ``docker.*`` is recorded (a podman or
  kubernetes target takes its image from the target's configuration).

``Environment.register/get/list`` are the server's registered, versioned environments
(/api/v1/workspaces/{ws}/environments), each identified by the hash of its definition. Names
starting with ``AzureML-`` are Azure's curated environments: get() gives a stand-in that runs
on the server's Python, and register() refuses them.
"""

import copy
import os
import tempfile
import warnings

from atelier._http import quote_seg

from .. import _registry
from .._compat import AtelierError, unsupported
from ..exceptions import UserErrorException
from .conda_dependencies import CondaDependencies

__all__ = ["Environment", "PythonSection", "DockerSection", "SparkSection", "RSection"]

_KIND = "environments"


def _envs(ws, name=None, version=None):
    p = "/api/v1/workspaces/%s/environments" % quote_seg(ws.name)
    if name is not None:
        p += "/" + quote_seg(name)
        if version is not None:
            p += "/versions/%s" % quote_seg(str(version))
    return p


def _legacy_hint(workspace, name):
    """A hint when an older SDK registered name client-side (in the default datastore)."""
    try:
        if _registry.get(workspace, _KIND, name) is not None:
            return (" (an older atelier SDK kept an environment %r in the default datastore under %s/%s/%s: "
                    "register it again to put it on the server)" % (name, _registry.ROOT, _KIND, name))
    except AtelierError:
        pass
    return ""
_RESERVED = "azureml-"
DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
DEFAULT_GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.1-cudnn8-ubuntu20.04"


class _Section:
    def _dict(self):
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


class PythonSection(_Section):
    def __init__(self, **kwargs):
        self.user_managed_dependencies = False
        self.interpreter_path = "python"
        self.conda_dependencies_file = None
        self.base_conda_environment = None
        self._conda_dependencies = None
        for k, v in kwargs.items():
            setattr(self, k, v)

    @property
    def conda_dependencies(self):
        if self._conda_dependencies is None:
            self._conda_dependencies = CondaDependencies()
        return self._conda_dependencies

    @conda_dependencies.setter
    def conda_dependencies(self, v):
        self._conda_dependencies = v


class _RegistrySection(_Section):
    def __init__(self):
        self.address = None
        self.username = None
        self.password = None


class DockerSection(_Section):
    def __init__(self, **kwargs):
        self.enabled = False
        self.base_image = DEFAULT_CPU_IMAGE
        self.base_dockerfile = None
        self.base_image_registry = _RegistrySection()
        self.platform = None
        self.shm_size = "2g"
        self.shared_volumes = True
        self.arguments = []
        self.gpu_support = False
        for k, v in kwargs.items():
            setattr(self, k, v)


class SparkSection(_Section):
    def __init__(self):
        self.repositories, self.packages, self.precache_packages = [], [], True


class RSection(_Section):
    pass


class Environment:
    """``Environment(name)``: Azure ML v1's environment definition."""

    def __init__(self, name, **kwargs):
        self.name = name
        self.version = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.spark = SparkSection()
        self.r = None
        self.environment_variables = {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}
        self.inferencing_stack_version = None
        self._pip_requirements = None  # (file name, content) of from_pip_requirements

    def __repr__(self):
        return "Environment(Name: %s,\nVersion: %s)" % (self.name, self.version)

    # constructors

    @staticmethod
    def from_pip_requirements(name, file_path, pip_version=None):
        env = Environment(name)
        with open(os.fspath(file_path), encoding="utf-8") as f:
            env._pip_requirements = (os.path.basename(os.fspath(file_path)), f.read())
        return env

    @staticmethod
    def from_conda_specification(name, file_path):
        env = Environment(name)
        env.python.conda_dependencies = CondaDependencies(file_path)
        return env

    @staticmethod
    def from_docker_image(name, image, container_registry=None, conda_specification=None, pip_requirements=None):
        env = Environment.from_conda_specification(name, conda_specification) if conda_specification else (
            Environment.from_pip_requirements(name, pip_requirements) if pip_requirements else Environment(name))
        env.docker.enabled = True
        env.docker.base_image = image
        if not (conda_specification or pip_requirements):
            env.python.user_managed_dependencies = True
        return env

    @staticmethod
    def from_dockerfile(name, dockerfile, conda_specification=None, pip_requirements=None):
        raise unsupported("Environment.from_dockerfile", "runs use an interpreter, a requirements file or a "
                          "conda file; images are built from a requirements file (atelier image create)")

    @staticmethod
    def from_existing_conda_environment(name, conda_environment_name):
        raise unsupported("Environment.from_existing_conda_environment",
                          "export it (conda env export > env.yml) and use Environment.from_conda_specification")

    def clone(self, new_name):
        env = copy.deepcopy(self)
        env.name = new_name
        env.version = None
        return env

    # the registry

    def register(self, workspace):
        """Registers this definition as the next version of its name on the server; returns it
        (versioned). An unchanged definition keeps its version (the server compares the hash
        of the definition, which leaves the name out)."""
        _check_name(self.name)
        if self.name.lower().startswith(_RESERVED):
            raise UserErrorException("environment name %r is reserved: names starting with AzureML- are Azure's "
                                     "curated environments; register it under another name" % self.name)
        spec = {k: v for k, v in self._to_doc().items() if k != "name"}
        try:
            d = workspace._client.request("POST", _envs(workspace), body={"name": self.name, "spec": spec})
        except AtelierError as e:
            if e.status == 400:
                raise UserErrorException(str(e), code="invalid", status=400) from None
            raise
        self.version = str(d["version"])
        self._spec_hash = d.get("spec_hash")
        return self

    @staticmethod
    def get(workspace, name, version=None, label=None):
        if name.lower().startswith(_RESERVED):
            return _curated(name)
        try:
            d = workspace._client.request("GET", _envs(workspace, name, "latest" if version is None else version))
        except AtelierError as e:
            if e.status not in (400, 404):
                raise
            raise UserErrorException("no environment %r%s in workspace %s (Environment.list shows the registered "
                                     "ones)%s" % (name, "" if version is None else " version %s" % version,
                                                  workspace.name, _legacy_hint(workspace, name)),
                                     code="not_found", status=404) from None
        return Environment._from_server(d)

    @staticmethod
    def list(workspace):
        """The registered environments by name, each at its latest version."""
        page = workspace._client.request("GET", _envs(workspace)) or {}
        return {d["name"]: Environment._from_server(d) for d in page.get("environments") or []}

    @staticmethod
    def _from_server(d):
        env = Environment._from_doc(dict(d.get("spec") or {}, name=d["name"], version=d["version"]))
        env._spec_hash = d.get("spec_hash")
        return env

    @staticmethod
    def load_from_directory(path):
        env = Environment(os.path.basename(os.path.abspath(os.fspath(path))))
        for fn in ("conda_dependencies.yml", "environment.yml"):
            p = os.path.join(os.fspath(path), fn)
            if os.path.isfile(p):
                env.python.conda_dependencies = CondaDependencies(p)
        return env

    def save_to_directory(self, path, overwrite=False):
        os.makedirs(os.fspath(path), exist_ok=True)
        p = os.path.join(os.fspath(path), "conda_dependencies.yml")
        if os.path.exists(p) and not overwrite:
            raise FileExistsError(p)
        self.python.conda_dependencies.save(p)

    def build(self, workspace, image_build_compute=None):
        raise unsupported("Environment.build", "atelier builds a run's environment on its compute target when the "
                          "run starts (and caches it); images: atelier.Image.create")

    def build_local(self, workspace, platform=None, **kwargs):
        raise unsupported("Environment.build_local", "the local compute target builds it on the first run")

    def get_image_details(self, workspace):
        raise unsupported("Environment.get_image_details", "runs use no image on the local target")

    # the mapping onto atelier

    def _to_doc(self):
        cd = self.python._conda_dependencies
        return {"name": self.name, "python": {"user_managed_dependencies": bool(self.python.user_managed_dependencies),
                                              "interpreter_path": self.python.interpreter_path,
                                              "conda": cd.serialize_to_string() if cd is not None else None},
                "pip_requirements": list(self._pip_requirements) if self._pip_requirements else None,
                "docker": {"enabled": bool(self.docker.enabled), "base_image": self.docker.base_image},
                "environment_variables": dict(self.environment_variables or {})}

    @staticmethod
    def _from_doc(doc):
        env = Environment(doc.get("name"))
        env.version = str(doc.get("version")) if doc.get("version") is not None else None
        py = doc.get("python") or {}
        env.python.user_managed_dependencies = bool(py.get("user_managed_dependencies"))
        env.python.interpreter_path = py.get("interpreter_path") or "python"
        if py.get("conda"):
            env.python.conda_dependencies = CondaDependencies._from_text(py["conda"])
        if doc.get("pip_requirements"):
            env._pip_requirements = tuple(doc["pip_requirements"])
        dk = doc.get("docker") or {}
        env.docker.enabled = bool(dk.get("enabled"))
        env.docker.base_image = dk.get("base_image")
        env.environment_variables = dict(doc.get("environment_variables") or {})
        return env

    @staticmethod
    def _from_atelier(envd):
        """A run's stored environment (atelier's) as a v1 Environment."""
        env = Environment(envd.get("name") or "atelier")
        env.environment_variables = dict(envd.get("variables") or {})
        if envd.get("python"):
            env.python.interpreter_path = envd["python"]
        env.python.user_managed_dependencies = not (envd.get("requirements") or envd.get("conda"))
        return env

    def _atelier(self, tmpdir=None):
        """What atelier's run configuration gets: {python, requirements, conda, variables}, the
        files written under tmpdir (they go into the run's snapshot)."""
        out = {"variables": {str(k): str(v) for k, v in (self.environment_variables or {}).items()
                             if (k, v) != ("EXAMPLE_ENV_VAR", "EXAMPLE_VALUE")}}
        interp = self.python.interpreter_path
        if interp and interp != "python":
            out["python"] = interp
        if self.python.user_managed_dependencies:
            return out
        tmpdir = tmpdir or tempfile.mkdtemp(prefix="azureml-env-")
        if self._pip_requirements:
            p = os.path.join(tmpdir, "requirements-%s.txt" % _safe(self.name))
            with open(p, "w", encoding="utf-8") as f:
                f.write(self._pip_requirements[1])
            out["requirements"] = p
            return out
        cd = self.python._conda_dependencies
        if cd is None:
            return out
        pip, conda = cd._atelier_spec()
        if conda and os.environ.get("ATELIER_CONDA_AS_PIP", "") not in ("", "0"):
            # Opted in: conda packages installed with pip under the same names (most of the
            # common ones, scikit-learn, numpy, pandas, match); a version "=x" becomes "==x".
            pip = pip + [_conda_to_pip(c) for c in conda]
            conda = []
        if conda:
            p = os.path.join(tmpdir, "conda-%s.yml" % _safe(self.name))
            keep = CondaDependencies._from_text(cd.serialize_to_string())
            keep._pip = [x for x in keep._pip if not x.lower().startswith("azureml")]
            keep.save(p)
            out["conda"] = p
        elif [x for x in pip if not x.startswith("-")]:
            p = os.path.join(tmpdir, "requirements-%s.txt" % _safe(self.name))
            with open(p, "w", encoding="utf-8") as f:
                f.write("\n".join(pip) + "\n")
            out["requirements"] = p
        return out


def _conda_to_pip(spec):
    spec = spec.split("::")[-1].strip()
    for op in (">=", "<=", "==", "!=", ">", "<"):
        if op in spec:
            return spec
    if "=" in spec:
        name, _, ver = spec.partition("=")
        ver = ver.split("=")[0]
        return "%s==%s" % (name, ver + ".*" if ver.count(".") < 2 and not ver.endswith("*") else ver)
    return spec


def _safe(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in (name or "env"))


def _check_name(name):
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise UserErrorException("invalid environment name %r" % (name,))


_warned = set()


def _curated(name):
    """A stand-in for Azure's curated environment name: the server's Python as it is."""
    if name not in _warned:
        _warned.add(name)
        warnings.warn("%s is an Azure curated environment; atelier runs it on the compute target's Python as it "
                      "is (install what the script needs there, or use your own Environment)" % name, stacklevel=3)
    env = Environment(name)
    env.version = "1"
    env.python.user_managed_dependencies = True
    env.environment_variables = {}
    return env
