# Datastores and datasets: upload files, create tabular and file datasets, register and
# version them, read them in pandas, and give them to a run.
import os

from sklearn.datasets import load_iris

from azureml.core import Dataset, Datastore, Environment, Experiment, ScriptRunConfig, Workspace
from azureml.data import OutputFileDatasetConfig

ws = Workspace.from_config()
datastore = ws.get_default_datastore()
print(datastore.name, datastore.datastore_type)

# The data (in place of a download from the internet: scikit-learn ships iris).
os.makedirs("data", exist_ok=True)
frame = load_iris(as_frame=True).frame
frame.iloc[:75].to_csv("data/iris-1.csv", index=False)
frame.iloc[75:].to_csv("data/iris-2.csv", index=False)
datastore.upload(src_dir="data", target_path="iris", overwrite=True, show_progress=True)

tabular = Dataset.Tabular.from_delimited_files(path=[(datastore, "iris/*.csv")])
df = tabular.to_pandas_dataframe()
print("tabular rows:", len(df), "columns:", list(df.columns))
print("first 3:", len(tabular.take(3).to_pandas_dataframe()))

tabular = tabular.register(workspace=ws, name="iris", description="iris flowers", tags={"format": "CSV"},
                           create_new_version=True)
print("registered", tabular.name, tabular.version)

files = Dataset.File.from_files(path=(datastore, "iris/"))
print("files:", files.to_path())
files = files.register(ws, "iris-files", create_new_version=True)

iris = Dataset.get_by_name(ws, name="iris")
print("by name:", iris.name, iris.version, len(iris.to_pandas_dataframe()))

env = Environment("iris-env")
env.python.user_managed_dependencies = True
output = OutputFileDatasetConfig(name="summary", destination=(datastore, "iris-summary"))
src = ScriptRunConfig(source_directory=".", script="train_iris.py", environment=env,
                      arguments=["--input-data", iris.as_named_input("iris"),
                                 "--data-folder", files.as_named_input("iris_files").as_mount(),
                                 "--output-folder", output])
run = Experiment(ws, "iris-datasets").submit(src)
run.wait_for_completion(show_output=True)
print("accuracy:", run.get_metrics()["accuracy"])
print("summary:", [f["path"] for f in Datastore.get(ws, datastore.name).list_files("iris-summary/")])
model = run.register_model("iris-model", "outputs/model.pkl", datasets=[("training data", iris)])
print(model.name, model.version)
