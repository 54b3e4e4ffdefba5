"""azureml.core.model: v1's Model over atelier's model registry, and Model.get_model_path."""

import os
import tempfile

import atelier
from atelier.model import Model as _Model

from .._compat import AtelierError, adopt
from ..exceptions import ModelNotFoundException

__all__ = ["Model", "InferenceConfig"]

# Where v1 (and the scoring runtime) finds models: AZUREML_MODEL_DIR in a deployment, else
# ./azureml-models/<name>/<version>, downloaded there from the registry when missing.
MODELS_DIR = "azureml-models"


class Model(_Model):
    """``Model(workspace, name, version=None, tags=None, properties=None, run_id=None)``."""

    url = property(lambda self: "aml://asset/%s" % self.id)
    created_time = property(lambda self: _Model.created_time.fget(self))
    model_framework = property(lambda self: self.framework)
    model_framework_version = property(lambda self: self.framework_version)

    @staticmethod
    def register(workspace, model_path, model_name, tags=None, properties=None, description=None, datasets=None,
                 model_framework=None, model_framework_version=None, child_paths=None, sample_input_dataset=None,
                 sample_output_dataset=None, resource_configuration=None, **kwargs):
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
        """The local path of a model's file or folder. In a deployment (AZUREML_MODEL_DIR set)
        it is found there; elsewhere in ./azureml-models/<name>/<version>, downloaded from the
        workspace's registry (_workspace, else the submitted run's, else from_config) when
        missing."""
        base = os.environ.get("AZUREML_MODEL_DIR")
        if base:
            return _in_model_dir(base, model_name, version)
        ws = _workspace or _context_workspace()
        if ws is None and version is not None:
            cached = os.path.join(MODELS_DIR, model_name, str(version))
            if os.path.isdir(cached):
                return _single(cached)
        if ws is None:
            raise ModelNotFoundException("model %s: not in a deployment (AZUREML_MODEL_DIR is not set) and no "
                                         "workspace to download it from: pass _workspace" % model_name,
                                         code="not_found", status=404)
        try:
            m = Model(ws, model_name, version=version)
        except AtelierError as e:
            if e.status == 404:
                raise ModelNotFoundException("model %s%s is not registered in workspace %s" % (
                    model_name, "" if version is None else ":%s" % version, ws.name), code="not_found",
                    status=404) from None
            raise
        target = os.path.join(MODELS_DIR, m.name, str(m.version))
        if os.path.isdir(target) and os.listdir(target):
            return _single(target)
        return m.download(target_dir=target, exist_ok=True)

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


def _single(d):
    entries = [e for e in os.listdir(d) if not e.startswith(".")]
    return os.path.join(d, entries[0]) if len(entries) == 1 else d


def _in_model_dir(base, name, version):
    """As v1 resolves it: one model in AZUREML_MODEL_DIR (its files directly, or under
    <name>/<version>), or several as <name>/<version>/..."""
    cand = os.path.join(base, name)
    if os.path.isdir(cand):
        vs = sorted((v for v in os.listdir(cand) if v.isdigit()), key=int)
        if version is not None:
            vs = [v for v in vs if v == str(version)]
        if not vs:
            raise ModelNotFoundException("model %s%s is not in %s" % (name, "" if version is None else
                                                                      ":%s" % version, base), code="not_found",
                                         status=404)
        return _single(os.path.join(cand, vs[-1]))
    if os.path.exists(cand):
        return cand
    return _single(base)


class InferenceConfig(atelier.InferenceConfig):
    """v1's InferenceConfig (the atelier SDK's, for Model.package and atelier.Image): a v1
    Environment gives the image its pip requirements as it gives a run its own (see
    Environment); images install no conda packages."""

    def __init__(self, entry_script=None, runtime=None, conda_file=None, extra_docker_file_steps=None,
                 source_directory=None, enable_gpu=None, description=None, base_image=None,
                 base_image_registry=None, cuda_version=None, environment=None, execution_script=None):
        if environment is not None and hasattr(environment, "_atelier"):
            a = environment._atelier(tempfile.mkdtemp(prefix="azureml-inference-"))
            environment = atelier.Environment(name=environment.name, requirements=a.get("requirements"),
                                              conda=a.get("conda"), variables=a.get("variables"))
        atelier.InferenceConfig.__init__(self, entry_script, runtime, conda_file, extra_docker_file_steps,
                                         source_directory, enable_gpu, description, base_image, base_image_registry,
                                         cuda_version, environment, execution_script)
