#!/usr/bin/env python3
"""A webhook in front of Warden (stdlib only): POST a task, it is sent to an agent.

Warden's own HTTP side is read-only (DESIGN G11): work enters through the admin
socket. This bridge is the small program that stands between a webhook and the
socket: every `POST /tasks` with a JSON body becomes one durable `send`, and the
answer comes only once Warden has the message on disk.

    python3 config/examples/ports/webhook_bridge.py \\
        --socket var/commerce/warden.sock --to intake --listen 127.0.0.1:8088
    curl -s -d '{"id":"order-17","task":"refund order 17"}' http://127.0.0.1:8088/tasks

- `id` (optional) names the task: it becomes the correlation and the idempotency
  key, so a webhook the sender repeats is accepted once (`"duplicate": true`).
- 202 `{"message_id", "duplicate"}` once accepted; 400 for a body that is not a
  JSON object; 429 with `Retry-After` when the agent's mailbox is full; 503 when
  the daemon is not there; 502 for any other refusal (its message included).
"""
import argparse
import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20


def send(sock_path, to, task):
    req = {"op": "send", "to": to, "payload": task}
    if isinstance(task.get("id"), str) and task["id"]:
        req["correlation"] = task["id"]
        req["key"] = "webhook:" + task["id"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(sock_path)
        s.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            buf += chunk
    return json.loads(buf)


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body, headers=()):
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if self.path != "/tasks":
            return self.answer(404, {"error": "POST /tasks"})
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            return self.answer(400, {"error": "a Content-Length up to 1 MiB is required"})
        try:
            task = json.loads(self.rfile.read(n))
        except ValueError as e:
            return self.answer(400, {"error": f"the body is not JSON: {e}"})
        if not isinstance(task, dict):
            return self.answer(400, {"error": "the body must be a JSON object"})
        try:
            r = send(self.server.sock_path, self.server.to, task)
        except (OSError, ConnectionError, ValueError) as e:
            return self.answer(503, {"error": f"warden is not reachable: {e}"})
        if r.get("ok"):
            return self.answer(202, r["result"])
        err = r.get("error", {})
        if err.get("code") == "mailbox_full":
            return self.answer(429, err, [("Retry-After", "1")])
        return self.answer(502, err)

    def log_message(self, fmt, *args):
        print("webhook: " + fmt % args, file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--socket", required=True, help="Warden's admin socket")
    p.add_argument("--to", required=True, help="the agent that takes the tasks")
    p.add_argument("--listen", default="127.0.0.1:8088", help="host:port")
    a = p.parse_args()
    host, port = a.listen.rsplit(":", 1)
    srv = ThreadingHTTPServer((host, int(port)), Handler)
    srv.sock_path, srv.to = a.socket, a.to
    print(f"listening on {host}:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
