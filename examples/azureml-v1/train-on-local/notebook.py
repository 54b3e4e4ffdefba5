# The cells of a "train on local" notebook, as Azure ML v1 users write them.
import azureml.core
from azureml.core import Experiment, ScriptRunConfig
from azureml.core.conda_dependencies import CondaDependencies
from azureml.core.runconfig import RunConfiguration
from azureml.core.workspace import Workspace

print("SDK version:", azureml.core.VERSION)

ws = Workspace.from_config()
print(ws.name, ws.resource_group, ws.location, ws.subscription_id, sep="\n")

exp = Experiment(workspace=ws, name="train-on-local")

# User-managed environment: the compute target's Python as it is.
run_config_user_managed = RunConfiguration()
run_config_user_managed.environment.python.user_managed_dependencies = True

src = ScriptRunConfig(source_directory="./", script="train.py", run_config=run_config_user_managed)
run = exp.submit(src)
print(run)
run.wait_for_completion(show_output=True)

# System-managed environment with a conda package: needs conda on the compute target.
run_config_system_managed = RunConfiguration()
run_config_system_managed.environment.python.user_managed_dependencies = False
run_config_system_managed.auto_prepare_environment = True
cd = CondaDependencies.create(conda_packages=["scikit-learn"])
run_config_system_managed.environment.python.conda_dependencies = cd
src2 = ScriptRunConfig(source_directory="./", script="train.py", run_config=run_config_system_managed)
run2 = exp.submit(src2)
details = run2.wait_for_completion(show_output=False, raise_on_error=False)
print("system-managed:", details["status"], details.get("error"))

metrics = run.get_metrics()
import numpy as np  # noqa: E402

best_alpha = metrics["alpha"][np.argmin(metrics["mse"])]
print("When alpha is {1:0.2f}, we have min MSE {0:0.2f}.".format(min(metrics["mse"]), best_alpha))
print(run.get_file_names())

model = run.register_model(model_name="best_ridge_model", model_path="./outputs/ridge_{0:.2f}.pkl".format(best_alpha))
print(model.name, model.version, model.url)
