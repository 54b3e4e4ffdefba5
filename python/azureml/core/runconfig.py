"""azureml.core.runconfig: v1's RunConfiguration (what ScriptRunConfig holds)."""

from .._compat import unsupported
from .environment import DEFAULT_CPU_IMAGE, DEFAULT_GPU_IMAGE, Environment

__all__ = ["RunConfiguration", "DockerConfiguration", "DataReferenceConfiguration", "MpiConfiguration",
           "TensorflowConfiguration", "PyTorchConfiguration", "DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE"]

MAX_DURATION_SECONDS = 2592000


class DockerConfiguration:
    def __init__(self, use_docker=False, shm_size=None, shared_volumes=True, arguments=None):
        self.use_docker, self.shm_size, self.shared_volumes = use_docker, shm_size, shared_volumes
        self.arguments = list(arguments or [])


class DataReferenceConfiguration:
    """A datastore path a run reads (mode "download" or "mount", both downloaded before the
    script starts) or writes ("upload")."""

    def __init__(self, datastore_name=None, mode="mount", path_on_datastore=None, path_on_compute=None,
                 overwrite=False):
        self.datastore_name, self.mode = datastore_name, mode
        self.path_on_datastore, self.path_on_compute, self.overwrite = path_on_datastore, path_on_compute, overwrite


class _Distributed:
    def __init__(self, *args, **kwargs):
        raise unsupported(type(self).__name__, "atelier runs one process per run; start the workers from the "
                          "script, or log child runs")


class MpiConfiguration(_Distributed):
    pass


class TensorflowConfiguration(_Distributed):
    pass


class PyTorchConfiguration(_Distributed):
    pass


class RunConfiguration:
    """``RunConfiguration(conda_dependencies=None, framework="Python", script=None, arguments=None)``."""

    def __init__(self, script=None, arguments=None, framework="Python", communicator="None",
                 conda_dependencies=None, _history_enabled=True, _path=None, _name=None, command=None):
        self.script = script
        self.arguments = list(arguments or [])
        self.command = command
        self.framework = framework
        self.communicator = communicator
        self.target = "local"
        self.node_count = 1
        self.max_run_duration_seconds = MAX_DURATION_SECONDS
        self.environment = Environment(None)
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.data_references = {}
        self.data = {}
        self.output_data = {}
        self.docker = DockerConfiguration()
        self.history = None
        self.auto_prepare_environment = True
        self.source_directory_data_store = None
        self.amlcompute = None
        self.secrets = []  # atelier: vault secrets the script gets as environment variables
        self.name = _name

    def __repr__(self):
        return "RunConfiguration(script=%r, target=%r, environment=%r)" % (self.script, self.target,
                                                                          self.environment.name)

    # Azure's conveniences over its environment

    @property
    def auto_prepare_environment(self):
        return True

    @auto_prepare_environment.setter
    def auto_prepare_environment(self, v):
        pass

    def save(self, path=None, name=None, separate_environment_yaml=False):
        raise unsupported("RunConfiguration.save", "keep the run's settings in code, or in an atelier run "
                          "configuration file (atelier run submit --config)")

    @staticmethod
    def load(path, name=None):
        raise unsupported("RunConfiguration.load", "atelier reads its own run configuration files "
                          "(atelier run submit --config)")
