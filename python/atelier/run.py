"""Runs: the Azure ML-style logging API over atelier's REST API."""

from collections.abc import Mapping
import hashlib
import json
import math
import numbers
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid

from ._buffer import MAX_RECORD_BYTES, MetricBuffer, sender
from ._http import ActivityFailedError, AtelierError, parse_float, quote_path, quote_seg, to_json_value
from ._values import to_metric_float, to_metric_json

__all__ = ["Run", "OfflineRun"]

TERMINAL = ("Completed", "Failed", "Canceled")
LOG_PATH = "logs/std_log.txt"
_MAX_KEY = 250  # bytes of UTF-8, as the server counts
_MAX_STEP = (1 << 63) - 1


def _check_name(kind, name):
    if not isinstance(name, str):
        raise TypeError("%s name must be a str, not %s" % (kind, type(name).__name__))
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("invalid %s name %r: not valid Unicode text" % (kind, name)) from None
    if not name or size > _MAX_KEY:
        raise ValueError("invalid %s name %r: use 1-%d characters (bytes of UTF-8)" % (kind, name, _MAX_KEY))
    # Leading and trailing spaces are kept, as Azure ML keeps them in metric names.
    for ch in name:
        if ch < " " or ch == "\x7f":
            raise ValueError("invalid %s name %r: control characters are not allowed" % (kind, name))


def _safe_segment(name):
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "image"


def _now_ms():
    return int(time.time() * 1000)


def _step(name, step):
    try:
        step = int(step)
    except (TypeError, ValueError) as e:
        raise TypeError("metric %r: step %r is not an integer: %s" % (name, step, e)) from None
    if not 0 <= step <= _MAX_STEP:
        raise ValueError("metric %r: step %d is %s" % (name, step, "negative" if step < 0 else "too large"))
    return step


def _list_value(name, value):
    """What log_list sends: a list, its values converted (see _values)."""
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise TypeError("log_list %r: value must be a list, not %s" % (name, type(value).__name__))
    if not hasattr(value, "tolist"):  # arrays convert themselves; iterables become lists
        try:
            value = list(value)
        except TypeError:
            raise TypeError("log_list %r: value must be a list, not %s" % (name, type(value).__name__)) from None
    value = to_metric_json(name, "log_list", value)
    if not isinstance(value, list):
        raise TypeError("log_list %r: value must be a list, not a single value" % name)
    return value


def _table_columns(name, value):
    if not isinstance(value, dict):
        raise TypeError("log_table %r: value must be a dict of columns" % name)
    cols = to_metric_json(name, "log_table", value)
    lengths = {len(v) for v in cols.values() if isinstance(v, list)}
    if len(lengths) > 1:
        raise ValueError("log_table %r: columns have different lengths %s" % (name, sorted(lengths)))
    return cols



def _log_each(log, metrics, value, step):
    """Logs each entry of a dict of metrics, after checking them all."""
    if value is not None:
        raise TypeError("log(dict) takes the values in the dict, not a value argument (got %r)" % (value,))
    checked = []
    for name, v in metrics.items():
        if not isinstance(name, str):
            raise TypeError("log(dict): metric names must be strings, got %r" % (name,))
        _check_name("metric", name)
        checked.append((name, v if isinstance(v, str) else to_metric_float(name, v)))
    for name, v in checked:
        log(name, v, step=step)


# The run property marking a scalar metric logged with int values (see Run._mark_int).
INT_METRIC_PREFIX = "atelier.metric_type."


def _is_int(value):
    """An int-valued metric value: Python and numpy ints, not booleans."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return False
    return isinstance(value, numbers.Integral)


def _as_int(v):
    """A stored value of a metric marked int: an int when it is whole, else the float."""
    f = parse_float(v)
    return int(f) if isinstance(f, float) and f.is_integer() else f


class Run:
    """A run of an experiment. ``Run(experiment, run_id)`` attaches to an existing run;
    ``Run.get_context()`` returns the run the server submitted this script as."""

    _context = None
    _context_lock = threading.Lock()

    def __init__(self, experiment, run_id, _details=None):
        self.experiment = experiment
        self._client = experiment.workspace._client
        self._ws = experiment.workspace.name
        self._id = run_id
        self._details = _details
        self._buf = None
        self._buf_lock = threading.Lock()
        self._images = {}
        self._image_lock = threading.Lock()
        self._int_metrics = set()  # names logged as ints (and so marked on the server)
        # An interactive run's outputs directory (start_logging), uploaded under outputs/ by complete().
        self._outputs_dir = None

    # identity

    @property
    def id(self):
        return self._id

    @property
    def workspace(self):
        return self.experiment.workspace

    def _get_display_name(self):
        return self._info().get("name") or self._id

    def _set_display_name(self, name):
        """Renames the run on the server (Azure ML v1's run.display_name = ...)."""
        if name is None:
            name = ""
        if not isinstance(name, str):
            raise TypeError("display_name must be a str, not %s" % type(name).__name__)
        self._details = self._client.request("PATCH", self._path(), body={"name": name})

    display_name = property(_get_display_name, _set_display_name)
    name = display_name

    def set_display_name(self, name):
        """Renames the run (the same as run.display_name = name)."""
        self._set_display_name(name)

    def submit_child(self, config, tags=None, **kwargs):
        """Submits config (a ScriptRunConfig) as a child of this run, in its experiment (Azure
        ML v1's run.submit_child); returns the queued child run."""
        submit = getattr(config, "_submit", None)
        if submit is None:
            raise TypeError("submit_child wants a ScriptRunConfig, not %s" % type(config).__name__)
        return submit(self.experiment, tags=tags, _parent_id=self._id, **kwargs)

    @property
    def status(self):
        return self._info().get("status")

    @property
    def parent(self):
        pid = self._info().get("parent_id")
        return Run(self.experiment, pid) if pid else None

    @property
    def properties(self):
        return dict(self._info().get("properties") or {})

    @property
    def tags(self):
        return dict(self._info().get("tags") or {})

    @property
    def params(self):
        return dict(self._info().get("params") or {})

    @property
    def input_datasets(self):
        """The run's download and mount data references (``data:`` in its run configuration):
        name → the local path of the folder or file. Set in the run this script was submitted as."""
        return _local_datasets(self._id, "download", "mount")

    @property
    def output_datasets(self):
        """The run's upload data references: name → the local folder whose files are sent to the
        datastore after the script ends. Set in the run this script was submitted as."""
        return _local_datasets(self._id, "upload")

    def __repr__(self):
        d = self._details or {}
        return "Run(Experiment: %s, Id: %s, Status: %s)" % (self.experiment.name, self._id, d.get("status", "?"))

    def _path(self, *tail):
        p = "/api/v1/workspaces/%s/runs/%s" % (quote_seg(self._ws), quote_seg(self._id))
        return p + "".join("/" + t for t in tail)

    def _info(self):
        if self._details is None:
            self._details = self._client.request("GET", self._path())
        return self._details

    def _refresh(self):
        self._details = self._client.request("GET", self._path())
        return self._details

    # the submitted run

    @classmethod
    def get_context(cls, allow_offline=True, **kwargs):
        """The run this script was submitted as, from the ATELIER_* environment variables the
        server sets. Outside a submitted run it returns an OfflineRun that prints what it would
        log, unless allow_offline is False."""
        with cls._context_lock:
            if cls._context is not None:
                return cls._context
            run_id = os.environ.get("ATELIER_RUN_ID")
            if not run_id:
                if not allow_offline:
                    raise AtelierError("not in a submitted run: ATELIER_RUN_ID is not set "
                                       "(use get_context(allow_offline=True) to log offline)",
                                       code="not_found")
                cls._context = OfflineRun(experiment_name=os.environ.get("ATELIER_EXPERIMENT"))
                return cls._context
            from .workspace import Experiment, Workspace
            server = os.environ.get("ATELIER_SERVER")
            if not server:
                raise AtelierError("ATELIER_RUN_ID is set but ATELIER_SERVER is not", code="invalid")
            ws = Workspace(server, os.environ.get("ATELIER_TOKEN", ""), os.environ.get("ATELIER_WORKSPACE") or "default")
            exp_name = os.environ.get("ATELIER_EXPERIMENT")
            exp = Experiment(ws, exp_name) if exp_name else None
            run = Run(exp or Experiment(ws, "", _lazy=True), run_id)
            if exp is None:
                run.experiment = Experiment(ws, run._info().get("experiment", ""))
            _install_sigterm_flush()
            cls._context = run
            return run

    # status

    def get_details(self):
        """The run's details: the server's run JSON plus Azure-style keys (runId, target,
        startTimeUtc, endTimeUtc, logFiles)."""
        d = dict(self._refresh())
        d.setdefault("runId", d.get("id"))
        d.setdefault("target", d.get("compute") or "")
        d.setdefault("startTimeUtc", d.get("started_at"))
        d.setdefault("endTimeUtc", d.get("ended_at"))
        d.setdefault("logFiles", {LOG_PATH: self._client.server + self._path("logs", LOG_PATH)})
        return d

    def get_status(self):
        return self._refresh().get("status")

    def get_portal_url(self):
        """The run's page in the studio, atelier's web UI: <server>/w/<workspace>/runs/<id>, to
        open in a browser or share (it asks to log in first). A workspace reached over the
        server's Unix socket gives the server's TCP address, read from the server-url file it
        keeps beside the socket while it runs."""
        return "%s/w/%s/runs/%s" % (_web_address(self._client.server), quote_seg(self._ws), quote_seg(self._id))

    def start(self):
        """Marks a NotStarted run as Running."""
        self._set_status({"status": "Running"})

    def _set_status(self, body):
        self._details = self._client.request("POST", self._path("status"), body=body)
        return self._details

    def complete(self, _set_status=True):
        """Flushes pending metrics, uploads the outputs directory of an interactive run (as
        Azure ML v1 does) and marks the run Completed."""
        self.flush()
        if self._outputs_dir is not None and os.path.isdir(self._outputs_dir):
            self.upload_folder("outputs", self._outputs_dir)
        if _set_status:
            self._set_status({"status": "Completed"})
        self._close_buffer()

    def fail(self, error_details=None, error_code=None, _set_status=True):
        """Flushes pending metrics and marks the run Failed with error_details as its error."""
        try:
            self.flush()
        finally:
            if _set_status:
                msg = "" if error_details is None else str(error_details)
                if error_code:
                    msg = "%s: %s" % (error_code, msg) if msg else str(error_code)
                body = {"status": "Failed"}
                if msg:
                    body["error"] = msg[:16384]
                self._set_status(body)
            self._close_buffer()

    def cancel(self):
        """Requests cancellation: a submitted run's process is stopped by the server."""
        try:
            self.flush()
        except AtelierError:
            pass
        try:
            self._details = self._client.request("POST", self._path("cancel"), body={})
        except AtelierError as e:
            # A server without the cancel endpoint: cancel through the status endpoint.
            if e.status == 404 and "no such endpoint" in e.message:
                self._set_status({"status": "Canceled"})
            else:
                raise
        self._close_buffer()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.complete()
        else:
            text = "".join(__import__("traceback").format_exception_only(exc_type, exc)).strip()
            try:
                self.fail(error_details=text)
            except AtelierError as e:
                print("atelier: could not mark run %s failed: %s" % (self._id, e), file=sys.stderr)
        return False

    def wait_for_completion(self, show_output=False, wait_post_processing=False, raise_on_error=True,
                            poll_interval=2.0, timeout=None):
        """Waits for the run to end and returns its details. With show_output, streams the
        run's log to stdout as it is written. A Failed run raises ActivityFailedError when
        raise_on_error is set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if show_output:
            print("RunId: %s" % self._id)
            print("\nStreaming %s\n%s\n" % (LOG_PATH, "=" * (10 + len(LOG_PATH))))
            sys.stdout.flush()
            self._stream_log(deadline, poll_interval)
        while True:
            status = self.get_status()
            if status in TERMINAL:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise AtelierError("run %s did not end within %ss (status %s)" % (self._id, timeout, status),
                                   code="timeout")
            time.sleep(poll_interval)
        details = self.get_details()
        if show_output:
            print("\nExecution Summary\n=================\nRunId: %s\nStatus: %s\n" % (self._id, details.get("status")))
            sys.stdout.flush()
        if raise_on_error and details.get("status") == "Failed":
            err = details.get("error") or "the run failed"
            raise ActivityFailedError("run %s failed: %s" % (self._id, err), details=details)
        return details

    def _stream_log(self, deadline, poll_interval):
        import codecs
        dec = codecs.getincrementaldecoder("utf-8")("replace")
        out = sys.stdout
        offset = 0
        ended = False
        while True:
            try:
                resp = self._client.stream("GET", self._path("logs", LOG_PATH),
                                           query={"follow": not ended, "offset": offset})
            except AtelierError as e:
                if e.status != 404:
                    raise
                resp = None
            if resp is not None:
                try:
                    while True:
                        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
                        if not chunk:
                            break
                        offset += len(chunk)
                        out.write(dec.decode(chunk))
                        out.flush()
                except (OSError, ValueError):
                    pass  # the stream broke: resume from offset
                finally:
                    resp.close()
                    resp._atelier_conn.close()
            if ended:
                out.write(dec.decode(b"", final=True))
                out.flush()
                return
            if self.get_status() in TERMINAL:
                ended = True  # read once more without follow, for anything appended at the end
                continue
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(min(poll_interval, 1.0))

    # metrics

    def _buffer(self):
        b = self._buf
        if b is None:
            with self._buf_lock:
                if self._buf is None:
                    self._buf = MetricBuffer(self._client, self._ws, self._id)
                    sender().register(self._buf)
                b = self._buf
        return b

    def _close_buffer(self):
        if self._buf is not None:
            sender().unregister(self._buf)

    def log(self, name, value=None, description="", step=None):
        """Logs a scalar value; step defaults to one past the last step logged under name.
        A str value is a text metric, as in Azure ML v1 (stored as a record of kind text;
        get_metrics gives it back as the string, a list of them if logged more than once).

        A dict logs each of its entries, as W&B's wandb.log({"loss": 0.2, "acc": 0.9}) does:
        all are checked before any is sent, so a bad value logs none of them."""
        if type(name) is not str and isinstance(name, Mapping):
            _log_each(self.log, name, value, step)
            return
        b = self._buf or self._buffer()
        if b.error is not None:
            b.raise_pending()
        if name not in b.names:
            _check_name("metric", name)
            b.names[name] = json.dumps(name)
        if isinstance(value, str):
            self._record(name, "text", value=str(value))
            return
        if type(value) is not float:
            given, value = value, to_metric_float(name, value)
            if name not in self._int_metrics and _is_int(given):
                self._mark_int(name)
        if step is not None:
            step = _step(name, step)
        b.add_point(name, step, int(time.time() * 1000), value)

    def _mark_int(self, name):
        """Records on the server that name was logged with int values (the server keeps a
        scalar metric as a float64): a run property INT_METRIC_PREFIX + name, set once, so
        get_metrics() gives ints back, as Azure ML does. MLflow's API is unchanged."""
        key = INT_METRIC_PREFIX + name
        if len(key) <= 250:
            try:
                self._client.request("POST", self._path("properties"), body={"properties": {key: "int"}})
            except AtelierError:
                pass  # the metric itself reports a run that cannot be written to, at flush
        self._int_metrics.add(name)

    def _record(self, name, kind, value=None, path=None):
        """Buffers a record; value is already plain JSON (to_metric_json)."""
        b = self._buf or self._buffer()
        b.raise_pending()
        rec = {"name": name, "kind": kind, "timestamp": _now_ms()}
        if value is not None:
            rec["value"] = value
        if path is not None:
            rec["path"] = path
        enc = json.dumps(rec, separators=(",", ":"), allow_nan=False)
        if len(enc) > MAX_RECORD_BYTES:
            raise ValueError("metric %r: the %s is larger than %d bytes" % (name, kind, MAX_RECORD_BYTES))
        b.add_record(enc)

    def log_list(self, name, value, description=""):
        """Logs a list of values."""
        _check_name("metric", name)
        self._record(name, "list", value=_list_value(name, value))

    def log_row(self, name, description=None, **kwargs):
        """Logs one row of a table, as columns=values keyword arguments."""
        _check_name("metric", name)
        self._record(name, "row", value=to_metric_json(name, "log_row", kwargs))

    def log_table(self, name, value, description=""):
        """Logs a table as a dict of equal-length columns."""
        _check_name("metric", name)
        self._record(name, "table", value=_table_columns(name, value))

    def log_image(self, name, path=None, plot=None, description=""):
        """Logs an image: a file (path) or a matplotlib figure (plot). The image is uploaded as
        outputs/images/<name>/<n>.png and recorded as an image metric."""
        if (path is None) == (plot is None):
            raise ValueError("log_image %r: give exactly one of path and plot" % name)
        self._buffer().raise_pending()
        _check_name("metric", name)
        with self._image_lock:
            n = self._images.get(name, 0)
            self._images[name] = n + 1
        tmp = None
        try:
            if plot is not None:
                fd, tmp = tempfile.mkstemp(suffix=".png", prefix="atelier-")
                os.close(fd)
                plot.savefig(tmp, format="png")
                src, ext = tmp, ".png"
            else:
                src = os.fspath(path)
                ext = os.path.splitext(src)[1].lower() or ".png"
            dest = "outputs/images/%s/%d%s" % (_safe_segment(name), n, ext)
            self.upload_file(dest, src)
        finally:
            if tmp:
                os.unlink(tmp)
        self._record(name, "image", path=dest)
        return dest

    def log_param(self, name, value):
        """Logs a param (an atelier extension; params cannot change once set)."""
        self.log_params({name: value})

    def log_params(self, params):
        """Logs params; setting a param to a different value raises AtelierError (409)."""
        kv = {k: v if isinstance(v, str) else json.dumps(to_json_value(v)) if isinstance(v, (list, dict, tuple)) else str(v)
              for k, v in params.items()}
        self._client.request("POST", self._path("params"), body={"params": kv})
        if self._details is not None:
            self._details.setdefault("params", {}).update(kv)

    def tag(self, key, value=None):
        """Sets a tag; the value defaults to the empty string."""
        self.set_tags({key: "" if value is None else value})

    def set_tags(self, tags):
        kv = {k: "" if v is None else str(v) for k, v in tags.items()}
        self._client.request("POST", self._path("tags"), body={"tags": kv})
        if self._details is not None:
            self._details.setdefault("tags", {}).update(kv)

    def remove_tags(self, tags):
        if isinstance(tags, str):
            tags = [tags]
        for k in tags:
            self._client.request("DELETE", self._path("tags", quote_seg(k)))
            if self._details is not None:
                (self._details.get("tags") or {}).pop(k, None)

    def add_properties(self, properties):
        """Adds properties; they are immutable like params."""
        kv = {k: str(v) for k, v in properties.items()}
        self._client.request("POST", self._path("properties"), body={"properties": kv})
        if self._details is not None:
            self._details.setdefault("properties", {}).update(kv)

    def flush(self, timeout_seconds=None):
        """Sends every buffered metric now; raises any error met sending them."""
        if self._buf is not None:
            self._buf.flush()

    def get_metrics(self, name=None, recursive=False, run_type=None, populate=False):
        """The run's metrics, as Azure ML v1 gives them: name -> the value of a scalar logged
        once, the list of its values if logged more than once (NaN and infinities as floats);
        a list metric gives its list (a list of lists if logged more than once), rows give a
        dict of columns, a table its dict of columns (a list of them if logged more than once),
        images their output path(s). recursive=True gives {run_id: metrics} for the run and
        its descendants."""
        if recursive:
            out = {self._id: self.get_metrics(name)}
            for c in self.get_children(recursive=True):
                out[c.id] = c.get_metrics(name)
            return out
        self.flush()
        summaries = self._client.request("GET", self._path("metrics")).get("metrics") or []
        props = self._refresh().get("properties") or {} if summaries else {}
        out = {}
        for s in summaries:
            n = s["name"]
            if name is not None and n != name:
                continue
            kind = s.get("kind", "scalar")
            if kind == "scalar":
                conv = _as_int if props.get(INT_METRIC_PREFIX + n) == "int" else parse_float
                if s.get("count") == 1:  # Azure ML: a metric logged once is its value
                    out[n] = conv(s.get("value"))
                    continue
                ser = self._client.request("GET", self._path("metric-history"), query={"name": n})
                out[n] = [conv(v) for v in ser.get("values") or []]
                continue
            recs = self._client.request("GET", self._path("metric-records"), query={"name": n}).get("records") or []
            out[n] = _collapse_records(kind, recs)
        return out

    def get_metric_history(self, name, min_step=None, max_step=None, max_points=None):
        """The scalar series of name as a dict of steps, timestamps and values."""
        self.flush()
        ser = self._client.request("GET", self._path("metric-history"),
                                   query={"name": name, "min_step": min_step, "max_step": max_step, "max_points": max_points})
        for k in ("values", "min", "max"):
            if ser.get(k) is not None:
                ser[k] = [parse_float(v) for v in ser[k]]
        return ser

    # files

    def upload_file(self, name, path_or_stream):
        """Uploads a file (a path or a binary stream) as name, e.g. "outputs/model.pkl"."""
        name = name.replace("\\", "/").lstrip("/")
        url = self._path("files", quote_path(name))
        if isinstance(path_or_stream, (str, bytes, os.PathLike)):
            p = os.fspath(path_or_stream)
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for blk in iter(lambda: f.read(1 << 20), b""):
                    h.update(blk)
            size = os.path.getsize(p)
            with open(p, "rb") as f:
                return self._client.request("PUT", url, body=f, headers={
                    "Content-Type": "application/octet-stream", "Content-Length": str(size),
                    "X-Content-Sha256": h.hexdigest()})
        data = path_or_stream.read()
        if isinstance(data, str):
            data = data.encode("utf-8")
        return self._client.request("PUT", url, body=data, headers={
            "Content-Type": "application/octet-stream", "X-Content-Sha256": hashlib.sha256(data).hexdigest()})

    def upload_files(self, names, paths):
        return [self.upload_file(n, p) for n, p in zip(names, paths)]

    def upload_folder(self, name, path):
        """Uploads every file under the directory path as name/<relative path>."""
        name = name.replace("\\", "/").strip("/")
        out = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for fn in sorted(files):
                full = os.path.join(root, fn)
                rel = os.path.relpath(full, path).replace(os.sep, "/")
                out.append(self.upload_file(name + "/" + rel if name else rel, full))
        return out

    def get_file_names(self):
        """The paths of the run's files (outputs and logs)."""
        return [f["path"] for f in self._client.request("GET", self._path("files")).get("files") or []]

    def download_file(self, name, output_file_path=None):
        """Downloads the run's file name to output_file_path (a file or a directory; default:
        the file's base name in the current directory)."""
        if output_file_path is None:
            output_file_path = os.path.basename(name)
        elif os.path.isdir(output_file_path):
            output_file_path = os.path.join(output_file_path, os.path.basename(name))
        parent = os.path.dirname(os.path.abspath(output_file_path))
        os.makedirs(parent, exist_ok=True)
        resp = self._client.stream("GET", self._path("files", quote_path(name)))
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".atelier-")
        try:
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(resp, f, 1 << 20)
            os.replace(tmp, output_file_path)
        except BaseException:
            os.unlink(tmp)
            raise
        finally:
            resp.close()
            resp._atelier_conn.close()
        return output_file_path

    def download_files(self, prefix=None, output_directory=None, append_prefix=True):
        out = output_directory or "."
        paths = []
        for f in self.get_file_names():
            if prefix and not f.startswith(prefix):
                continue
            rel = f if append_prefix or not prefix else f[len(prefix):].lstrip("/")
            dest = os.path.join(out, *rel.split("/"))
            os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
            paths.append(self.download_file(f, dest))
        return paths

    # models

    def register_model(self, model_name, model_path=None, tags=None, properties=None, model_framework=None,
                       model_framework_version=None, description=None, datasets=None, **kwargs):
        """Registers a new version of model_name from the run's stored file or folder model_path
        (e.g. "outputs/model.pkl"): nothing is uploaded, the version refers to the run's files.
        Files are named from model_path's last element. Returns the new Model."""
        from .model import Model
        # File uploads are synchronous, so every file the run uploaded is already stored; sending
        # the buffered metrics too makes the run complete to whoever looks at the model's lineage.
        if self._buf is not None:
            try:
                self._buf.flush()
            except AtelierError as e:
                print("atelier: could not send the run's metrics: %s" % e, file=sys.stderr)
        return Model._register_run_files(self, model_name, model_path, tags=tags, properties=properties,
                                         description=description, datasets=datasets, model_framework=model_framework,
                                         model_framework_version=model_framework_version)

    def get_models(self):
        """The model versions registered from this run, newest first."""
        from .model import Model
        return Model.list(self.experiment.workspace, run_id=self._id)

    # children

    def child_run(self, name=None, run_id=None, outputs=None):
        """Creates a running child run. Used as a context manager it completes on normal exit
        and fails (with the exception's text) on an exception."""
        body = {"parent_id": self._id, "status": "Running"}
        if self.experiment.name:
            body["experiment"] = self.experiment.name
        if name:
            body["name"] = name
        d = self._client.request("POST", "/api/v1/workspaces/%s/runs" % quote_seg(self._ws), body=body)
        if self._details is not None:
            self._details["child_count"] = self._details.get("child_count", 0) + 1
        return Run(self.experiment, d["id"], _details=d)

    def create_children(self, count=None, tag_key=None, tag_values=None):
        if tag_values is not None:
            runs = []
            for v in tag_values:
                r = self.child_run()
                r.tag(tag_key, v)
                runs.append(r)
            return runs
        return [self.child_run() for _ in range(count or 0)]

    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None):
        """The run's child runs, oldest first (with recursive, all descendants)."""
        out = []
        token = None
        while True:
            page = self._client.request("GET", self._path("children"), query={"page_token": token})
            for d in page.get("runs") or []:
                out.append(Run(self.experiment, d["id"], _details=d))
            token = page.get("next_page_token")
            if not token:
                break
        out = [r for r in out if _run_matches(r._details, tags, properties, status)]
        if recursive:
            for r in list(out):
                out.extend(r.get_children(recursive=True, tags=tags, properties=properties, status=status))
        return out


def _run_matches(d, tags=None, properties=None, status=None):
    if status is not None and d.get("status") != status:
        return False
    for want, have in ((tags, d.get("tags") or {}), (properties, d.get("properties") or {})):
        if want is None:
            continue
        if isinstance(want, str):
            want = {want: None}
        for k, v in want.items():
            if k not in have or (v is not None and have[k] != v):
                return False
    return True


def _local_datasets(run_id, *modes):
    """The data references of the modes, from the environment the executor gave this process."""
    if run_id != os.environ.get("ATELIER_RUN_ID"):
        return {}
    try:
        sets = json.loads(os.environ.get("ATELIER_DATASETS") or "{}")
    except ValueError:
        return {}
    return {name: d["path"] for name, d in sets.items() if d.get("mode") in modes}


def _collapse_records(kind, recs):
    vals = [r.get("value") for r in recs]
    if kind == "row":
        cols = {}
        for v in vals:
            if isinstance(v, dict):
                for k in v:
                    cols.setdefault(k, [])
        for v in vals:
            v = v if isinstance(v, dict) else {}
            for k in cols:
                cols[k].append(_parse_json_floats(v.get(k)))
        return cols
    if kind == "image":
        paths = [r.get("path") for r in recs]
        return paths[0] if len(paths) == 1 else paths
    if kind == "text":  # strings as logged: "NaN" stays a string
        return vals[0] if len(vals) == 1 else vals
    vals = [_parse_json_floats(v) for v in vals]
    return vals[0] if len(vals) == 1 else vals


def _parse_json_floats(v):
    if isinstance(v, str) and v in ("NaN", "Infinity", "-Infinity"):
        return parse_float(v)
    if isinstance(v, list):
        return [_parse_json_floats(x) for x in v]
    if isinstance(v, dict):
        return {k: _parse_json_floats(x) for k, x in v.items()}
    return v


# SIGTERM: flush, then do what the previous handler would have done.

_sigterm_installed = False


def _install_sigterm_flush():
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        prev = signal.getsignal(signal.SIGTERM)
    except (AttributeError, ValueError):
        return

    def on_sigterm(signum, frame):
        try:
            sender().flush_all(report=True)
        finally:
            if callable(prev):
                return prev(signum, frame)
            if prev == signal.SIG_IGN:
                return None
            # The default action: die by the signal, so the parent sees SIGTERM.
            for f in (sys.stdout, sys.stderr):
                try:
                    f.flush()
                except Exception:
                    pass
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        return None

    try:
        signal.signal(signal.SIGTERM, on_sigterm)
        _sigterm_installed = True
    except ValueError:  # not the main thread of the main interpreter
        pass


def _web_address(server):
    """A browser's address of a server: itself, or for its Unix socket (unix:///dir/atelier.sock)
    the address in dir/server-url, when the server wrote one."""
    if not server.startswith("unix://"):
        return server
    try:
        with open(os.path.join(os.path.dirname(server[len("unix://"):]), "server-url"), encoding="utf-8") as f:
            url = f.read().strip().rstrip("/")
    except OSError:
        url = ""
    return url or server


class _OfflineExperiment:
    def __init__(self, name):
        self.name = name or "offline"
        self.workspace = None

    def __repr__(self):
        return "Experiment(Name: %s, offline)" % self.name


class OfflineRun:
    """A run outside atelier: every call prints what it would do, so scripts run unchanged on a
    laptop. Metrics are kept in memory for get_metrics()."""

    def __init__(self, experiment_name=None, name=None, parent=None):
        self._id = "OfflineRun_" + str(uuid.uuid4())
        self.experiment = _OfflineExperiment(experiment_name)
        self._name = name
        self.parent = parent
        self._steps = {}
        self._metrics = {}
        self._tags = {}
        self._properties = {}
        self._params = {}
        self._children = []
        self._status = "Running"

    id = property(lambda self: self._id)
    def _set_display_name(self, name):
        self._name = name or None
        self._say("rename %s" % name)

    display_name = property(lambda self: self._name or self._id, _set_display_name)
    name = display_name
    status = property(lambda self: self._status)
    tags = property(lambda self: dict(self._tags))
    properties = property(lambda self: dict(self._properties))
    params = property(lambda self: dict(self._params))
    input_datasets = property(lambda self: {})
    output_datasets = property(lambda self: {})

    def __repr__(self):
        return "OfflineRun(Id: %s)" % self._id

    @staticmethod
    def _say(msg):
        print("[offline] " + msg, flush=True)

    def log(self, name, value=None, description="", step=None):
        if type(name) is not str and isinstance(name, Mapping):
            _log_each(self.log, name, value, step)
            return
        _check_name("metric", name)
        v = str(value) if isinstance(value, str) else to_metric_float(name, value)
        if _is_int(value) and v.is_integer():
            v = int(v)
        step = self._steps.get(name, 0) if step is None else _step(name, step)
        self._steps[name] = step + 1
        self._metrics.setdefault(name, []).append(v)
        shown = value if type(value) is int else v
        self._say("log %s=%s step=%d" % (name, shown, step))

    # Values are checked as a real run checks them, so a script that runs offline runs online.

    def log_list(self, name, value, description=""):
        _check_name("metric", name)
        value = _list_value(name, value)
        self._metrics[name] = value
        self._say("log_list %s=%s" % (name, value))

    def log_row(self, name, description=None, **kwargs):
        _check_name("metric", name)
        row = to_metric_json(name, "log_row", kwargs)
        cols = self._metrics.setdefault(name, {})
        for k, v in row.items():
            cols.setdefault(k, []).append(v)
        self._say("log_row %s %s" % (name, row))

    def log_table(self, name, value, description=""):
        _check_name("metric", name)
        cols = _table_columns(name, value)
        self._metrics[name] = cols
        self._say("log_table %s %s" % (name, cols))

    def log_image(self, name, path=None, plot=None, description=""):
        self._say("log_image %s %s" % (name, path if path is not None else "<plot>"))

    def log_param(self, name, value):
        self.log_params({name: value})

    def log_params(self, params):
        for k, v in params.items():
            v = str(v)
            if k in self._params and self._params[k] != v:
                raise AtelierError("param %r is already %r and cannot change to %r" % (k, self._params[k], v),
                                   code="conflict", status=409)
            self._params[k] = v
        self._say("log_params %s" % params)

    def tag(self, key, value=None):
        self.set_tags({key: "" if value is None else value})

    def set_tags(self, tags):
        self._tags.update({k: str(v) for k, v in tags.items()})
        self._say("set_tags %s" % tags)

    def remove_tags(self, tags):
        for k in [tags] if isinstance(tags, str) else tags:
            self._tags.pop(k, None)

    def add_properties(self, properties):
        self._properties.update({k: str(v) for k, v in properties.items()})
        self._say("add_properties %s" % properties)

    def upload_file(self, name, path_or_stream):
        self._say("upload_file %s" % name)

    def upload_files(self, names, paths):
        for n in names:
            self.upload_file(n, None)

    def upload_folder(self, name, path):
        self._say("upload_folder %s %s" % (name, path))

    def register_model(self, model_name, model_path=None, **kwargs):
        self._say("register_model %s %s" % (model_name, model_path))
        return None

    def download_file(self, name, output_file_path=None):
        raise AtelierError("an offline run has no files to download", code="not_found", status=404)

    def get_file_names(self):
        return []

    def get_metrics(self, name=None, recursive=False, **kwargs):
        m = {}
        for k, v in self._metrics.items():
            if name is None or k == name:  # a scalar logged once is its value, as online
                m[k] = v[0] if k in self._steps and len(v) == 1 else v
        return {self._id: m} if recursive else m

    def get_details(self):
        return {"id": self._id, "runId": self._id, "status": self._status, "tags": self.tags,
                "properties": self.properties, "params": self.params, "target": "local"}

    def get_status(self):
        return self._status

    def get_portal_url(self):
        """None: an offline run is on no server."""
        return None

    def flush(self, timeout_seconds=None):
        pass

    def complete(self, _set_status=True):
        self._status = "Completed"
        self._say("complete")

    def fail(self, error_details=None, error_code=None, _set_status=True):
        self._status = "Failed"
        self._say("fail %s" % (error_details or ""))

    def cancel(self):
        self._status = "Canceled"
        self._say("cancel")

    def start(self):
        self._status = "Running"

    def child_run(self, name=None, run_id=None, outputs=None):
        c = OfflineRun(self.experiment.name, name=name, parent=self)
        self._children.append(c)
        self._say("child_run %s" % (name or c.id))
        return c

    def get_children(self, recursive=False, **kwargs):
        out = list(self._children)
        if recursive:
            for c in self._children:
                out.extend(c.get_children(recursive=True))
        return out

    def wait_for_completion(self, show_output=False, **kwargs):
        return self.get_details()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.complete()
        else:
            self.fail(error_details=str(exc))
        return False
