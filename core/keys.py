"""Every Redis key this service adds beside RQ's own (`rq:*`), in one place."""

from __future__ import annotations

PREFIX = "jobsvc"

#: Sorted sets of job ids scored by creation time (microseconds): newest last.
INDEX_ALL = f"{PREFIX}:index:all"


def index_for_queue(queue: str) -> str:
    return f"{PREFIX}:index:queue:{queue}"


def index_for_type(job_type: str) -> str:
    return f"{PREFIX}:index:type:{job_type}"


def idempotency(owner: str, key_digest: str) -> str:
    """The job an `Idempotency-Key` created, per owner (API key name; "anonymous" without auth)."""
    return f"{PREFIX}:idempotency:{owner}:{key_digest}"


def reuse(digest: str) -> str:
    """The newest job of one owner's identical submissions (`core.reuse`): what `cache_ttl` reuses."""
    return f"{PREFIX}:reuse:{digest}"


def stop_requested(job_id: str) -> str:
    """Set while a stop of the job was requested; `jobs.control.cancel_requested()` reads it."""
    return f"{PREFIX}:stop:{job_id}"


#: Hash: job run-time histogram by type and outcome, written by workers, read by `/metrics` (jobs/runtime.py).
JOB_RUNTIME = f"{PREFIX}:metrics:job_runtime"


# -- security and limits --


def index_for_owner(owner: str) -> str:
    """Sorted set of the job ids one API key submitted (same scores as the other indexes)."""
    return f"{PREFIX}:index:owner:{owner}"


def active_for_owner(owner: str) -> str:
    """Set of one API key's jobs that may still be active; pruned of ended jobs at each submission."""
    return f"{PREFIX}:active:{owner}"


#: Prefix of the `limits` library's rate-limit windows: `jobsvc:ratelimit:LIMITER/submit/<key name>/...`.
RATE_LIMIT_PREFIX = f"{PREFIX}:ratelimit"


# -- live events --

#: Pub/sub channel: each message is the id of a job whose progress or status just changed.
#: The events themselves live in the job hash (`core.events`); nothing else is stored per job.
EVENTS_CHANNEL = f"{PREFIX}:channel:events"

#: Pub/sub channel: each message is the key of a queue the service just pushed a job onto. Idle workers
#: wait on it between polls (`workers.wake`), so a job sent to an idle system starts at once.
WAKE_CHANNEL = f"{PREFIX}:channel:wake"


# -- streamed output --


def output(job_id: str) -> str:
    """List of a job's output chunks, oldest first, each `<progress seq>:<attempt>:<text>` (`core.output`)."""
    return f"{PREFIX}:output:{job_id}"


def output_info(job_id: str) -> str:
    """Hash beside `output(job_id)`: chunk count, first kept chunk, bytes kept and dropped, last attempt."""
    return f"{PREFIX}:output-info:{job_id}"


# -- reliability --

#: Hash job id -> name of the worker that took it off its queue and has not settled it yet.
CLAIMS = f"{PREFIX}:claims"


def claims_lost(worker_name: str) -> str:
    """Counter that every takeover of one of `worker_name`'s claims bumps (WATCHed while it records outcomes)."""
    return f"{CLAIMS}-lost:{worker_name}"


#: Hash: name -> birth (Unix seconds, the server's clock) of every worker of this service not yet forgotten.
SERVICE_WORKERS = f"{PREFIX}:workers"

#: Lock held by the worker running the abandoned-job sweep (value: worker name).
RECOVERY_LOCK = f"{PREFIX}:recovery:lock"


def worker_alive(worker_name: str) -> str:
    """String with a short TTL that a live worker keeps refreshing (value: JSON about the worker)."""
    return f"{PREFIX}:alive:{worker_name}"


# -- queue positions --

#: Prefix of the per-queue counters of job ids pushed onto a queue's tail by this service's submissions.
QUEUE_PUSHES_PREFIX = f"{PREFIX}:pushes:"

#: Field of a job's hash (RQ's `rq:job:<id>`): its queue's pushes counter as it stood when the job was pushed.
#: With it, the job's distance from the queue's tail is the counter now minus this value: a hint that the
#: status read checks with one LINDEX before it falls back to scanning the queue (`app.scripts`).
QUEUE_SEQ = f"{PREFIX}_seq"


#: Field of a job's hash: which start of the job the run now recorded is (`meta["attempt"]`, written with it by
#: each start). A run whose number is lower was superseded, and its progress reports are refused
#: (`core.rqadapter.jobdata.meta_write`): one field read, where decoding the meta costs ~70 us of Redis CPU.
ATTEMPT_FIELD = f"{PREFIX}_attempt"


def queue_pushes(queue: str) -> str:
    return f"{QUEUE_PUSHES_PREFIX}{queue}"


# -- batches --

#: Field of a member's job hash (RQ's `rq:job:<id>`): its batch id, read by the event script (`core.rqadapter.batches`).
BATCH_FIELD = f"{PREFIX}_batch"

#: Sorted set of every batch id, scored by creation time (microseconds): newest last.
BATCH_INDEX_ALL = f"{PREFIX}:index:batches"

#: Set of the ids of batches that have not ended yet (`/metrics`).
BATCHES_RUNNING = f"{PREFIX}:batches:running"

#: Hash: final batch status -> how many batches ended with it (`/metrics`).
BATCHES_ENDED = f"{PREFIX}:batches:ended"


def batch(batch_id: str) -> str:
    """Hash: the batch's record (owner, description, total...) and its counters, kept by the event script."""
    return f"{PREFIX}:batch:{batch_id}"


def batch_members(batch_id: str) -> str:
    """Hash: member job id -> "<status> <progress>" as last counted in the batch's counters."""
    return f"{PREFIX}:batch:{batch_id}:members"


def batch_jobs(batch_id: str) -> str:
    """Sorted set of the batch's member ids, scored as the job indexes (`GET /jobs?batch=`)."""
    return f"{PREFIX}:batch:{batch_id}:jobs"


def batch_index_for_owner(owner: str) -> str:
    return f"{PREFIX}:index:batches:owner:{owner}"


def batch_channel(batch_id: str) -> str:
    """Pub/sub channel on which a batch's changes are announced (at most a few a second, and its end)."""
    return f"{PREFIX}:channel:batch:{batch_id}"


def staged_job(job_id: str) -> str:
    """Hash: a job written when its batch ends (the `on_complete` job, the callback delivery), fields as RQ's."""
    return f"{PREFIX}:staged:{job_id}"


# -- periodic schedules --

#: Sorted set: id of every enabled schedule -> its next due time (Unix milliseconds). Workers read the
#: due head of it (`ZRANGEBYSCORE -inf <now>`), never the whole set.
SCHEDULES_DUE = f"{PREFIX}:schedules:due"

#: Sorted set: id of every schedule -> its creation time (microseconds): the listing's order.
SCHEDULES_ALL = f"{PREFIX}:schedules:all"


def schedule(schedule_id: str) -> str:
    """Hash: one schedule's definition (JSON, field `def`), its state and counters."""
    return f"{PREFIX}:schedule:{schedule_id}"


def schedules_of_owner(owner: str) -> str:
    """Sorted set of the schedule ids one API key created (scored as `SCHEDULES_ALL`)."""
    return f"{PREFIX}:schedules:owner:{owner}"


def schedule_runs(schedule_id: str) -> str:
    """Sorted set of one schedule's run job ids, scored like the job indexes (newest last), capped."""
    return f"{PREFIX}:index:schedule:{schedule_id}"


#: Hash: service-wide schedule counters the firing script keeps (`runs`, `skipped`), read by `/metrics`.
SCHEDULE_METRICS = f"{PREFIX}:metrics:schedules"
