"""Buffered, batched metric logging.

Logging calls append to an in-memory buffer under a lock (about a microsecond each); one daemon
thread per process sends every run's buffer as batches to POST .../runs/{id}/metrics every
``interval`` seconds, or as soon as ``flush_points`` points are waiting. Buffers are flushed on
complete()/fail(), at interpreter exit (atexit) and on SIGTERM for submitted runs. An error the
background thread meets is kept and raised by the run's next logging, flush or complete call.

Values are checked by the logging calls (see _values) before they are buffered, so a batch holds
only what the server takes. Should the server still refuse one, its metrics are lost: the error
is raised to the script, and if the script is already exiting it exits with status 1, so that a
run that lost metrics does not end Completed.
"""

import atexit
import json
import os
import sys
import threading
import time

from ._http import AtelierError, quote_seg

MAX_POINTS_PER_BATCH = 100_000
MAX_RECORDS_PER_BATCH = 1_000
MAX_RECORD_BYTES = 1 << 20
MAX_BATCH_BYTES = 32 << 20  # well under the server's 64 MiB JSON limit

_FLOAT_JSON = {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"'}


def encode_points(points, names):
    """Encodes (name, step, timestamp, value) tuples as the members of the "metrics" array.
    names caches each name's JSON string."""
    parts = []
    append = parts.append
    fj = _FLOAT_JSON
    frepr = float.__repr__  # the number itself, whatever repr() a float subclass would give
    for name, step, ts, v in points:
        r = frepr(v)
        r = fj.get(r, r)
        if step is None:
            append('{"name":%s,"timestamp":%d,"value":%s}' % (names[name], ts, r))
        else:
            append('{"name":%s,"step":%d,"timestamp":%d,"value":%s}' % (names[name], step, ts, r))
    return parts


class MetricBuffer:
    """The pending metrics of one run."""

    flush_points = 10_000      # wake the sender once this many points wait
    max_points = 2_000_000     # beyond this, logging sends synchronously (back-pressure)

    def __init__(self, client, workspace, run_id):
        self.client = client
        self.run_id = run_id
        self.path = "/api/v1/workspaces/%s/runs/%s/metrics" % (quote_seg(workspace), quote_seg(run_id))
        self.lock = threading.RLock()       # guards points/records; reentrant for the SIGTERM handler
        self.send_lock = threading.RLock()  # one sender at a time, so batches stay in order
        self.points = []
        self.records = []  # pre-encoded JSON objects
        self.names = {}    # name -> JSON string of the name, for names already validated
        self.error = None  # an error met by the background sender, raised at the next call
        self.failures = 0

    # called by the logging thread

    def add_point(self, name, step, ts, value):
        with self.lock:
            self.points.append((name, step, ts, value))
            n = len(self.points)
        if n % self.flush_points == 0:
            if n >= self.max_points:
                self.flush()
            else:
                sender().wake()

    def add_record(self, encoded):
        with self.lock:
            self.records.append(encoded)
            n = len(self.records)
        if n % MAX_RECORDS_PER_BATCH == 0:
            sender().wake()

    def raise_pending(self):
        err = self.error
        if err is not None:
            self.error = None
            raise err

    def pending(self):
        return len(self.points) + len(self.records)

    # sending

    def _take(self):
        with self.lock:
            pts, recs = self.points, self.records
            self.points, self.records = [], []
        return pts, recs

    def _putback(self, pts, recs):
        with self.lock:
            self.points[:0] = pts
            self.records[:0] = recs

    def _send(self, pts, recs):
        """Sends in batches within the server's limits. On failure, what was not sent is
        returned with the error."""
        i = j = 0
        while i < len(pts) or j < len(recs):
            chunk = pts[i:i + MAX_POINTS_PER_BATCH]
            rchunk = []
            size = 0
            while j + len(rchunk) < len(recs) and len(rchunk) < MAX_RECORDS_PER_BATCH:
                r = recs[j + len(rchunk)]
                if rchunk and size + len(r) > MAX_BATCH_BYTES // 2:
                    break
                rchunk.append(r)
                size += len(r)
            body = '{"metrics":[' + ",".join(encode_points(chunk, self.names)) + "]"
            if rchunk:
                body += ',"records":[' + ",".join(rchunk) + "]"
            body += "}"
            try:
                self.client.request("POST", self.path, body=body.encode("utf-8"),
                                    headers={"Content-Type": "application/json"})
            except AtelierError as e:
                if e.code != "unavailable":
                    e = AtelierError("the server refused %d metric points and %d records of run %s "
                                     "(%s); they are lost: %s" % (len(chunk), len(rchunk), self.run_id,
                                                                  _names(chunk, rchunk), e),
                                     code=e.code, status=e.status, details=e.details)
                return e, pts[i:], recs[j:]
            i += len(chunk)
            j += len(rchunk)
        return None, [], []

    def flush(self):
        """Sends everything buffered now; raises the first error (including one the background
        sender met earlier)."""
        with self.send_lock:
            self.raise_pending()
            while True:
                pts, recs = self._take()
                if not pts and not recs:
                    return
                err, left_p, left_r = self._send(pts, recs)
                if err is not None:
                    if err.code == "unavailable":  # nothing was stored: keep it for a later flush
                        self._putback(left_p, left_r)
                    raise err

    def background_send(self):
        """One round of the sender thread: errors are kept for the logging thread."""
        if not self.points and not self.records:
            return
        with self.send_lock:
            pts, recs = self._take()
            if not pts and not recs:
                return
            err, left_p, left_r = self._send(pts, recs)
            if err is None:
                self.failures = 0
                return
            if err.code == "unavailable" and self.failures < 20:
                # The server may be restarting: keep the points and try again next round.
                self.failures += 1
                self._putback(left_p, left_r)
                return
            self.failures = 0
            self.error = err

    def reset_after_fork(self):
        self.lock = threading.RLock()
        self.send_lock = threading.RLock()
        self.points, self.records = [], []  # the parent sends these
        self.error = None


def _names(pts, recs, most=5):
    """The metric names of a batch, for an error message."""
    names = sorted({p[0] for p in pts} | {json.loads(r)["name"] for r in recs})
    return "metrics " + ", ".join(repr(n) for n in names[:most]) + (", ..." if len(names) > most else "")


class Sender:
    """The process's background sender thread."""

    interval = 0.5

    def __init__(self):
        self.buffers = set()
        self.lock = threading.Lock()
        self.event = threading.Event()
        self.thread = None
        self.closed = False

    def register(self, buf):
        with self.lock:
            self.buffers.add(buf)
            if self.thread is None and not self.closed:
                self.thread = threading.Thread(target=self._loop, name="atelier-metrics", daemon=True)
                self.thread.start()

    def unregister(self, buf):
        with self.lock:
            self.buffers.discard(buf)

    def wake(self):
        self.event.set()

    def _loop(self):
        while True:
            self.event.wait(self.interval)
            self.event.clear()
            with self.lock:
                bufs = list(self.buffers)
            busy = False
            for b in bufs:
                try:
                    b.background_send()
                except Exception as e:  # never let the thread die
                    b.error = e if isinstance(e, AtelierError) else AtelierError(
                        "sending metrics failed: %r" % (e,), code="internal")
                if b.pending() >= b.flush_points:
                    busy = True
                if b.failures:
                    time.sleep(min(0.25 * b.failures, 3.0))
            if busy:
                self.event.set()

    def flush_all(self, report=True):
        """Flushes every buffer; at exit errors are printed, not raised."""
        with self.lock:
            bufs = list(self.buffers)
        first = None
        for b in bufs:
            try:
                b.flush()
            except Exception as e:
                if first is None:
                    first = e
                if report:
                    print("atelier: could not send the run's metrics: %s" % e, file=sys.stderr)
        return first

    def reset_after_fork(self):
        self.lock = threading.Lock()
        self.event = threading.Event()
        self.thread = None
        bufs, self.buffers = self.buffers, set()
        for b in bufs:
            b.reset_after_fork()
            b.client.reset_after_fork()
            self.buffers.add(b)
        if self.buffers:
            self.thread = threading.Thread(target=self._loop, name="atelier-metrics", daemon=True)
            self.thread.start()


_sender = Sender()


def sender():
    return _sender


def _at_exit():
    _sender.closed = True
    if _sender.flush_all(report=True) is None:
        return
    # Metrics were lost. An exit status is all the runner of a script sees: make it a failure,
    # or the run would end Completed without them. Nothing else can change the status here.
    print("atelier: exiting with status 1 because the run's metrics could not all be sent",
          file=sys.stderr)
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.shutdown()  # its exit handler would run after this one, which os._exit skips
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass
    os._exit(1)


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _sender.reset_after_fork())
