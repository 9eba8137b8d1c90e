#!/usr/bin/env python3
"""A Warden port in plain Python (stdlib only): the reference for port authors.

Warden starts this program once per replica and speaks warden-port/1 with it:
JSON-RPC 2.0, one JSON object per line, requests on stdin, answers on stdout.
Write logs to stderr (they go to Warden's log); never print anything else to
stdout. Exit when stdin closes.

This agent upper-cases the "text" of each task, counts the tasks it has done in
its state (committed by Warden with the answer), and hands the result on to the
agents its config lists in `to` (here via "emit").
"""
import json
import os
import sys

# whom to hand results to (each must be in the agent's `to`)
EMIT_TO = os.environ.get("EMIT_TO", "out").split(",")


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(text):
    print(text, file=sys.stderr, flush=True)


def handle(params):
    """One delivery: return the result (reply, emit, state, tokens_used)."""
    payload = params["payload"]
    if isinstance(payload, dict) and isinstance(payload.get("json"), dict):
        payload = payload["json"]  # an llm agent's answer in json mode
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        # retrying cannot fix a bad input: the message goes to the dead letters
        raise PortError("expected {\"text\": \"...\"}", "non_retryable")
    done = (params["state"] or {}).get("done", 0) + 1
    result = {"text": payload["text"].upper(), "by": params["message_id"]}
    return {
        "reply": result,                                # to a `call`
        "emit": [{"to": to, "payload": result} for to in EMIT_TO],  # agents in `to`
        "state": {"done": done},                        # committed with the ack
    }


class PortError(Exception):
    def __init__(self, message, kind="retryable"):
        super().__init__(message)
        self.kind = kind  # retryable | non_retryable | fatal | rate_limited


for line in sys.stdin:  # ends when Warden closes stdin: then exit
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if method == "initialize":
        log(f"ready as {msg['params']['agent']} replica {msg['params']['replica']}")
        send({"jsonrpc": "2.0", "id": mid, "result": {"protocol": "warden-port/1"}})
    elif method == "deliver":
        try:
            send({"jsonrpc": "2.0", "id": mid, "result": handle(msg["params"])})
        except PortError as e:
            send({"jsonrpc": "2.0", "id": mid,
                  "error": {"code": -32001, "message": str(e), "data": {"kind": e.kind}}})
        except Exception as e:  # a bug: let Warden retry it
            log(f"failed: {e!r}")
            send({"jsonrpc": "2.0", "id": mid,
                  "error": {"code": -32000, "message": repr(e), "data": {"kind": "retryable"}}})
    elif method == "cancel":
        pass  # a long delivery could stop early here; this one is quick
