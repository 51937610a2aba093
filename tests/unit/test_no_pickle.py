"""No pickle anywhere: a pickle planted in a job's data, meta or result runs nothing and fails cleanly."""

from __future__ import annotations

import base64
import os
import pickle
import re
import zlib
from pathlib import Path
from typing import Any

import fakeredis
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.results import Result
from starlette.testclient import TestClient

from app.views import UNREADABLE
from core.queues import SERIALIZER
from tests.factories import noop_job
from workers.job import RegisteredJob


class Canary:
    """Unpickling this creates `path`: proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def plant_data(redis: fakeredis.FakeRedis, job_id: str, canary: Path) -> None:
    payload = ("jobs.builtin.demo.noop", None, (), {"x": Canary(canary)})
    redis.hset(Job.key_for(job_id), "data", zlib.compress(pickle.dumps(payload)))


def plant_meta(redis: fakeredis.FakeRedis, job_id: str, canary: Path) -> None:
    redis.hset(Job.key_for(job_id), "meta", pickle.dumps({"type": "demo.noop", "x": Canary(canary)}))


def submit(client: TestClient) -> str:
    response = client.post("/jobs", json=noop_job())
    assert response.status_code == 202
    job_id: str = response.json()["id"]
    return job_id


def run_worker(redis: fakeredis.FakeRedis) -> None:
    queue = Queue("default", connection=redis, serializer=SERIALIZER, job_class=RegisteredJob)
    SimpleWorker([queue], connection=redis, serializer=SERIALIZER, job_class=RegisteredJob).work(burst=True)


def test_planted_pickles_run_nothing_and_fail_cleanly(
    client: TestClient, fake_redis: fakeredis.FakeRedis, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    in_data, in_meta = submit(client), submit(client)
    plant_data(fake_redis, in_data, canary)
    plant_meta(fake_redis, in_meta, canary)
    assert pickle.loads(pickle.dumps(Canary(tmp_path / "proof"))) == 0 and (tmp_path / "proof").exists()  # it works

    queued = client.get(f"/jobs/{in_meta}")
    assert queued.status_code == 200 and queued.json()["error"] == UNREADABLE and queued.json()["type"] is None
    assert client.get("/jobs").status_code == 200

    run_worker(fake_redis)
    assert not canary.exists()
    data_view = client.get(f"/jobs/{in_data}").json()
    assert data_view["status"] == "failed"
    assert data_view["error"] == f"UnreadableJobError: job {in_data}: data in Redis is not JSON; refusing to run it"
    meta_view = client.get(f"/jobs/{in_meta}").json()
    assert meta_view["status"] == "failed" and meta_view["error"] == UNREADABLE
    assert not canary.exists()


def test_a_planted_pickle_result_is_not_unpickled(
    client: TestClient, fake_redis: fakeredis.FakeRedis, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    job_id = submit(client)
    run_worker(fake_redis)
    assert client.get(f"/jobs/{job_id}").json()["status"] == "finished"
    fake_redis.xadd(
        Result.get_key(job_id),
        {"type": 1, "return_value": base64.b64encode(pickle.dumps(Canary(canary))), "created_at": "0"},
    )
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200 and response.json()["result"] is None
    assert not canary.exists()


def test_no_service_module_uses_pickle() -> None:
    root = Path(__file__).resolve().parents[2]
    for package in ("app", "jobs", "workers", "stack"):
        for source in (root / package).rglob("*.py"):
            text = source.read_text()
            assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|cloudpickle)\b", text, re.M), source
            assert "PickleSerializer" not in text and "DefaultSerializer" not in text, source
