"""The fair index's writes for a job pushed onto an RQ queue list (`core.flow.keys`, `core.rqadapter.flow_scripts`).

Every push the service makes writes these beside RQ's RPUSH/LPUSH, in the same atomic step, with a message on
`keys.WAKE_CHANNEL` that wakes idle workers (`workers.wake`). A push made by code that does not (RQ's own
retries, scheduler and dependents, rq-dashboard) is adopted by the claim script, and found by the next poll.
"""

from __future__ import annotations

import time
from typing import Any

from rq.job import Job

from core import keys
from core.flow import keys as flow_keys
from core.meta import OWNER, TYPE
from core.rqadapter.jobdata import readable_meta

Command = tuple[Any, ...]


def index_writes(queue_key: str, job: Job, *, front: bool = False) -> list[Command]:
    """The index writes for `job` pushed onto the list `queue_key` (its tail, or its front), and the wake-up."""
    meta = readable_meta(job)
    owner, job_type = str(meta.get(OWNER) or ""), str(meta.get(TYPE) or "")
    seq = 0 if front else time.time_ns() // 1000
    jobs = flow_keys.jobs(queue_key, owner, job_type)
    return [
        ("LPUSH" if front else "RPUSH", jobs, f"{seq}:{job.id}"),
        ("SADD", flow_keys.types(queue_key, owner), job_type),
        ("ZADD", flow_keys.ring(queue_key), "NX", 0, owner),
        ("HSET", flow_keys.indexed(queue_key), job.id, f"{seq}\n{jobs}"),
        ("PUBLISH", keys.WAKE_CHANNEL, queue_key),
    ]


def index_in(pipe: Any, queue_key: str, job: Job, *, front: bool = False) -> None:
    """`index_writes` queued on `pipe` (a pipeline or MULTI)."""
    for command in index_writes(queue_key, job, front=front):
        pipe.execute_command(*command)


def pushes_of(commands: list[Command], queue_key: str, job_id: str) -> str | None:
    """Whether `commands` push `job_id` onto `queue_key`: "RPUSH", "LPUSH", or None."""
    for command in commands:
        name = str(command[0]).upper()
        if name in ("RPUSH", "LPUSH") and len(command) == 3 and command[1] == queue_key and command[2] == job_id:
            return name
    return None
