"""The status script's queue position on a real server: searched from both ends of the queue."""

from __future__ import annotations

import asyncio

import redis
from rq import Queue
from rq.job import Job
from rq.results import Result

from app.scripts import Scripts
from jobs.connection import async_redis
from jobs.settings import Settings


def test_every_queued_job_gets_its_own_position(redis_url: str, rclient: redis.Redis) -> None:
    queue_key = f"{Queue.redis_queue_namespace_prefix}default"
    ids = [f"job-{n}" for n in range(9)]
    for job_id in ids:
        rclient.hset(Job.key_for(job_id), mapping={"status": "queued", "origin": "default", "data": "{}"})
        rclient.rpush(queue_key, job_id)

    async def positions(count: int) -> list[object]:
        client = async_redis(Settings(redis_url=redis_url))
        scripts = Scripts(client)
        try:
            found = [
                await scripts.fetch(Job.key_for(i), Result.get_key(i), Queue.redis_queue_namespace_prefix, i)
                for i in ids[:count]
            ]
            return [position for _raw, _results, position in found]
        finally:
            await scripts.pipeline.aclose()
            await client.aclose()

    for count in (9, 8):  # odd and even queue lengths
        assert asyncio.run(positions(count)) == list(range(count))
        rclient.rpop(queue_key)
