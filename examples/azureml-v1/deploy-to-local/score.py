# Scores the diabetes ridge regression: init() loads the registered model from
# AZUREML_MODEL_DIR, run() takes {"data": [[10 features], ...]} (checked and converted to a
# numpy array by inference_schema) and answers the predictions.
import os

import joblib
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    global model
    # One model deployed: AZUREML_MODEL_DIR is its folder, azureml-models/<name>/<version>.
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))


input_sample = np.array([[0.04, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]])
output_sample = np.array([152.1])


@input_schema("data", NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    return model.predict(data).tolist()
