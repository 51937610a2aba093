"""Claimed job ids become jobs to run the same way in both workers; an unreadable job is failed once, RQ's way."""

from __future__ import annotations

import pickle

import fakeredis
import pytest
from rq import Queue
from rq.job import JobStatus
from rq.registry import FailedJobRegistry

from core.queues import SERIALIZER
from core.rqadapter.claims import Claims
from workers.base import ServiceBase
from workers.claimed import load_claimed
from workers.concurrent import ConcurrentWorker
from workers.job import RegisteredJob
from workers.worker import ServiceWorker

QUEUE_KEYS = ["rq:queue:high", "rq:queue:default", "rq:queue:low"]


def enqueue(worker: ServiceBase) -> RegisteredJob:
    queue = Queue("default", connection=worker.connection, serializer=SERIALIZER, job_class=RegisteredJob)
    job = queue.enqueue_call("jobs.builtin.demo.noop")
    assert isinstance(job, RegisteredJob)
    return job


@pytest.fixture(params=[ServiceWorker, ConcurrentWorker])
def worker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ServiceBase:
    monkeypatch.setattr("workers.base.sync_redis", lambda settings: fakeredis.FakeRedis())
    made: ServiceBase = request.param(["high", "default", "low"])
    return made


def test_a_readable_claimed_job_is_returned_with_its_queue(worker: ServiceBase) -> None:
    queued = Queue("default", connection=worker.connection, serializer=SERIALIZER).enqueue_call(
        "jobs.builtin.demo.noop"
    )
    claimed = Claims(worker.connection).claim(QUEUE_KEYS, worker.name)
    assert claimed == ("rq:queue:default", queued.id)
    [(job, queue)] = load_claimed(worker, [claimed])
    assert isinstance(job, RegisteredJob) and job.id == queued.id and queue.name == "default"
    assert Claims(worker.connection).all() == {queued.id: worker.name}  # still held: it is about to run


def test_an_unreadable_claimed_job_is_failed_through_rqs_failure_path_and_loses_its_claim(worker: ServiceBase) -> None:
    queue = Queue("default", connection=worker.connection, serializer=SERIALIZER)
    planted = queue.enqueue_call("jobs.builtin.demo.noop", failure_ttl=600)
    worker.connection.hset(planted.key, "meta", pickle.dumps({"owner": "x"}))
    claimed = Claims(worker.connection).claim(QUEUE_KEYS, worker.name)
    assert claimed is not None
    assert load_claimed(worker, [claimed]) == []
    job = RegisteredJob.fetch(planted.id, connection=worker.connection, serializer=SERIALIZER)
    assert job.get_status() == JobStatus.FAILED
    result = job.latest_result()
    assert result is not None and (result.exc_string or "").startswith("UnreadableJobError: ")
    registry = FailedJobRegistry(queue=queue)
    assert planted.id in registry.get_job_ids()
    expires_in = float(worker.connection.zscore(registry.key, planted.id) or 0) - worker.connection.time()[0]
    assert 590 <= expires_in <= 610  # the job's own failure_ttl, not a fixed week
    assert Claims(worker.connection).all() == {}


def test_a_claimed_job_deleted_meanwhile_loses_its_claim(worker: ServiceBase) -> None:
    queued = Queue("default", connection=worker.connection, serializer=SERIALIZER).enqueue_call(
        "jobs.builtin.demo.noop"
    )
    claimed = Claims(worker.connection).claim(QUEUE_KEYS, worker.name)
    assert claimed is not None
    worker.connection.delete(queued.key)
    assert load_claimed(worker, [claimed]) == []
    assert Claims(worker.connection).all() == {}
