"""RQ's bookkeeping of jobs and workers, written straight onto the worker's pipelines.

The concurrent worker starts the jobs it claimed together in one MULTI/EXEC and records the plain
successes that ended together in another. RQ 3.0.0 writes each run through helper objects
(`Job.prepare_for_execution`, `Job._handle_success`, `Result.create`, a registry object per call)
that resolve the serializer every time (a runtime `Protocol` check, ~15 µs), rewrite the whole job
hash to change two fields, and repeat per job what one write per batch does. These functions write
the same keys, fields and scores as RQ's own code (tests compare the two on the same jobs), with
these differences, none visible to a reader of Redis but the timing of the second:

- start (`write_start`): the job's `last_heartbeat` is written once (RQ writes it twice) and `meta`
  (the attempt counter) in the same HSET, with the attempt in a field of its own (`keys.ATTEMPT_FIELD`);
  the worker's execution index gets its TTL once per batch (`core.rqadapter.executions`);
- success (`record_success`): the job hash gets the two fields that changed (`status`, `ended_at`)
  instead of all of them re-serialized; the dependents/dependencies keys of a job that has none are
  not EXPIREd (the caller WATCHes the dependents keys and checks they do not exist).

Also here: the other places the workers touch RQ's records directly (a worker's success counters,
a requeue at the front of a queue, forgetting a dead worker, a dead scheduler's locks).
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.typing import EncodableT, FieldT
from rq.defaults import UNSERIALIZABLE_RETURN_VALUE_PAYLOAD
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import FinishedJobRegistry
from rq.results import Result
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.utils import as_text, now, utcformat, utcparse
from rq.worker import Worker
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from core import keys
from core.meta import ATTEMPT
from core.rqadapter.claims import Claims, lost_key
from core.rqadapter.executions import registry_score, remove_ended, worker_executions_key

# -- jobs ---------------------------------------------------------------------------------


def write_start(job: Job, worker_name: str, pipeline: Pipeline) -> None:
    """RQ's `Job.prepare_for_execution` (the same fields), with `job.meta` as it stands in the same HSET, and its
    attempt number in a field of its own (`keys.ATTEMPT_FIELD`)."""
    job.worker_name = worker_name
    job.last_heartbeat = now()
    job.started_at = job.last_heartbeat
    job._status = JobStatus.STARTED
    started = utcformat(job.started_at)
    mapping: dict[FieldT, EncodableT] = {
        "last_heartbeat": started,
        "status": JobStatus.STARTED.value,
        "started_at": started,
        "worker_name": worker_name,
        "meta": job._serialize_meta(),
        keys.ATTEMPT_FIELD: int(job.meta.get(ATTEMPT, 1)),
    }
    pipeline.hset(job.key, mapping=mapping)


def read_job_hashes(connection: Redis, job_ids: Sequence[str]) -> list[dict[bytes, bytes]]:
    """The hashes of `job_ids` as `Job.restore` takes them, in one round trip (empty: no such job)."""
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hgetall(Job.key_for(job_id))
        hashes: list[dict[bytes, bytes]] = pipe.execute()
    return hashes


def persist_while_running(pipe: Pipeline, job: Job) -> None:
    """What RQ's `prepare_job_execution` does to a starting job's hash: no TTL while it runs."""
    pipe.persist(job.key)


def watch_dependents(pipe: Pipeline, jobs: Sequence[Job], worker_name: str) -> tuple[bool, set[str]]:
    """WATCH the dependents sets of `jobs` and `worker_name`'s lost-claims counter on `pipe` (before its MULTI),
    then, in one more round trip, (whether any job has dependents, the ids of those whose claim `worker_name`
    lost). When either is true nothing is watched any more; else a dependent added or a claim taken over
    before the EXEC makes it fail (`redis.WatchError`)."""
    dependents = [job.dependents_key for job in jobs]
    pipe.watch(*dependents, lost_key(worker_name))  # type: ignore[no-untyped-call]
    existing, lost = Claims.check_batch(pipe, worker_name, [job.id for job in jobs], dependents)
    if existing or lost:
        pipe.unwatch()
    return bool(existing), lost


def is_in_queue(connection: Redis, queue: Queue, job_id: str) -> bool:
    """Whether `job_id` is in `queue`'s list (a `queued` job may be claimed, or lost, instead)."""
    return connection.lpos(queue.key, job_id) is not None


def meta_is_unreadable(job: Job) -> bool:
    """Whether the `meta` RQ read for `job` could not be deserialized (RQ keeps the raw bytes aside)."""
    return job._unreadable_meta is not None


def has_success_callback(job: Job) -> bool:
    """Whether `job` names an `on_success` callback (RQ keeps only the name until it is called)."""
    return bool(job._success_callback_name)


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
    `recorded=False`: the execution was never written (`executions.record_execution`): only its started
    registry entry is deleted."""
    assert job.ended_at is not None
    job._status = JobStatus.FINISHED
    job._result = value
    pipe.hset(job.key, mapping={"status": JobStatus.FINISHED.value, "ended_at": utcformat(job.ended_at)})
    _save_result(pipe, job, value, result_ttl, worker_name, execution.id, execution.created_at, job.ended_at)
    pipe.zadd(FinishedJobRegistry.key_template.format(job.origin), {job.id: registry_score(stamp, result_ttl)})
    if result_ttl and result_ttl > 0:
        pipe.expire(job.key, result_ttl)
        if job._dependency_ids:
            pipe.expire(job.dependencies_key, result_ttl)
    remove_ended(pipe, job, execution, recorded=recorded)


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


def requeue_at_front(queue: Queue, job: Job, pipe: Pipeline) -> None:
    """Put `job` back at the front of `queue` as RQ's enqueue does (status `queued`, saved), on `pipe`."""
    queue._enqueue_job(job, pipeline=pipe, at_front=True)


# -- workers ------------------------------------------------------------------------------


def count_successes(pipe: Pipeline, worker_key: str, jobs: Sequence[Job]) -> None:
    """What RQ's `handle_job_success` adds to the worker's hash, for `jobs` at once (`started_at` and
    `ended_at` set): the successful job count and the total working time."""
    pipe.hincrby(worker_key, "successful_job_count", len(jobs))
    working = sum((job.ended_at - job.started_at).total_seconds() for job in jobs if job.started_at and job.ended_at)
    pipe.hincrbyfloat(worker_key, "total_working_time", working)


def bury_worker(connection: Redis, worker_name: str) -> None:
    """Forget a dead worker in RQ's worker registries at once (RQ would count it alive for minutes)."""
    key = Worker.redis_worker_namespace_prefix + worker_name
    queues = as_text(connection.hget(key, "queues") or b"")
    with connection.pipeline() as pipe:
        pipe.srem(Worker.redis_workers_keys, key)
        for name in filter(None, queues.split(",")):
            pipe.srem(WORKERS_BY_QUEUE_KEY % name, key)
        pipe.delete(key, worker_executions_key(key))
        pipe.execute()


_COMPARE_AND_DELETE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def release_stale_scheduler_locks(connection: Redis, queue_names: Sequence[str], stale_after: float) -> list[str]:
    """Free the scheduler locks of `queue_names` whose holder has not beaten for `stale_after` seconds (a
    SIGKILLed worker's scheduler holds them for a minute); returns the locks released."""
    lock_keys = [RQScheduler.get_locking_key(name) for name in queue_names]
    released = []
    for lock_key, raw_holder in zip(lock_keys, connection.mget(lock_keys), strict=True):
        if raw_holder is None:
            continue
        holder = as_text(raw_holder)
        beat = connection.hget(SCHEDULER_KEY_TEMPLATE % holder, "last_heartbeat")
        if beat is not None and (now() - utcparse(as_text(beat))).total_seconds() < stale_after:
            continue
        connection.eval(_COMPARE_AND_DELETE, 1, lock_key, holder)
        released.append(f"{lock_key} (held by {holder})")
    return released
