"""The replica's side of model data collection where the server cannot read its files (a pod).

On a kubernetes target the ModelDataCollector writes under ATELIER_MODEL_DATA_DIR inside the
pod (an emptyDir), and the server pulls what was appended:

    POST /__atelier/modeldata
    x-atelier-model-data-token: <ATELIER_MODEL_DATA_TOKEN>

    {"offsets": {"<path below ATELIER_MODEL_DATA_DIR>": <bytes the server has>, ...}, "limit": <bytes>}

answers a first line of JSON, {"files": [{"path": P, "offset": O, "length": L}, ...], "more": M},
then the L bytes of each file from O, in that order: whole records (the collector appends under
its lock, taken here too), at most limit bytes in all (a file's part cut after a newline; "more"
says something was left for the next pull). A file whose offset is past its end starts over.

Offsets are a file's bytes since the collector created it, whatever was pruned since: a file the
server has pulled whole (its offset in the pull is its end) and that holds at least
ATELIER_MODEL_DATA_KEEP bytes (1 MiB) is emptied, so that the pod's folder does not grow with
what the server already has; the bytes it had are counted in a file beside it (.<name>.pulled),
and a pull asking for pruned bytes gets the file from what it still holds.

The endpoint exists only with a token (the server's per-service secret, in the pod's
environment from a Secret; removed from os.environ before score.py is imported): without one
it is an unknown path (404); a request without the token or with another one gets 401.
"""

import contextlib
import hmac
import json
import os
import sys

PATH = "/__atelier/modeldata"
HEADER = "x-atelier-model-data-token"
LIMIT = 8 << 20  # bytes a pull returns at most unless it asks for less
KEEP = int(os.environ.get("ATELIER_MODEL_DATA_KEEP") or (1 << 20))  # bytes a file pulled whole may keep

_token = os.environ.pop("ATELIER_MODEL_DATA_TOKEN", "").encode("utf-8")


def _pruned_path(full):
    d, n = os.path.split(full)
    return os.path.join(d, "." + n + ".pulled")


def _pruned(full):
    """The bytes of full pruned so far: its offset's start."""
    try:
        with open(_pruned_path(full)) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def _prune(full, end):
    """Empties full, whose bytes up to end the server has (the collector's lock is held). The
    count is written first: a replica killed in between has its file's bytes pulled twice,
    not lost."""
    side = _pruned_path(full)
    with open(side + ".tmp", "w") as f:
        f.write(str(end))
    os.replace(side + ".tmp", side)
    os.truncate(full, 0)


def _error(status, message):
    return status, json.dumps({"message": message}).encode("utf-8"), [("Content-Type", "application/json")]


def serve(method, token, body):
    """(status, body, headers) of a pull, or None when there is no such endpoint (404)."""
    root = os.environ.get("ATELIER_MODEL_DATA_DIR", "")
    if not _token or not root:
        return None
    if not hmac.compare_digest(token.encode("utf-8", "replace"), _token):
        return _error(401, "model data pulls need the service's token")
    if method != "POST":
        return _error(405, "model data is pulled with POST")
    try:
        req = json.loads(body or b"{}")
        offsets = req.get("offsets") or {}
        limit = int(req.get("limit") or LIMIT)
        if not isinstance(offsets, dict) or not all(isinstance(v, int) for v in offsets.values()) or limit <= 0:
            raise ValueError("offsets must map paths to byte offsets")
    except (ValueError, AttributeError, TypeError) as ex:
        return _error(400, "the pull must be JSON: {\"offsets\": {PATH: OFFSET}, \"limit\": BYTES}: %s" % ex)
    mon = sys.modules.get("azureml.monitoring")
    lock = getattr(mon, "_lock", None) or contextlib.nullcontext()
    files, parts, left, more = [], [], min(limit, LIMIT), False
    with lock:
        for d, dirs, names in os.walk(root):
            dirs.sort()
            for n in sorted(names):
                if n.startswith("."):
                    continue  # (the pruned counts)
                full = os.path.join(d, n)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                try:
                    held = os.path.getsize(full)
                except OSError:
                    continue
                base = _pruned(full)
                size = base + held
                off = offsets.get(rel, 0)
                if off > size or off < base:
                    off = base
                if size == off:
                    if held >= KEEP and rel in offsets:
                        try:
                            _prune(full, size)
                        except OSError:
                            pass
                    continue
                if left <= 0:
                    more = True
                    continue
                with open(full, "rb") as f:
                    f.seek(off - base)
                    data = f.read(min(size - off, left))
                if off + len(data) < size:
                    more = True
                    cut = data.rfind(b"\n") + 1
                    if cut == 0 and parts:
                        continue
                    if cut > 0:  # else a record longer than the limit goes in pieces
                        data = data[:cut]
                files.append({"path": rel, "offset": off, "length": len(data)})
                parts.append(data)
                left -= len(data)
    head = json.dumps({"files": files, "more": more}).encode("utf-8") + b"\n"
    return 200, head + b"".join(parts), [("Content-Type", "application/octet-stream")]
