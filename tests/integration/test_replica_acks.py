"""REDIS_MIN_REPLICAS_ACK against a real primary and replica: no acknowledgement, no 2xx; the retry with the
same Idempotency-Key returns the job the first attempt wrote."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rq.job import Job

from tests.factories import noop_job
from tests.integration.conftest import TEST_ENV
from tests.support.procs import ProcessFactory, wait_for
from tests.support.sentinel import SentinelCluster

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    # A Sentinel would fail over nothing here (the primary stays up); a long down-after keeps them quiet.
    sentinels = SentinelCluster(tmp_path / "redis", replicas=1, down_after_ms=30_000).start()
    try:
        yield sentinels
    finally:
        sentinels.stop()


def test_a_write_no_replica_acknowledged_is_a_503_and_its_retry_the_same_job(
    cluster: SentinelCluster, tmp_path: Path
) -> None:
    primary = cluster.primary
    replica = next(node for node in cluster.nodes if node is not primary)
    env = {**TEST_ENV, **cluster.env(REDIS_MIN_REPLICAS_ACK="1", REDIS_REPLICAS_ACK_TIMEOUT="0.5")}
    factory = ProcessFactory(f"redis://127.0.0.1:{primary.port}/0", tmp_path, env)
    store = cluster.node_client(primary)
    try:
        _, base_url = factory.web()
        with httpx.Client(base_url=base_url, timeout=10) as api:
            acked = api.post("/jobs", json=noop_job())
            assert acked.status_code == 202, acked.text

            cluster.pause(replica)
            try:
                refused = api.post("/jobs", json=noop_job(), headers={"Idempotency-Key": "k-1"})
                assert refused.status_code == 503, refused.text
                assert refused.headers["content-type"] == "application/problem+json"
                assert int(refused.headers["retry-after"]) > 0
                assert refused.json()["type"] == "/problems/not-replicated"
                assert "Idempotency-Key" in refused.json()["detail"]
                written = [key for key in store.keys("rq:job:*") if key != Job.key_for(acked.json()["id"]).encode()]
                assert len(written) == 1, "the unacknowledged write exists on the primary"

                batch = api.post("/batches", json={"jobs": [noop_job()]})
                assert batch.status_code == 503 and batch.json()["type"] == "/problems/not-replicated", batch.text
            finally:
                cluster.resume(replica)

            retried = api.post("/jobs", json=noop_job(), headers={"Idempotency-Key": "k-1"})
            assert retried.status_code == 200, retried.text
            assert Job.key_for(retried.json()["id"]).encode() == written[0], "the retry returns the job written first"
            assert api.post("/batches", json={"jobs": [noop_job()]}).status_code == 202
    finally:
        store.close()
        factory.stop_all()


def test_reads_are_not_held_by_the_wait(cluster: SentinelCluster, tmp_path: Path) -> None:
    """A submission waiting for a silent replica does not delay other requests (the wait has a pooled
    connection of its own, not the shared pipelined one)."""
    primary = cluster.primary
    replica = next(node for node in cluster.nodes if node is not primary)
    env = {**TEST_ENV, **cluster.env(REDIS_MIN_REPLICAS_ACK="1", REDIS_REPLICAS_ACK_TIMEOUT="2")}
    factory = ProcessFactory(f"redis://127.0.0.1:{primary.port}/0", tmp_path, env)
    try:
        _, base_url = factory.web()
        with httpx.Client(base_url=base_url, timeout=10) as api, httpx.Client(base_url=base_url, timeout=10) as other:
            job_id = api.post("/jobs", json=noop_job()).json()["id"]
            cluster.pause(replica)
            try:
                answers: list[int] = []
                waiting = threading.Thread(
                    target=lambda: answers.append(api.post("/jobs", json=noop_job()).status_code)
                )
                waiting.start()
                with cluster.node_client(primary) as store:
                    wait_for(lambda: any(c["cmd"] == "wait" for c in store.client_list()), 5, what="a blocked WAIT")
                read = other.get(f"/jobs/{job_id}")
                assert read.status_code == 200
                assert read.elapsed.total_seconds() < 1.0, read.elapsed
                waiting.join(10)
                assert answers == [503]
            finally:
                cluster.resume(replica)
    finally:
        factory.stop_all()
