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
        raise unsupported(type(self).__name__, "atelier runs distributed PyTorch and MPI jobs (PyTorchConfiguration, "
                          "MpiConfiguration) on slurm targets; start parameter servers from the script")


class MpiConfiguration:
    """``MpiConfiguration(process_count_per_node=1, node_count=1)``: on a slurm compute target, the
    script runs as node_count × process_count_per_node tasks started by srun (Slurm's PMI for MPI),
    each with RANK, LOCAL_RANK, NODE_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT."""

    def __init__(self, process_count_per_node=1, node_count=1):
        self.process_count_per_node, self.node_count = process_count_per_node, node_count

    def _shape(self):
        return int(self.node_count or 1), int(self.process_count_per_node or 1)


class TensorflowConfiguration(_Distributed):
    pass


class PyTorchConfiguration:
    """``PyTorchConfiguration(communication_backend="Nccl", process_count=None, node_count=1)``: on a
    slurm compute target, process_count processes in all (node_count by default), spread evenly over
    node_count nodes, each with the variables ``init_process_group(init_method="env://")`` reads."""

    def __init__(self, communication_backend="Nccl", process_count=None, node_count=1):
        self.communication_backend, self.process_count, self.node_count = communication_backend, process_count, node_count

    def _shape(self):
        nodes = int(self.node_count or 1)
        total = int(self.process_count or nodes)
        if nodes < 1 or total < nodes or total % nodes:
            raise ValueError("PyTorchConfiguration: process_count %d cannot be spread evenly over node_count %d nodes"
                             % (total, nodes))
        return nodes, total // nodes


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
