"""RQ's bookkeeping for runs started, or finished, together: written straight onto one pipeline.

`ConcurrentWorker` starts the jobs it claimed together in one MULTI/EXEC and records the plain
successes that ended together in another. RQ 3.0.0 writes each run through helper objects
(`Execution.create`, `Job._handle_success`, `Result.create`, a registry object per call) that
resolve the serializer every time (a runtime `Protocol` check, ~15 µs), rewrite the whole job
hash to change two fields, and repeat per job what one write per batch does. These functions
write the same keys, fields and scores as RQ's own code (tests/unit/test_batch.py compares the
two on the same jobs), with these differences, none visible to a reader of Redis but the timing
of the second:

- start: the job's `last_heartbeat` is written once (RQ writes it twice) and `meta` (the attempt
  counter) in the same HSET (`RegisteredJob.prepare_for_execution`); the worker's execution index
  gets its TTL once per batch (the longest of the jobs'), not once per job;
- of the execution (`new_execution`), only the started registry entry is written with the start
  (`register_start`); the rest (`record_execution`: its hash, the job's and the worker's execution
  indexes) can be written later, and the worker does so only for jobs still running a moment after
  they started. A run that ends before then ends as if RQ had written it all and deleted it: RQ's
  success leaves no trace of an execution but its id in the result;
- success: the job hash gets the two fields that changed (`status`, `ended_at`) instead of all of
  them re-serialized; the dependents/dependencies keys of a job that has none are not EXPIREd
  (the caller WATCHes the dependents keys and checks they do not exist); the claims are released by
  one script call for the batch and the run-time histogram gets one increment per bucket.
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import uuid4

from redis.client import Pipeline
from redis.typing import EncodableT, FieldT
from rq.defaults import UNSERIALIZABLE_RETURN_VALUE_PAYLOAD
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job, JobStatus
from rq.registry import FinishedJobRegistry, StartedJobRegistry
from rq.results import Result
from rq.utils import utcformat


def _score(stamp: int, ttl: int) -> int | str:
    """RQ's registry score for `ttl` seconds from `stamp`: -1 is forever."""
    return "+inf" if ttl == -1 else ttl if ttl < 0 else stamp + ttl


def new_execution(job: Job, worker_name: str) -> Execution:
    """A run of `job` by `worker_name`, not yet written (`record_execution`)."""
    execution = Execution(id=uuid4().hex, job_id=job.id, connection=job.connection, worker_name=worker_name)
    execution._job = job
    return execution


def register_start(pipe: Pipeline, execution: Execution, ttl: int, stamp: int) -> None:
    """The part of `Execution.create` written with the job's start: its entry in RQ's started registry."""
    key = StartedJobRegistry.key_template.format(execution.job.origin)
    pipe.zadd(key, {execution.composite_key: _score(stamp, ttl)})


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


def record_success(
    pipe: Pipeline,
    job: Job,
    execution: Execution,
    value: Any,
    result_ttl: int,
    worker_name: str,
    stamp: int,
    *,
    recorded: bool = True,
) -> None:
    """`Job._handle_success` + `Job.cleanup` + `Execution.delete` for a job without dependents.

    `job.ended_at` is set; `result_ttl` is not 0 (a job deleted at once goes through RQ's handlers).
    `recorded=False`: the execution was never written (`record_execution`): only its started registry entry
    is deleted."""
    assert job.ended_at is not None
    job._status = JobStatus.FINISHED
    job._result = value
    pipe.hset(job.key, mapping={"status": JobStatus.FINISHED.value, "ended_at": utcformat(job.ended_at)})
    _save_result(pipe, job, value, result_ttl, worker_name, execution.id, execution.created_at, job.ended_at)
    pipe.zadd(FinishedJobRegistry.key_template.format(job.origin), {job.id: _score(stamp, result_ttl)})
    if result_ttl and result_ttl > 0:
        pipe.expire(job.key, result_ttl)
        if job._dependency_ids:
            pipe.expire(job.dependencies_key, result_ttl)
    pipe.zrem(StartedJobRegistry.key_template.format(job.origin), execution.composite_key)
    if not recorded:
        return
    pipe.delete(execution.key)
    pipe.zrem(ExecutionRegistry.key_template.format(job.id), execution.id)
    if execution.worker_name:
        pipe.srem(execution.worker_executions_key, execution.composite_key)


def _save_result(
    pipe: Pipeline,
    job: Job,
    value: Any,
    ttl: int,
    worker_name: str,
    execution_id: str,
    started_at: datetime,
    ended_at: datetime,
) -> None:
    """`Result.create(job, SUCCESSFUL, ...)`: one entry in the job's results stream."""
    data: dict[FieldT, EncodableT] = {"type": Result.Type.SUCCESSFUL.value, "worker_name": worker_name}
    if value is not None:
        try:
            serialized = job.serializer.dumps(value)
        except Exception:
            serialized = job.serializer.dumps(UNSERIALIZABLE_RETURN_VALUE_PAYLOAD)
        data["return_value"] = b64encode(serialized).decode()
    data["execution_id"] = execution_id
    data["execution_started_at"] = started_at.timestamp()
    data["execution_ended_at"] = ended_at.timestamp()
    key = Result.get_key(job.id)
    pipe.xadd(key, data, maxlen=10)
    if ttl is not None:
        if ttl == -1:
            pipe.persist(key)
        else:
            pipe.expire(key, ttl)
