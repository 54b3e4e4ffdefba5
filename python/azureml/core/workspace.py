"""azureml.core.workspace: Azure ML v1's Workspace over an atelier workspace.

``Workspace.from_config()`` reads config.json as Azure writes it ({"subscription_id",
"resource_group", "workspace_name"}), searched for in the current directory and its parents
(also under .azureml/ and aml_config/). The atelier server and token come from the same file
("server", "token"), else ATELIER_SERVER / ATELIER_TOKEN, else the server started in this
directory (see the atelier SDK's Workspace.from_config). The subscription and resource group
are recorded, never checked: atelier has neither.
"""

import json
import os

import atelier
from atelier._http import quote_seg
from atelier.workspace import Workspace as _Workspace

from .._compat import AtelierError, adopt, unsupported
from ..exceptions import UserErrorException, WorkspaceException

__all__ = ["Workspace"]

_CONFIG_DIRS = ("", ".azureml", "aml_config")
# Azure's value for the attributes atelier has no notion of.
LOCATION = "atelier"


class Workspace(_Workspace):
    """``Workspace(subscription_id, resource_group, workspace_name, auth=None)``: the atelier
    workspace workspace_name on the server found as from_config finds it."""

    _subscription_id = ""
    _resource_group = ""
    _auth = None

    def __init__(self, subscription_id=None, resource_group=None, workspace_name=None, auth=None, _location=None,
                 _disable_service_check=False, _workspace_id=None, sku="basic", tags=None, _cloud="AzureCloud",
                 **kwargs):
        base = _connect(None, auth)
        _Workspace.__init__(self, base.server, base._client.token, workspace_name or base.name)
        self._subscription_id = subscription_id or ""
        self._resource_group = resource_group or ""
        self._auth = auth
        if not _disable_service_check:
            self._check_exists()

    def _check_exists(self):
        try:
            self._details_cache = _Workspace.get_details(self)
        except AtelierError as e:
            if e.status == 404:
                raise WorkspaceException(
                    "workspace %r does not exist on the atelier server %s: create it with "
                    "Workspace.create(%r) or `atelier workspace create %s`, or name another in config.json "
                    '("workspace_name")' % (self.name, self.server, self.name, self.name), code="not_found",
                    status=404) from None
            raise

    # v1 attributes atelier has no notion of: recorded, not checked

    subscription_id = property(lambda self: self._subscription_id)
    resource_group = property(lambda self: self._resource_group)
    location = property(lambda self: LOCATION)
    sku = property(lambda self: "basic")
    tags = property(lambda self: {})
    discovery_url = property(lambda self: self.server)
    service_context = property(lambda self: None)

    def __repr__(self):
        return "Workspace.create(name=%r, subscription_id=%r, resource_group=%r, server=%r)" % (
            self.name, self.subscription_id, self.resource_group, self.server)

    # construction

    @classmethod
    def from_config(cls, path=None, auth=None, _logger=None, _file_name=None):
        """The workspace of the nearest config.json (Azure's file; also .azureml/config.json
        and aml_config/config.json), from path or the current directory upwards. Without one,
        the atelier SDK's configuration (ATELIER_*, .atelier/config.json, the server started
        here) gives it: so a submitted run's script finds its own workspace."""
        cfg_path = _find_config(path, _file_name)
        if cfg_path is None and path is not None:
            raise UserErrorException("no %s at %s (nor under .azureml/ or aml_config/ there)" % (
                _file_name or "config.json", path), code="not_found", status=404)
        cfg = {}
        if cfg_path is not None:
            try:
                with open(cfg_path, encoding="utf-8") as f:
                    cfg = json.load(f)
            except (OSError, ValueError) as e:
                raise UserErrorException("cannot read %s: %s" % (cfg_path, e)) from None
            if not isinstance(cfg, dict):
                raise UserErrorException("%s: want a JSON object" % cfg_path)
        base = _connect(cfg_path, auth)
        ws = adopt(base, cls)
        ws._subscription_id = str(cfg.get("subscription_id") or "")
        ws._resource_group = str(cfg.get("resource_group") or "")
        ws._auth = auth
        ws._check_exists()
        return ws

    @staticmethod
    def get(name, auth=None, subscription_id=None, resource_group=None, location=None, cloud="AzureCloud", id=None):
        return Workspace(subscription_id, resource_group, name, auth=auth)

    @staticmethod
    def create(name, auth=None, subscription_id=None, resource_group=None, location=None, create_resource_group=True,
               sku="basic", tags=None, friendly_name=None, exist_ok=False, show_output=True, **kwargs):
        """Creates the atelier workspace name (the Azure resource arguments are recorded, not
        used); with exist_ok, an existing one is returned."""
        base = _connect(None, auth)
        try:
            base._client.request("POST", "/api/v1/workspaces", body={"name": name,
                                                                     "description": friendly_name or ""})
        except AtelierError as e:
            if not (exist_ok and e.status == 409):
                raise
        if show_output:
            print("Deployed Workspace with name %s." % name)
        return Workspace(subscription_id, resource_group, name, auth=auth)

    @staticmethod
    def list(subscription_id=None, auth=None, resource_group=None):
        """The server's workspaces this token sees, as Azure answers: name → [Workspace]."""
        base = _connect(None, auth)
        d = base._client.request("GET", "/api/v1/workspaces") or {}
        out = {}
        for w in d.get("workspaces") or []:
            out.setdefault(w["name"], []).append(
                Workspace(subscription_id, resource_group, w["name"], auth=auth, _disable_service_check=True))
        return out

    def write_config(self, path=None, file_name=None):
        """Writes path/.azureml/config.json (Azure's keys, plus "server"); never the token.
        Returns None, as v1 does."""
        d = os.path.join(os.fspath(path or "."), ".azureml")
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, file_name or "config.json")
        with open(p, "w", encoding="utf-8") as f:
            json.dump({"subscription_id": self.subscription_id, "resource_group": self.resource_group,
                       "workspace_name": self.name, "server": self.server}, f, indent=4)

    def get_details(self):
        d = dict(_Workspace.get_details(self))
        d.setdefault("id", "/workspaces/" + self.name)
        d.setdefault("friendlyName", d.get("description") or self.name)
        d.setdefault("creationTime", d.get("created_at"))
        d.update({"location": LOCATION, "subscriptionId": self.subscription_id, "resourceGroup": self.resource_group,
                  "sku": "basic", "provisioningState": "Succeeded", "discoveryUrl": self.server})
        return d

    def delete(self, delete_dependent_resources=False, no_wait=False):
        raise unsupported("Workspace.delete", "delete a workspace with `atelier workspace delete %s`" % self.name)

    def get_mlflow_tracking_uri(self, _with_auth=True):
        """The MLflow tracking URI of this workspace on the server. As Azure's azureml-mlflow
        plugin authenticates the MLflow client for the workspace, this sets
        MLFLOW_TRACKING_TOKEN to the workspace's token when it is not set already."""
        from atelier.run import _web_address
        base = _web_address(self.server)
        if _with_auth and self._client.token and not os.environ.get("MLFLOW_TRACKING_TOKEN"):
            os.environ["MLFLOW_TRACKING_TOKEN"] = self._client.token
        return base if self.name == "default" else base + "/workspaces/" + quote_seg(self.name) + "/mlflow"

    # collections, as the v1 classes

    @property
    def experiments(self):
        from .experiment import Experiment
        return {k: adopt(v, Experiment) for k, v in _Workspace.experiments.fget(self).items()}

    @property
    def datastores(self):
        from .datastore import Datastore
        return {k: adopt(v, Datastore) for k, v in _Workspace.datastores.fget(self).items()}

    @property
    def compute_targets(self):
        from .compute import ComputeTarget
        return {k: adopt(v, ComputeTarget) for k, v in _Workspace.compute_targets.fget(self).items()}

    @property
    def models(self):
        from .model import Model
        return {k: adopt(v, Model) for k, v in _Workspace.models.fget(self).items()}

    @property
    def environments(self):
        from .environment import Environment
        return Environment.list(self)

    @property
    def datasets(self):
        from .dataset import Dataset
        return Dataset.get_all(self)

    @property
    def webservices(self):
        """The workspace's web services by name."""
        return {s.name: s for s in atelier.Webservice.list(self)}

    @property
    def images(self):
        return {i.name: i for i in atelier.Image.list(self)}

    def get_default_datastore(self):
        from .datastore import Datastore
        return adopt(_Workspace.get_default_datastore(self), Datastore)

    def get_default_keyvault(self):
        from .keyvault import Keyvault
        return Keyvault(self)

    def get_run(self, run_id):
        from .run import Run
        from .experiment import Experiment
        r = adopt(_Workspace.get_run(self, run_id), Run)
        adopt(r.experiment, Experiment)
        return r


def _find_config(path, file_name):
    name = file_name or "config.json"
    if path is not None:
        path = os.fspath(path)
        if os.path.isfile(path):
            return os.path.abspath(path)
        dirs = [os.path.abspath(path)]
    else:
        dirs, d = [], os.getcwd()
        while True:
            dirs.append(d)
            up = os.path.dirname(d)
            if up == d:
                break
            d = up
    for d in dirs:
        for sub in _CONFIG_DIRS:
            p = os.path.join(d, sub, name)
            if os.path.isfile(p):
                return p
    return None


def _connect(cfg_path, auth):
    """An atelier Workspace with the server and token: from cfg_path's "server"/"token", the
    ATELIER_* variables, .atelier/config.json, or the server started here. Without cfg_path,
    the nearest Azure config.json holding a "server" gives it."""
    if cfg_path is None:
        cand = _find_config(None, None)
        if cand is not None and _has_server(cand):
            cfg_path = cand
    ws = _Workspace.from_config(path=cfg_path) if cfg_path else _Workspace.from_config()
    token = getattr(auth, "atelier_token", None)
    if token:
        ws._client.token = token
    return ws


def _has_server(path):
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and bool(d.get("server") or d.get("url"))
