#!/usr/bin/env python3
"""seed-commerce's tool server: the CRM and the orders database, as one port.

It gets a department's answer (an `llm` agent's output with `include_input`, so
the director's decision and the original task ride along), looks the customer
up in the CRM, books the order in the database (the port's committed state:
booked once, with the ack) and hands the record to the verifier.
"""
from wardenport import PortError, find, run

CRM = {
    "c-1": {"id": "c-1", "name": "Ada", "tier": "gold"},
    "c-2": {"id": "c-2", "name": "Grace", "tier": "silver"},
    "c-3": {"id": "c-3", "name": "Edsger", "tier": "bronze"},
}


def handle(params):
    answer = params["payload"]                 # the department's answer
    director = answer.get("input") or {}       # what it answered: the director's
    decision = director.get("json") or {}      # {"department": ...}
    task = find(director.get("input"), "task")  # the task (inside feedback, if any)
    if task is None:
        raise PortError("no task in the department's answer", "non_retryable")
    work = answer.get("json") if isinstance(answer.get("json"), dict) else {}
    who = task.get("customer")
    if isinstance(who, dict):
        who = who.get("id")
    customer = CRM.get(who, {"id": str(who), "name": "unknown", "tier": "new"})
    orders = (params["state"] or {}).get("orders", 0) + 1
    record = {
        "id": task.get("id"),
        "task": task.get("task"),
        "customer": customer,
        "department": decision.get("department"),
        "action": work.get("action"),
        "amount": work.get("amount"),
        "order": orders,
    }
    return {"emit": [{"to": "verify", "payload": record}], "state": {"orders": orders}}


run(handle)
