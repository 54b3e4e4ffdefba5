"""azureml.train.estimator: v1's Estimator (deprecated in v1, common in its samples), mapped to
a ScriptRunConfig: script_params become arguments, the package lists an Environment."""

from ..core.conda_dependencies import CondaDependencies
from ..core.environment import Environment
from ..core.runconfig import RunConfiguration
from ..core.script_run_config import ScriptRunConfig

__all__ = ["Estimator"]


def _arguments(script_params):
    args = []
    for k, v in (script_params or {}).items():
        args.append(k)
        if v is not None and v != "":
            args.append(v)
    return args


class Estimator(ScriptRunConfig):
    _FRAMEWORK_PIP = []

    def __init__(self, source_directory, compute_target=None, vm_size=None, vm_priority=None, entry_script=None,
                 script_params=None, node_count=1, process_count_per_node=1, distributed_backend=None,
                 distributed_training=None, use_gpu=False, use_docker=True, custom_docker_base_image=None,
                 custom_docker_image=None, image_registry_details=None, user_managed=False, conda_packages=None,
                 pip_packages=None, conda_dependencies_file_path=None, pip_requirements_file_path=None,
                 conda_dependencies_file=None, pip_requirements_file=None, environment_variables=None,
                 environment_definition=None, inputs=None, source_directory_data_store=None, shm_size=None,
                 resume_from=None, max_run_duration_seconds=None, framework_version=None, **kwargs):
        if environment_definition is not None:
            env = environment_definition
        elif pip_requirements_file or pip_requirements_file_path:
            env = Environment.from_pip_requirements("estimator-env", _in(source_directory, pip_requirements_file or
                                                                         pip_requirements_file_path))
        elif conda_dependencies_file or conda_dependencies_file_path:
            env = Environment.from_conda_specification("estimator-env", _in(source_directory, conda_dependencies_file
                                                                            or conda_dependencies_file_path))
        else:
            env = Environment("estimator-env")
            pip = list(pip_packages or []) + [p for p in self._FRAMEWORK_PIP if p not in (pip_packages or [])]
            env.python.conda_dependencies = CondaDependencies.create(pip_packages=pip, conda_packages=conda_packages)
            env.python.user_managed_dependencies = bool(user_managed) or not (pip_packages or conda_packages)
        if environment_variables:
            env.environment_variables = dict(environment_variables)
        if custom_docker_image or custom_docker_base_image:
            env.docker.enabled = True
            env.docker.base_image = custom_docker_image or custom_docker_base_image
        rc = RunConfiguration()
        rc.node_count = node_count
        rc.environment = env
        for inp in inputs or []:
            name = getattr(inp, "data_reference_name", None) or getattr(inp, "name", None) or "input"
            rc.data_references[name] = inp
        ScriptRunConfig.__init__(self, source_directory, script=entry_script, arguments=_arguments(script_params),
                                 run_config=rc, compute_target=compute_target or "local",
                                 distributed_job_config=distributed_training,
                                 **({"max_run_duration_seconds": max_run_duration_seconds}
                                    if max_run_duration_seconds else {}))
        self.script_params = dict(script_params or {})


def _in(source_directory, p):
    import os
    return p if os.path.isabs(p) or os.path.exists(p) else os.path.join(source_directory, p)
