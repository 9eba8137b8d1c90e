#!/usr/bin/env python3
"""seed-departments' finance tool: books each handled event in the finance store.

The store is $LEDGER, one JSON line per event: {"seq", "amount", "by",
"accepted_ms", "booked_ms"}. An event already in the store is not booked again
(the set is read at start), so a redelivery books once. Then the booking goes
to `books` (for the reports), to `workflow` (the external engine's webhook) and
to `audit`. An amount that is not a number crashes this tool: Warden restarts
it and redelivers, and past its attempts the event is a dead letter whose
reason holds the exit and these last lines of stderr.
"""
import json
import os
import sys
import time

from wardenport import find, log, run

LEDGER = os.environ.get("LEDGER", "var/departments/ledger.jsonl")


def booked_seqs():
    seqs = set()
    try:
        with open(LEDGER) as f:
            for line in f:
                try:
                    seqs.add(json.loads(line)["seq"])
                except (ValueError, KeyError):
                    pass  # a torn last line from a crash: booked again below
    except FileNotFoundError:
        pass
    return seqs


BOOKED = booked_seqs()


def handle(params):
    item = find(params["payload"], "seq")
    if item is None:
        from wardenport import PortError
        raise PortError("no event in the answer", "non_retryable")
    seq, amount = item["seq"], item["event"].get("amount")
    if not isinstance(amount, (int, float)) or isinstance(amount, bool):
        log(f"cannot book event {seq}: amount {amount!r} is not a number")
        sys.exit(3)  # the poison: a crash, every time
    by = (params.get("causation") or "?").split(":")[0]
    entry = {"seq": seq, "amount": amount, "by": by,
             "accepted_ms": item["accepted_ms"], "booked_ms": int(time.time() * 1000)}
    if seq not in BOOKED:
        os.makedirs(os.path.dirname(LEDGER) or ".", exist_ok=True)
        with open(LEDGER, "a") as f:
            f.write(json.dumps(entry) + "\n")
        BOOKED.add(seq)
    return {"emit": [{"to": "books", "payload": {"booked": seq, "amount": amount}},
                     {"to": "workflow", "payload": entry},
                     {"to": "audit", "payload": entry}]}


run(handle)
