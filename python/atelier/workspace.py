"""Workspaces and experiments."""

import json
import os
import socket
import stat

from ._http import AtelierError, Client, quote_seg
from .run import Run

__all__ = ["Workspace", "Experiment"]

CONFIG_DIR = ".atelier"
CONFIG_FILE = "config.json"
# What `atelier server` keeps in its data directory (.atelier by default) while it runs.
TOKEN_FILE = "admin-token"
SOCKET_FILE = "atelier.sock"
URL_FILE = "server-url"


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
        ATELIER_WORKSPACE override the file, or replace it when there is none.

        Without a token, the admin token of a server's data directory (the admin-token next to
        the config, or ./.atelier/admin-token) is used, and sent only to that server: its Unix
        socket in that directory, or the address it wrote there (server-url) while it runs; that
        server is also the default when no server is named. A token is never sent to another
        server, and no address is guessed."""
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
        tf = None if token else _token_file(cfg_path)
        data_dir = os.path.dirname(tf) if tf else os.path.join(os.getcwd(), CONFIG_DIR)
        here = _local_servers(data_dir) if tf or not server else []
        if not server and here:
            server = here[0]
        if not server:
            if tf:
                raise AtelierError(
                    "%s holds an admin token, but no server started with that data directory is "
                    "running (%s does not answer and there is no %s): start `atelier server` there, "
                    "or name the server with ATELIER_SERVER (and ATELIER_TOKEN) or in "
                    '.atelier/config.json {"server": ..., "token": ...}'
                    % (data_dir, os.path.join(data_dir, SOCKET_FILE), os.path.join(data_dir, URL_FILE)),
                    code="not_found", status=404)
            raise AtelierError("no atelier server: set ATELIER_SERVER and ATELIER_TOKEN, or create "
                               '.atelier/config.json with {"server": ..., "token": ..., "workspace": ...}, '
                               "or work in the directory where `atelier server` runs",
                               code="not_found", status=404)
        if tf and _same_server(server, here):
            with open(tf, encoding="utf-8") as f:
                token = f.read().strip()
        return cls(server, token or "", name)

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

    @property
    def compute_targets(self):
        """The workspace's compute targets by name (the built-in "local" included)."""
        from .compute import ComputeTarget
        return {c.name: c for c in ComputeTarget.list(self)}

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
        cands.append(os.path.join(d, TOKEN_FILE))
        cands.append(os.path.join(d, CONFIG_DIR, TOKEN_FILE))
    cands.append(os.path.join(os.getcwd(), CONFIG_DIR, TOKEN_FILE))
    for c in cands:
        if os.path.isfile(c):
            return c
    return None


def _local_servers(data_dir):
    """The addresses of the server started with data_dir, found as the CLI finds them: its Unix
    socket, when one of this user's answers there, then the address it wrote to server-url while
    it runs. A socket that no longer answers means its server is gone without cleaning up, so the
    server-url beside it is stale too: another listener may have the port now."""
    here = []
    sock = os.path.abspath(os.path.join(data_dir, SOCKET_FILE))
    state = _socket_state(sock)
    if state == "dead":
        return []
    if state == "answers":
        here.append("unix://" + sock)
    try:
        with open(os.path.join(data_dir, URL_FILE), encoding="utf-8") as f:
            url = f.read().strip().rstrip("/")
    except OSError:
        url = ""
    if url:
        here.append(url)
        if url.startswith("http://127.0.0.1:"):
            here.append("http://localhost:" + url[len("http://127.0.0.1:"):])
    return here


def _socket_state(path):
    """"answers" for a socket of this user's that accepts a connection, "dead" for one that
    refuses it, "" when there is none (or it is another user's: it would get the token)."""
    if not hasattr(socket, "AF_UNIX") or not hasattr(os, "getuid"):
        return ""
    try:
        st = os.lstat(path)
    except OSError:
        return ""
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
        return ""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
        return "answers"
    except (ConnectionRefusedError, FileNotFoundError):
        return "dead"
    except OSError:
        return ""
    finally:
        s.close()


def _same_server(server, here):
    """Whether the address server is one of here's, however it is spelled."""
    def norm(u):
        u = u.rstrip("/")
        if u.startswith("unix://"):
            return "unix://" + os.path.realpath(u[len("unix://"):])
        return u if "://" in u else "http://" + u
    return norm(server) in {norm(h) for h in here}


# start_logging's default snapshot_directory: the current directory when the run starts.
_CURRENT_DIRECTORY = object()


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

    def start_logging(self, name=None, display_name=None, snapshot_directory=_CURRENT_DIRECTORY, tags=None,
                      params=None, outputs=None, **kwargs):
        """Starts an interactive run (status Running) to log to from this process; complete()
        it when done, or use it as a context manager. As in Azure ML v1, snapshot_directory (by
        default the current directory; None for no snapshot) is uploaded as the run's code
        snapshot, and the files of the outputs directory (by default ./outputs; False for none)
        are uploaded under outputs/ when the run completes."""
        if snapshot_directory is _CURRENT_DIRECTORY:
            snapshot_directory = os.getcwd()
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
        run = Run(self, d["id"], _details=d)
        if outputs is not False:
            run._outputs_dir = os.path.abspath(os.fspath(outputs) if outputs else "outputs")
        return run

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
