from azureml.core import Run

run = Run.get_context()
print("Hello, Azure ML!")
run.log("greeting", "hello")
