#!/usr/bin/env python3
"""A tiny demo backend for the example routes.yaml.

    demo_backend.py PORT NAME

Answers every request with JSON naming the backend. The "orders" flavour
differs from the monolith in a few realistic ways (a renamed field, a
reordered object, its own ids) so that shadow diffs have something to show.
"""
import json
import random
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, NAME = int(sys.argv[1]), sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        order_id = self.path.rstrip("/").rsplit("/", 1)[-1]
        doc = {
            "backend": NAME,
            "id": order_id,
            "status": "shipped",
            "total": 42.5,
            "tags": ["a", "b"],
            "meta": {"generated_at": time.time(), "request": random.getrandbits(32)},
        }
        if NAME == "orders":
            doc = {"meta": doc["meta"], "tags": ["b", "a"], "backend": NAME, "id": order_id,
                   "state": "shipped", "total": 42.5}
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = answer

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
