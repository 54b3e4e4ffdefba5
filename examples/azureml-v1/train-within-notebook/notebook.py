# Training inside the notebook's process: start_logging, ./outputs uploaded on complete(),
# the model registered from the run and loaded back with Model.get_model_path.
import os

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

from azureml.core import Experiment, Workspace
from azureml.core.model import Model

ws = Workspace.from_config()
experiment = Experiment(workspace=ws, name="train-within-notebook")

X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)

run = experiment.start_logging()
run.log("alpha_value", 0.1)
regression_model = Ridge(alpha=0.1)
regression_model.fit(X_train, y_train)
preds = regression_model.predict(X_test)
error = mean_squared_error(preds, y_test)
run.log("error", error)
os.makedirs("outputs", exist_ok=True)
joblib.dump(value=regression_model, filename="outputs/model.pkl")
run.complete()
print("Run", run.id, run.get_status(), run.get_metrics())

# Register the model the run uploaded from ./outputs.
model = run.register_model(model_name="diabetes-ridge", model_path="outputs/model.pkl",
                           tags={"area": "diabetes", "type": "regression"})
print(model.name, model.id, model.version, sep="\t")

for m in Model.list(ws, name="diabetes-ridge"):
    print("Name:", m.name, "\tVersion:", m.version, "\tTags:", m.tags)

path = Model.get_model_path("diabetes-ridge", _workspace=ws)
loaded = joblib.load(path)
print("reloaded prediction:", float(loaded.predict(X_test[:1])[0]))
