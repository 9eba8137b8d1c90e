#!/usr/bin/env python3
"""seed-swarm's specialists (frontend, backend, ai): one requirement in, files out.

A task is {"req", "capability", "spec"}; the answer, emitted to the validator,
is {"req", "capability", "spec", "files": [{"path", "content"}]}, and the files
are written under $WORKSPACE/<req>/ as well. A first draft of a spec that says
"draft" leaves a placeholder in; the validator's findings come back as
{"input": <the answer>, "errors": [...]}, and the rework fills it in.
A spec this specialist cannot do ($CANNOT, a word in the spec) fails every
time: Warden retries it on its schedule, then hands it to a person.
Each attempt is appended to $ATTEMPTS (if set) as {"req", "attempt", "time_ms"}.
"""
import json
import os
import time

from wardenport import PortError, log, run

WORKSPACE = os.environ.get("WORKSPACE", "var/swarm/workspace")
CANNOT = os.environ.get("CANNOT", "")
ATTEMPTS = os.environ.get("ATTEMPTS", "")


def files_for(task, rework):
    stem = task["req"].lower()
    body = f"// {task['spec']}\n"
    if "draft" in task["spec"] and not rework:
        body += "// TODO: the real thing\n"
    else:
        body += f"export function {stem}() {{ return {json.dumps(task['spec'])}; }}\n"
    return [{"path": f"{task['req']}/{stem}.js", "content": body}]


def handle(params):
    payload = params["payload"]
    rework = isinstance(payload, dict) and "errors" in payload and "input" in payload
    task = payload["input"] if rework else payload
    if not isinstance(task, dict) or not {"req", "capability", "spec"} <= task.keys():
        raise PortError('expected {"req", "capability", "spec"}', "non_retryable")
    if ATTEMPTS:
        with open(ATTEMPTS, "a") as f:
            f.write(json.dumps({"req": task["req"], "attempt": params["attempt"],
                                "time_ms": int(time.time() * 1000)}) + "\n")
    if CANNOT and CANNOT in task["spec"]:
        raise PortError(f"cannot build {task['req']}: no {CANNOT} model here")
    files = files_for(task, rework)
    for f in files:
        path = os.path.join(WORKSPACE, f["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as out:
            out.write(f["content"])
    log(f"{task['req']}: {len(files)} file(s){' (rework)' if rework else ''}")
    out = {k: task[k] for k in ("req", "capability", "spec")}
    out["files"] = files
    return {"emit": [{"to": "check", "payload": out}]}


run(handle)
