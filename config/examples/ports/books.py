#!/usr/bin/env python3
"""seed-departments' books: which events are accounted for, and the reports.

It gets bookings ({"booked": seq, "amount"}), the finance tool's dead letters
({"dead_letter": {...}}: the event failed) and report requests from the desk
({"report", "upto", "at_ms"}). A report goes to `reports` once every event up
to `upto` is booked or failed, so each report covers every event accepted
before it: {"report", "at_ms", "upto", "booked", "failed": [seqs], "amount"}.
Everything is in the committed state: the contiguous prefix of accounted
events is one number, only those above it are listed.
"""
import time

from wardenport import find, run


def account(st, seq):
    if seq <= st["done"] or seq in st["above"]:
        return False
    st["above"].append(seq)
    st["above"].sort()
    while st["above"] and st["above"][0] == st["done"] + 1:
        st["done"] = st["above"].pop(0)
    return True


def handle(params):
    p = params["payload"]
    st = params["state"] or {}
    st = {"done": st.get("done", 0), "above": st.get("above", []), "booked": st.get("booked", 0),
          "amount": st.get("amount", 0), "failed": st.get("failed", []), "asked": st.get("asked", [])}
    if "booked" in p:
        if account(st, p["booked"]):
            st["booked"] += 1
            st["amount"] += p.get("amount", 0)
    elif "dead_letter" in p:
        item = find(p["dead_letter"].get("payload"), "seq")
        if item is not None and account(st, item["seq"]):
            st["failed"].append(item["seq"])
    elif "report" in p:
        st["asked"].append(p)
    emit = []
    still = []
    for ask in st["asked"]:
        if ask["upto"] <= st["done"]:
            emit.append({"to": "reports", "payload": {
                "report": ask["report"], "at_ms": ask["at_ms"], "upto": ask["upto"],
                "booked": st["booked"], "amount": st["amount"], "done_upto": st["done"],
                "failed": sorted(st["failed"]), "made_ms": int(time.time() * 1000)}})
        else:
            still.append(ask)
    st["asked"] = still
    return {"emit": emit, "state": st}


run(handle)
