"""Workspaces and experiments."""

import json
import os

from ._http import AtelierError, Client, quote_seg
from .run import Run

__all__ = ["Workspace", "Experiment"]

DEFAULT_SERVER = "http://127.0.0.1:8600"
CONFIG_DIR = ".atelier"
CONFIG_FILE = "config.json"


class Workspace:
    """An atelier workspace on a server: ``Workspace(server, token, name="default")``."""

    def __init__(self, server, token, name="default"):
        self.name = name or "default"
        self._client = Client(server, token)

    @property
    def server(self):
        return self._client.server

    def __repr__(self):
        return "Workspace.create(name=%r, server=%r)" % (self.name, self.server)

    def __eq__(self, other):
        return isinstance(other, Workspace) and (self.name, self.server) == (other.name, other.server)

    def __hash__(self):
        return hash((self.name, self.server))

    @classmethod
    def from_config(cls, path=None, _file_name=None):
        """Reads the workspace from .atelier/config.json ({"server", "token", "workspace"}),
        searched for from the current directory upwards (or at path: a config file, or a
        directory holding .atelier/config.json or config.json). ATELIER_SERVER, ATELIER_TOKEN and
        ATELIER_WORKSPACE override the file, or replace it when there is none. Without a token,
        .atelier/admin-token next to the config (or in the current directory) is used."""
        cfg_path = _find_config(path, _file_name)
        cfg = {}
        if cfg_path:
            try:
                with open(cfg_path, encoding="utf-8") as f:
                    cfg = json.load(f)
            except (OSError, ValueError) as e:
                raise AtelierError("cannot read %s: %s" % (cfg_path, e), code="invalid") from e
            if not isinstance(cfg, dict):
                raise AtelierError("%s: want a JSON object" % cfg_path, code="invalid")
        elif path is not None:
            raise AtelierError("no atelier config found at %s" % path, code="not_found", status=404)
        server = os.environ.get("ATELIER_SERVER") or cfg.get("server") or cfg.get("url")
        token = os.environ.get("ATELIER_TOKEN") or cfg.get("token")
        name = (os.environ.get("ATELIER_WORKSPACE") or cfg.get("workspace") or cfg.get("workspace_name")
                or "default")
        if not cfg_path and not server and not token and not _token_file(None):
            raise AtelierError("no atelier config: create .atelier/config.json with "
                               '{"server": ..., "token": ..., "workspace": ...} or set ATELIER_SERVER '
                               "and ATELIER_TOKEN", code="not_found", status=404)
        if not token:
            tf = _token_file(cfg_path)
            if tf:
                with open(tf, encoding="utf-8") as f:
                    token = f.read().strip()
        return cls(server or DEFAULT_SERVER, token or "", name)

    @property
    def experiments(self):
        """The workspace's experiments by name."""
        d = self._client.request("GET", "/api/v1/workspaces/%s/experiments" % quote_seg(self.name))
        return {e["name"]: Experiment(self, e["name"], _details=e) for e in d.get("experiments") or []}

    def get_details(self):
        return self._client.request("GET", "/api/v1/workspaces/%s" % quote_seg(self.name))

    @property
    def models(self):
        """The workspace's models by name, each at its latest version."""
        from .model import Model
        return {m.name: m for m in Model.list(self, latest=True)}

    @property
    def datastores(self):
        """The workspace's datastores by name (the built-in "default" included)."""
        from .datastore import Datastore
        return {d.name: d for d in Datastore.list(self)}

    def get_default_datastore(self):
        """The workspace's default datastore."""
        from .datastore import Datastore
        return Datastore.get_default(self)

    def set_default_datastore(self, name):
        """Makes the datastore name the workspace's default."""
        from .datastore import Datastore
        return Datastore(self, _details={"name": name}).set_as_default()

    def get_run(self, run_id):
        """The run with id run_id, in whichever experiment it is."""
        d = self._client.request("GET", "/api/v1/workspaces/%s/runs/%s" % (quote_seg(self.name), quote_seg(run_id)))
        return Run(Experiment(self, d.get("experiment", "")), d["id"], _details=d)


def _find_config(path, file_name=None):
    names = [os.path.join(CONFIG_DIR, file_name or CONFIG_FILE), file_name or CONFIG_FILE]
    if path is not None:
        path = os.fspath(path)
        if os.path.isfile(path):
            return os.path.abspath(path)
        for n in names:
            p = os.path.join(path, n)
            if os.path.isfile(p):
                return os.path.abspath(p)
        return None
    d = os.getcwd()
    while True:
        p = os.path.join(d, names[0])
        if os.path.isfile(p):
            return p
        up = os.path.dirname(d)
        if up == d:
            return None
        d = up


def _token_file(cfg_path):
    cands = []
    if cfg_path:
        d = os.path.dirname(cfg_path)
        cands.append(os.path.join(d, "admin-token"))
        cands.append(os.path.join(d, CONFIG_DIR, "admin-token"))
    cands.append(os.path.join(os.getcwd(), CONFIG_DIR, "admin-token"))
    for c in cands:
        if os.path.isfile(c):
            return c
    return None


class Experiment:
    """A named group of runs in a workspace; it is created on its first run."""

    def __init__(self, workspace, name, _details=None, _lazy=False):
        if not name and not _lazy:
            raise ValueError("an experiment needs a name")
        self.workspace = workspace
        self.name = name
        self._details = _details

    def __repr__(self):
        return "Experiment(Name: %s, Workspace: %s)" % (self.name, self.workspace.name)

    def _runs_path(self):
        return "/api/v1/workspaces/%s/runs" % quote_seg(self.workspace.name)

    def start_logging(self, name=None, display_name=None, snapshot_directory=None, tags=None,
                      params=None, outputs=None, **kwargs):
        """Starts an interactive run (status Running) to log to from this process; complete()
        it when done, or use it as a context manager. With snapshot_directory, that directory is
        uploaded as the run's code snapshot."""
        body = {"experiment": self.name, "status": "Running"}
        if name or display_name:
            body["name"] = name or display_name
        if tags:
            body["tags"] = {k: str(v) for k, v in tags.items()}
        if params:
            body["params"] = {k: str(v) for k, v in params.items()}
        if snapshot_directory is not None:
            from .submit import upload_snapshot
            body["snapshot_id"] = upload_snapshot(self.workspace, snapshot_directory)["id"]
        d = self.workspace._client.request("POST", self._runs_path(), body=body)
        return Run(self, d["id"], _details=d)

    def submit(self, config, tags=None, **kwargs):
        """Submits a ScriptRunConfig; returns the queued Run."""
        submit = getattr(config, "_submit", None)
        if submit is None:
            raise TypeError("submit wants a ScriptRunConfig, not %s" % type(config).__name__)
        return submit(self, tags=tags, **kwargs)

    def get_runs(self, type=None, tags=None, properties=None, include_children=False, status=None):
        """The experiment's runs, newest first (top-level runs unless include_children)."""
        token = None
        while True:
            q = {"experiment": self.name, "root_only": None if include_children else True, "page_token": token}
            page = self.workspace._client.request("GET", self._runs_path(), query=q)
            from .run import _run_matches
            for d in page.get("runs") or []:
                if _run_matches(d, tags, properties, status):
                    yield Run(self, d["id"], _details=d)
            token = page.get("next_page_token")
            if not token:
                return

    def get_details(self):
        return self.workspace._client.request(
            "GET", "/api/v1/workspaces/%s/experiments/%s" % (quote_seg(self.workspace.name), quote_seg(self.name)))
