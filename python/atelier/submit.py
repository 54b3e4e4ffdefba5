"""Submitting scripts: ScriptRunConfig, Environment and snapshot upload."""

import hashlib
import io
import os
import stat
import subprocess
import sys
import tempfile

from ._http import AtelierError, quote_seg
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
        if kwargs.get("_parent_id"):
            snap = child_snapshot(ws, self.source_directory, extra_files=extra)
        else:
            snap = upload_snapshot(ws, self.source_directory, extra_files=extra)
        body = self._body(experiment, snap["id"], resolved)
        if name:
            body["name"] = name
        if tags:
            body["tags"] = {k: str(v) for k, v in tags.items()}
        if kwargs.get("_parent_id"):
            body["parent_id"] = kwargs["_parent_id"]
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
    entries, and a map from digest to a local file with that content. Each file is read once:
    its entry holds the digest and size of what was read (a file still being written, a log
    being appended to, is snapshotted as it was when read); a file gone before it is read is
    left out with a warning."""
    entries, files = [], {}
    items = list(walk(source_directory))
    seen = {rel for rel, _ in items}
    for rel, p in sorted((extra_files or {}).items()):
        if rel not in seen:
            items.append((rel, p))
    for rel, p in items:
        try:
            digest, size = _digest(p)
            mode = os.stat(p).st_mode
        except FileNotFoundError:
            sys.stderr.write("atelier: snapshot: %s was removed while the snapshot was taken; left out\n" % rel)
            continue
        e = {"path": rel, "digest": digest, "size": size}
        if mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
            e["executable"] = True
        entries.append(e)
        files.setdefault(digest, p)
    return entries, files


def _read_prefix(path, size):
    """The first size bytes of path (fewer if it shrank) in a spooled temporary file, and their
    digest and length."""
    spool = tempfile.SpooledTemporaryFile(max_size=32 << 20)
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while n < size:
            blk = f.read(min(1 << 20, size - n))
            if not blk:
                break
            h.update(blk)
            spool.write(blk)
            n += len(blk)
    spool.seek(0)
    return spool, h.hexdigest(), n


def upload_snapshot(workspace, source_directory, extra_files=None):
    """Uploads a directory as a content-addressed snapshot: only the files the server lacks are
    sent. Returns the snapshot JSON (its "id" names it).

    What is uploaded is exactly the bytes the manifest's digest was taken of: a file that grew
    since (a log being appended to) is sent as its first size bytes; one rewritten in between
    is sent as it reads now, its manifest entry corrected, with a warning on stderr. A file
    changing never fails the upload."""
    if not os.path.isdir(source_directory):
        raise FileNotFoundError("source directory %s does not exist" % source_directory)
    c = workspace._client
    base = "/api/v1/workspaces/%s" % quote_seg(workspace.name)
    entries, files = snapshot_entries(source_directory, extra_files)
    sizes = {e["digest"]: e["size"] for e in entries}
    digests = list(files)
    missing = []
    for i in range(0, len(digests), 1000):
        d = c.request("POST", base + "/objects/missing", body={"digests": digests[i:i + 1000]})
        missing.extend((d or {}).get("missing") or [])
    for dg in missing:
        p = files[dg]
        try:
            spool, got, n = _read_prefix(p, sizes[dg])
        except FileNotFoundError:
            spool, got, n = None, None, 0
        if got != dg:
            # Rewritten (or removed) since it was hashed: snapshot what it holds now.
            if spool is not None:
                spool.close()
            try:
                with open(p, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                data = None
            changed = [e for e in entries if e["digest"] == dg]
            for e in changed:
                if data is None:
                    entries.remove(e)
                else:
                    e["digest"], e["size"] = hashlib.sha256(data).hexdigest(), len(data)
            sys.stderr.write("atelier: snapshot: %s changed while the snapshot was taken; %s\n" % (
                ", ".join(e["path"] for e in changed),
                "left out (it is gone)" if data is None else "snapshotted as it reads now"))
            if data is None:
                continue
            spool, got, n = io.BytesIO(data), hashlib.sha256(data).hexdigest(), len(data)
        with spool:
            c.request("PUT", base + "/objects/" + got, body=spool, headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(n)})
    return c.request("POST", base + "/snapshots", body={"entries": entries})


def child_snapshot(workspace, source_directory, extra_files=None):
    """The snapshot of a run submitted from a submitted run: a run's token may not upload code,
    so a child run of the script's own directory gets the code snapshot of the run this process
    is (the directory it started in). Anything else is refused with what to do instead."""
    try:
        return upload_snapshot(workspace, source_directory, extra_files=extra_files)
    except AtelierError as e:
        me = os.environ.get("ATELIER_RUN_ID")
        if e.status != 403 or not me:
            raise
        here = os.path.realpath(os.getcwd())
        if os.path.realpath(source_directory) != here or extra_files:
            raise AtelierError("a submitted run's token may not upload code: submit the child with "
                               "source_directory='.' (it then runs this run's own code snapshot), or submit "
                               "it from outside the run", code="forbidden", status=403) from None
        d = workspace._client.request("GET", "/api/v1/workspaces/%s/runs/%s" % (quote_seg(workspace.name),
                                                                               quote_seg(me)))
        return {"id": d["snapshot_id"]}


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
