#!/usr/bin/env python3
"""seed-departments' front desk: every event gets its number, every tick a report.

An event (any JSON object with "segment" and "topic") is numbered in the
desk's committed state (1, 2, 3, ... exactly once each, across crashes) and
goes on to `segment` as {"seq", "accepted_ms", "event"}. A timer's tick
({"tick", "scheduled_ms", "payload": {"report": NAME}}) asks `books` for a
report covering every event numbered so far: {"report", "upto", "at_ms"}.
"""
import time

from wardenport import PortError, run


def handle(params):
    payload = params["payload"]
    n = (params["state"] or {}).get("seq", 0)
    if isinstance(payload, dict) and "tick" in payload:
        name = (payload.get("payload") or {}).get("report", "report")
        ask = {"report": name, "upto": n, "at_ms": int(time.time() * 1000)}
        return {"emit": [{"to": "books", "payload": ask}]}
    if not isinstance(payload, dict) or not {"segment", "topic"} <= payload.keys():
        raise PortError('an event needs "segment" and "topic"', "non_retryable")
    n += 1
    event = {"seq": n, "accepted_ms": int(time.time() * 1000), "event": payload}
    return {"emit": [{"to": "segment", "payload": event}], "state": {"seq": n}}


run(handle)
