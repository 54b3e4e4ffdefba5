"""azureml.core.run: Azure ML v1's Run over an atelier run.

The run API is the atelier SDK's (it mirrors v1); this class adds v1's remaining methods and
return shapes: get_details() with runDefinition, the log_* methods of AutoML's metric kinds,
upload_file's properties object, get_environment(), get_secret(), restore_snapshot(), and
children, parents and models as their v1 classes.
"""

import io
import json
import os
import zipfile

import atelier
from atelier.run import OfflineRun as _OfflineRun
from atelier.run import Run as _Run

from .._compat import AtelierError, adopt, unsupported

__all__ = ["Run", "get_run"]

# The script a run with data paths in its arguments runs first (see script_run_config).
ENTRY_SCRIPT = ".atelier/azureml_entry.py"


class _ArtifactProperties(dict):
    """What upload_file returns in v1: the uploaded artifact's properties."""

    def serialize(self):
        return dict(self)


def _run_definition(d):
    cfg = d.get("config") or {}
    if isinstance(cfg, str):
        try:
            cfg = json.loads(cfg)
        except ValueError:
            cfg = {}
    script, args = cfg.get("script"), list(cfg.get("arguments") or [])
    if script == ENTRY_SCRIPT and args:
        script, args = args[0], args[1:]
    env = cfg.get("environment") or {}
    return {"script": script, "arguments": args, "target": cfg.get("compute") or d.get("compute") or "",
            "framework": "Python", "nodeCount": cfg.get("node_count") or 1,
            "mpi": {"processCountPerNode": cfg.get("process_count_per_node") or 1},
            "pyTorch": {"processCount": (cfg.get("node_count") or 1) * (cfg.get("process_count_per_node") or 1)},
            "environment": {"name": env.get("name") or "atelier", "python": {
                "interpreterPath": env.get("python") or "python", "userManagedDependencies": not (
                    env.get("requirements") or env.get("conda")),
                "condaDependenciesFile": env.get("conda"), "requirementsFile": env.get("requirements")},
                "environmentVariables": env.get("variables") or {}},
            "dataReferences": {r.get("name"): {"dataStoreName": r.get("datastore"), "pathOnDataStore": r.get("path"),
                                               "mode": r.get("mode") or "download"}
                               for r in cfg.get("data") or []},
            "maxRunDurationSeconds": cfg.get("timeout")}


def _v1_metric(run, name, schema, data, description):
    """AutoML's metric kinds (confusion matrix, accuracy table, ...) as a text metric holding
    v1's JSON document, so get_metrics() gives the document back."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            raise TypeError("%s %r: value must be a dict or its JSON text" % (schema, name)) from None
    if not isinstance(data, dict):
        raise TypeError("%s %r: value must be a dict" % (schema, name))
    doc = data if "schema_type" in data else {"schema_type": schema, "schema_version": "1.0.0", "data": data}
    run.log(name, json.dumps(doc, sort_keys=True), description=description)


class _V1RunMethods:
    """What Run and the offline run add alike."""

    def log_confusion_matrix(self, name, value, description=""):
        _v1_metric(self, name, "confusion_matrix", value, description)

    def log_accuracy_table(self, name, value, description=""):
        _v1_metric(self, name, "accuracy_table", value, description)

    def log_residuals(self, name, value, description=""):
        _v1_metric(self, name, "residuals", value, description)

    def log_predictions(self, name, value, description=""):
        _v1_metric(self, name, "predictions", value, description)

    def get_secret(self, name):
        """A workspace secret the run's configuration lists (atelier passes them to the script
        as environment variables of the same names)."""
        if name in os.environ:
            return os.environ[name]
        raise AtelierError("secret %r is not in this run's environment: list it in the run configuration's "
                           "secrets (RunConfiguration.secrets, `atelier run submit --secret %s`)" % (name, name),
                           code="not_found", status=404)

    def get_secrets(self, secrets):
        return {n: self.get_secret(n) for n in secrets}

    def submit_child(self, config, tags=None, **kwargs):
        """Submits config as a child run of this run (in its experiment); returns the queued run."""
        if getattr(config, "_submit", None) is None:
            raise unsupported("submitting a %s" % type(config).__name__, "atelier submits ScriptRunConfig "
                              "(and Estimator) runs as children")
        if not isinstance(self, _Run):
            raise unsupported("Run.submit_child on an offline run", "submit the script with Experiment.submit")
        return _adopt_run(_Run.submit_child(self, config, tags=tags, **kwargs))


class Run(_V1RunMethods, _Run):
    """``Run(experiment, run_id)``; ``Run.get_context()`` in a submitted script."""

    def __init__(self, experiment, run_id, outputs=None, **kwargs):
        _Run.__init__(self, experiment, run_id)

    @classmethod
    def get_context(cls, allow_offline=True, used_for_context_manager=False, **kwargs):
        """The run this script was submitted as; outside one, an offline run that prints what it
        logs (or AtelierError with allow_offline=False)."""
        r = _Run.get_context(allow_offline=allow_offline)
        if isinstance(r, _OfflineRun):
            return adopt(r, _OfflineV1Run)
        return _adopt_run(r)

    @staticmethod
    def get(workspace, run_id):
        from .workspace import Workspace
        return adopt(workspace, Workspace).get_run(run_id)

    @staticmethod
    def list(experiment, type=None, tags=None, properties=None, status=None, include_children=False,
             _rehydrate_runs=True):
        return experiment.get_runs(type=type, tags=tags, properties=properties, include_children=include_children,
                                   status=status)

    @property
    def input_datasets(self):
        """The run's inputs by name: the local path of each (mount and download), and for a
        dataset given as_named_input without a mode, the dataset over its downloaded files."""
        return _inputs(_Run.input_datasets.fget(self))

    def wait_for_completion(self, show_output=False, wait_post_processing=False, raise_on_error=True,
                            poll_interval=2.0, timeout=None):
        details = _Run.wait_for_completion(self, show_output=show_output, wait_post_processing=wait_post_processing,
                                           raise_on_error=raise_on_error, poll_interval=poll_interval,
                                           timeout=timeout)
        pending = getattr(self, "_azureml_outputs", None)
        if pending and details.get("status") == "Completed":
            from ..data.dataset_factory import FileDatasetFactory
            from .datastore import Datastore
            self._azureml_outputs = []
            for ds, path, (name, description, tags) in pending:
                FileDatasetFactory.from_files((Datastore.get(self.workspace, ds), path)).register(
                    self.workspace, name, description=description, tags=tags, create_new_version=True, _run_id=self.id)
        return details

    # v1 attributes

    type = property(lambda self: "azureml.scriptrun" if (self._info().get("config")) else "azureml.run")
    number = property(lambda self: 0)
    description = property(lambda self: (self._info().get("properties") or {}).get("description", ""))

    def get_tags(self):
        return self._refresh().get("tags") or {}

    def get_properties(self):
        return self._refresh().get("properties") or {}

    def get_details(self):
        """The run's details with Azure ML v1's keys: runId, target, status, startTimeUtc,
        endTimeUtc, properties, inputDatasets, outputDatasets, runDefinition, logFiles."""
        d = _Run.get_details(self)
        rd = _run_definition(d)
        d.setdefault("runDefinition", rd)
        d.setdefault("submittedBy", d.get("created_by") or "")
        refs = rd["dataReferences"]
        try:
            used = self._client.request("GET", self._path("datasets")).get("datasets") or []
        except AtelierError:
            used = []
        registered = [{"dataset": {"name": u["name"], "version": u["version"], "id": "%s:%s" % (u["name"], u["version"])},
                       "consumptionDetails": {"inputName": u.get("input") or u["name"]}} for u in used]
        seen = {u.get("input") for u in used}
        d.setdefault("inputDatasets", registered + [
            {"dataset": {"name": k, "datastore": v["dataStoreName"], "path": v["pathOnDataStore"]},
             "consumptionDetails": {"inputName": k}}
            for k, v in refs.items() if v["mode"] != "upload" and k not in seen])
        d.setdefault("outputDatasets", [{"dataset": {"name": k, "datastore": v["dataStoreName"], "path":
                                                     v["pathOnDataStore"]}, "outputDetails": {"outputName": k}}
                                        for k, v in refs.items() if v["mode"] == "upload"])
        return d

    def get_details_with_logs(self):
        """get_details() with the text of the run's log files under logFiles."""
        d = self.get_details()
        logs = {}
        for name in d.get("logFiles") or {}:
            try:
                logs[name] = self._client.request("GET", self._path("logs", name), raw=True).decode("utf-8", "replace")
            except AtelierError as e:
                if e.status != 404:
                    raise
                logs[name] = ""
        d["logFiles"] = logs
        return d

    def get_environment(self):
        """The environment the run was submitted with, as a v1 Environment."""
        from .environment import Environment
        env = self._info().get("config") or {}
        env = env.get("environment") if isinstance(env, dict) else {}
        return Environment._from_atelier(env or {})

    # files

    def upload_file(self, name, path_or_stream, datastore_name=None):
        return _ArtifactProperties(_Run.upload_file(self, name, path_or_stream) or {})

    def upload_files(self, names, paths, return_artifacts=False, timeout_seconds=None, datastore_name=None):
        return [self.upload_file(n, p) for n, p in zip(names, paths)]

    def upload_folder(self, name, path, datastore_name=None):
        return [_ArtifactProperties(x or {}) for x in _Run.upload_folder(self, name, path)]

    def download_file(self, name, output_file_path=None, _validate_checksum=False):
        return _Run.download_file(self, name, output_file_path)

    def download_files(self, prefix=None, output_directory=None, output_paths=None, batch_size=100,
                       append_prefix=True, timeout_seconds=None):
        if output_paths is not None:
            names = [f for f in self.get_file_names() if not prefix or f.startswith(prefix)]
            return [self.download_file(n, p) for n, p in zip(names, output_paths)]
        return _Run.download_files(self, prefix, output_directory, append_prefix)

    def restore_snapshot(self, snapshot_id=None, path=None):
        """Downloads the run's code snapshot as a zip and returns its path (v1 does the same)."""
        data = self._client.request("GET", self._path("snapshot"), raw=True)
        path = os.fspath(path or ".")
        os.makedirs(path, exist_ok=True)
        dest = os.path.join(path, "%s.zip" % (snapshot_id or self.id))
        with open(dest, "wb") as f:
            f.write(data)
        zipfile.ZipFile(io.BytesIO(data)).testzip()
        return dest

    def take_snapshot(self, file_or_folder_path):
        raise unsupported("Run.take_snapshot", "a run's snapshot is taken when it starts "
                          "(Experiment.start_logging(snapshot_directory=...) or submit)")

    def clean(self):
        return []

    # models

    def register_model(self, model_name, model_path=None, tags=None, properties=None, model_framework=None,
                       model_framework_version=None, description=None, datasets=None, sample_input_dataset=None,
                       sample_output_dataset=None, resource_configuration=None, **kwargs):
        """Registers model_path of the run's files. A path MLflow logged (its artifacts are the
        run's outputs/) is found under outputs/ too: register_model(model_path="model")."""
        from .model import Model
        try:
            m = _Run.register_model(self, model_name, model_path, tags=tags, properties=properties,
                                    model_framework=model_framework, model_framework_version=model_framework_version,
                                    description=description, datasets=datasets)
        except AtelierError as e:
            p = (model_path or "").replace("\\", "/").strip("/")
            while p.startswith("./"):
                p = p[2:]
            if e.status != 404 or not p or p.startswith("outputs/"):
                raise
            names = self.get_file_names()
            if not any(n == "outputs/" + p or n.startswith("outputs/" + p + "/") for n in names):
                raise
            m = _Run.register_model(self, model_name, "outputs/" + p, tags=tags, properties=properties,
                                    model_framework=model_framework, model_framework_version=model_framework_version,
                                    description=description, datasets=datasets)
        return adopt(m, Model)

    def get_models(self):
        from .model import Model
        return [adopt(m, Model) for m in _Run.get_models(self)]

    # relatives

    @property
    def parent(self):
        return _adopt_run(_Run.parent.fget(self))

    def child_run(self, name=None, run_id=None, outputs=None):
        return _adopt_run(_Run.child_run(self, name=name, run_id=run_id, outputs=outputs))

    def create_children(self, count=None, tag_key=None, tag_values=None):
        return [_adopt_run(r) for r in _Run.create_children(self, count, tag_key, tag_values)]

    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None,
                     _rehydrate_runs=True):
        return [_adopt_run(r) for r in _Run.get_children(self, recursive=recursive, tags=tags,
                                                          properties=properties, type=type, status=status)]


class _OfflineV1Run(_V1RunMethods, _OfflineRun):
    """The offline run of v1 (Run.get_context() outside a submitted run)."""

    def get_environment(self):
        raise AtelierError("an offline run has no environment", code="not_found", status=404)

    def upload_file(self, name, path_or_stream, datastore_name=None):
        _OfflineRun.upload_file(self, name, path_or_stream)
        return _ArtifactProperties({"path": name})


def _inputs(paths):
    try:
        specs = json.loads(os.environ.get("AZUREML_DATASET_SPECS") or "{}")
    except ValueError:
        specs = {}
    out = dict(paths)
    for name, spec in specs.items():
        if name in out and spec.get("mode") == "direct":
            from ..data.file_dataset import FileDataset
            from ..data.tabular_dataset import TabularDataset
            d = (TabularDataset if spec.get("type") == "tabular" else FileDataset)(None, spec)
            d._local = out[name]
            out[name] = d
    return out


def _adopt_run(r):
    if r is None:
        return None
    from .experiment import Experiment
    from .workspace import Workspace
    adopt(r, Run)
    exp = getattr(r, "experiment", None)
    if isinstance(exp, atelier.Experiment):
        adopt(exp, Experiment)
        if isinstance(exp.workspace, atelier.Workspace):
            adopt(exp.workspace, Workspace)
    return r


def get_run(experiment, run_id, rehydrate=True, clean_up=True):
    """v1's azureml.core.run.get_run."""
    return _adopt_run(Run(experiment, run_id))
