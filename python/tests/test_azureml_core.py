"""The azureml package (Azure ML v1's names over atelier, issue 24) against a real server."""

import glob
import json
import os
import tempfile
import textwrap

import pytest

import atelier
from azureml.core import (ComputeTarget, Dataset, Datastore, Environment, Experiment, Model, Run, RunConfiguration,
                          ScriptRunConfig, Workspace)
from azureml.core.compute import AmlCompute
from azureml.core.conda_dependencies import CondaDependencies
from azureml.data import OutputFileDatasetConfig
from azureml.exceptions import ComputeTargetException, UserErrorException, WorkspaceException


@pytest.fixture
def v1ws(server, tmp_path, monkeypatch):
    """A v1 Workspace from an Azure-style config.json (plus the server and token) in tmp_path."""
    url, token = server
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(json.dumps({
        "subscription_id": "00000000-sub", "resource_group": "rg", "workspace_name": "default",
        "server": url, "token": token}))
    for k in ("ATELIER_SERVER", "ATELIER_TOKEN", "ATELIER_WORKSPACE", "ATELIER_RUN_ID"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)
    return Workspace.from_config()


def test_workspace_from_azure_config(v1ws, server, tmp_path):
    assert v1ws.name == "default" and v1ws.server == server[0]
    assert (v1ws.subscription_id, v1ws.resource_group, v1ws.location) == ("00000000-sub", "rg", "atelier")
    assert "default" in v1ws.datastores and isinstance(v1ws.datastores["default"], Datastore)
    assert isinstance(v1ws.compute_targets["local"], ComputeTarget)
    assert isinstance(v1ws.get_default_datastore(), Datastore)
    d = v1ws.get_details()
    assert d["subscriptionId"] == "00000000-sub" and d["name"] == "default"
    # write_config writes Azure's keys and the server, never the token.
    assert v1ws.write_config(path=str(tmp_path / "out")) is None
    written = json.load(open(tmp_path / "out" / ".azureml" / "config.json"))
    assert written["workspace_name"] == "default" and "token" not in written


def test_workspace_that_does_not_exist_is_a_clear_error(v1ws, tmp_path):
    (tmp_path / "other").mkdir()
    cfg = json.load(open(tmp_path / ".azureml" / "config.json"))
    cfg["workspace_name"] = "no-such-ws"
    (tmp_path / "other" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WorkspaceException, match="no-such-ws.*does not exist.*Workspace.create"):
        Workspace.from_config(path=str(tmp_path / "other"))
    with pytest.raises(WorkspaceException, match="does not exist"):
        Workspace("sub", "rg", "no-such-ws")
    ws2 = Workspace.create("azureml-created", exist_ok=True, show_output=False)
    assert ws2.name == "azureml-created"
    assert Workspace.create("azureml-created", exist_ok=True, show_output=False).name == "azureml-created"
    assert "azureml-created" in Workspace.list()


def test_interactive_run_v1_api(v1ws, tmp_path):
    exp = Experiment(workspace=v1ws, name="azureml-interactive")
    run = exp.start_logging(snapshot_directory=None)
    assert isinstance(run, Run) and isinstance(run.experiment, Experiment)
    run.log("acc", 0.9)
    run.log("note", "text metric")
    run.log_confusion_matrix("cm", {"class_labels": ["a", "b"], "matrix": [[1, 0], [0, 1]]})
    (tmp_path / "f.txt").write_text("hello")
    props = run.upload_file("outputs/f.txt", str(tmp_path / "f.txt"))
    assert isinstance(props.serialize(), dict)
    child = run.child_run("c1")
    assert isinstance(child, Run)
    child.log("x", 1)
    child.complete()
    run.complete()
    m = run.get_metrics()
    assert m["acc"] == 0.9 and m["note"] == "text metric"
    assert json.loads(m["cm"])["schema_type"] == "confusion_matrix"
    kids = run.get_children()
    assert [type(k) for k in kids] == [Run] and kids[0].parent.id == run.id
    model = run.register_model("azureml-model", "outputs/f.txt", tags={"k": "v"})
    assert isinstance(model, Model) and model.version >= 1 and model.url.startswith("aml://")
    got = Model(v1ws, "azureml-model")
    assert got.version == model.version
    assert [type(r) for r in exp.get_runs()] and all(isinstance(r, Run) for r in exp.get_runs())
    details = run.get_details()
    assert details["runId"] == run.id and details["status"] == "Completed"
    assert isinstance(v1ws.experiments["azureml-interactive"], Experiment)
    # get_model_path outside a deployment downloads into ./azureml-models/<name>/<version>.
    p = Model.get_model_path("azureml-model", _workspace=v1ws)
    assert p.endswith(os.path.join("azureml-models", "azureml-model", str(model.version), "f.txt"))
    assert open(p).read() == "hello"


def test_get_model_path_in_a_deployment(tmp_path, monkeypatch):
    d = tmp_path / "azureml-models" / "m" / "2"
    d.mkdir(parents=True)
    (d / "model.pkl").write_text("x")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path / "azureml-models" / "m" / "2"))
    assert Model.get_model_path("m") == str(d / "model.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path / "azureml-models"))
    assert Model.get_model_path("m") == str(d / "model.pkl")
    assert Model.get_model_path("m", version=2) == str(d / "model.pkl")


def test_offline_run_context(monkeypatch, capsys):
    monkeypatch.delenv("ATELIER_RUN_ID", raising=False)
    run = Run.get_context()
    run.log("a", 1)
    run.log_confusion_matrix("cm", {"class_labels": [0], "matrix": [[1]]})
    assert run.get_metrics()["a"] == 1
    assert run.upload_file("x", __file__).serialize() == {"path": "x"}


def test_compute_targets(v1ws):
    assert ComputeTarget(v1ws, "local").name == "local"
    with pytest.raises(ComputeTargetException, match="not found"):
        ComputeTarget(workspace=v1ws, name="cpu-cluster")
    cfg = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=4)
    with pytest.raises(NotImplementedError, match="provisions no cloud compute.*RemoteCompute"):
        ComputeTarget.create(v1ws, "cpu-cluster", cfg)


def test_conda_dependencies_map_to_pip(tmp_path):
    cd = CondaDependencies.create(pip_packages=["requests==2.0"], conda_packages=["pip"], python_version="3.8")
    env = Environment("e")
    env.python.conda_dependencies = cd
    out = env._atelier(str(tmp_path))
    assert "conda" not in out
    assert open(out["requirements"]).read() == "requests==2.0\n"  # azureml-defaults left out
    cd.add_conda_package("scikit-learn")
    out = env._atelier(str(tmp_path))
    assert "requirements" not in out and "scikit-learn" in open(out["conda"]).read()
    env.python.user_managed_dependencies = True
    assert env._atelier(str(tmp_path)) == {"variables": {}}
    # an environment.yml parses back
    p = cd.save(str(tmp_path / "env.yml"))
    cd2 = CondaDependencies(p)
    assert list(cd2.pip_packages) == list(cd.pip_packages) and list(cd2.conda_packages) == list(cd.conda_packages)


def test_environment_registry(v1ws):
    env = Environment("v1-test-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six"])
    r1 = env.register(v1ws)
    assert r1.version == "1"
    assert env.register(v1ws).version == "1"  # unchanged: same version
    env.python.conda_dependencies.add_pip_package("attrs")
    assert env.register(v1ws).version == "2"
    got = Environment.get(v1ws, "v1-test-env")
    assert got.version == "2" and "attrs" in list(got.python.conda_dependencies.pip_packages)
    assert Environment.get(v1ws, "v1-test-env", version="1").version == "1"
    assert "v1-test-env" in v1ws.environments
    with pytest.raises(UserErrorException, match="reserved"):
        Environment("AzureML-Minimal").register(v1ws)
    with pytest.warns(UserWarning, match="curated"):
        cur = Environment.get(v1ws, "AzureML-Tutorial")
    assert cur.python.user_managed_dependencies
    with pytest.raises(UserErrorException, match="no environment"):
        Environment.get(v1ws, "nope")


def test_submit_script_run_config_with_run_configuration(v1ws, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent("""
        import sys
        from azureml.core import Run
        run = Run.get_context()
        run.log("alpha", float(sys.argv[2]))
        run.log("kind", type(run).__module__)
        print("hello from", run.id)
    """))
    rc = RunConfiguration()
    rc.environment.python.user_managed_dependencies = True
    exp = Experiment(v1ws, "azureml-submit")
    staged = set(glob.glob(os.path.join(tempfile.gettempdir(), "azureml-submit-*")))
    run = exp.submit(ScriptRunConfig(source_directory=str(src), script="train.py", arguments=["--alpha", 0.5],
                                     run_config=rc))
    # What submit staged for the snapshot is gone once it is uploaded.
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "azureml-submit-*"))) == staged
    assert isinstance(run, Run)
    details = run.wait_for_completion(show_output=True)
    assert details["status"] == "Completed"
    assert run.get_metrics() == {"alpha": 0.5, "kind": "azureml.core.run"}
    rd = run.get_details()["runDefinition"]
    assert rd["script"] == "train.py" and rd["arguments"] == ["--alpha", "0.5"] and rd["target"] == "local"


def test_datasets_and_data_in_a_run(v1ws, tmp_path):
    data = tmp_path / "data"
    (data / "iris").mkdir(parents=True)
    (data / "iris" / "a.csv").write_text("x,y\n1,2\n3,4\n")
    (data / "iris" / "b.csv").write_text("x,y\n5,6\n")
    (data / "iris" / "notes.txt").write_text("n")
    ds = v1ws.get_default_datastore()
    ds.upload(src_dir=str(data), target_path="azureml-test", overwrite=True, show_progress=False)
    files = Dataset.File.from_files(path=(ds, "azureml-test/iris/*.csv"))
    assert sorted(files.to_path()) == ["/a.csv", "/b.csv"]
    got = files.download(target_path=str(tmp_path / "dl"))
    assert sorted(os.path.basename(p) for p in got) == ["a.csv", "b.csv"]
    reg = files.register(v1ws, "azureml-iris-files", description="iris")
    assert reg.version == 1
    with pytest.raises(UserErrorException, match="create_new_version"):
        Dataset.File.from_files(path=(ds, "azureml-test/iris/")).register(v1ws, "azureml-iris-files")
    assert Dataset.File.from_files(path=(ds, "azureml-test/iris/")).register(
        v1ws, "azureml-iris-files", create_new_version=True).version == 2
    assert Dataset.get_by_name(v1ws, "azureml-iris-files", version=1).to_path() == ["/a.csv", "/b.csv"]
    assert "azureml-iris-files" in v1ws.datasets
    with Dataset.get_by_name(v1ws, "azureml-iris-files").mount() as m:
        assert sorted(os.listdir(m.mount_point)) == ["a.csv", "b.csv", "notes.txt"]
    with pytest.raises(Exception, match="matches no file"):
        Dataset.File.from_files(path=(ds, "azureml-test/missing/*.csv"))

    # A run gets the dataset, a datastore path and an output folder through its arguments.
    src = tmp_path / "src"
    src.mkdir()
    (src / "use.py").write_text(textwrap.dedent("""
        import argparse, os
        from azureml.core import Run
        p = argparse.ArgumentParser()
        p.add_argument("--data"); p.add_argument("--ref"); p.add_argument("--out")
        a = p.parse_args()
        run = Run.get_context()
        run.log("n_data", len(os.listdir(a.data)))
        run.log("ref_is_dir", str(os.path.isdir(a.ref)))
        run.log("input_path_same", str(run.input_datasets["iris"] == a.data))
        with open(os.path.join(a.out, "result.txt"), "w") as f:
            f.write("done")
        # A script registers a dataset with its run's token: the version names the run.
        from azureml.core import Dataset
        ws = run.experiment.workspace
        d = Dataset.File.from_files(path=(ws.get_default_datastore(), "azureml-test/iris/*.csv")).register(
            ws, "azureml-in-run", create_new_version=True)
        run.log("registered_in_run", d.name)
    """))
    out = OutputFileDatasetConfig(name="result", destination=(ds, "azureml-test/out")).register_on_complete(
        "azureml-result", tags={"from": "run"})
    cfg = ScriptRunConfig(source_directory=str(src), script="use.py",
                          arguments=["--data", reg.as_named_input("iris").as_mount(),
                                     "--ref", ds.path("azureml-test/iris").as_download(), "--out", out])
    run = Experiment(v1ws, "azureml-data").submit(cfg)
    run.wait_for_completion(show_output=True)
    m = run.get_metrics()
    assert m == {"n_data": 2, "ref_is_dir": "True", "input_path_same": "True", "registered_in_run": "azureml-in-run"}
    assert [f["path"] for f in ds.list_files("azureml-test/out/")] == ["azureml-test/out/result.txt"]
    assert run.get_details()["runDefinition"]["script"] == "use.py"
    result = Dataset.get_by_name(v1ws, "azureml-result")
    assert result.to_path() == ["/result.txt"] and result.tags == {"from": "run"}
    # Both datasets the run produced record it (lineage): the one its script registered and
    # the output registered on completion.
    for name in ("azureml-in-run", "azureml-result"):
        got = v1ws._client.request("GET", "/api/v1/workspaces/default/datasets/%s/versions/latest" % name)
        assert got.get("run_id") == run.id, (name, got)


def test_register_model_by_its_mlflow_path(v1ws, tmp_path):
    # MLflow's artifacts are the run's outputs/: v1 samples register "model/model.pkl".
    run = Experiment(v1ws, "azureml-mlflow-path").start_logging(snapshot_directory=None)
    (tmp_path / "model.pkl").write_text("m")
    run.upload_file("outputs/model/model.pkl", str(tmp_path / "model.pkl"))
    run.complete()
    m = run.register_model("azureml-mlflow-model", model_path="model/model.pkl")
    assert [f["path"] for f in m.files] == ["model.pkl"]
    with pytest.raises(atelier.AtelierError) as e:
        run.register_model("azureml-mlflow-model", model_path="nope/model.pkl")
    assert e.value.status == 404


def test_estimator(v1ws, tmp_path):
    from azureml.train.estimator import Estimator
    from azureml.train.sklearn import SKLearn
    (tmp_path / "train.py").write_text(textwrap.dedent("""
        import sys
        from azureml.core.run import Run
        Run.get_context().log("args", " ".join(sys.argv[1:]))
    """))
    est = Estimator(source_directory=str(tmp_path), entry_script="train.py", compute_target="local",
                    script_params={"--alpha": 0.5, "--flag": ""}, user_managed=True)
    assert est.arguments == ["--alpha", 0.5, "--flag"]
    run = Experiment(v1ws, "azureml-estimator").submit(est)
    run.wait_for_completion()
    assert run.get_metrics() == {"args": "--alpha 0.5 --flag"}
    sk = SKLearn(source_directory=str(tmp_path), entry_script="train.py", pip_packages=["six"])
    assert open(sk.environment._atelier(str(tmp_path))["requirements"]).read() == "six\n"


def test_v1_features_atelier_lacks_say_so(v1ws):
    from azureml.core.webservice import AciWebservice
    from azureml.train.hyperdrive import HyperDriveConfig, RandomParameterSampling, choice
    sampling = RandomParameterSampling({"--alpha": choice(0.1, 0.5)})
    assert sampling.sample()["--alpha"] in (0.1, 0.5)
    with pytest.raises(NotImplementedError, match="HyperDrive.*child run"):
        Experiment(v1ws, "azureml-hd").submit(HyperDriveConfig(hyperparameter_sampling=sampling))
    assert AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1) is not None  # the SDK's web services
    assert isinstance(v1ws.webservices, dict)
    with pytest.raises(NotImplementedError, match="datastores are"):
        Datastore.register_azure_file_share(v1ws, "share", "share", "acct")
    from azureml.core.runconfig import TensorflowConfiguration  # (PyTorch and MPI run on slurm targets)
    with pytest.raises(NotImplementedError, match="on slurm targets"):
        TensorflowConfiguration(worker_count=2)
    with pytest.raises(NotImplementedError, match="upload the files"):
        Dataset.Tabular.from_delimited_files("https://example.invalid/iris.csv")


def test_dataset_whose_files_are_gone(v1ws, tmp_path):
    ds = v1ws.get_default_datastore()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.csv").write_text("a\n1\n")
    ds.upload(str(tmp_path / "d"), target_path="azureml-gone", overwrite=True, show_progress=False)
    reg = Dataset.File.from_files((ds, "azureml-gone/x.csv")).register(v1ws, "azureml-gone")
    assert reg.to_path() == ["/x.csv"]
    ds.delete_files("azureml-gone", recursive=True)
    with pytest.raises(Exception, match="azureml-gone/x.csv matches no file"):
        Dataset.get_by_name(v1ws, "azureml-gone").download(str(tmp_path / "out"))


def test_workspace_mlflow_tracking_uri(v1ws, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    assert v1ws.get_mlflow_tracking_uri() == v1ws.server
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == v1ws._client.token


def test_remote_compute_attach_configuration(tmp_path):
    from azureml.core.compute import RemoteCompute
    key = tmp_path / "id"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n")
    cfg = RemoteCompute.attach_configuration(address="10.0.0.7", ssh_port=2222, username="ml",
                                             private_key_file=str(key))
    assert cfg._spec("vm")["ssh"] == {"host": "10.0.0.7", "port": 2222, "user": "ml"}
    assert "ssh_private_key" in cfg._spec("vm")["credentials"]
    with pytest.raises(ComputeTargetException, match="key, not a password"):
        RemoteCompute.attach_configuration(address="h", username="u", password="p")


def test_inference_config_takes_a_v1_environment():
    from azureml.core.model import InferenceConfig
    env = Environment("serve")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["joblib"])
    ic = InferenceConfig(entry_script="score.py", environment=env)
    assert open(ic.requirements_file).read() == "joblib\n" and isinstance(ic, atelier.InferenceConfig)


def test_inference_config_leaves_out_azureml_packages(tmp_path):
    # azureml-defaults and the inference server are the scoring runtime's: an image does not get them.
    from azureml.core.model import InferenceConfig
    req = tmp_path / "requirements.txt"
    req.write_text("azureml-defaults==1.44\nscikit-learn\nazureml-inference-server-http\n# pinned\nnumpy\n")
    ic = InferenceConfig(entry_script="score.py", environment=Environment.from_pip_requirements("serve", str(req)))
    assert open(ic.requirements_file).read() == (
        "# not installed, provided by atelier's scoring runtime: azureml-defaults==1.44, azureml-inference-server-http\n"
        "scikit-learn\n# pinned\nnumpy\n")
    # Without a source_directory the image holds the entry script alone, not its folder.
    (tmp_path / "score.py").write_text("def init():\n    pass\n\n\ndef run(raw):\n    return raw\n")
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text("{}")
    ic = InferenceConfig(entry_script=str(tmp_path / "score.py"))
    src, entry, _, _, _ = ic._resolve()
    assert entry == "score.py" and sorted(os.listdir(src)) == ["score.py"]


def test_submit_to_a_target_that_does_not_exist(v1ws, tmp_path):
    (tmp_path / "t.py").write_text("print(1)\n")
    cfg = ScriptRunConfig(source_directory=str(tmp_path), script="t.py", compute_target="cpu-cluster")
    with pytest.raises(atelier.AtelierError, match="cpu-cluster") as e:
        Experiment(v1ws, "azureml-no-target").submit(cfg)
    assert 400 <= e.value.status < 500


def test_pipelines_and_automl_are_refused_naming_the_alternative():
    from azureml.pipeline.core import Pipeline, PipelineData
    from azureml.pipeline.steps import PythonScriptStep
    from azureml.train.automl import AutoMLConfig
    for cls in (Pipeline, PipelineData, PythonScriptStep):
        with pytest.raises(NotImplementedError, match="no pipelines yet.*ScriptRunConfig"):
            cls("x")
    with pytest.raises(NotImplementedError, match="child run"):
        AutoMLConfig(task="classification")


def test_a_submitted_script_reads_datasets_and_models(v1ws, tmp_path):
    ds = v1ws.get_default_datastore()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a")
    ds.upload(str(tmp_path / "d"), target_path="azureml-in-run", overwrite=True, show_progress=False)
    Dataset.File.from_files((ds, "azureml-in-run/")).register(v1ws, "azureml-in-run", create_new_version=True)
    Model.register(v1ws, str(tmp_path / "d" / "a.txt"), "azureml-in-run-model")
    src = tmp_path / "src"
    src.mkdir()
    (src / "s.py").write_text(textwrap.dedent("""
        from azureml.core import Dataset, Run, Workspace
        from azureml.core.model import Model
        run = Run.get_context()
        ws = run.experiment.workspace
        run.log("files", " ".join(Dataset.get_by_name(ws, "azureml-in-run").to_path()))
        run.log("model", open(Model.get_model_path("azureml-in-run-model")).read())
        run.log("same_ws", str(Workspace.from_config().name == ws.name))
    """))
    run = Experiment(v1ws, "azureml-in-run").submit(ScriptRunConfig(str(src), "s.py"))
    run.wait_for_completion(show_output=True)
    assert run.get_metrics() == {"files": "/a.txt", "model": "a", "same_ws": "True"}


def test_registered_and_inline_environments_share_the_cache(v1ws, tmp_path):
    (tmp_path / "s.py").write_text("import six\nprint('six', six.__version__)\n")

    def env(name):
        e = Environment(name)
        e.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
        return e

    env("shared-env").register(v1ws)
    exp = Experiment(v1ws, "azureml-env-cache")
    first = exp.submit(ScriptRunConfig(str(tmp_path), "s.py", environment=Environment.get(v1ws, "shared-env")))
    details = first.wait_for_completion(raise_on_error=False)
    if details["status"] != "Completed":
        pytest.skip("cannot install six from PyPI here: %s" % (details.get("error"), ))
    second = exp.submit(ScriptRunConfig(str(tmp_path), "s.py", environment=env("inline-env")))
    second.wait_for_completion()
    names = second.get_file_names()
    prep = [n for n in names if "prepare" in n]
    assert prep, names
    tmp = tmp_path / "prep.txt"
    second.download_file(prep[0], str(tmp))
    assert "reusing environment" in tmp.read_text()


def test_keyvault_secrets_reach_a_run_and_run_details_show(v1ws, tmp_path, capsys):
    from azureml.widgets import RunDetails
    kv = v1ws.get_default_keyvault()
    kv.set_secret(name="AZUREML_TEST_SECRET", value="s3cret")
    assert {"name": "AZUREML_TEST_SECRET"} in kv.list_secrets()
    with pytest.raises(NotImplementedError, match="write-only"):
        kv.get_secret("AZUREML_TEST_SECRET")
    (tmp_path / "s.py").write_text(textwrap.dedent("""
        from azureml.core import Run
        run = Run.get_context()
        run.log("secret_ok", str(run.get_secret("AZUREML_TEST_SECRET") == "s3cret"))
        run.log("vault_ok", str(run.experiment.workspace.get_default_keyvault().get_secret("AZUREML_TEST_SECRET") == "s3cret"))
    """))
    rc = RunConfiguration()
    rc.secrets = ["AZUREML_TEST_SECRET"]
    run = Experiment(v1ws, "azureml-secrets").submit(ScriptRunConfig(str(tmp_path), "s.py", run_config=rc))
    run.wait_for_completion()
    assert run.get_metrics() == {"secret_ok": "True", "vault_ok": "True"}
    capsys.readouterr()
    RunDetails(run).show()
    out = capsys.readouterr().out
    assert run.id in out and "Completed" in out and "secret_ok: True" in out


def test_merges_with_the_scoring_runtimes_stand_ins(tmp_path):
    # The SDK's azureml and the scoring runtime's (oci/build/runtime/compat) on one path: a
    # score.py finds both packages' modules, and the same model path from either.
    import subprocess
    import sys
    from conftest import PY_DIR, REPO_ROOT
    compat = os.path.join(REPO_ROOT, "oci", "build", "runtime", "compat")
    if not os.path.isdir(os.path.join(compat, "azureml")):
        pytest.skip("no scoring runtime stand-ins in this checkout")
    d = tmp_path / "azureml-models" / "m" / "3"
    d.mkdir(parents=True)
    (d / "model.pkl").write_text("x")
    code = textwrap.dedent("""
        import azureml.contrib.services, azureml.monitoring
        from azureml.core.model import Model
        from azureml.core import Workspace
        print(Model.get_model_path("m"))
    """)
    env = dict(os.environ, PYTHONPATH=PY_DIR + os.pathsep + compat, AZUREML_MODEL_DIR=str(d))
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(d / "model.pkl")
