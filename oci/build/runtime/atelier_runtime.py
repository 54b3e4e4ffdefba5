"""atelier's scoring runtime: serves an Azure ML style score.py over HTTP.

It imports the entry script named by AZUREML_ENTRY_SCRIPT, calls its init() once, then answers
POST /score by calling run(raw_json) with the request body, and GET / with a health answer.
Standard library only, so it runs on any CPython 3 base image.
"""

import importlib.util
import json
import os
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def load(path):
    # The entry script's directory comes first on sys.path, as Azure ML does, so score.py can
    # import the modules beside it.
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec = importlib.util.spec_from_file_location("score", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Handler(BaseHTTPRequestHandler):
    module = None
    # run() is called one request at a time: score.py files are written for Azure ML's
    # one-request-per-worker model and are rarely thread-safe.
    lock = threading.Lock()

    def reply(self, status, body, content_type="application/json"):
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path in ("/", "/score"):
            self.reply(200, "Healthy", "text/plain; charset=utf-8")
        else:
            self.reply(404, json.dumps({"error": "not found: " + self.path}))

    def do_POST(self):
        if self.path != "/score":
            self.reply(404, json.dumps({"error": "not found: " + self.path}))
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8")
        try:
            with self.lock:
                result = self.module.run(raw)
        except Exception as exc:  # the scoring script's error is the caller's answer
            traceback.print_exc()
            self.reply(500, json.dumps({"error": "run() failed: %s" % exc}))
            return
        if isinstance(result, (bytes, bytearray)):
            result = result.decode("utf-8")
        self.reply(200, result if isinstance(result, str) else json.dumps(result))

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main():
    entry = os.environ.get("AZUREML_ENTRY_SCRIPT", "/var/azureml-app/score.py")
    host = os.environ.get("ATELIER_SCORE_HOST", "0.0.0.0")
    port = int(os.environ.get("ATELIER_SCORE_PORT", "5001"))
    module = load(entry)
    module.init()
    Handler.module = module
    server = ThreadingHTTPServer((host, port), Handler)
    # The bound address on stdout tells a supervisor (or a test) the server is ready.
    print("atelier scoring runtime listening on %s:%d" % server.server_address[:2], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
