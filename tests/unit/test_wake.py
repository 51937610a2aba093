"""Idle workers woken by pushes: what publishes on the wake-up channel, and how a listener waits on it."""

from __future__ import annotations

import threading
import time
from typing import Any

import fakeredis
import redis
from starlette.testclient import TestClient

from core import keys
from workers.wake import WakeListener, WakeThread


def subscribed(connection: fakeredis.FakeRedis) -> Any:
    """A listener of our own on the wake-up channel, with its confirmation read."""
    pubsub = connection.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]  # unannotated in redis-py
    pubsub.subscribe(keys.WAKE_CHANNEL)
    pubsub.get_message(timeout=1)
    return pubsub


def wake_messages(pubsub: Any) -> list[bytes]:
    messages = []
    while (message := pubsub.get_message(timeout=0.2)) is not None:
        messages.append(message["data"])
    return messages


def test_a_submission_wakes_workers_with_its_queue(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    pubsub = subscribed(fake_redis)

    assert client.post("/jobs", json={"type": "demo.noop", "queue": "high"}).status_code == 202
    assert client.post("/jobs", json={"type": "demo.noop"}).status_code == 202

    assert wake_messages(pubsub) == [b"rq:queue:high", b"rq:queue:default"]


def test_a_batch_wakes_workers_once_per_queue_and_write(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    pubsub = subscribed(fake_redis)

    body = {"jobs": [{"type": "demo.noop"} for _ in range(30)]}
    assert client.post("/batches", json=body).status_code == 202

    woken = wake_messages(pubsub)
    assert woken and set(woken) == {b"rq:queue:default"}
    assert len(woken) < 30  # members sharing a template: one message for all of them


def test_a_scheduled_job_wakes_nobody_until_it_is_due(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    pubsub = subscribed(fake_redis)

    assert client.post("/jobs", json={"type": "demo.noop", "delay": 3600}).status_code == 202

    assert wake_messages(pubsub) == []


def test_the_listener_wakes_on_a_message_takes_a_burst_as_one_and_else_waits_out_its_timeout(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    listener = WakeListener(fake_redis)
    assert listener.wait(0.05) is False  # subscribes; nothing pushed

    for _ in range(5):
        fake_redis.publish(keys.WAKE_CHANNEL, "rq:queue:default")
    assert listener.wait(5) is True
    started = time.monotonic()
    assert listener.wait(0.1) is False  # the burst was taken whole
    assert time.monotonic() - started >= 0.09
    listener.close()


def test_the_listener_outlives_a_redis_error_and_subscribes_again(fake_server: fakeredis.FakeServer) -> None:
    connection = fakeredis.FakeRedis(server=fake_server)
    listener = WakeListener(connection)
    assert listener.wait(0.01) is False
    fake_server.connected = False
    assert listener.wait(0.05) is False  # the error is a plain wait, never raised
    fake_server.connected = True

    publisher = fakeredis.FakeRedis(server=fake_server)
    woken = threading.Event()
    waiter = threading.Thread(target=lambda: woken.set() if listener.wait(5) else None)
    waiter.start()
    wait_until_subscribed(publisher)
    publisher.publish(keys.WAKE_CHANNEL, "rq:queue:default")
    waiter.join(5)
    assert woken.is_set()
    listener.close()


def test_the_thread_calls_back_for_each_wake_up_and_stops(fake_redis: fakeredis.FakeRedis) -> None:
    calls = threading.Semaphore(0)
    thread = WakeThread(fake_redis, calls.release).start()
    wait_until_subscribed(fake_redis)

    fake_redis.publish(keys.WAKE_CHANNEL, "rq:queue:low")
    assert calls.acquire(timeout=5)
    thread.stop()
    thread._thread.join(5)
    assert not thread._thread.is_alive()


def wait_until_subscribed(connection: redis.Redis) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if dict(connection.pubsub_numsub(keys.WAKE_CHANNEL)).get(keys.WAKE_CHANNEL.encode()):
            return
        time.sleep(0.01)  # polling a condition, bounded above
    raise AssertionError("nobody subscribed to the wake-up channel")
