"""The Redis keys of flow control (limits and fair turns), in one place; the claim script builds the same names.

Per queue (named by RQ's queue key, `rq:queue:<name>`), the fair index beside RQ's queue list:
- `ring(queue)`: sorted set owner -> turn (the lowest turn is served next; a new owner enters at 0);
- `types(queue, owner)`: set of the job types the owner has queued there;
- `jobs(queue, owner, type)`: list of `<seq>:<job id>`, oldest first;
- `indexed(queue)`: hash job id -> `<seq>\n<its jobs list>`, the ids the index holds (what the claim's safety
  net checks).

Slots and windows, across queues:
- `running_type(type)`, `running_key(owner)`: hash job id -> worker, one entry per running job (count = HLEN);
- `HELD`: hash job id -> the slot hashes it holds, newline-separated (what releasing a claim frees);
- `starts(type)`: sorted set of start times (ms, the server's clock) within the type's rate window;
- `REFUSED`: hash limit name (`type:<name>`, `key:<owner>`) -> claims it held back (a counter).
"""

from __future__ import annotations

from core.keys import PREFIX

FLOW = f"{PREFIX}:flow"
HELD = f"{FLOW}:held"
REFUSED = f"{FLOW}:refused"


def ring(queue_key: str) -> str:
    return f"{FLOW}:ring:{queue_key}"


def types(queue_key: str, owner: str) -> str:
    return f"{FLOW}:types:{queue_key}:{owner}"


def jobs(queue_key: str, owner: str, job_type: str) -> str:
    return f"{FLOW}:jobs:{queue_key}:{owner}|{job_type}"


def indexed(queue_key: str) -> str:
    return f"{FLOW}:ix:{queue_key}"


def running_type(job_type: str) -> str:
    return f"{FLOW}:running:type:{job_type}"


def running_key(owner: str) -> str:
    return f"{FLOW}:running:key:{owner}"


def starts(job_type: str) -> str:
    return f"{FLOW}:starts:{job_type}"
