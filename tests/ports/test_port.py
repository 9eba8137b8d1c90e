#!/usr/bin/env python3
"""A warden-port/1 port for the tests: the payload says what to do.

Environment: TEST_PORT_NO_INIT=1 never answers initialize; TEST_PORT_STUBBORN=1
does not exit when stdin closes; TEST_PORT_IGNORE_TERM=1 ignores SIGTERM.
"""
import json, os, signal, subprocess, sys, time

out = sys.stdout
def send(obj):
    out.write(json.dumps(obj) + "\n")
    out.flush()

def log(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()

if os.environ.get("TEST_PORT_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
log(f"started pid={os.getpid()} replica={os.environ.get('WARDEN_REPLICA')}")

def read():
    line = sys.stdin.readline()
    if not line:
        if os.environ.get("TEST_PORT_STUBBORN"):
            while True:
                time.sleep(1)
        sys.exit(0)
    return json.loads(line)

after_reply = None
while True:
    msg = read()
    method, mid = msg.get("method"), msg.get("id")
    if method == "initialize":
        if os.environ.get("TEST_PORT_NO_INIT"):
            continue
        send({"jsonrpc": "2.0", "id": mid, "result": {"protocol": "warden-port/1"}})
        continue
    if method == "cancel":
        continue
    if method != "deliver":
        continue
    p = msg["params"]
    pay = p["payload"] if isinstance(p["payload"], dict) else {}
    do = pay.get("do", "reply")
    on = pay.get("on_attempt")
    if on is not None and p["attempt"] != on:
        do = "reply"
    if do == "exit":
        sys.exit(pay.get("code", 3))
    if do == "close_stdout":
        os.close(1)
        time.sleep(30)
    if do == "garbage":
        out.write("this is not json\n"); out.flush(); time.sleep(30)
    if do == "huge":
        out.write("x" * (2 << 20) + "\n"); out.flush(); time.sleep(30)
    if do == "hang" and not os.path.exists(pay.get("unless_file", "/nonexistent/x")):
        log(f"hanging pid={os.getpid()}")
        while True:
            time.sleep(1)
    if do == "slow":
        time.sleep(0.02)
    if do == "grandchild":
        child = subprocess.Popen(["sleep", "300"])
        log(f"grandchild pid={child.pid}")
    if do == "error" and os.path.exists(pay.get("unless_file", "/nonexistent/x")):
        do = "reply"
    if do == "error":
        for i in range(pay.get("stderr", 0)):
            log(f"detail line {i}")
        data = {"kind": pay.get("kind", "retryable")}
        if "retry_after_ms" in pay:
            data["retry_after_ms"] = pay["retry_after_ms"]
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32001, "message": pay.get("message", "failed"), "data": data}})
        continue
    if do == "tokens":
        send({"jsonrpc": "2.0", "id": "t1", "method": "take_tokens", "params": {"delivery": mid, "tokens": pay["n"]}})
        answer = read()
        if "error" in answer:
            continue
    state = p["state"] if isinstance(p["state"], dict) else {}
    count = state.get("count", 0) + 1
    result = {"reply": {"echo": p["payload"], "pid": os.getpid(), "count": count,
                        "attempt": p["attempt"], "max_attempts": p["max_attempts"],
                        "replica": os.environ.get("WARDEN_REPLICA"), "budget": p.get("budget")},
              "state": {"count": count}}
    if do == "env":
        result["reply"]["env"] = dict(os.environ)
    if "emit_to" in pay:
        result["emit"] = [{"to": pay["emit_to"], "payload": {"from_port": p["payload"], "pid": os.getpid()}}]
    if do == "tokens":
        result["tokens_used"] = pay.get("used", pay["n"])
    if "usage" in pay:
        result["usage"] = pay["usage"]
    send({"jsonrpc": "2.0", "id": mid, "result": result})
    if do == "idle_exit":
        time.sleep(0.2)
        sys.exit(pay.get("code", 1))
