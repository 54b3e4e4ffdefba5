"""Model.get_model_path inside a scoring image, resolved as azureml-core resolves it there.

Models live at <models root>/<name>/<version>/; get_model_path(name) is the one file or folder
inside the latest (or the given) version's directory. The models root is AZUREML_MODEL_DIR when
it holds several models, its grandparent when it is one model's own directory (Azure ML sets it
either way), else AML_APP_ROOT/azureml-models or ./azureml-models. A name that is no model
there is tried as a path relative to the working directory, as azureml-core does.
"""

import os


class ModelNotFoundException(Exception):
    pass


class WebserviceException(Exception):
    pass


def _roots():
    roots = []
    md = os.environ.get("AZUREML_MODEL_DIR")
    if md:
        roots += [md, os.path.dirname(os.path.dirname(os.path.normpath(md)))]
    roots.append(os.path.join(os.environ.get("AML_APP_ROOT", ""), "azureml-models"))
    return roots


def _latest(names):
    versions = [int(n) for n in names if n.isdigit()]
    if not versions:
        raise ModelNotFoundException("no numbered version directories in %s" % (names,))
    return max(versions)


class Model:
    """The registered-model handle a score.py uses: get_model_path only (no workspace here)."""

    def __init__(self, workspace=None, name=None, id=None, version=None, **kwargs):
        if id and not name:
            name, _, version = id.partition(":")
        self.workspace, self.name, self.version = workspace, name, version
        self.id = "%s:%s" % (name, version) if version is not None else name

    @staticmethod
    def get_model_path(model_name, version=None, _workspace=None):
        if model_name is None:
            raise WebserviceException("model_name is None")
        if version is not None and not isinstance(version, int):
            raise WebserviceException("version should be an int")
        for root in _roots():
            d = os.path.join(root, model_name)
            if not os.path.isdir(d):
                continue
            v = version if version is not None else _latest(os.listdir(d))
            d = os.path.join(d, str(v))
            if not os.path.isdir(d):
                break
            entries = os.listdir(d)
            if len(entries) != 1:
                raise WebserviceException("Dir %s can contain only 1 file or folder. Found %s" % (d, entries))
            return os.path.join(d, entries[0])
        if os.path.exists(model_name):
            return model_name
        raise ModelNotFoundException(
            "Model %s not found in cache at %s or in current working directory %s."
            % (model_name, " or ".join(_roots()), os.getcwd()))
