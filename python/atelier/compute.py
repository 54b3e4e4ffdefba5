"""Compute targets: where submitted runs execute, modelled on Azure ML's ComputeTarget.

    from atelier import ComputeTarget, LocalCompute, RemoteCompute
    cpu = ComputeTarget.create(ws, "cpu4", LocalCompute.provisioning_configuration(max_concurrent_runs=4))
    cfg = RemoteCompute.attach_configuration(address="10.0.0.7", username="ml",
                                             private_key_file="~/.ssh/id_ed25519")
    gpu = ComputeTarget.attach(ws, "gpu-box", cfg)
    ComputeTarget.list(ws)          # the built-in "local" first
    gpu.detach()

Every workspace has the built-in target "local", this server's machine. Credentials (an SSH key,
a kubeconfig, a Slurm token) are sent once and never come back: the server keeps them
encrypted, and a ComputeTarget shows only their names (``credentials``). The server checks a
target before it stores it (an activity, ``activity_id``); a kind it has no driver for is
refused with the kinds it has.
"""

import os

from ._http import AtelierError, quote_seg
from .model import _parse_time

__all__ = ["ComputeTarget", "LocalCompute", "RemoteCompute", "SlurmCompute", "KubernetesCompute", "PodmanCompute"]

# Azure ML's names of the kinds (ComputeTarget.type).
_TYPES = {"local": "Local", "ssh": "VirtualMachine", "slurm": "Slurm", "kubernetes": "Kubernetes", "podman": "Podman"}


def _path(workspace, name=None):
    p = "/api/v1/workspaces/%s/compute" % quote_seg(workspace.name)
    return p if name is None else p + "/" + quote_seg(name)


def _check_name(name):
    if not isinstance(name, str) or not name:
        raise TypeError("a compute target name must be a non-empty str")
    return name


def _read(path, what):
    try:
        with open(os.path.expanduser(os.fspath(path))) as f:
            return f.read()
    except OSError as e:
        raise AtelierError("cannot read the %s %s: %s" % (what, path, e.strerror), code="invalid", status=400) from None


def _clean(d):
    return {k: v for k, v in d.items() if v not in (None, "", {}, 0)}


class _Configuration:
    """What create or attach sends: the kind, its block and its credentials."""

    def __init__(self, kind, block=None, credentials=None, max_concurrent_runs=None, description=None):
        self.kind = kind
        self.block = _clean(block or {})
        self.credentials = _clean(credentials or {})
        self.max_concurrent_runs = max_concurrent_runs
        self.description = description

    def _spec(self, name):
        spec = {"name": name, "kind": self.kind}
        if self.kind != "local":
            spec[self.kind] = self.block
        if self.credentials:
            spec["credentials"] = self.credentials
        if self.max_concurrent_runs:
            spec["max_concurrent_runs"] = int(self.max_concurrent_runs)
        if self.description:
            spec["description"] = self.description
        return spec

    def __repr__(self):  # never the credentials
        return "%s(kind=%r, %r, credentials=%r)" % (type(self).__name__, self.kind, self.block, sorted(self.credentials))


class LocalCompute:
    """A target on the server's machine: another queue, with its own limit of concurrent runs."""

    @staticmethod
    def provisioning_configuration(max_concurrent_runs=1, description=None):
        return _Configuration("local", max_concurrent_runs=max_concurrent_runs, description=description)


class RemoteCompute:
    """A machine reached over SSH with a key (Azure ML's RemoteCompute)."""

    @staticmethod
    def attach_configuration(address, username, private_key_file=None, private_key_passphrase=None, ssh_port=22,
                             host_key=None, private_key=None, max_concurrent_runs=None, description=None):
        """private_key_file is read here (or give the key itself as private_key); host_key is
        the machine's public host key ('ssh-ed25519 AAAA...'), checked on connect."""
        if private_key is None and private_key_file is not None:
            private_key = _read(private_key_file, "private key file")
        return _Configuration("ssh", {"host": address, "port": ssh_port, "user": username, "host_key": host_key},
                              {"ssh_private_key": private_key, "ssh_passphrase": private_key_passphrase},
                              max_concurrent_runs, description)


class SlurmCompute:
    """A Slurm cluster's slurmrestd. Its JWT is a workspace secret (token_secret, see
    ``atelier secret set``) or given here (token)."""

    @staticmethod
    def attach_configuration(url, partition=None, account=None, token_secret=None, token=None,
                             max_concurrent_runs=None, description=None):
        return _Configuration("slurm", {"url": url, "partition": partition, "account": account, "token_secret": token_secret},
                              {"token": token}, max_concurrent_runs, description)


class KubernetesCompute:
    """A namespace of a Kubernetes cluster, reached with a kubeconfig (or the server's
    in-cluster account without one)."""

    @staticmethod
    def attach_configuration(namespace, kubeconfig_file=None, context=None, image=None, kubeconfig=None,
                             max_concurrent_runs=None, description=None):
        if kubeconfig is None and kubeconfig_file is not None:
            kubeconfig = _read(kubeconfig_file, "kubeconfig file")
        return _Configuration("kubernetes", {"namespace": namespace, "context": context, "image": image},
                              {"kubeconfig": kubeconfig}, max_concurrent_runs, description)


class PodmanCompute:
    """A Podman service's API (unix:///run/podman/podman.sock, tcp://, ssh://); each run a
    container of ``image`` (the server's default base without one), limited to ``cpus`` CPUs
    and ``memory_gb`` GB when given."""

    @staticmethod
    def attach_configuration(url=None, image=None, max_concurrent_runs=None, description=None, cpus=None, memory_gb=None):
        return _Configuration("podman", {"url": url, "image": image, "cpus": cpus, "memory_gb": memory_gb}, None,
                              max_concurrent_runs, description)


class ComputeTarget:
    """A compute target of a workspace: ``ComputeTarget(workspace, name)``; AtelierError
    not_found (404) if there is none by that name. The built-in "local" is always there.

    Attributes show the configuration (``kind``, ``type``, ``max_concurrent_runs``, the block
    of its kind as ``ssh``, ``slurm``, ``kubernetes`` or ``podman``), its queue (``queued``,
    ``running``) and ``credentials``, the names of the secrets stored, never their values."""

    def __init__(self, workspace, name=None, _details=None):
        self.workspace = workspace
        self._client = workspace._client
        if _details is not None:
            self._details = _details
        else:
            self._details = self._client.request("GET", _path(workspace, _check_name(name)))

    name = property(lambda self: self._details.get("name"))
    kind = property(lambda self: self._details.get("kind"), doc="local, ssh, slurm, kubernetes or podman")
    type = property(lambda self: _TYPES.get(self.kind, self.kind), doc="Azure ML's name of the kind (VirtualMachine for ssh)")
    description = property(lambda self: self._details.get("description") or "")
    built_in = property(lambda self: bool(self._details.get("built_in")))
    max_concurrent_runs = property(lambda self: self._details.get("max_concurrent_runs"))
    queued = property(lambda self: self._details.get("queued", 0))
    running = property(lambda self: self._details.get("running", 0))
    isolation = property(lambda self: self._details.get("isolation") or None)
    ssh = property(lambda self: dict(self._details.get("ssh") or {}) or None)
    slurm = property(lambda self: dict(self._details.get("slurm") or {}) or None)
    kubernetes = property(lambda self: dict(self._details.get("kubernetes") or {}) or None)
    podman = property(lambda self: dict(self._details.get("podman") or {}) or None)
    credentials = property(lambda self: list(self._details.get("credentials") or []))
    capacity = property(lambda self: self._details.get("capacity"),
                        doc="what the target told when it was read (one target, not a list): its nodes, CPUs, "
                            "memory, GPUs and Slurm partitions; None when it did not answer (see capacity_error)")
    capacity_error = property(lambda self: self._details.get("capacity_error"))
    activity_id = property(lambda self: self._details.get("activity") or None,
                           doc="the activity that created or attached it (the server's check)")
    created_by = property(lambda self: self._details.get("created_by") or "")
    created_on = property(lambda self: _parse_time(self._details.get("created_at")))
    # A target is stored only once its check passed.
    provisioning_state = property(lambda self: "Succeeded")

    def __repr__(self):
        return "ComputeTarget(name=%r, kind=%r, workspace=%r)" % (self.name, self.kind, self.workspace.name)

    def __eq__(self, other):
        return isinstance(other, ComputeTarget) and (self.workspace, self.name) == (other.workspace, other.name)

    def __hash__(self):
        return hash((self.workspace, self.name))

    def get_status(self):
        """The target as the server has it now (its queue refreshed); its provisioning state."""
        self.refresh_state()
        return self.provisioning_state

    def refresh_state(self):
        self._details = self._client.request("GET", _path(self.workspace, self.name))

    def wait_for_completion(self, show_output=False, **kwargs):
        """Azure ML's wait: create and attach return once the server checked and stored the
        target, so there is nothing to wait for."""
        if show_output:
            print("%s: %s" % (self.name, self.provisioning_state))
        return self

    def serialize(self):
        return dict(self._details)

    def get_details(self):
        self.refresh_state()
        return dict(self._details)

    @staticmethod
    def list(workspace):
        """The workspace's compute targets: the built-in ones first, then its own by name."""
        d = workspace._client.request("GET", _path(workspace)) or {}
        return [ComputeTarget(workspace, _details=x) for x in d.get("compute") or []]

    @staticmethod
    def create(workspace, name, provisioning_configuration):
        """Creates a local target (LocalCompute.provisioning_configuration)."""
        if provisioning_configuration.kind != "local":
            raise AtelierError("a %s target is attached, not created: ComputeTarget.attach" % provisioning_configuration.kind,
                               code="invalid", status=400)
        return ComputeTarget._post(workspace, name, provisioning_configuration)

    @staticmethod
    def attach(workspace, name, attach_configuration):
        """Attaches a remote target (RemoteCompute, SlurmCompute, KubernetesCompute or
        PodmanCompute .attach_configuration); the server checks it first."""
        if attach_configuration.kind == "local":
            raise AtelierError("a local target is created, not attached: ComputeTarget.create", code="invalid", status=400)
        return ComputeTarget._post(workspace, name, attach_configuration)

    @staticmethod
    def _post(workspace, name, config):
        d = workspace._client.request("POST", _path(workspace), body=config._spec(_check_name(name)))
        return ComputeTarget(workspace, _details=d)

    def detach(self):
        """Forgets the target (nothing is done on its machine); refused (conflict, 409) while
        runs are queued or active on it, and for the built-in "local"."""
        self._client.request("DELETE", _path(self.workspace, self.name))

    delete = detach
