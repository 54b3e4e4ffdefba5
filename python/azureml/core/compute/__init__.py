"""azureml.core.compute: v1's compute targets over atelier's. atelier runs on compute it is
given: the built-in "local", more local queues (LocalCompute), machines over SSH
(RemoteCompute), Slurm, Kubernetes and Podman. It provisions no cloud machines: AmlCompute,
ComputeInstance and the other Azure kinds raise ComputeTargetException saying so."""

import os

import atelier
from atelier.compute import ComputeTarget as _ComputeTarget

from ..._compat import AtelierError, adopt
from ...exceptions import ComputeTargetException

__all__ = ["ComputeTarget", "AmlCompute", "ComputeInstance", "RemoteCompute", "LocalCompute", "SlurmCompute",
           "KubernetesCompute", "PodmanCompute", "AksCompute", "DatabricksCompute", "HDInsightCompute",
           "BatchCompute", "DataFactoryCompute", "AdlaCompute", "KustoCompute", "SynapseCompute",
           "ComputeTargetException"]

_OFFERS = ("atelier provisions no cloud compute: use the built-in 'local' target, a local queue "
           "(LocalCompute.provisioning_configuration), or attach a machine over SSH "
           "(RemoteCompute.attach_configuration), a Slurm cluster, a Kubernetes namespace or a Podman service")


class _Unsupported(ComputeTargetException, NotImplementedError):
    pass


class ComputeTarget(_ComputeTarget):
    """``ComputeTarget(workspace, name)``; ComputeTargetException when there is none by that
    name (v1 samples catch it to create one)."""

    def __init__(self, workspace, name=None, _details=None):
        try:
            _ComputeTarget.__init__(self, workspace, name, _details)
        except AtelierError as e:
            if e.status == 404:
                raise ComputeTargetException("ComputeTargetNotFound: compute target %r not found in workspace %s "
                                             "(%s)" % (name, workspace.name, ", ".join(
                                                 sorted(c.name for c in _ComputeTarget.list(workspace)))),
                                             code="not_found", status=404) from None
            raise

    @staticmethod
    def list(workspace):
        return [adopt(c, ComputeTarget) for c in _ComputeTarget.list(workspace)]

    @staticmethod
    def create(workspace, name, provisioning_configuration):
        if isinstance(provisioning_configuration, _AzureConfiguration):
            if os.environ.get("ATELIER_AZURE_COMPUTE") == "local":
                # Opted in: Azure's clusters and instances become local queues of the server.
                cfg = provisioning_configuration
                n = getattr(cfg, "max_nodes", None) or 1
                try:
                    return ComputeTarget(workspace, name)
                except ComputeTargetException:
                    pass
                return adopt(_ComputeTarget.create(workspace, name, atelier.LocalCompute.provisioning_configuration(
                    max_concurrent_runs=int(n), description="%s %s (as a local queue)" % (
                        cfg.kind, getattr(cfg, "vm_size", "") or ""))), ComputeTarget)
            raise _Unsupported("cannot create %s %r: %s (or set ATELIER_AZURE_COMPUTE=local to make it a local "
                               "queue)" % (provisioning_configuration.kind, name, _OFFERS))
        return adopt(_ComputeTarget.create(workspace, name, provisioning_configuration), ComputeTarget)

    @staticmethod
    def attach(workspace, name, attach_configuration):
        if isinstance(attach_configuration, _AzureConfiguration):
            raise _Unsupported("cannot attach %s %r: %s" % (attach_configuration.kind, name, _OFFERS))
        return adopt(_ComputeTarget.attach(workspace, name, attach_configuration), ComputeTarget)

    def wait_for_completion(self, show_output=False, min_node_count=None, timeout_in_minutes=20,
                            is_delete_operation=False):
        return _ComputeTarget.wait_for_completion(self, show_output)

    def get_status(self):
        _ComputeTarget.get_status(self)
        return _Status(self)

    @property
    def status(self):
        return _Status(self)

    def list_nodes(self):
        """The target's nodes as v1 lists a cluster's: a Slurm or Kubernetes target's nodes as it
        tells them; a machine (local, ssh, podman) is one node named after the target."""
        self.refresh_state()
        nodes = (self.capacity or {}).get("nodes") or []
        if self.kind not in ("slurm", "kubernetes") or not nodes:
            one = nodes[0] if nodes else {}
            return [{"nodeId": self.name, "port": None, "publicIpAddress": None, "privateIpAddress": None,
                     "nodeState": "running" if self.running else "idle", "cpus": one.get("cpus"),
                     "memoryBytes": one.get("memory_bytes"), "gpus": one.get("gpus", 0)}]
        return [{"nodeId": n.get("name"), "port": None, "publicIpAddress": None, "privateIpAddress": None,
                 "nodeState": _node_state(n.get("state") or ""), "cpus": n.get("cpus"),
                 "memoryBytes": n.get("memory_bytes"), "gpus": n.get("gpus", 0)} for n in nodes]

    def update(self, min_nodes=None, max_nodes=None, idle_seconds_before_scaledown=None):
        """idle_seconds_before_scaledown has no meaning on a machine that is always there;
        min_nodes and max_nodes cannot be changed (detach and create the target again)."""
        if min_nodes is not None or max_nodes is not None:
            raise _Unsupported("changing the nodes of %r: detach it and create it again with another "
                               "max_concurrent_runs" % self.name)


def _node_state(state):
    """v1's nodeState of a node's state as its target says it."""
    s = state.lower()
    if s.startswith("idle") or s in ("ready", "up"):
        return "idle"
    if s.startswith(("alloc", "mixed", "comp")):
        return "running"
    return "unusable"


class _Status:
    """v1's AmlComputeStatus: the target's nodes (counted from what it told) and its queue."""

    def __init__(self, target):
        self.provisioning_state = target.provisioning_state
        totals = (target.capacity or {}).get("totals") or {}
        nodes = totals.get("nodes", 0)
        ready = totals.get("ready_nodes", nodes)
        idle = totals.get("idle_nodes", 0) if target.kind == "slurm" else max(ready - (1 if target.running else 0), 0)
        busy = totals.get("allocated_nodes", 0) if target.kind == "slurm" else ready - idle
        self.current_node_count = nodes
        self.target_node_count = nodes
        self.node_state_counts = {"idleNodeCount": idle, "runningNodeCount": busy, "preparingNodeCount": 0,
                                  "unusableNodeCount": max(nodes - ready, 0), "leavingNodeCount": 0,
                                  "preemptedNodeCount": 0}
        self.allocation_state = "Steady"
        self.errors = [target.capacity_error] if target.capacity_error else None
        self.queued = target.queued
        self.running = target.running

    def serialize(self):
        return dict(vars(self))


class _AzureConfiguration:
    def __init__(self, kind, **kwargs):
        self.kind = kind
        self.__dict__.update(kwargs)


def _azure_kind(kind):
    class K(ComputeTarget):
        @staticmethod
        def provisioning_configuration(*args, **kwargs):
            return _AzureConfiguration(kind, **kwargs)

        @staticmethod
        def attach_configuration(*args, **kwargs):
            return _AzureConfiguration(kind, **kwargs)

        @staticmethod
        def supported_vmsizes(workspace, location=None):
            if os.environ.get("ATELIER_AZURE_COMPUTE") == "local":
                return [{"name": "local", "vCPUs": os.cpu_count(), "gpus": 0, "memoryGB": None}]
            raise _Unsupported("%s VM sizes: %s" % (kind, _OFFERS))

    K.__name__ = K.__qualname__ = kind
    return K


AmlCompute = _azure_kind("AmlCompute")
ComputeInstance = _azure_kind("ComputeInstance")
AksCompute = _azure_kind("AksCompute")
DatabricksCompute = _azure_kind("DatabricksCompute")
HDInsightCompute = _azure_kind("HDInsightCompute")
BatchCompute = _azure_kind("BatchCompute")
DataFactoryCompute = _azure_kind("DataFactoryCompute")
AdlaCompute = _azure_kind("AdlaCompute")
KustoCompute = _azure_kind("KustoCompute")
SynapseCompute = _azure_kind("SynapseCompute")


class RemoteCompute(ComputeTarget):
    """A machine over SSH with a key (v1's RemoteCompute; a password is refused)."""

    @staticmethod
    def attach_configuration(resource_id=None, address=None, ssh_port=22, username=None, password=None,
                             private_key_file=None, private_key_passphrase=None, **kwargs):
        if password:
            raise ComputeTargetException("atelier reaches SSH targets with a key, not a password: give "
                                         "private_key_file")
        if resource_id and not address:
            raise _Unsupported("attaching an Azure VM by resource_id: %s" % _OFFERS)
        return atelier.RemoteCompute.attach_configuration(address=address, username=username,
                                                          private_key_file=private_key_file,
                                                          private_key_passphrase=private_key_passphrase,
                                                          ssh_port=ssh_port, **kwargs)


LocalCompute = atelier.LocalCompute
SlurmCompute = atelier.SlurmCompute
KubernetesCompute = atelier.KubernetesCompute
PodmanCompute = atelier.PodmanCompute
