"""RQ's executions (one per run of a job), written and removed in parts, on the worker's pipelines.

RQ 3.0.0's `Execution.create` writes, per run: the execution's hash, its entries in the started
registry, in the job's execution index (`rq:executions:<job id>`) and in the worker's
(`rq:worker:<name>:executions`). The concurrent worker writes the started registry entry with the
job's start (`register_start`) and the rest (`record_execution`) only for runs still going a
moment later; `drop_abandoned` removes what a dead worker's run left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import uuid4

from redis import Redis
from redis.client import Pipeline
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.utils import as_text


def registry_score(stamp: int, ttl: int) -> int | str:
    """RQ's registry score for `ttl` seconds from `stamp`: -1 is forever."""
    return "+inf" if ttl == -1 else ttl if ttl < 0 else stamp + ttl


def new_execution(job: Job, worker_name: str) -> Execution:
    """A run of `job` by `worker_name`, not yet written (`record_execution`)."""
    execution = Execution(id=uuid4().hex, job_id=job.id, connection=job.connection, worker_name=worker_name)
    execution._job = job  # RQ would fetch the job again on first use
    return execution


def register_start(pipe: Pipeline, execution: Execution, ttl: int, stamp: int) -> None:
    """The part of `Execution.create` written with the job's start: its entry in RQ's started registry."""
    key = StartedJobRegistry.key_template.format(execution.job.origin)
    pipe.zadd(key, {execution.composite_key: registry_score(stamp, ttl)})


def record_execution(pipe: Pipeline, execution: Execution, ttl: int, stamp: int) -> None:
    """The rest of `Execution.create`: the execution's hash and its entries in the job's and the worker's
    execution indexes (but the TTL of the worker's index, `expire_worker_executions`)."""
    pipe.hset(execution.key, mapping=execution.serialize())
    pipe.expire(execution.key, ttl)
    executions_key = ExecutionRegistry.key_template.format(execution.job_id)
    pipe.zadd(executions_key, {execution.id: stamp + ttl + 60})
    pipe.expire(executions_key, ttl + 60)
    pipe.sadd(execution.worker_executions_key, execution.composite_key)


def expire_worker_executions(pipe: Pipeline, executions: Sequence[Execution], ttls: Sequence[int]) -> None:
    """The TTL `Execution.create` gives the worker's execution index, once for a batch (the longest)."""
    if executions:
        pipe.expire(executions[0].worker_executions_key, max(ttls) + 60)


def remove_ended(pipe: Pipeline, job: Job, execution: Execution, *, recorded: bool) -> None:
    """`Execution.delete` for a run that ended; `recorded=False`: only its started registry entry was written."""
    pipe.zrem(StartedJobRegistry.key_template.format(job.origin), execution.composite_key)
    if not recorded:
        return
    pipe.delete(execution.key)
    pipe.zrem(ExecutionRegistry.key_template.format(job.id), execution.id)
    if execution.worker_name:
        pipe.srem(execution.worker_executions_key, execution.composite_key)


def drop_abandoned(connection: Redis, job: Job, pipe: Any) -> None:
    """Queue on `pipe` the removal of every run of `job` from RQ's started registry and its execution
    index, with the executions' hashes (the runs of a worker that died or gave the job up)."""
    registry = job.started_job_registry
    members: list[Any] = connection.zrange(registry.key, 0, -1)
    stale = [member for member in map(as_text, members) if member.startswith(f"{job.id}:")]
    if stale:
        pipe.zrem(registry.key, *stale)
    execution_ids: list[Any] = connection.zrange(job.execution_registry.key, 0, -1)
    for execution_id in map(as_text, execution_ids):
        pipe.delete(Execution(execution_id, job.id, connection=connection).key)
    pipe.delete(job.execution_registry.key)


def worker_executions_key(worker_key: str) -> str:
    """The worker's execution index (`Execution.worker_executions_key`) for the worker hash `worker_key`."""
    return f"{worker_key}:executions"
