#!/usr/bin/env python3
"""A webhook for the `http` agent tests: prints its port, then serves POSTs.

Each request is logged as a JSON line to argv[1]: path, headers (names in lower
case; the value of authorization replaced by its length), body. The message's payload decides the
answer: {"status": S, "times": N, "retry_after": "1", "result": {...}} answers S
to the first N requests for that message id, then 200 with `result` (or empty).
"""
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log_path = sys.argv[1]
seen = {}
lock = threading.Lock()

class Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        params = json.loads(body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if "authorization" in headers:
            headers["authorization"] = "<%d chars>" % len(headers["authorization"])
        with lock:
            with open(log_path, "a") as f:
                f.write(json.dumps({"path": self.path, "headers": headers, "body": params,
                                    "conn": "%s:%d" % self.client_address}) + "\n")
            n = seen.get(params["message_id"], 0) + 1
            seen[params["message_id"]] = n
        pay = params["payload"] if isinstance(params["payload"], dict) else {}
        status, out, extra = 200, b"", {}
        if n <= pay.get("times", 0):
            status = pay.get("status", 500)
            out = b"upstream says no"
            if "retry_after" in pay:
                extra["Retry-After"] = pay["retry_after"]
        elif "result" in pay:
            out = json.dumps(pay["result"]).encode()
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
print(server.server_address[1], flush=True)
server.serve_forever()
