"""ModelDataCollector inside a scoring image: appends what score.py collects to CSV files.

Rows go to $ATELIER_MODEL_DATA_DIR/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/data.csv,
Azure ML's layout below modeldata/<workspace>/<service>/ (the server adds that prefix when it
copies the files to the workspace's datastore). Without ATELIER_MODEL_DATA_DIR (model data
collection off) collect() records nothing, as in Azure ML when collection is disabled.
"""

import csv
import datetime
import io
import os
import threading
import uuid

_lock = threading.Lock()
# The runtime sets this to the request's x-ms-request-id before run(): the correlation id.
current_request_id = ""


def _rows(data):
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        return [list(r) for r in data.itertuples(index=False)], [str(c) for c in data.columns]
    if hasattr(data, "tolist"):  # numpy arrays
        data = data.tolist()
    if isinstance(data, dict):
        return [list(data.values())], [str(k) for k in data]
    if isinstance(data, (list, tuple)):
        if data and all(isinstance(r, dict) for r in data):
            cols = list(data[0])
            return [[r.get(c) for c in cols] for r in data], [str(c) for c in cols]
        if data and all(isinstance(r, (list, tuple)) or hasattr(r, "tolist") for r in data):
            return [list(r.tolist() if hasattr(r, "tolist") else r) for r in data], None
        return [[v] for v in data], None
    return [[data]], None


def _model_version(model_name):
    md = os.environ.get("AZUREML_MODEL_DIR", "")
    if md and os.path.basename(os.path.dirname(os.path.normpath(md))) == model_name:
        return os.path.basename(os.path.normpath(md))
    d = os.path.join(md, model_name)
    if md and os.path.isdir(d):
        versions = [int(n) for n in os.listdir(d) if n.isdigit()]
        if versions:
            return str(max(versions))
    return "default"


class ModelDataCollector:
    """Azure ML's ModelDataCollector(model_name, designation, feature_names, ...)."""

    def __init__(self, model_name, designation="default", feature_names=None, workspace="default/default/default",
                 webservice_name="default", model_version="default", identifier="default"):
        self.model_name = model_name
        self.designation = designation
        self.feature_names = list(feature_names) if feature_names else None
        self.model_version = str(model_version) if model_version not in (None, "default") else _model_version(model_name)
        self.identifier = identifier
        self.root = os.environ.get("ATELIER_MODEL_DATA_DIR", "")

    def collect(self, input_data, user_correlation_id=""):
        """Appends input_data (rows of a list, an array or a DataFrame; or one value) to today's CSV."""
        correlation = user_correlation_id or current_request_id or str(uuid.uuid4())
        if not self.root:
            return {"correlation_id": correlation}
        rows, cols = _rows(input_data)
        names = self.feature_names or cols
        width = max((len(r) for r in rows), default=0)
        if not names or len(names) != width:
            names = (names or [])[:width] + ["feature_%d" % i for i in range(len(names or []), width)]
        now = datetime.datetime.now(datetime.timezone.utc)
        d = os.path.join(self.root, self.model_name, self.model_version, self.designation,
                         "%04d" % now.year, "%02d" % now.month, "%02d" % now.day)
        path = os.path.join(d, "data.csv")
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        with _lock:
            os.makedirs(d, exist_ok=True)
            if not os.path.exists(path):
                w.writerow(["$aml_dc_correlation_id", "$aml_dc_scoring_timestamp", "$aml_dc_identifier"] + names)
            for r in rows:
                w.writerow([correlation, stamp, self.identifier] + list(r))
            with open(path, "a", encoding="utf-8", newline="") as f:
                f.write(buf.getvalue())
        return {"correlation_id": correlation}

    def add_correlations(self, input_data, correlations):
        return input_data
