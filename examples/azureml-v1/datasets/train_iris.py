# Reads its data as a v1 script does: the tabular dataset given as a named input, and a
# file dataset mounted at a path given in the arguments.
import argparse
import os

import joblib
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--input-data", type=str)
parser.add_argument("--data-folder", type=str, dest="data_folder")
parser.add_argument("--output-folder", type=str, dest="output_folder")
args = parser.parse_args()

run = Run.get_context()
df = run.input_datasets["iris"].to_pandas_dataframe()
print("rows:", len(df), "files mounted:", sorted(os.listdir(args.data_folder)))
X, y = df.drop(columns=["target"]), df["target"]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
clf = LogisticRegression(max_iter=500).fit(X_train, y_train)
run.log("accuracy", float(clf.score(X_test, y_test)))
os.makedirs("outputs", exist_ok=True)
joblib.dump(clf, "outputs/model.pkl")
with open(os.path.join(args.output_folder, "summary.txt"), "w") as f:
    f.write("rows=%d\n" % len(df))
