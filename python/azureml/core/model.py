"""azureml.core.model: v1's Model over atelier's model registry, and Model.get_model_path."""

import atexit
import os
import shutil
import tempfile

import atelier
from atelier.model import Model as _Model

from .._compat import AtelierError, adopt
from ..exceptions import ModelNotFoundException

__all__ = ["Model", "InferenceConfig"]

# Where v1 (and the scoring runtime) finds models: AZUREML_MODEL_DIR in a deployment, else
# ./azureml-models/<name>/<version>, downloaded there from the registry when missing.
MODELS_DIR = "azureml-models"


class _Framework:
    """Model.Framework: the frameworks v1 knows (SCIKITLEARN models deploy without a score.py)."""

    CUSTOM = "Custom"
    MULTI = "Multi"
    ONNX = "Onnx"
    PYTORCH = "PyTorch"
    SCIKITLEARN = "ScikitLearn"
    TENSORFLOW = "TensorFlow"
    TFKERAS = "TfKeras"


class Model(_Model):
    """``Model(workspace, name, version=None, tags=None, properties=None, run_id=None)``."""

    Framework = _Framework

    url = property(lambda self: "aml://asset/%s" % self.id)
    created_time = property(lambda self: _Model.created_time.fget(self))
    model_framework = property(lambda self: self.framework)
    model_framework_version = property(lambda self: self.framework_version)

    @staticmethod
    def register(workspace, model_path, model_name, tags=None, properties=None, description=None, datasets=None,
                 model_framework=None, model_framework_version=None, child_paths=None, sample_input_dataset=None,
                 sample_output_dataset=None, resource_configuration=None, **kwargs):
        if resource_configuration is not None:
            properties = dict(properties or {})
            for k in ("cpu", "memory_in_gb", "gpu"):
                if getattr(resource_configuration, k, None) is not None:
                    properties.setdefault(k, str(getattr(resource_configuration, k)))
        return adopt(_Model.register(workspace, model_path, model_name, tags=tags, properties=properties,
                                     description=description, datasets=_datasets(datasets),
                                     model_framework=model_framework, model_framework_version=model_framework_version,
                                     child_paths=child_paths), Model)

    @staticmethod
    def list(workspace, name=None, tags=None, properties=None, run_id=None, latest=False, dataset_id=None,
             expand=True, page_count=255, model_framework=None, **kwargs):
        return [adopt(m, Model) for m in _Model.list(workspace, name=name, tags=tags, properties=properties,
                                                     run_id=run_id, latest=latest, model_framework=model_framework)]

    @staticmethod
    def get_model_path(model_name, version=None, _workspace=None):
        """The local path of a model's file or folder, as azureml-core resolves it (and as the
        scoring runtime does in images): <root>/<name>/<version>/<the one file or folder>, the
        root being AZUREML_MODEL_DIR (or its grandparent, when it is one model's directory) in a
        deployment, else ./azureml-models, where a model missing from it is downloaded from the
        workspace's registry (_workspace, else the submitted run's). A name that is no model is
        tried as a path relative to the working directory."""
        if os.environ.get("AZUREML_MODEL_DIR"):
            found = _cached(model_name, version)
            if found:
                return found
            if os.path.exists(model_name):
                return model_name
            raise ModelNotFoundException("model %s not found in %s" % (model_name, " or ".join(_roots())),
                                         code="not_found", status=404)
        ws = _workspace or _context_workspace()
        if ws is None:
            found = _cached(model_name, version)
            if found:
                return found
            if os.path.exists(model_name):
                return model_name
            raise ModelNotFoundException("model %s: not in ./%s and no workspace to download it from (pass "
                                         "_workspace)" % (model_name, MODELS_DIR), code="not_found", status=404)
        try:
            m = Model(ws, model_name, version=version)
        except AtelierError as e:
            if e.status == 404:
                raise ModelNotFoundException("model %s%s is not registered in workspace %s" % (
                    model_name, "" if version is None else ":%s" % version, ws.name), code="not_found",
                    status=404) from None
            raise
        found = _cached(m.name, m.version)
        if found:
            return found
        return m.download(target_dir=os.path.join(os.environ.get("AML_APP_ROOT", ""), MODELS_DIR, m.name,
                                                  str(m.version)), exist_ok=True)


def _datasets(datasets):
    out = []
    for d in datasets or []:
        if isinstance(d, (list, tuple)) and len(d) == 2:
            d = d[1]
        if hasattr(d, "id") and getattr(d, "name", None):
            d = d.id
        out.append(d)
    return out


def _context_workspace():
    from atelier.run import Run as _Run
    r = _Run.get_context()
    return getattr(r.experiment, "workspace", None)


def _roots():
    roots = []
    md = os.environ.get("AZUREML_MODEL_DIR")
    if md:
        roots += [md, os.path.dirname(os.path.dirname(os.path.normpath(md)))]
    roots.append(os.path.join(os.environ.get("AML_APP_ROOT", ""), MODELS_DIR))
    return roots


def _cached(name, version):
    """<root>/<name>/<version or the latest>/<its one entry>, or None."""
    for root in _roots():
        d = os.path.join(root, name)
        if not os.path.isdir(d):
            continue
        vs = [int(v) for v in os.listdir(d) if v.isdigit()]
        if not vs:
            continue
        v = int(version) if version is not None else max(vs)
        d = os.path.join(d, str(v))
        if not os.path.isdir(d):
            return None
        entries = [e for e in os.listdir(d) if not e.startswith(".")]
        return os.path.join(d, entries[0]) if len(entries) == 1 else d
    return None


class InferenceConfig(atelier.InferenceConfig):
    """v1's InferenceConfig (the atelier SDK's, for Model.package and atelier.Image): a v1
    Environment gives the image its pip requirements as it gives a run its own (see
    Environment); images install no conda packages."""

    def __init__(self, entry_script=None, runtime=None, conda_file=None, extra_docker_file_steps=None,
                 source_directory=None, enable_gpu=None, description=None, base_image=None,
                 base_image_registry=None, cuda_version=None, environment=None, execution_script=None):
        if environment is not None and hasattr(environment, "_atelier"):
            tmp = tempfile.mkdtemp(prefix="azureml-inference-")
            _scratch.append(tmp)
            a = environment._atelier(tmp)
            if a.get("requirements"):
                a["requirements"] = _without_azureml(a["requirements"], tmp)
            environment = atelier.Environment(name=environment.name, requirements=a.get("requirements"),
                                              conda=a.get("conda"), variables=a.get("variables"))
        atelier.InferenceConfig.__init__(self, entry_script, runtime, conda_file, extra_docker_file_steps,
                                         source_directory, enable_gpu, description, base_image, base_image_registry,
                                         cuda_version, environment, execution_script)

    def _resolve(self):
        """Without a source_directory, the image holds the entry script alone, as Azure's does
        (not the folder it is in, which may hold .azureml/config.json): it is copied, as it reads
        now, into a folder of its own for each build (so reload() sees a changed score.py)."""
        if self.source_directory is not None:
            return atelier.InferenceConfig._resolve(self)
        script = os.path.abspath(self.execution_script)
        if not os.path.isfile(script):
            raise AtelierError("entry script %s does not exist" % self.execution_script, code="invalid", status=400)
        tmp = tempfile.mkdtemp(prefix="azureml-entry-")
        _scratch.append(tmp)
        shutil.copy2(script, os.path.join(tmp, os.path.basename(script)))
        saved = self.source_directory, self.execution_script
        self.source_directory, self.execution_script = tmp, os.path.basename(script)
        try:
            return atelier.InferenceConfig._resolve(self)
        finally:
            self.source_directory, self.execution_script = saved


_scratch = []


def _without_azureml(path, tmp):
    """The requirements file without its azureml-* packages (azureml-defaults,
    azureml-inference-server-http, ...): atelier's scoring runtime provides what they do, and
    installed in the image they would shadow its azureml stand-ins. A copy when it had any."""
    from .conda_dependencies import _pkg_name

    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    dropped = [ln.strip() for ln in lines
               if ln.strip() and not ln.lstrip().startswith(("#", "-")) and _pkg_name(ln).startswith("azureml")]
    if not dropped:
        return path
    out = os.path.join(tmp, "scoring-" + os.path.basename(path))
    with open(out, "w", encoding="utf-8") as f:
        f.write("# not installed, provided by atelier's scoring runtime: %s\n" % ", ".join(dropped))
        f.write("\n".join(ln for ln in lines if ln.strip() not in dropped) + "\n")
    return out


@atexit.register
def _clean_scratch():
    for d in _scratch:
        shutil.rmtree(d, ignore_errors=True)
