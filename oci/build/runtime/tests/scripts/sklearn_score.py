# Azure ML's scikit-learn sample score.py (deploy-to-cloud / sklearn_regression_model): the model
# is found with Model.get_model_path, loaded with joblib, and scores {"data": [[...], ...]}.
import json

import joblib
import numpy as np
from azureml.core.model import Model
from azureml.monitoring import ModelDataCollector


def init():
    global model, inputs_dc, prediction_dc
    model_path = Model.get_model_path('sklearn_regression_model')
    model = joblib.load(model_path)
    inputs_dc = ModelDataCollector("sklearn_regression_model", designation="inputs",
                                   feature_names=["f%d" % i for i in range(10)])
    prediction_dc = ModelDataCollector("sklearn_regression_model", designation="predictions",
                                       feature_names=["prediction"])


def run(raw_data):
    data = json.loads(raw_data)["data"]
    data = np.array(data)
    inputs_dc.collect(data)
    result = model.predict(data)
    prediction_dc.collect(result)
    # You can return any data type, as long as it is JSON serializable.
    return result.tolist()
