from azureml.core import Run

run = Run.get_context()
env = run.get_environment()
print("environment:", env.name, env.python.user_managed_dependencies)
run.log("ok", 1)
