# Register a model and deploy it as a local web service: Azure ML SDK v1 code, run unchanged
# on atelier. The cells of the notebook, in order: register a model, describe its environment
# and entry script, profile it, deploy it, score, change score.py and reload, update to a new
# model version, delete; then a no-code deployment of a scikit-learn model. The model is a
# ridge regression trained here on scikit-learn's copy of the diabetes data (Azure's sample
# ships a pickled one).

# Check core SDK version number
import azureml.core

print("SDK version:", azureml.core.VERSION)

# Initialize the workspace from .azureml/config.json
from azureml.core import Workspace

ws = Workspace.from_config()
print(ws.name, ws.resource_group, ws.subscription_id, sep="\n")

# Train and save the model
import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

X, y = load_diabetes(return_X_y=True)
joblib.dump(Ridge(alpha=0.1).fit(X, y), "sklearn_regression_model.pkl")

# Register it
from azureml.core.model import Model

model = Model.register(model_path="sklearn_regression_model.pkl",
                       model_name="sklearn_regression_model_local",
                       tags={"area": "diabetes", "type": "regression"},
                       description="Ridge regression model to predict diabetes",
                       workspace=ws)
print("registered", model.name, model.version)

# The scoring environment, from a conda specification
from azureml.core.conda_dependencies import CondaDependencies
from azureml.core.environment import Environment

environment = Environment("LocalDeploy")
environment.python.conda_dependencies = CondaDependencies("myenv.yml")

# The inference configuration: the entry script and its environment
from azureml.core.model import InferenceConfig

inference_config = InferenceConfig(entry_script="score.py", environment=environment)

# A one-column tabular dataset of requests, for profiling: each row is a request body
import json
from azureml.core import Datastore
from azureml.core.dataset import Dataset
from azureml.data import dataset_type_definitions

request = json.dumps({"data": [X[0].tolist(), X[1].tolist()]})
with open("sample_request_data_diabetes.txt", "w") as f:
    f.write("\n".join([request] * 50))
data_store = Datastore.get_default(ws)
data_store.upload_files(["./sample_request_data_diabetes.txt"], target_path="sample_request_data_diabetes",
                        overwrite=True)
requests_dataset = Dataset.Tabular.from_delimited_files(
    [(data_store, "sample_request_data_diabetes/sample_request_data_diabetes.txt")],
    separator="\n",
    infer_column_types=True,
    header=dataset_type_definitions.PromoteHeadersBehavior.NO_HEADERS)
requests_dataset = requests_dataset.register(workspace=ws, name="sample_request_data_diabetes",
                                             create_new_version=True)

# Profile the model on 1 CPU and 0.5 GB of memory
from datetime import datetime

profile = Model.profile(ws,
                        "profile-%s" % datetime.now().strftime("%m%d%Y-%H%M%S"),
                        [model],
                        inference_config,
                        input_dataset=requests_dataset,
                        cpu=1.0,
                        memory_in_gb=0.5)
profile.wait_for_completion(True)
details = profile.get_details()
print("profile state:", details["state"], details.get("error") or "")
for key in ("requestedCpu", "requestedMemoryInGB", "totalQueries", "successQueries", "maxUtilizedCpu",
            "maxUtilizedMemoryInGB", "recommendedCpu", "recommendedMemoryInGB", "latencyPercentile50InMs",
            "latencyPercentile90InMs", "latencyPercentile99InMs"):
    print("profile %s: %s" % (key, details[key]))

# Deploy it as a local web service
from azureml.core.webservice import LocalWebservice

deployment_config = LocalWebservice.deploy_configuration(port=6789)
local_service = Model.deploy(ws, "test", [model], inference_config, deployment_config)
local_service.wait_for_deployment()
print("Local service port: {}".format(local_service.port))
print("Local service state:", local_service.state)

# The container logs
print(local_service.get_logs())

# Score two rows, and compare with the model here
sample_input = bytes(json.dumps({"data": [X[0].tolist(), X[1].tolist()]}), encoding="utf-8")
print("prediction:", json.dumps(local_service.run(input_data=sample_input)))
print("local prediction:", json.dumps(joblib.load("sklearn_regression_model.pkl").predict(X[:2]).tolist()))

# Change score.py and reload: the service serves the new entry script
with open("score.py") as f:
    original_score = f.read()
with open("score.py", "w") as f:
    f.write(original_score.replace("return model.predict(data).tolist()",
                                   "model.predict(data)\n    return 'hello from updated score.py'"))
local_service.reload()
print("after reload:", local_service.run(input_data=sample_input))

# Update the service to a new version of the model (and the original score.py)
with open("score.py", "w") as f:
    f.write(original_score)
joblib.dump(Ridge(alpha=1.0).fit(X, y), "sklearn_regression_model.pkl")
model2 = Model.register(model_path="sklearn_regression_model.pkl", model_name="sklearn_regression_model_local",
                        workspace=ws)
local_service.update(models=[model2], inference_config=inference_config)
local_service.wait_for_deployment()
print("after update:", json.dumps(local_service.run(input_data=sample_input)))
print("local prediction 2:", json.dumps(joblib.load("sklearn_regression_model.pkl").predict(X[:2]).tolist()))

# Delete the service
local_service.delete()

# A scikit-learn model registered with its framework deploys without a score.py (no-code
# deployment): requests are {"data": [...], "method": "predict"}
import sklearn
from azureml.core.resource_configuration import ResourceConfiguration

no_code_model = Model.register(workspace=ws, model_name="sklearn_regression_model_nocode",
                               model_path="sklearn_regression_model.pkl",
                               model_framework=Model.Framework.SCIKITLEARN,
                               model_framework_version=sklearn.__version__,
                               resource_configuration=ResourceConfiguration(cpu=1, memory_in_gb=0.5))
no_code = Model.deploy(ws, "no-code", [no_code_model], overwrite=True)
no_code.wait_for_deployment()
print("no-code:", json.dumps(no_code.run(json.dumps({"data": X[:2].tolist(), "method": "predict"}))))
no_code.delete()

from azureml.core.webservice import Webservice

print("services left:", [s.name for s in Webservice.list(ws)])
