# A plain Azure ML score.py (no model files): run() gets the request body as a string.
import json
import os

state = {}


def init():
    state["model_dir"] = os.getenv("AZUREML_MODEL_DIR")
    state["inits"] = state.get("inits", 0) + 1


def run(raw_data):
    data = json.loads(raw_data)
    if data.get("fail"):
        raise ValueError("asked to fail: %s" % data["fail"])
    if data.get("set"):
        return set(data["set"])  # not JSON-serializable
    if "big" in data:
        return ["x" * 1000] * data["big"]
    if "text" in data:
        return data["text"]  # a str result: JSON-encoded again, as Microsoft's server does
    if "bytes" in data:
        return data["bytes"].encode("utf-8")
    return {"data": data.get("data"), "doubled": [2 * x for x in data.get("data", [])], "inits": state["inits"]}
