"""`POST /batches`: validate every member, then write them all in a few script runs.

Every member is validated as `POST /jobs` validates a job (`app.submission`), its errors located
under `["jobs", i, ...]`; one invalid member refuses the whole batch before anything is written.
Then the jobs are built in memory as RQ builds them, and written by `core.rqadapter.batches`'
member script, `CHUNK` members per run: the first run alone (it writes the batch record, the staged
`on_complete` and callback jobs, and checks the owner's quota for every member), the rest pipelined
in one round trip. Members may be delayed or scheduled, not dependent on other jobs.
A little over 300 lines: validating and building a batch share its `Plan` and the job options.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, UrlConstraints
from rq import Retry
from rq.job import Job
from starlette.concurrency import run_in_threadpool

from app.callback_url import callback_meta
from app.errors import ValidationFailedError
from app.quota import Quota, over_quota
from app.store import JobStore
from app.submission import Submission, parse_submission, validate_model
from core import batches, keys, meta
from core.clock import iso_z, utc_now
from core.queues import make_queue
from core.rqadapter import batches as lua
from core.rqadapter.enqueue import enqueue_writes
from core.settings import Settings
from core.submitting import ACTIVE_STATUSES, initial_meta
from jobs.builtin import batch_report, callbacks
from jobs.catalog import registry

#: Members written per script run: a run holds Redis for about 15 us a member.
CHUNK = 500
#: Member errors reported at most in one 422 (the first ones, in member order).
MAX_ERRORS = 20


class OnComplete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=200)
    args: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = None


class BatchRequest(BaseModel):
    """Body of `POST /batches`: `jobs` are `POST /jobs` bodies, each validated on its own."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[Any] = Field(min_length=1, description="POST /jobs bodies, 1 to MAX_BATCH_JOBS of them")
    description: str | None = Field(None, description="Free text shown in the batch view")
    callback_url: Annotated[AnyHttpUrl, UrlConstraints(max_length=2000)] | None = Field(
        None, description="http(s) URL that receives the signed batch view when the batch ends"
    )
    on_complete: OnComplete | None = Field(None, description="A job enqueued when the batch ends, whatever its end")


@dataclass(frozen=True)
class Plan:
    """A validated batch: its members and what its end enqueues."""

    members: list[Submission]
    description: str
    callback_url: str | None
    on_complete: Submission | None


def _located(exc: ValidationFailedError, prefix: Sequence[str | int]) -> list[dict[str, Any]]:
    return [
        {**error, "loc": [*prefix, *error.get("loc", [])]} for error in exc.errors or [{"loc": [], "msg": exc.detail}]
    ]


def validate(body: dict[str, Any], settings: Settings) -> Plan:
    """The batch `body` asks for, or a 422 naming every invalid member (the first MAX_ERRORS)."""
    jobs = body.get("jobs")
    if isinstance(jobs, list) and len(jobs) > settings.max_batch_jobs:
        raise ValidationFailedError.field(["jobs"], f"at most {settings.max_batch_jobs} jobs per batch")
    request: BatchRequest = validate_model(BatchRequest, body)
    errors: list[dict[str, Any]] = []
    members: list[Submission] = []
    for position, member in enumerate(request.jobs):
        try:
            if not isinstance(member, dict):
                raise ValidationFailedError.field([], "must be a JSON object (a POST /jobs body)")
            submission = parse_submission(member, registry, settings)
            if submission.depends_on:
                raise ValidationFailedError.field(["depends_on"], "a batch member cannot depend on other jobs")
            members.append(submission)
        except ValidationFailedError as exc:
            errors.extend(_located(exc, ["jobs", position]))
            if len(errors) >= MAX_ERRORS:
                break
    on_complete = None
    if request.on_complete is not None:
        try:
            body = request.on_complete.model_dump(exclude_none=True)
            on_complete = parse_submission(body, registry, settings, on_complete=True)
        except ValidationFailedError as exc:
            errors.extend(_located(exc, ["on_complete"]))
    if errors:
        where = ", ".join(".".join(str(part) for part in error["loc"]) for error in errors[:3])
        raise ValidationFailedError(f"invalid {where}", errors=errors[:MAX_ERRORS])
    description = request.description if request.description is not None else f"batch of {len(members)} jobs"
    if len(description) > settings.max_description_chars:
        raise ValidationFailedError.field(["description"], f"at most {settings.max_description_chars} characters")
    callback_url = str(request.callback_url) if request.callback_url is not None else None
    return Plan(members, description, callback_url, on_complete)


async def check_callbacks(plan: Plan, settings: Settings) -> dict[str | None, dict[str, Any]]:
    """The callback meta of each distinct `callback_url` (members' and the batch's), checked once each."""
    checked: dict[str | None, dict[str, Any]] = {None: {}}
    for position, member in enumerate(plan.members):
        if member.callback_url not in checked:
            try:
                checked[member.callback_url] = await callback_meta(member.callback_url, settings)
            except ValidationFailedError as exc:
                raise ValidationFailedError(exc.detail, errors=_located(exc, ["jobs", position])) from None
    if plan.callback_url not in checked:
        checked[plan.callback_url] = await callback_meta(plan.callback_url, settings)
    return checked


@dataclass
class Building:
    """What the chunks of one batch being built share."""

    id: str
    owner: str
    created_us: int  # the batch's creation time, Unix microseconds
    callbacks: dict[str | None, dict[str, Any]]
    templates: dict[str, lua.Template] = field(default_factory=dict)


@dataclass
class Chunk:
    """One script run's members, and the templates they use (numbered from 1 in this order)."""

    members: list[Any] = field(default_factory=list)
    templates: list[lua.Template] = field(default_factory=list)


def _template_key(submission: Submission) -> str:
    """Members with the same key differ only by id: they share a template."""
    return json.dumps(
        [submission.spec.name, submission.args, submission.queue, submission.timeout, submission.retries,
         submission.description, submission.callback_url],
        sort_keys=True, separators=(",", ":"),
    )  # fmt: skip


@lru_cache(maxsize=64)
def _second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _rq_time(microseconds: int) -> str:
    """A Unix time in microseconds as RQ writes times (`rq.utils.utcformat`)."""
    seconds, fraction = divmod(microseconds, 1_000_000)
    return f"{_second(seconds)}.{fraction:06d}Z"


@dataclass
class Written:
    batch_id: str
    raw: dict[Any, Any]


class BatchWriter:
    """Builds a validated batch's jobs and writes them (`core.rqadapter.batches`)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.settings = store.settings
        self._script = store.aio.register_script(lua.submit_many_source(ACTIVE_STATUSES))

    def _job(self, submission: Submission, batch_id: str, owner: str, callback: dict[str, Any]) -> Job:
        extra = {meta.BATCH_ID: batch_id, **callback}
        return self.store.build_job(**submission.job_fields(), meta=initial_meta(submission.spec.name, owner, extra))

    def _member(self, submission: Submission, batch_id: str, owner: str, callback: dict[str, Any]) -> list[Any]:
        """A member written by its own commands (a delayed or scheduled one)."""
        job = self._job(submission, batch_id, owner, callback)
        commands = enqueue_writes(self.store.sync, self.store.queues[job.origin], job, submission.run_at)
        entry = self.store.listing_entry(job, submission.spec.name)
        return lua.member_args(job.id, entry.score, entry.indexes, commands)

    def _on_complete(self, submission: Submission, batch_id: str, owner: str) -> Job:
        extra = {meta.COMPLETES_BATCH: batch_id}
        return self.store.build_job(**submission.job_fields(), meta=initial_meta(submission.spec.name, owner, extra))

    def _callback_job(self, batch_id: str) -> Job:
        settings = self.settings
        intervals = callbacks.retry_intervals(settings)
        return make_queue(callbacks.QUEUE, self.store.sync).create_job(
            batch_report.DELIVER_FUNC,
            kwargs={"batch_id": batch_id},
            timeout=math.ceil(settings.callback_timeout) + 5,
            result_ttl=settings.result_ttl,
            failure_ttl=settings.failure_ttl,
            description=f"callback for batch {batch_id}",
            retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
            meta={meta.TYPE: batch_report.DELIVER, meta.COMPLETES_BATCH: batch_id},
        )

    def _template(self, submission: Submission, batch_id: str, owner: str, callback: dict[str, Any]) -> lua.Template:
        job = self._job(submission, batch_id, owner, callback)
        entry = self.store.listing_entry(job, submission.spec.name)
        return lua.Template.of(self.store.queues[job.origin], job, batch_id, entry.indexes)

    def _chunk(self, plan: Plan, start: int, batch: Building) -> Chunk:
        """The script arguments of members `start`.. `start + CHUNK`: queued members by their template,
        scheduled ones by their own writes. Member i is created at the batch's time + i microseconds."""
        chunk = Chunk()
        used: dict[str, int] = {}
        for position, submission in enumerate(plan.members[start : start + CHUNK], start=start):
            callback = batch.callbacks[submission.callback_url]
            if submission.run_at is not None:
                chunk.members += self._member(submission, batch.id, batch.owner, callback)
                continue
            key = _template_key(submission)
            if key not in used:
                template = batch.templates.get(key) or self._template(submission, batch.id, batch.owner, callback)
                batch.templates[key] = template
                chunk.templates.append(template)
                used[key] = len(chunk.templates)
            created = batch.created_us + position
            chunk.members += lua.templated_member_args(str(uuid.uuid4()), created, _rq_time(created), used[key])
        return chunk

    def build(
        self, plan: Plan, owner: str, callbacks_meta: dict[str | None, dict[str, Any]]
    ) -> tuple[str, list[tuple[Any, ...]], list[Chunk]]:
        """(batch id, the record's commands, the members' script arguments in chunks): CPU only."""
        batch_id = uuid.uuid4().hex
        now = utc_now()
        building = Building(batch_id, owner, int(now.timestamp() * 1_000_000), callbacks_meta)
        staged: list[tuple[Any, ...]] = []
        indexes: dict[str, tuple[float, Sequence[str]]] = {}
        on_complete = callback_job = None
        if plan.on_complete is not None:
            job = self._on_complete(plan.on_complete, batch_id, owner)
            staged += lua.staged_commands(job)
            entry = self.store.listing_entry(job, plan.on_complete.spec.name)
            indexes[job.id] = (entry.score, entry.indexes)
            on_complete = (job.id, job.origin)
        if plan.callback_url is not None:
            job = self._callback_job(batch_id)
            staged += lua.staged_commands(job)
            callback_job = (job.id, job.origin)
        record = batches.NewBatch(
            id=batch_id,
            owner=owner,
            description=plan.description,
            total=len(plan.members),
            created_at=iso_z(now) or "",
            score=float(building.created_us),
            ttl=max(self.settings.result_ttl, self.settings.failure_ttl),
            callback_url=plan.callback_url,
            on_complete=on_complete,
            callback_job=callback_job,
            end_indexes=indexes,
        )
        head = [*batches.record_commands(record), *staged]
        chunks = [self._chunk(plan, start, building) for start in range(0, len(plan.members), CHUNK)]
        return batch_id, head, chunks

    async def write(
        self, plan: Plan, owner: str, quota: Quota | None, callbacks_meta: dict[str | None, dict[str, Any]]
    ) -> Written:
        """Write the batch: its record and first chunk (quota checked for every member), then the rest."""
        if not self.store._warm:
            await self.store.warm_up()
        batch_id, head, chunks = await run_in_threadpool(self.build, plan, owner, callbacks_meta)
        counted = (quota.key, quota.limit, len(plan.members)) if quota is not None else None
        first = lua.submit_many_args(batch_id, head, chunks[0].members, counted, chunks[0].templates)
        code, detail = lua.parse_submitted(await self._script(keys=[], args=first))
        if code != 0:
            assert quota is not None
            raise over_quota(detail["active"], quota.limit)
        if len(chunks) > 1:
            rest = (quota.key, quota.limit, 0) if quota is not None else None
            async with self.store.aio.pipeline(transaction=False) as pipe:
                for chunk in chunks[1:]:
                    args = lua.submit_many_args(batch_id, [], chunk.members, rest, chunk.templates)
                    await self._script(keys=[], args=args, client=pipe)
                await pipe.execute()
        raw = dict(await self.store.aio.hgetall(keys.batch(batch_id)))
        return Written(batch_id, raw)
