"""Registered, versioned v1 objects atelier's server has no table for yet (environments and
datasets): JSON documents in the workspace's built-in "default" datastore, at
.azureml/registry/<kind>/<name>/<version>.json. Versions count from 1; two clients registering
the same name at the same instant can race (the server would need a registry to prevent it)."""

import json

from atelier._http import AtelierError, quote_path, quote_seg

DATASTORE = "default"
ROOT = ".azureml/registry"


def _files(ws):
    return "/api/v1/workspaces/%s/datastores/%s/files" % (quote_seg(ws.name), quote_seg(DATASTORE))


def _list(ws, prefix):
    out, q = [], {"prefix": prefix, "recursive": True, "limit": 10000}
    while True:
        page = ws._client.request("GET", _files(ws), query=q) or {}
        out.extend(f["path"] for f in page.get("files") or [])
        tok = page.get("next_page_token")
        if not tok:
            return out
        q["page_token"] = tok


def versions(ws, kind, name):
    """The registered versions of name, ascending."""
    vs = []
    for p in _list(ws, "%s/%s/%s/" % (ROOT, kind, name)):
        base = p.rsplit("/", 1)[-1]
        if base.endswith(".json") and base[:-5].isdigit():
            vs.append(int(base[:-5]))
    return sorted(vs)


def names(ws, kind):
    out = set()
    for p in _list(ws, "%s/%s/" % (ROOT, kind)):
        parts = p[len(ROOT) + len(kind) + 2:].split("/")
        if len(parts) == 2:
            out.add(parts[0])
    return sorted(out)


def get(ws, kind, name, version=None):
    """The document of name at version (the latest when None), or None when there is none."""
    if version is None or version == "latest":
        vs = versions(ws, kind, name)
        if not vs:
            return None
        version = vs[-1]
    try:
        data = ws._client.request("GET", _files(ws) + "/" + quote_path("%s/%s/%s/%d.json" % (ROOT, kind, name,
                                                                                             int(version))), raw=True)
    except AtelierError as e:
        if e.status == 404:
            return None
        raise
    doc = json.loads(data.decode("utf-8"))
    doc["version"] = int(version)
    return doc


def put(ws, kind, name, doc, new_version=True):
    """Stores doc as the next version of name (or over the latest with new_version=False);
    returns the version."""
    vs = versions(ws, kind, name)
    version = (vs[-1] + 1 if vs else 1) if new_version or not vs else vs[-1]
    body = json.dumps(dict(doc, version=version), sort_keys=True, indent=1).encode("utf-8")
    ws._client.request("PUT", _files(ws) + "/" + quote_path("%s/%s/%s/%d.json" % (ROOT, kind, name, version)),
                       body=body, headers={"Content-Type": "application/json", "Content-Length": str(len(body))})
    return version
