# A training script as Azure ML v1 runs it: Run.get_context(), log, files in ./outputs.
import os

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

from azureml.core.run import Run

import mylib

os.makedirs("./outputs", exist_ok=True)

X, y = load_diabetes(return_X_y=True)
run = Run.get_context()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)

for alpha in mylib.get_alphas():
    reg = Ridge(alpha=alpha)
    reg.fit(X_train, y_train)
    preds = reg.predict(X_test)
    mse = mean_squared_error(preds, y_test)
    run.log("alpha", alpha)
    run.log("mse", mse)
    model_file_name = "ridge_{0:.2f}.pkl".format(alpha)
    with open(model_file_name, "wb") as f:
        joblib.dump(value=reg, filename=os.path.join("./outputs/", model_file_name))
    print("alpha is {0:.2f}, and mse is {1:0.2f}".format(alpha, mse))
