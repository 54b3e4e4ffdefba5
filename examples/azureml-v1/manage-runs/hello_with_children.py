from azureml.core import Run

run = Run.get_context()
print("Hello from the parent")
child_runs = run.create_children(count=3)
for i, c in enumerate(child_runs):
    c.log("child_number", i)
    c.complete()
