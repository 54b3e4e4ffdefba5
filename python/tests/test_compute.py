"""Compute targets against a real atelier server: the built-in local, and what create, attach
and detach refuse (the server under test has no driver for remote kinds yet)."""

import os

import pytest

import atelier
from atelier import AtelierError, ComputeTarget, KubernetesCompute, LocalCompute, PodmanCompute, RemoteCompute, SlurmCompute

KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\n"
       "b3BlbnNzaC1rZXktdjEAAAAAc2VjcmV0LWtleS1tYXRlcmlhbA==\n"
       "-----END OPENSSH PRIVATE KEY-----\n")


def test_builtin_local(ws):
    targets = ComputeTarget.list(ws)
    assert targets[0].name == "local" and targets[0].built_in
    local = ComputeTarget(ws, "local")
    assert (local.kind, local.type, local.provisioning_state) == ("local", "Local", "Succeeded")
    assert local.max_concurrent_runs >= 1 and local.queued >= 0 and local.running >= 0
    assert local.credentials == [] and local.ssh is None
    assert local.get_status() == "Succeeded"
    # One target shown (not listed) tells what it has: the server's machine.
    assert local.capacity["totals"]["cpus"] == os.cpu_count() and local.capacity["totals"]["nodes"] == 1
    assert local.capacity["totals"]["memory_bytes"] > 0 and local.capacity_error is None
    from azureml.core.compute import ComputeTarget as V1ComputeTarget
    v1 = V1ComputeTarget(ws, "local")
    status = v1.get_status().serialize()
    assert status["current_node_count"] == 1 and status["errors"] is None
    assert sum(status["node_state_counts"].values()) == 1
    nodes = v1.list_nodes()
    assert [(n["nodeId"], n["cpus"]) for n in nodes] == [("local", os.cpu_count())]
    assert local.wait_for_completion() is local
    assert "local" in ws.compute_targets
    assert local == ComputeTarget.list(ws)[0]

    with pytest.raises(AtelierError) as e:
        ComputeTarget(ws, "nowhere")
    assert (e.value.code, e.value.status) == ("not_found", 404)
    assert 'no compute target "nowhere"' in e.value.message

    with pytest.raises(AtelierError) as e:
        local.detach()
    assert (e.value.code, e.value.status) == ("conflict", 409)
    assert "built in" in e.value.message


def test_attach_refused_without_driver(ws, tmp_path):
    key = tmp_path / "id_test"
    key.write_text(KEY)
    cfg = RemoteCompute.attach_configuration(address="10.0.0.7", username="ml", private_key_file=str(key))
    assert "b3BlbnNzaC" not in repr(cfg)  # a configuration never shows its credentials
    # The server has the ssh driver: its check refuses a key it cannot read, storing nothing.
    with pytest.raises(AtelierError) as e:
        ComputeTarget.attach(ws, "gpu-box", cfg)
    assert (e.value.code, e.value.status) == ("invalid", 400)
    assert 'compute target "gpu-box" failed its check' in e.value.message
    assert "ssh_private_key cannot be read" in e.value.message
    assert "b3BlbnNzaC" not in str(e.value)
    assert "gpu-box" not in ws.compute_targets

    # The slurm driver's check refuses a token that is not a JWT, without echoing it.
    cfg = SlurmCompute.attach_configuration(url="http://slurm:6820", partition="gpu", token="eyJhbGciOi.jwt")
    with pytest.raises(AtelierError) as e:
        ComputeTarget.attach(ws, "hpc", cfg)
    assert "not a JWT" in e.value.message and "eyJhbGciOi" not in str(e.value)
    assert "hpc" not in ws.compute_targets

    # The kubernetes driver's check refuses a cluster it cannot reach, saying where.
    kubeconfig = ("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\n"
                  "users:\n- name: u\n  user: {token: abc}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                  "current-context: x\n")
    cfg = KubernetesCompute.attach_configuration(namespace="ml", kubeconfig=kubeconfig)
    with pytest.raises(AtelierError) as e:
        ComputeTarget.attach(ws, "k8s", cfg)
    assert "cannot reach the cluster at https://127.0.0.1:1" in e.value.message
    assert "k8s" not in ws.compute_targets


@pytest.mark.parametrize("name,cfg,want", [
    ("gpu", lambda: RemoteCompute.attach_configuration(address="10.0.0.7", username="ml", private_key=KEY, ssh_port=70000),
     "ssh.port 70000"),
    ("gpu", lambda: RemoteCompute.attach_configuration(address="a b", username="ml", private_key=KEY), 'invalid ssh.host "a b"'),
    ("gpu", lambda: RemoteCompute.attach_configuration(address="10.0.0.7", username="ml"), "credentials.ssh_private_key"),
    ("gpu", lambda: RemoteCompute.attach_configuration(address="10.0.0.7", username="ml", private_key="hunter2"),
     "credentials.ssh_private_key is not"),
    ("hpc", lambda: SlurmCompute.attach_configuration(url="ftp://slurm", token="t"), 'invalid slurm.url "ftp://slurm"'),
    ("hpc", lambda: SlurmCompute.attach_configuration(url="http://slurm:6820"), "exactly one of slurm.token_secret"),
    ("k8s", lambda: KubernetesCompute.attach_configuration(namespace="ML"), 'invalid kubernetes.namespace "ML"'),
    ("box", lambda: PodmanCompute.attach_configuration(cpus=-1, memory_gb=1), "podman.cpus -1"),
    ("box", lambda: PodmanCompute.attach_configuration(url="unix://relative.sock"), "invalid podman.url"),
    ("local", lambda: LocalCompute.provisioning_configuration(), "reserved for the built-in target"),
    ("cpu", lambda: LocalCompute.provisioning_configuration(max_concurrent_runs=5000), "max_concurrent_runs 5000"),
    ("bad name", lambda: LocalCompute.provisioning_configuration(), "invalid compute target name"),
])
def test_bad_configuration(ws, name, cfg, want):
    c = cfg()
    with pytest.raises(AtelierError) as e:
        if c.kind == "local":
            ComputeTarget.create(ws, name, c)
        else:
            ComputeTarget.attach(ws, name, c)
    assert (e.value.code, e.value.status) == ("invalid", 400)
    assert want in e.value.message


def test_create_and_attach_are_not_interchangeable(ws, tmp_path):
    with pytest.raises(AtelierError, match="attached, not created"):
        ComputeTarget.create(ws, "gpu", RemoteCompute.attach_configuration(address="h", username="u", private_key=KEY))
    with pytest.raises(AtelierError, match="created, not attached"):
        ComputeTarget.attach(ws, "cpu", LocalCompute.provisioning_configuration(max_concurrent_runs=2))
    with pytest.raises(AtelierError, match="cannot read the private key file"):
        RemoteCompute.attach_configuration(address="h", username="u", private_key_file=str(tmp_path / "missing"))
    assert atelier.ComputeTarget is ComputeTarget
