"""The warden-port/1 loop for the example ports (stdlib only).

`run(handle)` answers Warden on stdin/stdout until stdin closes: `handle(params)`
gets one delivery's params (payload, state, message_id, correlation, ...) and
returns its result ({"emit", "state", "reply", "tokens_used"}), or raises
`PortError(message, kind)`. Logs go to stderr. config/examples/port.py is the
same loop written out in full, for reading.
"""
import json
import sys


class PortError(Exception):
    """A failed delivery: kind is retryable | non_retryable | fatal | rate_limited."""

    def __init__(self, message, kind="retryable"):
        super().__init__(message)
        self.kind = kind


def log(text):
    print(text, file=sys.stderr, flush=True)


def _send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run(handle):
    for line in sys.stdin:
        msg = json.loads(line)
        method, mid = msg.get("method"), msg.get("id")
        if method == "initialize":
            _send({"jsonrpc": "2.0", "id": mid, "result": {"protocol": "warden-port/1"}})
        elif method == "deliver":
            try:
                _send({"jsonrpc": "2.0", "id": mid, "result": handle(msg["params"])})
            except PortError as e:
                _send({"jsonrpc": "2.0", "id": mid, "error": {
                    "code": -32001, "message": str(e), "data": {"kind": e.kind}}})


def find(value, key):
    """The first object, depth first, that has `key`: the original task inside
    the answers and feedback wrapped around it."""
    if isinstance(value, dict):
        if key in value:
            return value
        for v in value.values():
            hit = find(v, key)
            if hit is not None:
                return hit
    elif isinstance(value, list):
        for v in value:
            hit = find(v, key)
            if hit is not None:
                return hit
    return None
