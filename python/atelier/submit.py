"""Submitting scripts: ScriptRunConfig, Environment and snapshot upload."""

import hashlib
import os
import stat
import subprocess

from ._http import quote_seg
from ._ignore import walk
from .run import Run

__all__ = ["ScriptRunConfig", "Environment", "RunConfiguration", "upload_snapshot", "snapshot_entries"]

# Files from outside the source directory (a requirements file elsewhere) go here in the snapshot.
EXTRA_DIR = ".atelier"


class Environment:
    """The software a script runs with: a Python interpreter, a pip requirements file or a conda
    environment file, and environment variables."""

    def __init__(self, name=None, python=None, requirements=None, conda=None, variables=None):
        self.name = name
        self.python = python
        self.requirements = requirements
        self.conda = conda
        self.variables = dict(variables or {})

    @property
    def environment_variables(self):  # Azure's name
        return self.variables

    @environment_variables.setter
    def environment_variables(self, v):
        self.variables = dict(v or {})

    @classmethod
    def from_pip_requirements(cls, name, file_path):
        return cls(name=name, requirements=os.fspath(file_path))

    @classmethod
    def from_conda_specification(cls, name, file_path):
        return cls(name=name, conda=os.fspath(file_path))

    def __repr__(self):
        return "Environment(name=%r, python=%r, requirements=%r, conda=%r)" % (
            self.name, self.python, self.requirements, self.conda)


class ScriptRunConfig:
    """How to run a script: ``ScriptRunConfig(source_directory, script, arguments=None,
    compute_target="local", environment=None)``."""

    def __init__(self, source_directory=".", script=None, arguments=None, compute_target="local",
                 environment=None, max_run_duration_seconds=None, run_config=None, name=None):
        if script is None:
            raise ValueError("ScriptRunConfig needs a script (relative to source_directory)")
        self.source_directory = os.fspath(source_directory)
        self.script = script
        self.arguments = list(arguments or [])
        self.compute_target = compute_target or "local"
        self.environment = environment or getattr(run_config, "environment", None)
        self.max_run_duration_seconds = max_run_duration_seconds
        self.name = name

    def _resolve_file(self, p, extra):
        """A file of the environment as a path relative to the source directory; a file outside
        it is added to the snapshot under .atelier/."""
        if p is None:
            return None
        p = os.fspath(p)
        src = os.path.abspath(self.source_directory)
        cand = [p] if os.path.isabs(p) else [os.path.join(src, p), os.path.abspath(p)]
        for c in cand:
            if os.path.isfile(c):
                rel = os.path.relpath(os.path.abspath(c), src)
                if not rel.startswith(".." + os.sep) and rel != "..":
                    return rel.replace(os.sep, "/")
                dest = EXTRA_DIR + "/" + os.path.basename(c)
                extra[dest] = os.path.abspath(c)
                return dest
        return p.replace(os.sep, "/")  # let the server say it is missing

    def _body(self, experiment, snapshot_id, extra_resolved):
        env = self.environment
        envd = {}
        if env is not None:
            if env.python:
                envd["python"] = env.python
            if extra_resolved.get("requirements"):
                envd["requirements"] = extra_resolved["requirements"]
            if extra_resolved.get("conda"):
                envd["conda"] = extra_resolved["conda"]
            if env.variables:
                envd["variables"] = {str(k): str(v) for k, v in env.variables.items()}
        compute = self.compute_target
        compute = getattr(compute, "name", compute)
        config = {"script": self.script.replace(os.sep, "/"), "arguments": [str(a) for a in self.arguments],
                  "compute": compute, "environment": envd}
        if self.max_run_duration_seconds:
            config["timeout"] = self.max_run_duration_seconds
        body = {"experiment": experiment.name, "snapshot_id": snapshot_id, "config": config}
        if self.name:
            body["name"] = self.name
        return body

    def _submit(self, experiment, tags=None, name=None, **kwargs):
        ws = experiment.workspace
        extra, resolved = {}, {}
        env = self.environment
        if env is not None:
            resolved["requirements"] = self._resolve_file(env.requirements, extra)
            resolved["conda"] = self._resolve_file(env.conda, extra)
        snap = upload_snapshot(ws, self.source_directory, extra_files=extra)
        body = self._body(experiment, snap["id"], resolved)
        if name:
            body["name"] = name
        if tags:
            body["tags"] = {k: str(v) for k, v in tags.items()}
        git = _git_info(self.source_directory)
        if git:
            body["git"] = git
        d = ws._client.request("POST", "/api/v1/workspaces/%s/runs/submit" % quote_seg(ws.name), body=body)
        return Run(experiment, d["id"], _details=d)


RunConfiguration = ScriptRunConfig  # not Azure's class; kept so `from atelier import RunConfiguration` works


def _digest(path):
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
            size += len(blk)
    return h.hexdigest(), size


def snapshot_entries(source_directory, extra_files=None):
    """The snapshot manifest of a directory (honouring .amlignore, else .gitignore) as a list of
    entries, and a map from digest to a local file with that content."""
    entries, files = [], {}
    items = list(walk(source_directory))
    seen = {rel for rel, _ in items}
    for rel, p in sorted((extra_files or {}).items()):
        if rel not in seen:
            items.append((rel, p))
    for rel, p in items:
        digest, size = _digest(p)
        e = {"path": rel, "digest": digest, "size": size}
        if os.stat(p).st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
            e["executable"] = True
        entries.append(e)
        files.setdefault(digest, p)
    return entries, files


def upload_snapshot(workspace, source_directory, extra_files=None):
    """Uploads a directory as a content-addressed snapshot: only the files the server lacks are
    sent. Returns the snapshot JSON (its "id" names it)."""
    if not os.path.isdir(source_directory):
        raise FileNotFoundError("source directory %s does not exist" % source_directory)
    c = workspace._client
    base = "/api/v1/workspaces/%s" % quote_seg(workspace.name)
    entries, files = snapshot_entries(source_directory, extra_files)
    digests = list(files)
    missing = []
    for i in range(0, len(digests), 1000):
        d = c.request("POST", base + "/objects/missing", body={"digests": digests[i:i + 1000]})
        missing.extend((d or {}).get("missing") or [])
    for dg in missing:
        p = files[dg]
        with open(p, "rb") as f:
            c.request("PUT", base + "/objects/" + dg, body=f, headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(os.path.getsize(p))})
    return c.request("POST", base + "/snapshots", body={"entries": entries})


def _git_info(directory):
    """Commit, branch and dirtiness of the checkout holding directory, if git is at hand."""
    def git(*args):
        return subprocess.run(("git",) + args, cwd=directory, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    info = {"commit": commit, "branch": "" if branch == "HEAD" else branch, "dirty": dirty}
    try:
        remote = git("config", "--get", "remote.origin.url")
        if remote:
            info["remote"] = remote
    except (OSError, subprocess.SubprocessError):
        pass
    return info
