"""azureml.core.experiment: Azure ML v1's Experiment over an atelier experiment."""

from atelier.workspace import Experiment as _Experiment

from .._compat import adopt, unsupported

__all__ = ["Experiment"]


class Experiment(_Experiment):
    """``Experiment(workspace, name)``: created on its first run, as in Azure ML."""

    def __init__(self, workspace, name, _skip_name_validation=False, _id=None, _archived_time=None,
                 _create_in_cloud=True, _experiment_dto=None, **kwargs):
        _Experiment.__init__(self, workspace, name)

    id = property(lambda self: self.name)
    archived_time = property(lambda self: None)

    @property
    def tags(self):
        try:
            return dict(self.get_details().get("tags") or {})
        except Exception:  # not created yet: no runs
            return {}

    def submit(self, config, tags=None, **kwargs):
        """Submits a ScriptRunConfig (or an Estimator, or the atelier SDK's ScriptRunConfig)."""
        from .run import _adopt_run
        if getattr(config, "_submit", None) is None:
            kind = type(config).__name__
            raise unsupported("submitting a %s" % kind, "atelier submits ScriptRunConfig (and Estimator) runs; "
                              "run a hyperparameter sweep as child runs of one script, and a pipeline's steps "
                              "as runs passing data through datastore outputs and datasets")
        return _adopt_run(_Experiment.submit(self, config, tags=tags, **kwargs))

    def start_logging(self, *args, **kwargs):
        """An interactive run of this process (v1's start_logging: snapshot_directory defaults
        to the current directory; ./outputs is uploaded on complete())."""
        from .run import _adopt_run
        return _adopt_run(_Experiment.start_logging(self, *args, **kwargs))

    def get_runs(self, type=None, tags=None, properties=None, include_children=False, status=None):
        from .run import _adopt_run
        for r in _Experiment.get_runs(self, type=type, tags=tags, properties=properties,
                                      include_children=include_children, status=status):
            yield _adopt_run(r)

    @staticmethod
    def list(workspace, experiment_name=None, view_type="ActiveOnly", tags=None):
        from .workspace import Workspace
        exps = Workspace.experiments.fget(workspace) if isinstance(workspace, Workspace) else \
            {k: adopt(v, Experiment) for k, v in workspace.experiments.items()}
        return [e for n, e in sorted(exps.items()) if experiment_name is None or n == experiment_name]

    def archive(self):
        raise unsupported("Experiment.archive", "experiments and their runs are kept; tag the runs to set them "
                          "apart (run.tag)")

    def reactivate(self, new_name=None):
        raise unsupported("Experiment.reactivate", "experiments are never archived on atelier")

    @staticmethod
    def delete(workspace, experiment_id):
        raise unsupported("Experiment.delete", "experiments and their runs are kept; a whole workspace can be "
                          "deleted (`atelier workspace delete --force`)")
