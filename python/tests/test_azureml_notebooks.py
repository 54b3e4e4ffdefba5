"""Azure ML v1's own sample notebooks (Azure/MachineLearningNotebooks), run unchanged against a
real server: their code cells become one script (line magics dropped, %%writefile cells write
their files, a cell's last expression is printed as Jupyter shows it), run from a copy of the
notebook's folder with a config.json. Only data a notebook downloads from the internet is
replaced (ADAPTATIONS says what). The notebooks are not part of this repository: these tests run
when AZUREML_NOTEBOOKS_DIR names a checkout of it, and skip otherwise.

Two opt-ins let notebooks written for Azure's cloud run here: ATELIER_AZURE_COMPUTE=local (an
AmlCompute cluster becomes a local queue) and ATELIER_CONDA_AS_PIP=1 (conda packages are
installed with pip), both documented in docs/azureml-v1.md.
"""

import ast
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import PY_DIR
from test_azureml_samples import CACHE, needs_serving, sample_server, venv  # noqa: F401 (fixtures)

NOTEBOOKS = os.environ.get("AZUREML_NOTEBOOKS_DIR")

DEPLOY_LOCAL = "how-to-use-azureml/deployment/deploy-to-local/register-model-deploy-local.ipynb"

# notebook → [(text in the generated script, its replacement)]: data from the internet only.
ADAPTATIONS = {
    "tutorials/create-first-ml-experiment/tutorial-1st-experiment-sdk-train.ipynb": [
        # azureml.opendatasets downloads the diabetes data; scikit-learn ships the same table.
        ("from azureml.opendatasets import Diabetes\n", "from sklearn.datasets import load_diabetes\n"),
        ('x_df = Diabetes.get_tabular_dataset().to_pandas_dataframe().dropna()\ny_df = x_df.pop("Y")',
         'x_df = load_diabetes(as_frame=True).frame.dropna()\ny_df = x_df.pop("target")'),
    ],
}

CASES = [
    ("how-to-use-azureml/training/train-on-local/train-on-local.ipynb",
     ["SDK version: 1.60.0", "alpha is 0.95, and mse is", "Docker engine is not installed.",
      "When alpha is", " --> Name: best_ridge_model"]),
    ("how-to-use-azureml/work-with-data/datasets-tutorial/train-with-datasets/train-with-datasets.ipynb",
     ["SDK version: 1.60.0", "'mse': [", "When alpha is"]),
    ("tutorials/create-first-ml-experiment/tutorial-1st-experiment-sdk-train.ipynb",
     ["Best run_id: ", "model_alpha_0.1.pkl"]),
    ("how-to-use-azureml/track-and-monitor-experiments/logging-api/logging-api.ipynb",
     ["'Category': 'Red'", "'Magic Number': 84", "{'scale factor': 2", "'Competition Rank': '1'"]),
    ("how-to-use-azureml/track-and-monitor-experiments/manage-runs/manage-runs.ipynb",
     ["Is it still running? Running", "Has it completed? Completed", "'author': 'azureml-user'",
      "'quality': 'fantastic run'", "Did the run cancel?"]),
    ("how-to-use-azureml/work-with-data/datasets-tutorial/scriptrun-with-data-input-output/how-to-use-scriptrun.ipynb",
     ["compute target", "Hello Azure ML!", "Status: Completed"]),
    ("configuration.ipynb",
     ["You are currently using version 1.60.0", "Workspace not accessible",
      "Deployed Workspace with name azureml-configured.", "Creating new cpu-cluster",
      "gpu-cluster"]),
    ("how-to-use-azureml/training/train-on-amlcompute/train-on-amlcompute.ipynb",
     ["SDK version: 1.60.0", "'mse': [", "'nodeId': 'cpu-cluster'"]),
    # Removed from the repository in 1.56.0 (2024): its last version, from the checkout's history.
    # Model.deploy with LocalWebservice, port, get_logs, run, a rewritten score.py and reload(),
    # update(), then an AksCompute (a local queue here) and deploy_to_cloud to it.
    (DEPLOY_LOCAL + "@3228bbfc63d0c7652c06c9cc240b77117eb9d5a7",
     ["SDK version: 1.60.0", "state=Healthy", "Local service port: ", "service healthy: serving test-image:",
      "[182.67335420683418, 90.99860655841785]",
      "'Hello from the updated score.py: [182.67335420683418, 90.99860655841785]'",
      "my-aks-9: Succeeded", "aks-service-1 Healthy"]),
    # Removed in 2023; its 2022 version (the 2023 one pins numpy==1.23, which current
    # scikit-learn refuses): a no-code deployment of a scikit-learn model, one with score.py and
    # an environment on AciWebservice, then Model.profile over a dataset of requests.
    ("how-to-use-azureml/deployment/deploy-to-cloud/model-register-and-deploy.ipynb"
     "@3228bbfc63d0c7652c06c9cc240b77117eb9d5a7",
     ["Name: my-sklearn-model", "Version: 1", "service healthy: serving my-sklearn-service-image:",
      "service healthy: serving my-custom-env-service-image:", "[182.67335420683418, 90.99860655841785]",
      ": Succeeded"]),
]

# What a notebook reads from its environment, as its text tells the user to set it.
NOTEBOOK_ENV = {"configuration.ipynb": {"SUBSCRIPTION_ID": "sub", "RESOURCE_GROUP": "rg",
                                        "WORKSPACE_NAME": "azureml-configured"}}

# Notebooks that need MLflow run in the MLflow suite's cached virtualenv (mlflow/tests).
MLFLOW = {"how-to-use-azureml/track-and-monitor-experiments/using-mlflow/train-local/train-local.ipynb":
          ["SDK version: 1.60.0", "Mean Squared Error is", "Experiment(Name: LocalTrain-with-mlflow-sample"]}

# Notebooks that do not run here, and the line that says why.
FAILS = {
    # Pins scikit-learn==0.22.1 and pillow==6.2.1, which do not install on this Python.
    "how-to-use-azureml/training/using-environments/using-environments.ipynb":
        "pip install -r .atelier/requirements-myenv.txt failed",
    # Its 2020 version (Model.profile, myenv.yml, a pickled model): the profile's environment pins
    # scikit-learn==0.19.1, which has no wheel for this Python (the profile fails saying so, then
    # Model.deploy's build); its score.py's `from sklearn.externals import joblib` would fail next.
    DEPLOY_LOCAL + "@11e8ed2bab9c837ee915327476d23527fc81def6":
        "No matching distribution found for scikit-learn==0.19.1",
}


def _ids(names):
    return [os.path.basename(n).replace(".ipynb@", "@")[:60] for n in names]


def _display(src):
    """The cell's last expression printed, as Jupyter displays it."""
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return src
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1]
        lines = src.splitlines()
        start, end = last.lineno - 1, last.end_lineno
        expr = "\n".join(lines[start:end])
        lines[start:end] = ["__v = (%s)" % expr, "if __v is not None: print(repr(__v))"]
        return "\n".join(lines)
    return src


def notebook_script(path):
    cells = json.load(open(path, encoding="utf-8"))["cells"]
    out = []
    for c in cells:
        if c["cell_type"] != "code":
            continue
        src = "".join(c["source"])
        first, _, rest = src.partition("\n")
        if first.startswith("%%writefile"):
            target = first.split(None, 1)[1].strip()
            target = re.sub(r"\$(\w+)", r"{\1}", target)
            out.append("with open(f%r, 'w') as __f:\n    __f.write(%r)\n" % (target, rest))
            continue
        if first.startswith(("%%time", "%%capture")):  # cell magics that only watch the cell run
            src = rest
        elif first.startswith("%%"):
            continue
        src = "\n".join("pass" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines())
        out.append(_display(src) + "\n")
    return "\n".join(out)


@pytest.mark.skipif(not NOTEBOOKS, reason="AZUREML_NOTEBOOKS_DIR (a checkout of Azure/MachineLearningNotebooks) is not set")
@pytest.mark.parametrize("notebook,expected", CASES, ids=_ids(c[0] for c in CASES))
def test_notebook(notebook, expected, venv, sample_server, tmp_path):  # noqa: F811
    out = run_notebook(notebook, venv, sample_server, tmp_path)
    assert out.returncode == 0, "%s failed:\n%s\n%s" % (notebook, out.stdout[-8000:], out.stderr[-8000:])
    for e in expected:
        assert e in out.stdout, "%r not in the output:\n%s" % (e, out.stdout[-8000:])


@pytest.mark.skipif(not NOTEBOOKS, reason="AZUREML_NOTEBOOKS_DIR (a checkout of Azure/MachineLearningNotebooks) is not set")
@pytest.mark.parametrize("notebook", sorted(FAILS), ids=_ids(sorted(FAILS)))
def test_notebook_that_fails(notebook, venv, sample_server, tmp_path):  # noqa: F811
    out = run_notebook(notebook, venv, sample_server, tmp_path)
    assert out.returncode != 0 and FAILS[notebook] in out.stderr, out.stderr[-8000:]


@pytest.mark.skipif(not NOTEBOOKS, reason="AZUREML_NOTEBOOKS_DIR (a checkout of Azure/MachineLearningNotebooks) is not set")
@pytest.mark.parametrize("notebook", sorted(MLFLOW), ids=[os.path.basename(n) for n in sorted(MLFLOW)])
def test_mlflow_notebook(notebook, sample_server, tmp_path):  # noqa: F811
    import glob
    pys = glob.glob(os.path.join(CACHE, "mlflow-venv-*", "bin", "python"))
    if not pys:
        pytest.skip("no cached MLflow virtualenv (the mlflow/tests suite makes it)")
    out = run_notebook(notebook, (pys[0], None), sample_server, tmp_path)
    assert out.returncode == 0, "%s failed:\n%s\n%s" % (notebook, out.stdout[-8000:], out.stderr[-8000:])
    for e in MLFLOW[notebook]:
        assert e in out.stdout, "%r not in the output:\n%s" % (e, out.stdout[-8000:])


def _checkout(notebook, work):
    """Copies the notebook's folder to work; "path@commit" takes it from that commit of the
    checkout's history (notebooks Azure has since removed). Skips when it is not there."""
    path, _, commit = notebook.partition("@")
    if not commit:
        src = os.path.join(NOTEBOOKS, path)
        if not os.path.exists(src):
            pytest.skip("%s is not in %s" % (path, NOTEBOOKS))
        shutil.copytree(os.path.dirname(src), str(work))
        return os.path.join(str(work), os.path.basename(path))
    folder = os.path.dirname(path)
    archive = subprocess.run(["git", "-C", NOTEBOOKS, "archive", commit, folder], capture_output=True)
    if archive.returncode != 0:
        pytest.skip("%s at %s is not in the history of %s: %s" % (path, commit[:8], NOTEBOOKS,
                                                                   archive.stderr.decode(errors="replace").strip()))
    tmp = str(work) + ".tree"
    os.makedirs(tmp)
    subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
    shutil.move(os.path.join(tmp, folder), str(work))
    return os.path.join(str(work), os.path.basename(path))


def run_notebook(notebook, venv, sample_server, tmp_path):  # noqa: F811
    py, _ = venv
    if "/deployment/" in notebook:
        needs_serving()  # the server builds images and serves them
    work = tmp_path / "nb"
    src = _checkout(notebook, work)
    script = notebook_script(src)
    for old, new in ADAPTATIONS.get(notebook, []):
        assert old in script, "adaptation no longer applies: %r" % old
        script = script.replace(old, new)
    (work / "notebook_as_script.py").write_text(script)
    (work / "outputs").mkdir(exist_ok=True)
    (work / "config.json").write_text(json.dumps({
        "subscription_id": "sub", "resource_group": "rg", "workspace_name": "default",
        "server": sample_server.url, "token": sample_server.token}))
    # This machine has no Docker engine: a docker that says so, whether or not a client is here.
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "docker").write_text("#!/bin/sh\necho 'no Docker engine here' >&2\nexit 127\n")
    (shim / "docker").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    env.update({"PATH": str(shim) + os.pathsep + os.environ.get("PATH", ""), "PYTHONPATH": PY_DIR, "MPLBACKEND": "Agg", "ATELIER_AZURE_COMPUTE": "local",
                "ATELIER_CONDA_AS_PIP": "1"})
    env.update(NOTEBOOK_ENV.get(notebook, {}))
    return subprocess.run([py, "notebook_as_script.py"], cwd=str(work), env=env, capture_output=True, text=True,
                          timeout=1200)
