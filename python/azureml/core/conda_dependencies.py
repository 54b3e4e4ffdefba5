"""azureml.core.conda_dependencies: v1's CondaDependencies, an environment.yml in memory.

How atelier runs it (see Environment): the conda packages python and pip are the server's
Python; the pip packages become a requirements file (azureml-* ones are left out: the atelier
SDK provides azureml); any other conda package makes the run use the conda file, which needs
conda or mamba on the compute target (the run fails saying so when there is none).
"""

import os
import re

__all__ = ["CondaDependencies"]

DEFAULT_PYTHON_VERSION = "3.8.13"
_AZUREML_DEFAULTS = "azureml-defaults"


def _pkg_name(spec):
    return re.split(r"[\s=<>!~\[;@]", spec.strip(), maxsplit=1)[0].lower()


def _parse_yaml(text):
    """The subset of YAML environment files use: name, channels, dependencies (with a pip
    list), variables; standard library only."""
    out = {"name": None, "channels": [], "dependencies": [], "pip": [], "pip_options": []}
    section, in_pip = None, False
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        s = line.strip()
        if indent == 0 and ":" in s and not s.startswith("-"):
            key, _, val = s.partition(":")
            section, in_pip = key.strip(), False
            if section == "name":
                out["name"] = val.strip().strip("'\"") or None
            continue
        if not s.startswith("-"):
            continue
        item = s[1:].strip().strip("'\"")
        if section == "channels":
            out["channels"].append(item)
        elif section == "dependencies":
            if item.rstrip(":") == "pip" and item.endswith(":"):
                in_pip, pip_indent = True, indent
                continue
            if in_pip and indent > pip_indent:
                (out["pip_options"] if item.startswith("-") else out["pip"]).append(item)
            else:
                in_pip = False
                out["dependencies"].append(item)
    return out


class CondaDependencies:
    """``CondaDependencies(path)`` reads an environment.yml; ``CondaDependencies.create(...)``
    makes one."""

    def __init__(self, conda_dependencies_file_path=None, _underlying_structure=None):
        self._name = "project_environment"
        self._channels = ["anaconda", "conda-forge"]
        self._conda = ["python=" + DEFAULT_PYTHON_VERSION]
        self._pip = [_AZUREML_DEFAULTS]
        self._pip_options = []
        if conda_dependencies_file_path is not None:
            with open(os.fspath(conda_dependencies_file_path), encoding="utf-8") as f:
                self._load(f.read())

    def _load(self, text):
        d = _parse_yaml(text)
        self._name = d["name"] or self._name
        self._channels = d["channels"]
        self._conda = d["dependencies"]
        self._pip = d["pip"]
        self._pip_options = d["pip_options"]

    @staticmethod
    def create(pip_indexurl=None, pip_packages=None, conda_packages=None, python_version=DEFAULT_PYTHON_VERSION,
               pin_sdk_version=True):
        cd = CondaDependencies()
        cd._conda = ["python=" + (python_version or DEFAULT_PYTHON_VERSION)]
        cd._pip = [_AZUREML_DEFAULTS]
        for p in conda_packages or []:
            cd.add_conda_package(p)
        for p in pip_packages or []:
            cd.add_pip_package(p)
        if pip_indexurl:
            cd.set_pip_index_url(pip_indexurl)
        return cd

    @staticmethod
    def _from_text(text):
        cd = CondaDependencies()
        cd._load(text)
        return cd

    # packages

    conda_packages = property(lambda self: iter(list(self._conda)))
    pip_packages = property(lambda self: iter(list(self._pip)))
    conda_channels = property(lambda self: iter(list(self._channels)))
    pip_options = property(lambda self: iter(list(self._pip_options)))

    def _replace(self, lst, spec):
        name = _pkg_name(spec)
        for i, s in enumerate(lst):
            if _pkg_name(s) == name:
                lst[i] = spec
                return
        lst.append(spec)

    def add_conda_package(self, conda_package):
        self._replace(self._conda, conda_package)

    def add_pip_package(self, pip_package):
        self._replace(self._pip, pip_package)

    def remove_conda_package(self, conda_package):
        self._conda = [s for s in self._conda if _pkg_name(s) != _pkg_name(conda_package)]

    def remove_pip_package(self, pip_package):
        self._pip = [s for s in self._pip if _pkg_name(s) != _pkg_name(pip_package)]

    def add_channel(self, channel):
        if channel not in self._channels:
            self._channels.append(channel)

    def remove_channel(self, channel):
        self._channels = [c for c in self._channels if c != channel]

    def set_pip_option(self, pip_option):
        key = pip_option.split()[0].split("=")[0]
        self._pip_options = [o for o in self._pip_options if o.split()[0].split("=")[0] != key] + [pip_option]

    def set_pip_index_url(self, index_url):
        self.set_pip_option("--index-url " + index_url)

    def set_python_version(self, version):
        self._replace(self._conda, "python=" + version)

    def get_python_version(self):
        for s in self._conda:
            if _pkg_name(s) == "python":
                return s.split("=", 1)[1].lstrip("=") if "=" in s else None
        return None

    def add_tensorflow_conda_package(self, core_type="cpu", version=None):
        self.add_conda_package("tensorflow" + ("-gpu" if core_type == "gpu" else "") + ("=" + version if version else ""))

    def add_tensorflow_pip_package(self, core_type="cpu", version=None):
        self.add_pip_package("tensorflow" + ("-gpu" if core_type == "gpu" else "") + ("==" + version if version else ""))

    # what atelier runs

    def _atelier_spec(self):
        """(pip requirement lines, conda packages atelier cannot install with pip): python and
        pip are the server's; azureml-* pip packages are provided by the atelier SDK."""
        pip = list(self._pip_options) + [p for p in self._pip if not _pkg_name(p).startswith("azureml")]
        conda = [c for c in self._conda if _pkg_name(c) not in ("python", "pip")]
        return pip, conda

    # serialization

    def serialize_to_string(self):
        lines = ["# Conda environment specification.", "name: %s" % self._name, "dependencies:"]
        lines += ["- %s" % c for c in self._conda]
        if self._pip or self._pip_options:
            if not any(_pkg_name(c) == "pip" for c in self._conda):
                lines.append("- pip")
            lines.append("- pip:")
            lines += ["  - %s" % p for p in self._pip_options + self._pip]
        if self._channels:
            lines.append("channels:")
            lines += ["- %s" % c for c in self._channels]
        return "\n".join(lines) + "\n"

    def save(self, path=None):
        path = os.fspath(path or "environment.yml")
        d = os.path.dirname(path)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.serialize_to_string())
        return path

    def save_to_file(self, base_directory, conda_file_path=None):
        return self.save(os.path.join(os.fspath(base_directory), conda_file_path or "myenv.yml"))

    def __repr__(self):
        return self.serialize_to_string()

    def __eq__(self, other):
        return isinstance(other, CondaDependencies) and self.serialize_to_string() == other.serialize_to_string()
