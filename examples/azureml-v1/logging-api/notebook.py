# The logging API of Azure ML v1: every kind of metric, an image, a file, reading them back.
import os

import numpy as np
from tqdm import tqdm

import azureml.core
from azureml.core import Experiment, Run, Workspace  # noqa: F401

print("SDK version:", azureml.core.VERSION)
ws = Workspace.from_config()
print("Workspace name: " + ws.name, "Azure region: " + ws.location, "Subscription id: " + ws.subscription_id,
      "Resource group: " + ws.resource_group, sep="\n")

exp = Experiment(workspace=ws, name="logging-api-test")
run = exp.start_logging()
run.log(name="Name", value="Logging API run")
run.log(name="Magic Number", value=42)
run.log_list(name="Fibonacci", value=[0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89])
sines = {"angle": [], "sine": []}
for i in tqdm(range(-10, 10)):
    run.log(name="Sigmoid", value=1 / (1 + np.exp(-i)))
    angle = i / 2.0
    run.log_row(name="Cosine Wave", angle=angle, cos=np.cos(angle))
    sines["angle"].append(angle)
    sines["sine"].append(np.sin(angle))
run.log_table(name="Sine Wave", value=sines)
run.complete()

# Logging still works once the run is completed.
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

angle = np.linspace(-3, 3, 50)
plt.plot(angle, np.tanh(angle), label="tanh")
plt.legend(fontsize=12)
plt.title("Hyperbolic Tangent", fontsize=16)
plt.grid(True)
run.log_image(name="Hyperbolic Tangent", plot=plt)

with open("myfile.txt", "w") as f:
    f.write("This is a dummy file.\n")
props = run.upload_file(name="myfile_in_the_cloud.txt", path_or_stream="./myfile.txt")
print(props.serialize())

print(run)
print(run.get_metrics())
print(run.get_file_names())
os.makedirs("files", exist_ok=True)
for f in run.get_file_names():
    dest = os.path.join("files", f.split("/")[-1])
    print("Downloading file {} to {}...".format(f, dest))
    run.download_file(f, dest)
