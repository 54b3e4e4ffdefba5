"""AMLRequest, AMLResponse and @rawhttp: the raw-HTTP types of Azure ML's scoring contract.

A score.py imports them from azureml.contrib.services.aml_request / aml_response (or
azureml_inference_server_http.api.…): the runtime makes those module names this module, as
Microsoft's server substitutes its own. Microsoft's are Flask's Request and Response; these offer
the part of that API score.py files use, with the standard library only.
"""

import io
import json
from urllib.parse import parse_qsl

# Set by @rawhttp, as Microsoft's module does: the server then passes run() the request itself.
_rawHttpRequested = False


def rawhttp(func):
    """Marks run() as wanting the raw HTTP request (an AMLRequest) instead of the body string."""
    global _rawHttpRequested
    _rawHttpRequested = True
    func.__atelier_rawhttp__ = True
    return func


class Headers:
    """Case-insensitive HTTP headers that keep their order and repeated names."""

    def __init__(self, items=()):
        self._items = list(items)

    def get(self, name, default=None, type=None):
        low = name.lower()
        for k, v in self._items:
            if k.lower() == low:
                if type is not None:
                    try:
                        return type(v)
                    except (TypeError, ValueError):
                        return default
                return v
        return default

    def getlist(self, name):
        low = name.lower()
        return [v for k, v in self._items if k.lower() == low]

    get_all = getlist

    def __getitem__(self, name):
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name):
        return self.get(name) is not None

    def __setitem__(self, name, value):
        self.remove(name)
        self._items.append((name, str(value)))

    def __delitem__(self, name):
        self.remove(name)

    def remove(self, name):
        low = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != low]

    def add(self, name, value):
        self._items.append((name, str(value)))

    add_header = add

    def set(self, name, value):
        self[name] = value

    def items(self):
        return list(self._items)

    def keys(self):
        return [k for k, _ in self._items]

    def values(self):
        return [v for _, v in self._items]

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    def to_dict(self):
        return {k: v for k, v in self._items}

    def __repr__(self):
        return "Headers(%r)" % (self._items,)


class MultiDict(dict):
    """Werkzeug's MultiDict, enough of it: d[key] and get() give the first value."""

    def __init__(self, pairs=()):
        super().__init__()
        self._lists = {}
        for k, v in pairs:
            self._lists.setdefault(k, []).append(v)
            if k not in self:
                dict.__setitem__(self, k, v)

    def getlist(self, key, type=None):
        values = self._lists.get(key, [])
        return [type(v) for v in values] if type else list(values)

    def get(self, key, default=None, type=None):
        if key not in self:
            return default
        if type is None:
            return dict.__getitem__(self, key)
        try:
            return type(dict.__getitem__(self, key))
        except (TypeError, ValueError):
            return default

    def to_dict(self, flat=True):
        return dict(self) if flat else {k: list(v) for k, v in self._lists.items()}

    def lists(self):
        return list(self._lists.items())


class FileStorage(io.BytesIO):
    """An uploaded file of a multipart request, like Werkzeug's FileStorage."""

    def __init__(self, data, name, filename, content_type):
        super().__init__(data)
        self.name, self.filename, self.content_type = name, filename, content_type
        self.mimetype = (content_type or "").split(";")[0].strip()
        self.headers = Headers([("Content-Type", content_type or "application/octet-stream")])

    @property
    def stream(self):
        return self

    def save(self, dst):
        data = self.getvalue()
        if isinstance(dst, str):
            with open(dst, "wb") as f:
                f.write(data)
        else:
            dst.write(data)


class AMLRequest:
    """The HTTP request a @rawhttp run() receives, with Flask's Request attribute names."""

    def __init__(self, method="GET", path="/", query=b"", headers=None, body=b"", remote_addr=""):
        self.method = method
        self.path = path
        self.query_string = query
        self.headers = headers if isinstance(headers, Headers) else Headers(headers or ())
        self._body = body
        self.remote_addr = remote_addr
        self._args = self._form = self._files = None

    # -- the URL
    @property
    def full_path(self):
        return self.path + "?" + self.query_string.decode("latin-1")

    @property
    def host(self):
        return self.headers.get("Host", "localhost")

    @property
    def host_url(self):
        return "http://%s/" % self.host

    @property
    def base_url(self):
        return "http://%s%s" % (self.host, self.path)

    @property
    def url(self):
        q = self.query_string.decode("latin-1")
        return self.base_url + ("?" + q if q else "")

    @property
    def args(self):
        if self._args is None:
            self._args = MultiDict(parse_qsl(self.query_string.decode("latin-1"), keep_blank_values=True))
        return self._args

    @property
    def values(self):
        return MultiDict(list(self.args.items()) + list(self.form.items()))

    # -- the body
    @property
    def content_type(self):
        return self.headers.get("Content-Type")

    @property
    def mimetype(self):
        return (self.content_type or "").split(";")[0].strip().lower()

    @property
    def content_length(self):
        return len(self._body)

    @property
    def is_json(self):
        mt = self.mimetype
        return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))

    @property
    def data(self):
        return self._body

    def get_data(self, cache=True, as_text=False, parse_form_data=False):
        return self._body.decode("utf-8", "replace") if as_text else self._body

    @property
    def stream(self):
        return io.BytesIO(self._body)

    def get_json(self, force=False, silent=False, cache=True):
        if not (force or self.is_json):
            if silent:
                return None
            raise ValueError("the request's Content-Type is not application/json")
        try:
            return json.loads(self._body)
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self):
        return self.get_json()

    @property
    def form(self):
        self._parse_form()
        return self._form

    @property
    def files(self):
        self._parse_form()
        return self._files

    def _parse_form(self):
        if self._form is not None:
            return
        fields, files = [], []
        mt = self.mimetype
        if mt == "application/x-www-form-urlencoded":
            fields = parse_qsl(self._body.decode("utf-8", "replace"), keep_blank_values=True)
        elif mt == "multipart/form-data":
            import email.parser
            import email.policy

            head = b"Content-Type: " + self.content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n"
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + self._body)
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                filename = part.get_param("filename", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                if filename is None:
                    fields.append((name, payload.decode(part.get_content_charset() or "utf-8", "replace")))
                else:
                    files.append((name, FileStorage(payload, name, filename, part.get("Content-Type"))))
        self._form, self._files = MultiDict(fields), MultiDict(files)

    def __repr__(self):
        return "<AMLRequest %s %s>" % (self.method, self.full_path)


class AMLResponse:
    """What a @rawhttp run() may return to set the status, headers and body itself.

    AMLResponse(message, status_code, response_headers={}, json_str=False): message is the body
    (str or bytes, or any JSON value with json_str=True; None gives "{}"); a header value with
    commas becomes one header per value, as Microsoft's does.
    """

    def __init__(self, message, status_code, response_headers=None, json_str=False, run_function_failed=False):
        self.status_code = int(status_code)
        self.headers = Headers()
        if message is None:
            body, ctype = b"{}", "application/json"
        elif json_str:
            body, ctype = json.dumps(message).encode("utf-8"), "application/json"
        else:
            body = message.encode("utf-8") if isinstance(message, str) else bytes(message)
            ctype = "text/html; charset=utf-8"
        self._body = body
        response_headers = response_headers or {}
        if not any(k.lower() == "content-type" for k in response_headers):
            self.headers.add("Content-Type", ctype)
        self.headers["x-ms-run-function-failed"] = run_function_failed
        for name, value in response_headers.items():
            for v in str(value).split(","):
                self.headers.add(name, v.strip())

    @property
    def status(self):
        return "%d" % self.status_code

    @property
    def data(self):
        return self._body

    def get_data(self, as_text=False):
        return self._body.decode("utf-8", "replace") if as_text else self._body

    def set_data(self, value):
        self._body = value.encode("utf-8") if isinstance(value, str) else bytes(value)

    @property
    def content_type(self):
        return self.headers.get("Content-Type")

    @property
    def mimetype(self):
        return (self.content_type or "").split(";")[0].strip()

    def __repr__(self):
        return "<AMLResponse %d>" % self.status_code
