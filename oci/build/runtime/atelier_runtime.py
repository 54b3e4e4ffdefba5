"""atelier's scoring runtime: serves an Azure ML score.py (or an MLflow model) over HTTP.

    AZUREML_ENTRY_SCRIPT=/var/azureml-app/score.py AZUREML_MODEL_DIR=... python3 atelier_runtime.py

It imports the entry script (its directory first on sys.path), calls init() once, prints
"atelier scoring runtime ready on <addr>" and answers HTTP/1.1 on ATELIER_SCORE_SOCKET (a Unix
socket) or ATELIER_SCORE_HOST:ATELIER_SCORE_PORT (127.0.0.1:5001). If the import or init()
raises, the traceback goes to stderr and it exits with code 3, never printing the ready line.
Without an entry script it serves the MLflow model in AZUREML_MODEL_DIR (mlflow must import).
With ATELIER_TEMPLATE_SOCKET set it is a template instead: it imports the entry script once and
forks a replica (init(), then serving) for each request on that socket (see Template).

The endpoints, status codes, headers and error bodies are those of Microsoft's
azureml-inference-server-http 1.5 (GET /, GET|POST /score, GET /swagger.json, @rawhttp), plus
the Open Inference Protocol (/v2/...) and, for MLflow models, MLflow's /invocations. One
thread, one selector: many keep-alive connections, one request processed at a time, as
score.py files are written for one request per worker. Standard library only.
"""

import inspect
import json
import os
import select
import selectors
import socket
import sys
import time
import traceback
import uuid
from urllib.parse import parse_qsl, unquote

HERE = os.path.dirname(os.path.abspath(__file__))
# The azureml.* stand-ins (Model, ModelDataCollector, AMLRequest/AMLResponse) go last on
# sys.path: packages installed in the image win over them.
sys.path.append(os.path.join(HERE, "compat"))

from atelier_http import AMLRequest, Headers  # noqa: E402
import atelier_http  # noqa: E402
import atelier_modeldata  # noqa: E402

EXIT_INIT = 3  # Microsoft's server exits 3 when the script cannot be loaded or init() fails
HEADER_LIMIT = 100  # longest x-request-id / x-ms-request-id accepted (431 above), as Microsoft's
MAX_HEAD = 64 * 1024
DRAIN_LIMIT = 16 * 1024 * 1024  # what is read and dropped after refusing a request, at most
NOT_FOUND = ("The requested URL was not found on the server. If you entered the URL manually please check "
             "your spelling and try again.")
NOT_ALLOWED = "The method is not allowed for the requested URL."
RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."

REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
           431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable"}

JSON = "application/json"


class Reply:
    """An answer: status, body bytes and headers beyond Content-Length."""

    __slots__ = ("status", "body", "headers")

    def __init__(self, status, body, headers):
        self.status, self.body, self.headers = status, body, headers


def json_reply(status, obj, extra=()):
    return Reply(status, json.dumps(obj).encode("utf-8"), [("Content-Type", JSON)] + list(extra))


def error(status, message, run_failed=False):
    """Microsoft's ErrorResponse: {"message": ...} as JSON."""
    return json_reply(status, {"message": message}, [("x-ms-run-function-failed", "True" if run_failed else "False")])


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


# ----------------------------------------------------------------------------------------------
# The request, as parsed off the wire.

class Request:
    __slots__ = ("method", "path", "query", "headers", "body", "version", "peer")

    def __init__(self, method, path, query, headers, body, version, peer):
        self.method, self.path, self.query = method, path, query
        self.headers, self.body, self.version, self.peer = headers, body, version, peer

    def header(self, name, default=""):
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def aml(self):
        return AMLRequest(self.method, self.path, self.query,
                          Headers([(k.title(), v) for k, v in self.headers]), self.body, self.peer)

    def header_dict(self):
        # Flask's dict(request.headers): Title-Case names.
        return {k.title(): v for k, v in self.headers}


def query_params(query):
    """Microsoft's GET /score input: each query value parsed as JSON when it is, repeated names as lists."""
    lists = {}
    for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        try:
            v = json.loads(v)
        except ValueError:
            pass
        lists.setdefault(k, []).append(v)
    return {k: v[0] if len(v) == 1 else v for k, v in lists.items()}


# ----------------------------------------------------------------------------------------------
# The Azure ML scoring contract.

class ScoreApp:
    """Serves an entry script as Microsoft's azureml-inference-server-http does."""

    def __init__(self, entry):
        self.entry = entry
        self.app_root = os.path.dirname(os.path.abspath(entry))
        sys.path.insert(0, self.app_root)
        # As Microsoft's server does, its raw-HTTP modules replace any installed
        # azureml-contrib-services: score.py gets this runtime's AMLRequest and AMLResponse.
        for name in ("azureml.contrib.services.aml_request", "azureml.contrib.services.aml_response",
                     "azureml_inference_server_http.api.aml_request", "azureml_inference_server_http.api.aml_response"):
            sys.modules[name] = atelier_http
        import importlib.util

        spec = importlib.util.spec_from_file_location("entry_module", entry)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for fn in ("init", "run"):
            if not hasattr(module, fn):
                raise RuntimeError("User script at %s does not have a %s() function defined." % (entry, fn))
        # Azure ML SDK's generated driver modules forward run() to the real script's.
        driver = getattr(module, "driver_module", None)
        self.run = driver.run if driver is not None and hasattr(driver, "run") else module.run
        self.init = module.init
        self.analyze()
        self.model_name, self.model_version = model_identity()
        self.name = os.environ.get("ATELIER_SERVICE_NAME") or self.model_name or "model"
        self.swaggers = None

    def analyze(self):
        params = list(inspect.signature(self.run).parameters.values())
        if any(p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
            raise RuntimeError("run() cannot accept positional-only arguments, *args, or **kwargs.")
        self.pass_headers = any(p.name == "request_headers" for p in params)
        params = [p for p in params if p.name != "request_headers"]
        if not params:
            raise RuntimeError("run() needs to accept an argument for input data.")
        self.params = params
        self.first = params[0].name
        self.raw = bool(getattr(self.run, "__atelier_rawhttp__", False)) or atelier_http._rawHttpRequested
        self.schema = schema_decorated(self.run)
        if self.raw and self.schema:
            raise RuntimeError("run() cannot be decorated with both @rawhttp and @input_schema")

    # -- routing
    def handle(self, req):
        path = req.path
        if path == "/score":
            if req.method in ("GET", "POST") or (req.method == "OPTIONS" and self.raw):
                return self.score(req)
            if req.method == "OPTIONS":
                return Reply(200, b"", [("Content-Type", "text/html; charset=utf-8"), ("x-ms-run-function-failed", "False")])
            return error(405, NOT_ALLOWED)
        if path == "/":
            if req.method in ("GET", "HEAD"):
                return Reply(200, b"Healthy", [("Content-Type", "text/html; charset=utf-8")])
            return error(405, NOT_ALLOWED)
        if path == "/swagger.json":
            if req.method != "GET":
                return error(405, NOT_ALLOWED)
            return self.swagger(req)
        if path.startswith("/v2"):
            return v2(self, req)
        return internal(req)

    # -- /score
    def score(self, req, body=None):
        """Calls run() with the request as Microsoft's input parsers shape it."""
        if self.raw:
            kwargs = {self.first: req.aml()}
        elif self.schema:
            if req.method == "GET":
                parsed = query_params(req.query)
            else:
                ctype = req.header("content-type").split(";")[0].strip().lower()
                if not (ctype == JSON or (ctype.startswith("application/") and ctype.endswith("+json"))):
                    return error(415, "Expects Content-Type to be application/json")
                raw = req.body if body is None else body
                try:
                    parsed = json.loads(raw)
                except ValueError as ex:
                    if raw:
                        return error(400, "POST body could not be decoded as JSON: %s" % ex)
                    return error(400, "POST body is empty. Expecting a JSON dictionary.")
                if not isinstance(parsed, dict):
                    return error(400, "POST body should be a JSON dictionary.")
            kwargs = {}
            for p in self.params:
                v = parsed.get(p.name, p.default)
                if v is inspect.Parameter.empty:
                    return error(400, "A value is not provided for the %r parameter." % p.name)
                kwargs[p.name] = v
        elif req.method == "GET":
            kwargs = {self.first: json.dumps(query_params(req.query))}
        else:
            raw = req.body if body is None else body
            try:
                kwargs = {self.first: raw.decode("utf-8")}
            except UnicodeDecodeError as ex:
                return error(400, "Input cannot be decoded as UTF-8: %s" % ex)
        if self.pass_headers:
            kwargs["request_headers"] = req.header_dict()
        start = time.perf_counter()
        try:
            out = self.run(**kwargs)
        except Exception:
            log("Encountered Exception: " + traceback.format_exc().rstrip())
            return error(500, RUN_FAILED, run_failed=True)
        elapsed = "%.3f" % ((time.perf_counter() - start) * 1000)
        if hasattr(out, "status_code") and hasattr(out, "get_data") and hasattr(out, "headers"):
            # AMLResponse, ours or Flask's (Microsoft's is a flask.Response).
            headers = [(k, str(v)) for k, v in out.headers.items() if k.lower() not in ("content-length", "x-ms-run-function-failed")]
            failed = out.status_code >= 500 or str(out.headers.get("x-ms-run-function-failed", "False")) == "True"
            headers.append(("x-ms-run-function-failed", "True" if failed else "False"))
            headers.append(("x-ms-run-fn-exec-ms", elapsed))
            return Reply(int(out.status_code), out.get_data(), headers)
        if isinstance(out, (bytes, bytearray)):
            out = bytes(out).decode("utf-8", "replace")
        try:
            data = json.dumps(out).encode("utf-8")
        except (TypeError, ValueError) as ex:
            log("run() returned a value that is not JSON serializable: %s: %s" % (type(ex).__name__, ex))
            return error(500, "run() returned a value that is not JSON serializable (%s): %s" % (type(out).__name__, ex))
        return Reply(200, data, [("Content-Type", JSON), ("x-ms-run-function-failed", "False"), ("x-ms-run-fn-exec-ms", elapsed)])

    # -- /swagger.json
    def swagger(self, req):
        version = dict(parse_qsl(req.query.decode("latin-1"))).get("version", "2")
        if self.swaggers is None:
            self.swaggers = build_swaggers(self)
        valid = {"2", "2.0", "3", "3.0", "3.1"}
        supported = sorted({v for v in self.swaggers if v in ("2", "3", "3.1")})
        if version not in valid:
            return error(404, "Swagger version [%s] is not valid. Supported versions: [%s]." % (version, ", ".join(supported)))
        doc = self.swaggers.get(version)
        if doc is None:
            return error(404, "Swagger version [%s] is not supported for the scoring script. Supported swagger "
                              "versions: [%s]." % (version, ", ".join(supported)))
        return json_reply(200, doc, [("x-ms-run-function-failed", "False")])

    # -- the Open Inference Protocol's view
    def infer(self, req, payload):
        inputs = payload.get("inputs")
        body = v2_to_run_input(inputs, [p.name for p in self.params] if self.schema else ())
        sub = Request("POST", "/score", b"", [("content-type", JSON)] + [h for h in req.headers if h[0] != "content-type"],
                      b"", req.version, req.peer)
        reply = self.score(sub, json.dumps(body).encode("utf-8"))
        if reply.status != 200:
            return reply
        try:
            result = json.loads(reply.body)
        except ValueError:
            result = reply.body.decode("utf-8", "replace")
        return v2_reply(self, payload, result, reply.headers)


def schema_decorated(fn):
    mod = sys.modules.get("inference_schema.schema_util")
    if mod is None:
        return False
    try:
        return bool(mod.is_schema_decorated(fn))
    except Exception:
        return False


def model_identity():
    """The (name, version) of the model in AZUREML_MODEL_DIR when it holds one, else ("", "")."""
    md = os.path.normpath(os.environ.get("AZUREML_MODEL_DIR", "") or ".")
    version = os.path.basename(md)
    name = os.path.basename(os.path.dirname(md))
    if version.isdigit() and name and name != "azureml-models":
        return name, version
    try:
        names = [n for n in os.listdir(md) if os.path.isdir(os.path.join(md, n))]
    except OSError:
        names = []
    if len(names) == 1:
        versions = sorted((v for v in os.listdir(os.path.join(md, names[0])) if v.isdigit()), key=int)
        return names[0], versions[-1] if versions else ""
    return "", ""


def build_swaggers(app):
    """Swagger 2 / OpenAPI 3 / 3.1 documents: the user's swagger*.json files beside score.py when
    present, else generated from inference_schema's decorators (Microsoft's templates)."""
    docs = {}

    def user(name):
        try:
            with open(os.path.join(app.app_root, name), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    util = sys.modules.get("inference_schema.schema_util")
    # An undecorated run() gets every version with empty schemas, as inference_schema (always
    # installed with Microsoft's server) says of it.
    supported = ["2.0", "3.0", "3.1"]
    if app.schema:
        try:
            supported = [str(v) for v in util.get_supported_versions(app.run)]
        except Exception:
            supported = []
        inp, outp = util.get_input_schema(app.run), util.get_output_schema(app.run)
    else:
        inp = outp = {"type": "object", "example": {}}
    name = os.environ.get("ATELIER_SERVICE_NAME") or os.environ.get("SERVICE_NAME") or "ML service"
    version = os.environ.get("ATELIER_SERVICE_VERSION") or os.environ.get("SERVICE_VERSION") or "1.0"
    prefix = (os.environ.get("ATELIER_SERVICE_PATH_PREFIX") or os.environ.get("SERVICE_PATH_PREFIX") or "").strip("/")
    prefix = "/" + prefix if prefix else ""
    for v, aliases, files in (("2", ("2", "2.0"), ("swagger.json", "swagger2.json")), ("3", ("3", "3.0"), ("swagger3.json",)),
                              ("3.1", ("3.1",), ("swagger3.1.json",))):
        doc = None
        for f in files:
            doc = user(f)
            if doc is not None:
                break
        if doc is None and any(a in supported for a in aliases):
            doc = swagger_doc(v, name, version, prefix, inp, outp)
        if doc is not None:
            for a in aliases:
                docs[a] = doc
    return docs


def swagger_doc(v, name, version, prefix, inp, outp):
    err = {"type": "object", "properties": {"message": {"type": "string"}}}
    info = {"title": name, "description": "API specification for the Azure Machine Learning service " + name,
            "version": version}
    if v == "2":
        ref = lambda n: {"$ref": "#/definitions/" + n}  # noqa: E731
        default = {"description": "The service failed to execute due to an error.", "schema": ref("ErrorResponse")}
        return {
            "swagger": "2.0", "info": info, "schemes": ["https"], "consumes": [JSON], "produces": [JSON],
            "securityDefinitions": {"Bearer": {"type": "apiKey", "name": "Authorization", "in": "header",
                                               "description": "For example: Bearer abc123"}},
            "paths": {
                prefix + "/": {"get": {"operationId": "ServiceHealthCheck",
                                       "description": "Simple health check endpoint to ensure the service is up at any given point.",
                                       "responses": {"200": {"description": "If service is up and running, this response will be returned with the content 'Healthy'",
                                                             "schema": {"type": "string"}, "examples": {JSON: "Healthy"}},
                                                     "default": default}}},
                prefix + "/score": {"post": {"operationId": "RunMLService",
                                             "description": "Run web service's model and get the prediction output",
                                             "security": [{"Bearer": []}],
                                             "parameters": [{"name": "serviceInputPayload", "in": "body",
                                                             "description": "The input payload for executing the real-time machine learning service.",
                                                             "schema": ref("ServiceInput")}],
                                             "responses": {"200": {"description": "The service processed the input correctly and provided a result prediction, if applicable.",
                                                                   "schema": ref("ServiceOutput")},
                                                           "default": default}}},
                prefix + "/swagger.json": {"get": {"operationId": "GetSwaggerSpec", "description": "Get the Swagger specification.",
                                                   "parameters": [{"name": "version", "in": "query", "required": False,
                                                                   "type": "integer", "enum": [2, 3]}],
                                                   "responses": {"200": {"description": "The Swagger specification.", "schema": {"type": "string"}},
                                                                 "default": default}}},
            },
            "definitions": {"ServiceInput": inp, "ServiceOutput": outp, "ErrorResponse": err},
        }
    ref = lambda n: {"$ref": "#/components/schemas/" + n}  # noqa: E731
    default = {"description": "The service failed to execute due to an error.", "content": {JSON: {"schema": ref("ErrorResponse")}}}
    return {
        "openapi": "3.1.0" if v == "3.1" else "3.0.3", "info": info, "security": [{"Bearer": []}],
        "paths": {
            prefix + "/": {"get": {"operationId": "ServiceHealthCheck",
                                   "description": "Simple health check endpoint to ensure the service is up at any given point.",
                                   "responses": {"200": {"description": "If service is up and running, this response will be returned with the content 'Healthy'",
                                                         "content": {"text/plain": {"schema": {"type": "string", "example": "Healthy"}}}},
                                                 "default": default}}},
            prefix + "/score": {"post": {"operationId": "RunMLService", "description": "Run web service's model and get the prediction output",
                                         "security": [{"Bearer": []}],
                                         "requestBody": {"description": "The input payload for executing the real-time machine learning service.",
                                                         "content": {JSON: {"schema": ref("ServiceInput")}}},
                                         "responses": {"200": {"description": "The service processed the input correctly and provided a result prediction, if applicable.",
                                                               "content": {JSON: {"schema": ref("ServiceOutput")}}},
                                                       "default": default}}},
            prefix + "/swagger.json": {"get": {"operationId": "GetSwaggerSpec", "description": "Get the Swagger specification.",
                                               "parameters": [{"name": "version", "in": "query", "required": False,
                                                               "schema": {"type": "integer", "enum": [2, 3]}}],
                                               "responses": {"200": {"description": "The Swagger specification.",
                                                                     "content": {"text/plain": {"schema": {"type": "string"}}}},
                                                             "default": default}}},
        },
        "components": {"schemas": {"ServiceInput": inp, "ServiceOutput": outp, "ErrorResponse": err},
                       "securitySchemes": {"Bearer": {"type": "apiKey", "name": "Authorization", "in": "header",
                                                      "description": "For example: Bearer abc123"}}},
    }


# ----------------------------------------------------------------------------------------------
# MLflow models (no entry script): MLflow's scoring protocol, through mlflow's own parsing.

class MLflowApp:
    def __init__(self, model_dir):
        path = find_mlmodel(model_dir)
        if path is None:
            raise RuntimeError("no entry script (AZUREML_ENTRY_SCRIPT) and no MLflow model (an MLmodel file) in %s" % model_dir)
        try:
            import mlflow.pyfunc
            from mlflow.pyfunc import scoring_server
        except ImportError as ex:
            raise RuntimeError("serving the MLflow model in %s needs mlflow in the image's Python: %s" % (path, ex))
        if not hasattr(scoring_server, "invocations"):
            raise RuntimeError("mlflow %s is too old to serve %s: its scoring server has no invocations(); use mlflow 2.10 or later"
                               % (getattr(mlflow, "__version__", "?"), path))
        self.model = mlflow.pyfunc.load_model(path)
        self.server = scoring_server
        self.input_schema = self.model.metadata.get_input_schema()
        import mlflow.version

        self.version_text = mlflow.version.VERSION.encode()
        self.model_name, self.model_version = model_identity()
        self.name = os.environ.get("ATELIER_SERVICE_NAME") or self.model_name or "model"
        self.params = []

    def init(self):
        pass

    def handle(self, req):
        path = req.path
        if path == "/invocations":
            if req.method != "POST":
                return error(405, NOT_ALLOWED)
            return self.invocations(req.body, req.header("content-type", JSON))
        if path in ("/ping", "/health"):
            return Reply(200, b"\n", [("Content-Type", JSON)])
        if path == "/version":
            return Reply(200, self.version_text, [("Content-Type", JSON)])
        if path == "/":
            return Reply(200, b"Healthy", [("Content-Type", "text/html; charset=utf-8")])
        if path.startswith("/v2"):
            return v2(self, req)
        return internal(req)

    def invocations(self, body, content_type):
        from mlflow.exceptions import MlflowException

        try:
            r = self.server.invocations(body, content_type or JSON, self.model, self.input_schema)
        except MlflowException as e:
            return Reply(e.get_http_status_code(), e.serialize_as_json().encode("utf-8"), [("Content-Type", JSON)])
        except Exception:
            log("Encountered Exception: " + traceback.format_exc().rstrip())
            return json_reply(500, {"error_code": "INTERNAL_ERROR", "message": "the model failed: see the service log"})
        return Reply(r.status, r.response.encode("utf-8"), [("Content-Type", r.mimetype)])

    def infer(self, req, payload):
        inputs = payload.get("inputs") or []
        values = [tensor_value(i) for i in inputs]
        if len(inputs) == 1:
            body = {"inputs": values[0]}
        elif all(isinstance(v, list) and not any(isinstance(x, list) for x in v) and len(v) == len(values[0]) for v in values):
            # Several 1-D tensors of one length: the columns of a table, as MLServer reads them.
            body = {"dataframe_split": {"columns": [i["name"] for i in inputs], "data": [list(r) for r in zip(*values)]}}
        else:
            body = {"inputs": {i["name"]: v for i, v in zip(inputs, values)}}
        reply = self.invocations(json.dumps(body).encode("utf-8"), JSON)
        if reply.status != 200:
            return reply
        result = json.loads(reply.body)
        if isinstance(result, dict) and "predictions" in result:
            result = result["predictions"]
        return v2_reply(self, payload, result, [])


def internal(req):
    """The server's own endpoints (the model data pull on kubernetes targets), else 404: reached
    only by paths no app serves, so the scoring path pays nothing for them."""
    if req.path == atelier_modeldata.PATH:
        r = atelier_modeldata.serve(req.method, req.header(atelier_modeldata.HEADER), req.body)
        if r is not None:
            return Reply(*r)
    return error(404, NOT_FOUND)


def find_mlmodel(d, depth=2):
    if not d or not os.path.isdir(d):
        return None
    if os.path.isfile(os.path.join(d, "MLmodel")):
        return d
    if depth == 0:
        return None
    for n in sorted(os.listdir(d)):
        found = find_mlmodel(os.path.join(d, n), depth - 1)
        if found:
            return found
    return None


# ----------------------------------------------------------------------------------------------
# The Open Inference Protocol (KServe V2), on top of either app.

V2_PREFIX = "/v2/models/"


def v2_error(status, message):
    return json_reply(status, {"error": message})


def v2(app, req):
    path = req.path
    if path in ("/v2/health/live", "/v2/health/ready"):
        return Reply(200, b"", [])
    if path == "/v2":
        return json_reply(200, {"name": "atelier", "version": "1", "extensions": []})
    if not path.startswith(V2_PREFIX):
        return v2_error(404, "not found: " + path)
    parts = path[len(V2_PREFIX):].split("/")
    name = unquote(parts[0])
    rest = parts[1:]
    version = ""
    if len(rest) >= 2 and rest[0] == "versions":
        version, rest = unquote(rest[1]), rest[2:]
    if name != app.name:
        return v2_error(404, "model %r not found: this service serves %r" % (name, app.name))
    if version and app.model_version and version != app.model_version:
        return v2_error(404, "model %r has no version %r: it serves version %r" % (name, version, app.model_version))
    if rest == [] and req.method == "GET":
        return json_reply(200, {"name": app.name, "versions": [app.model_version] if app.model_version else [],
                                "platform": "atelier-mlflow" if isinstance(app, MLflowApp) else "atelier-azureml",
                                "inputs": [], "outputs": []})
    if rest == ["ready"] and req.method == "GET":
        return json_reply(200, {"name": app.name, "ready": True})
    if rest == ["infer"]:
        if req.method != "POST":
            return v2_error(405, "infer takes POST")
        try:
            payload = json.loads(req.body)
        except ValueError as ex:
            return v2_error(400, "the request is not JSON: %s" % ex)
        if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
            return v2_error(400, 'the request must be a JSON object with a non-empty "inputs" list of tensors')
        for t in payload["inputs"]:
            if not isinstance(t, dict) or "data" not in t or "name" not in t:
                return v2_error(400, 'each input tensor needs a "name" and "data"')
            try:
                tensor_value(t)
            except ValueError as ex:
                return v2_error(400, "input %r: %s" % (t.get("name"), ex))
        return app.infer(req, payload)
    return v2_error(404, "not found: " + path)


def tensor_value(t):
    """An input tensor's data as nested lists of its shape (data may be flat or nested already)."""
    data, shape = t["data"], t.get("shape")
    if not isinstance(data, list) or not shape or any(isinstance(x, list) for x in data):
        return data
    n = 1
    for s in shape:
        n *= s
    if n != len(data):
        raise ValueError("shape %s holds %d values, data has %d" % (shape, n, len(data)))
    for s in reversed(shape[1:]):
        data = [data[i:i + s] for i in range(0, len(data), s)]
    return data


def v2_to_run_input(inputs, params):
    """Tensors to the JSON run() reads: one tensor -> {"data": value} (or {name: value} when its name
    is one of an @input_schema run()'s parameters); several -> {name: value, ...}."""
    if len(inputs) == 1 and inputs[0]["name"] not in params:
        return {"data": tensor_value(inputs[0])}
    return {t["name"]: tensor_value(t) for t in inputs}


def tensor_of(name, value):
    flat, shape = [], []
    v = value
    while isinstance(v, list):
        shape.append(len(v))
        v = v[0] if v else None

    def walk(x):
        if isinstance(x, list):
            for y in x:
                walk(y)
        else:
            flat.append(x)
    walk(value)
    if not shape:
        shape = [1]
    if flat and all(isinstance(x, bool) for x in flat):
        dt = "BOOL"
    elif flat and all(isinstance(x, int) and not isinstance(x, bool) for x in flat):
        dt = "INT64"
    elif flat and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in flat):
        dt = "FP64"
    else:
        dt = "BYTES"
        flat = [x if isinstance(x, str) else json.dumps(x) for x in flat]
    n = 1
    for s in shape:
        n *= s
    if n != len(flat):  # ragged: one BYTES tensor of JSON rows
        shape, dt = [len(value)], "BYTES"
        flat = [json.dumps(x) for x in value]
    return {"name": name, "datatype": dt, "shape": shape, "data": flat}


def v2_reply(app, payload, result, headers):
    """run()'s answer as output tensors: a JSON object gives one tensor per key, anything else one
    tensor named "predict"."""
    if isinstance(result, dict):
        outputs = [tensor_of(str(k), v) for k, v in result.items()]
    else:
        outputs = [tensor_of("predict", result)]
    wanted = [o.get("name") for o in payload.get("outputs") or [] if isinstance(o, dict)]
    if wanted:
        outputs = [o for o in outputs if o["name"] in wanted]
    body = {"model_name": app.name, "model_version": app.model_version, "outputs": outputs}
    if "id" in payload:
        body["id"] = payload["id"]
    extra = [h for h in headers if h[0] in ("x-ms-run-fn-exec-ms",)]
    return json_reply(200, body, extra)


# ----------------------------------------------------------------------------------------------
# HTTP/1.1 over a selector.

POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)


def hung_up(sock):
    """Whether the peer closed its side of sock (what it sent may still be unread)."""
    p = select.poll()
    p.register(sock, POLLRDHUP)
    return bool(p.poll(0))


class Conn:
    __slots__ = ("sock", "peer", "buf", "out", "closing", "head", "sent_continue", "drained", "drain")

    def __init__(self, sock, peer):
        self.sock, self.peer = sock, peer
        self.buf = bytearray()
        self.out = b""
        self.closing = False
        self.head = None  # (method, target, version, headers, body_start, length, chunked, keep_alive)
        self.sent_continue = False
        self.drained = 0
        self.drain = False


class Server:
    def __init__(self, app, listener, max_body, access_log):
        self.app, self.listener, self.max_body, self.access_log = app, listener, max_body, access_log
        self.sel = selectors.DefaultSelector()
        self.rbuf = bytearray(262144)
        self.rview = memoryview(self.rbuf)
        self.monitoring = None
        self.second, self.stamp = 0, ""

    def serve(self):
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        while True:
            for key, events in self.sel.select():
                conn = key.data
                if conn is None:
                    self.accept()
                    continue
                if events & selectors.EVENT_WRITE:
                    self.flush(conn)
                elif events & selectors.EVENT_READ:
                    self.read(conn)

    def accept(self):
        while True:
            try:
                sock, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as ex:  # out of descriptors: leave it queued
                log("accept: %s" % ex)
                return
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                peer = peer[0]
            else:
                peer = "unix"
            self.sel.register(sock, selectors.EVENT_READ, Conn(sock, peer))

    def close(self, conn):
        conn.closing = True
        conn.out = b""
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def read(self, conn):
        # Into one buffer kept for every read: recv(262144) would allocate (mmap) and free
        # 256 KiB for each request, a fifth of a small model's scoring time.
        try:
            n = conn.sock.recv_into(self.rbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(conn)
            return
        if not n:
            self.close(conn)
            return
        if conn.closing:
            # The answer is sent and the write side shut: what else comes (the rest of a body
            # refused with 413) is dropped until the client closes, so that closing with unread
            # data does not reset the connection before the client has read the answer.
            conn.drained += n
            if conn.drained > DRAIN_LIMIT:
                self.close(conn)
            return
        conn.buf += self.rview[:n]
        self.process(conn)

    def send(self, conn, data):
        if conn.out:
            conn.out += data
            return
        try:
            n = conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self.close(conn)
            return
        if n < len(data):
            # Until the answer is out, nothing more is read from this connection.
            conn.out = data[n:]
            self.sel.modify(conn.sock, selectors.EVENT_WRITE, conn)
        elif conn.closing:
            self.shutdown(conn)

    def flush(self, conn):
        try:
            n = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(conn)
            return
        conn.out = conn.out[n:]
        if not conn.out:
            if conn.closing:
                self.shutdown(conn)
                return
            self.sel.modify(conn.sock, selectors.EVENT_READ, conn)
            if conn.buf:
                self.process(conn)

    def shutdown(self, conn):
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(conn)
            return
        if not conn.drain:
            self.close(conn)  # the client asked to close after a complete request: a plain close is clean
            return
        self.sel.modify(conn.sock, selectors.EVENT_READ, conn)

    def process(self, conn):
        """Answers every complete request in conn.buf, in order."""
        while not conn.closing and not conn.out:
            buf = conn.buf
            if conn.head is None:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        self.fail(conn, 431, "the request's headers exceed %d bytes" % MAX_HEAD)
                    return
                head = self.parse_head(conn, bytes(buf[:end]), end + 4)
                if head is None:
                    return
                conn.head = head
            method, target, version, headers, start, length, chunked, keep = conn.head
            if chunked:
                body, consumed = dechunk(buf, start, self.max_body)
                if body is None:
                    if consumed < 0:
                        self.fail(conn, 413 if consumed == -2 else 400,
                                  "the request body exceeds %d bytes (ATELIER_MAX_BODY)" % self.max_body if consumed == -2
                                  else "malformed chunked request body")
                    elif not conn.sent_continue and expects_continue(headers):
                        conn.sent_continue = True
                        self.send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
                    return
                del buf[:consumed]
            else:
                if len(buf) - start < length:
                    if not conn.sent_continue and expects_continue(headers):
                        conn.sent_continue = True
                        self.send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
                    return
                body = bytes(buf[start:start + length])
                del buf[:start + length]
            conn.head = None
            conn.sent_continue = False
            path, _, query = target.partition("?")
            req = Request(method, path, query.encode("latin-1"), headers, body, version, conn.peer)
            if req.header("x-atelier-ahead") and hung_up(conn.sock):
                # The gateway sent it ahead, behind another request, and withdrew it since (it
                # waited too long): it is not scored.
                self.close(conn)
                return
            self.respond(conn, req, keep)

    def parse_head(self, conn, raw, start):
        try:
            text = raw.decode("latin-1")
            lines = text.split("\r\n")
            method, target, version = lines[0].split(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError(version)
            headers = []
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers.append((k.strip().lower(), v.strip()))
        except ValueError:
            self.fail(conn, 400, "malformed HTTP request")
            return None
        length, chunked = 0, False
        conn_hdr = ""
        for k, v in headers:
            if k == "content-length":
                try:
                    length = int(v)
                    if length < 0:
                        raise ValueError
                except ValueError:
                    self.fail(conn, 400, "Content-Length %r is not a number of bytes" % v)
                    return None
            elif k == "transfer-encoding":
                chunked = "chunked" in v.lower()
            elif k == "connection":
                conn_hdr = v.lower()
        keep = "close" not in conn_hdr if version == "HTTP/1.1" else "keep-alive" in conn_hdr
        if length > self.max_body:
            self.fail(conn, 413, "the request body of %d bytes exceeds the limit of %d bytes (ATELIER_MAX_BODY)" % (length, self.max_body))
            return None
        if target.startswith("http://") or target.startswith("https://"):
            target = "/" + target.split("/", 3)[-1] if target.count("/") >= 3 else "/"
        return (method, target, version, headers, start, length, chunked, keep)

    def fail(self, conn, status, message):
        """Answers a request that cannot be read, and closes the connection after it."""
        conn.closing = conn.drain = True
        conn.buf = bytearray()
        reply = error(status, message)
        if self.access_log:
            log("%s refused %s: %d %s" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), conn.peer, status, message))
        self.send(conn, render(reply, [], False))

    def respond(self, conn, req, keep):
        start = time.perf_counter()
        rid, extra, reply = self.ids(req)
        if reply is None:
            mon = self.monitoring or sys.modules.get("azureml.monitoring")
            if mon is not None and hasattr(mon, "current_request_id"):
                self.monitoring = mon
                mon.current_request_id = extra[1][1]
            try:
                reply = self.app.handle(req)
            except Exception:
                log("Encountered Exception: " + traceback.format_exc().rstrip())
                reply = error(500, "An unexpected internal error occurred. Check the logs for more info.")
        if not keep:
            conn.closing = True
        if req.method == "HEAD":
            reply = Reply(reply.status, b"", reply.headers)
        if req.header("x-atelier-usage"):
            extra = extra + [("x-atelier-usage", usage())]
        self.send(conn, render(reply, extra, keep))
        if self.access_log:
            now = int(time.time())
            if now != self.second:  # one strftime a second, not one a request
                self.second, self.stamp = now, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
            log("%s %s %s %d %.3fms %d %s" % (self.stamp, req.method, req.path, reply.status,
                                             (time.perf_counter() - start) * 1000, len(reply.body), rid))

    def ids(self, req):
        """Microsoft's request-id headers: x-request-id (the client's or a new uuid), x-ms-request-id
        (the client's, else x-ms-client-request-id, else x-request-id), x-ms-client-request-id."""
        rid = legacy = client = ""
        for k, v in req.headers:
            if k == "x-request-id":
                rid = v
            elif k == "x-ms-request-id":
                legacy = v
            elif k == "x-ms-client-request-id":
                client = v
        if not rid:
            rid = str(uuid.uuid4())
        if len(rid) > HEADER_LIMIT:
            return "", [], error(431, "x-request-id must not exceed %d characters" % HEADER_LIMIT)
        if legacy:
            client = client or legacy
        else:
            legacy = client or rid
        if len(legacy) > HEADER_LIMIT or len(client) > HEADER_LIMIT:
            return rid, [("x-request-id", rid)], error(
                431, "x-ms-request-id and x-ms-client-request-id must not exceed %d characters" % HEADER_LIMIT)
        extra = [("x-request-id", rid), ("x-ms-request-id", legacy)]
        if client:
            extra.append(("x-ms-client-request-id", client))
        return rid, extra, None


def usage():
    """This replica's resource use, for a profiler that asks with an x-atelier-usage request
    header (Model.profile): "cpu=<user+system CPU seconds of the process>; rss=<resident bytes
    now>; maxrss=<peak resident bytes>"."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    rss = 0
    try:
        with open("/proc/self/statm", "rb") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    return "cpu=%.6f; rss=%d; maxrss=%d" % (ru.ru_utime + ru.ru_stime, rss, ru.ru_maxrss * 1024)


def expects_continue(headers):
    return any(k == "expect" and v.lower() == "100-continue" for k, v in headers)


def dechunk(buf, start, limit):
    """(body, end) of a complete chunked body at buf[start:]; (None, 0) if incomplete, (None, -1)
    if malformed, (None, -2) if larger than limit."""
    pos, body = start, bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None, 0
        try:
            size = int(bytes(buf[pos:eol]).split(b";")[0].strip(), 16)
        except ValueError:
            return None, -1
        if len(body) + size > limit:
            return None, -2
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)  # skips trailers
            if end < 0:
                return None, 0
            return bytes(body), end + 4
        if len(buf) < eol + 2 + size + 2:
            return None, 0
        body += buf[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2


def render(reply, extra, keep):
    head = ["HTTP/1.1 %d %s\r\nContent-Length: %d\r\n" % (reply.status, REASONS.get(reply.status, "Status"), len(reply.body))]
    for k, v in reply.headers:
        head.append("%s: %s\r\n" % (k, v))
    for k, v in extra:
        head.append("%s: %s\r\n" % (k, v))
    if not keep:
        head.append("Connection: close\r\n")
    head.append("\r\n")
    return "".join(head).encode("latin-1") + reply.body


# ----------------------------------------------------------------------------------------------

def listen():
    """The listening socket and its address as the ready line says it."""
    path = os.environ.get("ATELIER_SCORE_SOCKET", "")
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(1024)
        return s, path
    host = os.environ.get("ATELIER_SCORE_HOST") or "127.0.0.1"
    port = int(os.environ.get("ATELIER_SCORE_PORT") or "5001")
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    s = socket.socket(info[0], socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(info[4])
    s.listen(1024)
    h, p = s.getsockname()[:2]
    return s, ("[%s]:%d" % (h, p) if ":" in h else "%s:%d" % (h, p))


def prepare(entry, app=None):
    """Loads the app (imports the entry script, or loads the MLflow model) unless given, then calls
    its init(). What they print goes to stderr, so the ready line is the first line on stdout
    whatever init() prints. On failure the traceback goes to stderr and it returns None."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        if app is None:
            app = load(entry)
        app.init()
    except BaseException as ex:
        if isinstance(ex, KeyboardInterrupt):
            raise
        traceback.print_exc()
        log("atelier scoring runtime: %s failed, not serving" % ("loading or init() of " + entry if entry else "loading the MLflow model"))
        return None
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    return app


def load(entry):
    if entry:
        return ScoreApp(entry)
    return MLflowApp(os.environ.get("AZUREML_MODEL_DIR", ""))


def serve(app, max_body, access_log):
    """Listens, prints the ready line and serves until killed; the process's exit code."""
    try:
        listener, addr = listen()
    except OSError as ex:
        log("atelier scoring runtime: cannot listen: %s" % ex)
        return 1
    sys.stdout.write("atelier scoring runtime ready on %s\n" % addr)
    sys.stdout.flush()
    try:
        Server(app, listener, max_body, access_log).serve()
    except KeyboardInterrupt:
        return 0
    return 0


# ----------------------------------------------------------------------------------------------
# The template (ATELIER_TEMPLATE_SOCKET): the entry script imported once, a replica forked for
# each request, so that a replica's cold start is a fork and its init(), not a Python start and
# the imports of score.py (scikit-learn, numpy...).

class Template:
    """Imports the entry script (its module level: the libraries it imports) without calling
    init(), then listens on a Unix socket. Each connection asks for one replica with one JSON
    line, {"n": N, "socket": PATH}, that carries a file descriptor (SCM_RIGHTS): the replica's
    stdout and stderr. The template forks; the child calls init() and serves on PATH as a replica
    started alone does. The template answers {"pid": PID} (the child's pid in the template's PID
    namespace), then {"exit": CODE} once the child exited (CODE < 0: killed by signal -CODE), and
    closes the connection. "term" or "kill" on the connection sends SIGTERM or SIGKILL to the
    child's process group; the connection closed by the other side kills it. No thread is
    started here: a fork copies only the thread that forks. In MLflow mode (no entry script)
    each replica loads the model itself, after the fork.

    What init() imports (score.py often imports only joblib and numpy; unpickling the model in
    init() imports scikit-learn) is learnt from the first replica that starts: it reports the
    modules its init() imported, and the template imports them too, so the next replicas find
    them loaded; it records them in learnt.json beside its socket, and imports those listed in
    preload.json there before it is ready (the server copies one to the other for the next
    template of the image). init() itself runs only in the replicas."""

    def __init__(self, path, entry, max_body, access_log):
        import signal

        self.signal = signal
        self.path, self.entry, self.max_body, self.access_log = path, entry, max_body, access_log
        self.app = None
        self.children = {}  # pid -> connection
        self.conns = {}  # connection -> [buffer, child pid or None, pending fds]
        self.learning = None  # [fd, bytes read] of the replica reporting what its init() imported
        self.learnt = False
        self.modules, self.known = [], set()  # what init() imports, as learnt.json records it

    def run(self):
        signal = self.signal
        if self.entry:
            sys.stdout.flush()
            saved = os.dup(1)
            os.dup2(2, 1)
            try:
                self.app = load(self.entry)
            except BaseException as ex:
                if isinstance(ex, KeyboardInterrupt):
                    raise
                traceback.print_exc()
                log("atelier scoring runtime: loading %s failed, not serving" % self.entry)
                return EXIT_INIT
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
                os.close(saved)
            # What init() imported in an earlier template of this image (preload.json, written
            # there by the server): imported before the template is ready.
            try:
                with open(os.path.join(os.path.dirname(self.path), "preload.json")) as f:
                    names = json.load(f)
            except (OSError, ValueError):
                names = None
            if isinstance(names, list) and names:
                self.import_modules(names, "that init() imported in an earlier template of this image")
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(256)
        self.listener.setblocking(False)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ, "listener")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        try:
            import ctypes

            self.prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (ImportError, OSError, AttributeError):
            self.prctl = None
        sys.stdout.write("atelier scoring template ready on %s\n" % self.path)
        sys.stdout.flush()
        while True:
            for key, _ in self.sel.select():
                if key.data == "listener":
                    self.accept()
                elif key.data == "wake":
                    try:
                        while os.read(self.wake_r, 512):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
                    self.reap()
                elif key.data == "learn":
                    self.learn()
                else:
                    self.read(key.fileobj)
            self.reap()

    def accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as ex:
                log("template: accept: %s" % ex)
                return
            conn.setblocking(False)
            self.conns[conn] = [b"", None, []]
            self.sel.register(conn, selectors.EVENT_READ, "conn")

    def read(self, conn):
        state = self.conns[conn]
        try:
            data, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4 * 4))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, anc = b"", []
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                n = len(payload) - len(payload) % 4
                state[2].extend(int.from_bytes(payload[i:i + 4], sys.byteorder) for i in range(0, n, 4))
        if not data:
            self.drop(conn, kill=True)
            return
        state[0] += data
        while b"\n" in state[0]:
            line, _, state[0] = state[0].partition(b"\n")
            line = line.strip()
            pid = state[1]
            if pid is None:
                self.fork(conn, line)
            elif line in (b"term", b"kill"):
                self.kill(pid, self.signal.SIGTERM if line == b"term" else self.signal.SIGKILL)
            if conn not in self.conns:
                return

    def kill(self, pid, sig):
        try:
            os.killpg(pid, sig)
        except OSError:
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def drop(self, conn, kill=False):
        state = self.conns.pop(conn, None)
        try:
            self.sel.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()
        if state is None:
            return
        for fd in state[2]:
            os.close(fd)
        pid = state[1]
        if pid is not None and self.children.get(pid) is conn:
            self.children[pid] = None  # reaped without a report
            if kill:
                self.kill(pid, self.signal.SIGKILL)

    def fork(self, conn, line):
        state = self.conns[conn]
        fds, state[2] = state[2], []
        try:
            req = json.loads(line)
            n, path = int(req["n"]), str(req["socket"])
            if len(fds) != 1:
                raise ValueError("one file descriptor (the replica's output) must come with the request, not %d" % len(fds))
        except (ValueError, KeyError, TypeError) as ex:
            log("template: a bad replica request %r: %s" % (line[:200], ex))
            for fd in fds:
                os.close(fd)
            self.reply(conn, {"error": str(ex)})
            self.drop(conn)
            return
        out = fds[0]
        teach = None
        if not self.learnt and self.learning is None and self.app is not None:
            teach, w = os.pipe()
            self.learning = [teach, b""]
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.getpid()
        import warnings

        with warnings.catch_warnings():
            # Python 3.12 warns about forking a process with threads: the libraries score.py
            # imports may have started some (OpenBLAS's pool), which handle a fork themselves.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            self.child(n, path, out, w if teach is not None else None)  # never returns
        os.close(out)
        if teach is not None:
            os.close(w)
            os.set_blocking(teach, False)
            self.sel.register(teach, selectors.EVENT_READ, "learn")
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass
        state[1] = pid
        self.children[pid] = conn
        self.reply(conn, {"pid": pid})

    def reply(self, conn, obj):
        try:
            conn.setblocking(True)
            conn.sendall(json.dumps(obj).encode() + b"\n")
            conn.setblocking(False)
        except OSError:
            pass

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status) if os.WIFSIGNALED(status) else 1
            conn = self.children.pop(pid, None)
            if conn is not None:
                self.reply(conn, {"exit": code})
                self.drop(conn)

    def learn(self):
        """Reads what the first replica's init() imported; at its end, imports it here."""
        fd, data = self.learning
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if chunk:
            self.learning[1] = data + chunk
            return
        self.sel.unregister(fd)
        os.close(fd)
        self.learning = None
        try:
            names = json.loads(data.decode("utf-8")) if data else None
        except ValueError:
            names = None
        if not isinstance(names, list):
            return  # that replica did not start: the next one reports
        self.learnt = True
        self.import_modules(names, "the first replica's init() imported")

    def import_modules(self, names, why):
        """Imports names (those not imported yet) here, in the template, and records them in
        learnt.json beside the control socket, for the next template of the image."""
        start = time.perf_counter()
        done = []
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
        try:
            import importlib

            for name in names:
                if not isinstance(name, str) or name in sys.modules:
                    continue
                try:
                    importlib.import_module(name)
                    done.append(name)
                except KeyboardInterrupt:
                    raise
                except BaseException:
                    pass  # a module importable only where init() ran: the replicas import it
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        new = [name for name in names if isinstance(name, str) and name in sys.modules and name not in self.known]
        if not new:
            return
        self.modules += new
        self.known.update(new)
        learnt = os.path.join(os.path.dirname(self.path), "learnt.json")
        try:
            with open(learnt + ".tmp", "w") as f:
                json.dump(self.modules, f)
            os.replace(learnt + ".tmp", learnt)
        except OSError as ex:
            log("template: cannot record the modules init() imports: %s" % ex)
        tops = sorted({name.split(".")[0] for name in done if not name.startswith("_")})
        log("atelier scoring template imported %d modules %s (%s) in %.1fs, for the next replicas"
            % (len(done), why, ", ".join(tops[:12]) + (", ..." if len(tops) > 12 else ""), time.perf_counter() - start))

    def child(self, n, path, out, teach):
        """The forked replica: the template's descriptors closed, its output on out, init() and
        serving as a replica started alone; on teach (when given), the modules its init()
        imported."""
        code = 1
        try:
            signal = self.signal
            os.setpgid(0, 0)
            # Killed with the template, in its PID namespace or not (PR_SET_PDEATHSIG).
            if self.prctl is not None:
                self.prctl(1, int(signal.SIGKILL), 0, 0, 0)
            if os.getppid() != self.pid:
                os._exit(1)  # the template died already
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self.sel.close()
            self.listener.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            for c, state in self.conns.items():
                for fd in state[2]:
                    os.close(fd)
                c.close()
            self.conns, self.children = {}, {}
            if self.learning is not None:
                os.close(self.learning[0])  # the template's end of a report
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.close(out)
            os.environ["ATELIER_SCORE_SOCKET"] = path
            os.environ["ATELIER_REPLICA"] = str(n)
            numpy = sys.modules.get("numpy")
            if numpy is not None:
                try:
                    numpy.random.seed()  # a replica's own seed, not a copy of the template's
                except Exception:
                    pass
            before = set(sys.modules)
            app = prepare(self.entry, self.app)
            if teach is not None:
                if app is not None:
                    new = [name for name, m in list(sys.modules.items())
                           if name not in before and getattr(m, "__spec__", None) is not None and name != "__main__"]
                    data = json.dumps(new[:10000]).encode("utf-8")
                    try:
                        while data:
                            data = data[os.write(teach, data):]
                    except OSError:
                        pass
                os.close(teach)
            code = EXIT_INIT if app is None else serve(app, self.max_body, self.access_log)
        except BaseException:
            try:
                traceback.print_exc()
            except BaseException:
                pass
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)


def main():
    entry = os.environ.get("AZUREML_ENTRY_SCRIPT", "")
    if entry and os.path.isdir(entry):
        entry = ""  # an image built without an entry script names its app directory: MLflow mode
    try:
        max_body = int(os.environ.get("ATELIER_MAX_BODY") or 100 * 1024 * 1024)
    except ValueError:
        log("ATELIER_MAX_BODY=%r is not a number of bytes" % os.environ["ATELIER_MAX_BODY"])
        return 2
    access_log = os.environ.get("ATELIER_ACCESS_LOG", "1") not in ("0", "false", "off", "")
    template = os.environ.get("ATELIER_TEMPLATE_SOCKET", "")
    if template:
        return Template(template, entry, max_body, access_log).run()
    app = prepare(entry)
    if app is None:
        return EXIT_INIT
    return serve(app, max_body, access_log)


if __name__ == "__main__":
    sys.exit(main())
