# Environments: curated ones, your own from CondaDependencies or a requirements file,
# registered and versioned, used by a run.
from azureml.core import Environment, Experiment, ScriptRunConfig, Workspace
from azureml.core.conda_dependencies import CondaDependencies

ws = Workspace.from_config()

env = Environment.get(workspace=ws, name="AzureML-Minimal")
print(env.name, env.version)

myenv = Environment(name="myenv")
conda_dep = CondaDependencies()
conda_dep.add_pip_package("six")
myenv.python.conda_dependencies = conda_dep
myenv.register(workspace=ws)
print("registered", myenv.name, myenv.version)

envs = Environment.list(workspace=ws)
for name in envs:
    print("Name", name)

restored = Environment.get(workspace=ws, name="myenv", version="1")
print("restored pip packages:", list(restored.python.conda_dependencies.pip_packages))

# A run in a user-managed environment (the compute target's Python).
user_env = Environment.from_pip_requirements(name="pipenv", file_path="requirements.txt")
user_env.python.user_managed_dependencies = True
user_env.environment_variables = {"EXAMPLE_VAR": "1"}
src = ScriptRunConfig(source_directory=".", script="example.py", environment=user_env)
run = Experiment(workspace=ws, name="using-environments").submit(src)
run.wait_for_completion(show_output=True)
print("run environment:", run.get_environment().environment_variables)
