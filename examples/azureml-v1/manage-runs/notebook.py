# Managing runs: submit, tags, properties, children, cancel and fail.
from azureml.core import Experiment, ScriptRunConfig, Workspace
from azureml.core.environment import Environment

ws = Workspace.from_config()
exp = Experiment(workspace=ws, name="explore-runs")

env = Environment("user-managed-env")
env.python.user_managed_dependencies = True

src = ScriptRunConfig(".", script="hello.py", environment=env)
local_script_run = exp.submit(src)
print(local_script_run.get_status())
local_script_run.wait_for_completion(show_output=True)
print("metrics:", local_script_run.get_metrics())

local_script_run.tag("quality", "fantastic run")
print(local_script_run.get_tags())
local_script_run.add_properties({"author": "azureml-user"})
print(local_script_run.get_properties())
print(list(exp.get_runs(properties={"author": "azureml-user"}, tags={"quality": "fantastic run"})))

# Children of a submitted script.
src = ScriptRunConfig(".", script="hello_with_children.py", environment=env)
parent = exp.submit(src)
parent.wait_for_completion(show_output=True)
print("children:", sorted(c.get_metrics()["child_number"] for c in parent.get_children()))

# Children of an interactive run.
with exp.start_logging() as parent_run:
    for i in range(3):
        with parent_run.child_run(name="child-%d" % i) as child:
            child.log("i", i)
print("interactive children:", len(parent_run.get_children()))

# Cancel a submitted run, mark an interactive one failed.
src = ScriptRunConfig(".", script="hello_with_delay.py", environment=env)
to_cancel = exp.submit(src)
to_cancel.cancel()
print("canceled:", to_cancel.wait_for_completion(raise_on_error=False)["status"])
failing = exp.start_logging()
failing.fail(error_details="on purpose")
print("failed:", failing.get_status())
