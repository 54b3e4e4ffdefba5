"""Issue 24: datasets are the server's (versioned, registered, with lineage to runs), read and
written through Azure ML v1's names and the `atelier dataset` CLI."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import atelier
from azureml.core import Dataset, Experiment, Run, ScriptRunConfig, Workspace
from azureml.exceptions import DatasetNotFoundError, UserErrorException

from conftest import PY_DIR, api

VENV_PY = os.path.join(os.path.expanduser("~"), ".cache", "atelier-test",
                       "azureml-venv-py%d%d" % sys.version_info[:2], "bin", "python")


@pytest.fixture
def v1ws(server, tmp_path, monkeypatch):
    url, token = server
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(json.dumps({
        "subscription_id": "sub", "resource_group": "rg", "workspace_name": "default", "server": url, "token": token}))
    for k in ("ATELIER_SERVER", "ATELIER_TOKEN", "ATELIER_WORKSPACE", "ATELIER_RUN_ID"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)
    return Workspace.from_config()


def _upload(ws, tmp_path, files):
    data = tmp_path / "upload"
    for rel, text in files.items():
        p = data / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    ds = ws.get_default_datastore()
    ds.upload(src_dir=str(data), target_path="ds24", overwrite=True, show_progress=False)
    return ds


def test_datasets_are_server_objects(v1ws, tmp_path, binary, server):
    ds = _upload(v1ws, tmp_path, {"tab/a.csv": "x,y\n1,2\n", "tab/b.csv": "x,y\n3,4\n", "lines/a.jsonl": '{"x": 1}\n',
                                  "files/one.txt": "1"})
    tab = Dataset.Tabular.from_delimited_files(path=(ds, "ds24/tab/*.csv"))
    t1 = tab.register(v1ws, "ds24-tab", description="two csv files", tags={"k": "v"})
    assert (t1.name, t1.version) == ("ds24-tab", 1)
    # On the server, with its definition.
    d = api(v1ws, "GET", "/datasets/ds24-tab/versions/1")
    assert d["type"] == "tabular" and d["paths"] == [{"datastore": "default", "path": "ds24/tab/*.csv"}]
    assert d["format"]["kind"] == "delimited" and d["description"] == "two csv files" and d["tags"] == {"k": "v"}
    # The same definition keeps its version; another one needs create_new_version.
    assert tab.register(v1ws, "ds24-tab").version == 1
    jl = Dataset.Tabular.from_json_lines_files(path=(ds, "ds24/lines/a.jsonl"))
    with pytest.raises(UserErrorException, match="create_new_version"):
        jl.register(v1ws, "ds24-tab")
    assert jl.register(v1ws, "ds24-tab", create_new_version=True).version == 2
    assert Dataset.get_by_name(v1ws, "ds24-tab").version == 2
    v1 = Dataset.get_by_name(v1ws, "ds24-tab", version=1)
    assert v1.to_path() == ["/a.csv", "/b.csv"] and v1.description == "two csv files"
    assert Dataset.get_by_id(v1ws, "ds24-tab:2")._doc["format"]["kind"] == "json_lines"
    assert v1ws.datasets["ds24-tab"].version == 2
    files = Dataset.File.from_files(path=(ds, "ds24/files/")).register(v1ws, "ds24-files")
    assert isinstance(Dataset.get_by_name(v1ws, "ds24-files"), type(files))
    v1.add_tags({"stage": "gold"})
    assert Dataset.get_by_name(v1ws, "ds24-tab", 1).tags == {"k": "v", "stage": "gold"}
    # Azure's names may hold spaces (its samples register "diabetes dataset").
    spaced = Dataset.File.from_files(path=(ds, "ds24/files/")).register(v1ws, "ds24 spaced files")
    assert Dataset.get_by_name(v1ws, "ds24 spaced files").version == spaced.version == 1
    assert "ds24 spaced files" in v1ws.datasets

    # Bad input: clear errors naming the field.
    with pytest.raises(DatasetNotFoundError, match="no dataset 'ds24-tab' version 9"):
        Dataset.get_by_name(v1ws, "ds24-tab", version=9)
    with pytest.raises(DatasetNotFoundError, match="no dataset 'nope'"):
        Dataset.get_by_name(v1ws, "nope")
    bad = [({"name": "x", "type": "file", "paths": [{"datastore": "nostore", "path": "a"}]},
            'paths\\[0\\].datastore: datastore "nostore" not found'),
           ({"name": "x", "type": "file", "paths": [{"datastore": "default", "path": "ds24/missing/*.csv"}]},
            'paths\\[0\\].path: datastore "default" has no file or folder "ds24/missing"'),
           ({"name": "x", "type": "tabular", "paths": [{"datastore": "default", "path": "ds24/tab"}]},
            "format: a tabular dataset needs a format"),
           ({"name": "x", "type": "tabular", "format": {"kind": "xlsx"}, "paths": [{"datastore": "default", "path": "ds24"}]},
            "format.kind"),
           ({"name": "-x", "type": "file", "paths": [{"datastore": "default", "path": "ds24"}]}, "name: invalid dataset name"),
           ({"name": "x ", "type": "file", "paths": [{"datastore": "default", "path": "ds24"}]}, "not ending with a space")]
    for body, msg in bad:
        with pytest.raises(atelier.AtelierError, match=msg) as ei:
            api(v1ws, "POST", "/datasets", body=body)
        assert ei.value.status == 400, body
    for path, status in (("/datasets/ds24-tab/versions/0", 400), ("/datasets/ds24-tab/versions/7", 404),
                         ("/datasets/nope", 404)):
        with pytest.raises(atelier.AtelierError) as ei:
            api(v1ws, "GET", path)
        assert ei.value.status == status, path

    # The CLI.
    env = dict(os.environ, ATELIER_SERVER=server[0], ATELIER_TOKEN=server[1], ATELIER_WORKSPACE="default")

    def cli(*args):
        p = subprocess.run([binary] + list(args), env=env, capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    rc, out, err = cli("dataset", "list", "-o", "json")
    assert rc == 0, err
    assert {d["name"]: d["version"] for d in json.loads(out)}["ds24-tab"] == 2
    rc, out, err = cli("dataset", "show", "ds24-tab:1", "-o", "json")
    assert rc == 0 and json.loads(out)["paths"][0]["path"] == "ds24/tab/*.csv", err
    rc, out, err = cli("dataset", "register", "ds24-cli", "--path", "default:ds24/tab/a.csv", "--format", "delimited")
    assert rc == 0 and out.strip() == "ds24-cli:1", err
    rc, out, err = cli("dataset", "register", "ds24-cli2", "--path", "default:ds24/nothing")
    assert rc != 0 and "has no file or folder" in err
    rc, out, err = cli("dataset", "show", "ds24-cli:5")
    assert rc != 0 and "no version 5" in err
    rc, out, err = cli("dataset", "delete", "ds24-cli")
    assert rc == 0, err
    with pytest.raises(DatasetNotFoundError):
        Dataset.get_by_name(v1ws, "ds24-cli")
    files.unregister_all_versions()
    assert "ds24-files" not in v1ws.datasets


def test_a_run_records_the_dataset_versions_it_consumed(v1ws, tmp_path):
    ds = _upload(v1ws, tmp_path, {"lin/a.csv": "x\n1\n", "lin/b.csv": "x\n2\n"})
    reg = Dataset.File.from_files(path=(ds, "ds24/lin/*.csv")).register(v1ws, "ds24-lineage", create_new_version=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "use.py").write_text(textwrap.dedent("""
        import os, sys
        from azureml.core import Run
        run = Run.get_context()
        run.log("n", len(os.listdir(sys.argv[1])))
        run.log("named", sorted(run.input_datasets) == ["train"])
    """).replace('run.log("named", sorted(run.input_datasets) == ["train"])',
                 'run.log("named", str(sorted(run.input_datasets)))'))
    cfg = ScriptRunConfig(source_directory=str(src), script="use.py",
                          arguments=[reg.as_named_input("train").as_mount()])
    run = Experiment(v1ws, "ds24-lineage").submit(cfg)
    assert run.wait_for_completion(show_output=True)["status"] == "Completed"
    assert run.get_metrics() == {"n": 2, "named": "['train']"}
    used = api(v1ws, "GET", "/runs/%s/datasets" % run.id)["datasets"]
    assert [(u["name"], u["version"], u["input"]) for u in used] == [("ds24-lineage", reg.version, "train")]
    consumers = api(v1ws, "GET", "/datasets/ds24-lineage/versions/%d/runs" % reg.version)["runs"]
    assert [c["run_id"] for c in consumers] == [run.id]
    inputs = run.get_details()["inputDatasets"]
    assert inputs[0]["dataset"]["name"] == "ds24-lineage" and inputs[0]["consumptionDetails"]["inputName"] == "train"
    # Recording a version that does not exist is a clear 404.
    with pytest.raises(atelier.AtelierError, match="no version 99") as ei:
        api(v1ws, "POST", "/runs/%s/datasets" % run.id, body={"name": "ds24-lineage", "version": 99})
    assert ei.value.status == 404


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse: mounts are downloads here")
def test_as_mount_is_a_read_only_mount_of_the_files(v1ws, tmp_path):
    ds = _upload(v1ws, tmp_path, {"mnt/a.txt": "alpha", "mnt/sub/b.txt": "beta", "mnt/never.txt": "x" * 100000})
    files = Dataset.File.from_files(path=(ds, "ds24/mnt/"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "use.py").write_text(textwrap.dedent("""
        import os, sys
        from azureml.core import Run
        run = Run.get_context()
        root = sys.argv[1]
        mounts = open("/proc/self/mounts").read().split("\\n")
        kind = [line.split()[2] for line in mounts if len(line.split()) > 2 and line.split()[1] == root]
        run.log("kind", str(sorted(set(kind))))
        run.log("files", str(sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)))
        run.log("a", open(os.path.join(root, "a.txt")).read())
        try:
            open(os.path.join(root, "a.txt"), "w").write("no")
            run.log("write", "allowed")
        except OSError as e:
            run.log("write", "refused")
        run.log("same", run.input_datasets["train"] == root)
    """))
    cfg = ScriptRunConfig(source_directory=str(src), script="use.py",
                          arguments=[files.as_named_input("train").as_mount()])
    run = Experiment(v1ws, "ds24-mount").submit(cfg)
    assert run.wait_for_completion(show_output=True)["status"] == "Completed"
    m = run.get_metrics()
    assert m["kind"] == "['fuse.atelier-data']", m
    assert m["files"] == "['a.txt', 'never.txt', 'sub/b.txt']" and m["a"] == "alpha" and m["write"] == "refused", m
    assert m["same"] in (True, 1), m


@pytest.mark.skipif(not os.path.exists(VENV_PY), reason="the samples' virtualenv (pandas, pyarrow) is not built")
def test_to_pandas_dataframe_of_each_tabular_format(v1ws, tmp_path, server):
    script = tmp_path / "tab.py"
    script.write_text(textwrap.dedent("""
        import os, tempfile
        import pandas as pd
        from azureml.core import Dataset, Workspace
        ws = Workspace.from_config()
        ds = ws.get_default_datastore()
        d = tempfile.mkdtemp()
        os.makedirs(os.path.join(d, "pq"))
        pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}).to_parquet(os.path.join(d, "pq", "p.parquet"))
        with open(os.path.join(d, "t.tsv"), "w") as f:
            f.write("x\\ty\\n1\\ta\\n2\\tb\\n")
        with open(os.path.join(d, "l.jsonl"), "w") as f:
            f.write('{"x": 1, "y": "a"}\\n{"x": 2, "y": "b"}\\n')
        ds.upload(src_dir=d, target_path="ds24-pd", overwrite=True, show_progress=False)
        made = {
            "parquet": Dataset.Tabular.from_parquet_files(path=(ds, "ds24-pd/pq/*.parquet")),
            "tsv": Dataset.Tabular.from_delimited_files(path=(ds, "ds24-pd/t.tsv"), separator="\\t"),
            "jsonl": Dataset.Tabular.from_json_lines_files(path=(ds, "ds24-pd/l.jsonl")),
        }
        for k, t in made.items():
            t.register(ws, "ds24-pd-" + k, create_new_version=True)
            df = Dataset.get_by_name(ws, "ds24-pd-" + k).to_pandas_dataframe()
            print(k, list(df.columns), list(df["x"]), list(df["y"]))
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    env["PYTHONPATH"] = PY_DIR
    p = subprocess.run([VENV_PY, str(script)], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    for k in ("parquet", "tsv", "jsonl"):
        assert "%s ['x', 'y'] [1, 2] ['a', 'b']" % k in p.stdout, p.stdout


def test_environments_are_server_objects(v1ws):
    from azureml.core import Environment
    from azureml.core.conda_dependencies import CondaDependencies

    def make(name, pkgs):
        e = Environment(name)
        e.python.conda_dependencies = CondaDependencies.create(pip_packages=pkgs)
        return e

    a = make("env24-a", ["six==1.16.0"]).register(v1ws)
    assert a.version == "1"
    d = api(v1ws, "GET", "/environments/env24-a/versions/1")
    assert d["spec_hash"].startswith("sha256:") and "six==1.16.0" in json.dumps(d["spec"])
    # The same definition under another name has the same hash: the same environment build.
    b = make("env24-b", ["six==1.16.0"]).register(v1ws)
    assert api(v1ws, "GET", "/environments/env24-b")["spec_hash"] == d["spec_hash"]
    assert make("env24-a", ["six==1.16.0"]).register(v1ws).version == "1"
    assert make("env24-a", ["six==1.17.0"]).register(v1ws).version == "2"
    got = Environment.get(v1ws, "env24-a", version="1")
    assert got.version == "1" and "six==1.16.0" in list(got.python.conda_dependencies.pip_packages)
    # A registered environment maps onto the same run environment as the identical inline one.
    import tempfile
    assert open(got._atelier(tempfile.mkdtemp())["requirements"]).read() == \
        open(make("inline", ["six==1.16.0"])._atelier(tempfile.mkdtemp())["requirements"]).read()
    assert {"env24-a", "env24-b"} <= set(Environment.list(v1ws)) and v1ws.environments["env24-a"].version == "2"
    assert b.version == "1"
    # Bad input, named.
    for body, msg in (({"name": "AzureML-Minimal", "spec": {}}, "name: environment names starting with \"AzureML-\" are reserved"),
                      ({"name": "azureml-lower", "spec": {}}, "reserved"),
                      ({"name": "env24-c"}, "required field \"spec\" is missing"),
                      ({"name": "env24-c", "spec": [1]}, "spec")):
        with pytest.raises(atelier.AtelierError, match=msg) as ei:
            api(v1ws, "POST", "/environments", body=body)
        assert ei.value.status == 400
    with pytest.raises(atelier.AtelierError, match="has no version 9") as ei:
        api(v1ws, "GET", "/environments/env24-a/versions/9")
    assert ei.value.status == 404
    api(v1ws, "DELETE", "/environments/env24-b")
    assert "env24-b" not in Environment.list(v1ws)
