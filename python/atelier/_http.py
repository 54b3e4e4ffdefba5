"""A small HTTP client for the atelier REST API (standard library only)."""

import http.client
import json
import math
import socket
import threading
import time
import urllib.parse

__all__ = ["AtelierError", "Client"]


class AtelierError(Exception):
    """An error answered by the atelier server (or met reaching it).

    ``code`` is the server's error code ("not_found", "conflict", "invalid", ...), ``status``
    the HTTP status (0 when the server could not be reached) and ``message`` its explanation.
    ``details`` is the server's whole JSON error answer (e.g. the "references" that keep a model
    version from being deleted), or an empty dict.
    """

    def __init__(self, message, code="internal", status=0, details=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details if details is not None else {}

    def __str__(self):
        if self.status:
            return "%s (%s, HTTP %d)" % (self.message, self.code, self.status)
        return "%s (%s)" % (self.message, self.code)


class ActivityFailedError(AtelierError):
    """A run waited for ended as Failed; ``details`` is the run's details dict."""

    def __init__(self, message, details=None):
        super().__init__(message, code="run_failed", status=0)
        self.details = details or {}


def to_json_value(v):
    """Converts v to something json.dumps writes as strict JSON: NaN and the infinities become
    the strings atelier uses, numpy arrays and scalars become lists and floats."""
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if isinstance(v, dict):
        return {str(k): to_json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json_value(x) for x in v]
    tolist = getattr(v, "tolist", None)  # numpy arrays, numpy scalars, torch tensors
    if callable(tolist):
        return to_json_value(tolist())
    try:
        return to_json_value(float(v))
    except (TypeError, ValueError):
        return str(v)


_FLOAT_STRINGS = {"NaN": math.nan, "nan": math.nan, "Infinity": math.inf, "inf": math.inf,
                  "+Infinity": math.inf, "-Infinity": -math.inf, "-inf": -math.inf}


def parse_float(v):
    """Parses a metric value as the server writes it: a number or "NaN"/"Infinity"/"-Infinity"."""
    if isinstance(v, str):
        if v in _FLOAT_STRINGS:
            return _FLOAT_STRINGS[v]
        return float(v)
    if v is None:
        return math.nan
    return float(v)


def quote_path(p):
    return urllib.parse.quote(p, safe="/")


def quote_seg(s):
    return urllib.parse.quote(str(s), safe="")


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over the server's Unix socket."""

    def __init__(self, path, timeout=None):
        super().__init__("atelier", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


class Client:
    """Talks to one atelier server with one token. Each thread keeps its own keep-alive
    connection, so the background metric sender and the script never share a socket."""

    def __init__(self, server, token, timeout=300.0):
        if not server:
            raise ValueError("the atelier server URL is required")
        if "://" not in server:
            server = "http://" + server
        self.server = server.rstrip("/")
        self.token = token or ""
        self.timeout = timeout
        self._local = threading.local()
        if server.startswith("unix://"):
            # The server's Unix socket on this machine (unix:///path/to/atelier.sock).
            self._scheme, self._netloc, self._prefix = "unix", server[len("unix://"):], ""
            return
        u = urllib.parse.urlsplit(server)
        if u.scheme not in ("http", "https"):
            raise ValueError("unsupported server URL %r: use http://, https:// or unix://" % server)
        self._scheme = u.scheme
        self._netloc = u.netloc
        self._prefix = u.path.rstrip("/")

    def __repr__(self):
        return "Client(%r)" % self.server

    # connections

    def _new_conn(self, timeout=None):
        if self._scheme == "unix":
            return _UnixConnection(self._netloc, timeout=timeout or self.timeout)
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._netloc, timeout=timeout or self.timeout)

    def _conn(self):
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = self._new_conn()
        return c

    def _drop_conn(self):
        c = getattr(self._local, "conn", None)
        self._local.conn = None
        if c is not None:
            try:
                c.close()
            except Exception:
                pass

    def reset_after_fork(self):
        self._local = threading.local()

    def headers(self, extra=None):
        h = {"User-Agent": "atelier-python"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if extra:
            h.update(extra)
        return h

    def url(self, path, query=None):
        u = self._prefix + path
        if query:
            q = {k: ("true" if v is True else "false" if v is False else v)
                 for k, v in query.items() if v is not None}
            if q:
                u += "?" + urllib.parse.urlencode(q)
        return u

    # requests

    def request(self, method, path, body=None, query=None, headers=None, retries=3, raw=False):
        """Sends a request and returns the decoded JSON answer (None for an empty body), or
        the raw bytes when raw is set. Server errors raise AtelierError.

        A request is retried only when it cannot have been applied: the server was not reached,
        a kept-alive connection turned out closed before any answer, or the server said 503."""
        hdrs = self.headers(headers)
        streamed = hasattr(body, "__next__")  # a generator of chunks: sent chunked, and only once
        if body is not None and not streamed and not isinstance(body, (bytes, bytearray)) and not hasattr(body, "read"):
            body = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
            hdrs.setdefault("Content-Type", "application/json")
        replayable = not streamed and (not hasattr(body, "read") or hasattr(body, "seek"))
        url = self.url(path, query)
        attempt = 0
        while True:
            attempt += 1
            conn = self._conn()
            reused = getattr(conn, "sock", None) is not None
            try:
                if hasattr(body, "seek") and attempt > 1:
                    body.seek(0)
                conn.request(method, url, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self._drop_conn()
                # A kept-alive connection the server had closed: the request was not processed.
                if reused and attempt <= retries and replayable:
                    continue
                raise AtelierError("%s %s: connection to %s lost: %s" % (method, path, self.server, e),
                                   code="unavailable") from e
            except (ConnectionRefusedError, socket.gaierror) as e:
                self._drop_conn()
                if attempt <= retries and replayable:
                    time.sleep(0.2 * 2 ** attempt)
                    continue
                raise AtelierError("%s %s: cannot reach %s: %s" % (method, path, self.server, e),
                                   code="unavailable") from e
            except (OSError, http.client.HTTPException) as e:
                self._drop_conn()
                raise AtelierError("%s %s: %s: %s" % (method, path, self.server, e), code="unavailable") from e
            except AtelierError:
                self._drop_conn()  # raised by a streamed body: the request was cut off
                raise
            if resp.will_close:
                self._drop_conn()
            if resp.status == 503 and attempt <= retries and replayable:
                time.sleep(0.2 * 2 ** attempt)
                continue
            if resp.status >= 400:
                raise error_from_response(resp.status, data, method, path)
            if raw:
                return data
            if not data:
                return None
            ctype = resp.getheader("Content-Type", "")
            if "json" in ctype:
                return json.loads(data)
            return data

    def stream(self, method, path, query=None, timeout=None):
        """Opens a streaming response on its own connection; the caller reads and closes it."""
        conn = self._new_conn(timeout=timeout)
        try:
            conn.request(method, self.url(path, query), headers=self.headers())
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise AtelierError("%s %s: %s: %s" % (method, path, self.server, e), code="unavailable") from e
        if resp.status >= 400:
            data = resp.read()
            conn.close()
            raise error_from_response(resp.status, data, method, path)
        resp._atelier_conn = conn  # keep the connection alive with the response
        return resp


def error_from_response(status, data, method, path):
    code, message, details = "", "", None
    try:
        d = json.loads(data)
        code, message = d.get("code", ""), d.get("message", "")
        details = d
    except (ValueError, AttributeError):
        pass
    if not code:
        code = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                409: "conflict", 413: "too_large", 503: "unavailable"}.get(status, "internal")
    if not message:
        text = data.decode("utf-8", "replace").strip() if data else ""
        message = "%s %s: HTTP %d%s" % (method, path, status, (": " + text[:500]) if text else "")
    return AtelierError(message, code=code, status=status, details=details)
