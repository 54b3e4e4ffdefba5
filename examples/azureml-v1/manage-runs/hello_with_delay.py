import time

from azureml.core import Run

run = Run.get_context()
print("Hello, taking a while")
time.sleep(60)
run.log("never", 1)
