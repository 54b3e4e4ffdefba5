"""Scores the diabetes model the way an Azure ML score.py does: init() loads it once from
AZUREML_MODEL_DIR, run() answers each request.

    atelier image create diabetes-svc --model diabetes:1 --entry-script score.py \
        --source-dir examples/sklearn-diabetes/serve \
        --requirements examples/sklearn-diabetes/serve/requirements.txt --wait

Request: {"data": [[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6], ...]} (the scaled features of
scikit-learn's diabetes data set); answer: one predicted disease progression per row.
"""
import json
import os
import pickle

import numpy as np

model = None


def init():
    global model
    # AZUREML_MODEL_DIR is the registered model's folder (its version's files: model.pkl).
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb") as f:
        model = pickle.load(f)


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"], dtype=float)
    if data.ndim != 2 or data.shape[1] != model.n_features_in_:
        return {"error": "data must be rows of %d features" % model.n_features_in_}
    return model.predict(data).tolist()
