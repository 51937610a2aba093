"""Firing schedules (`workers.periodic` + the firing script) on a FakeRedis with a frozen clock: one job
per due time however many schedulers race, misfires, overlap, quota, the runs index and declarations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis
from rq.job import Job
from starlette.testclient import TestClient

from core import keys
from core.queues import SERIALIZER
from core.rqadapter import schedule_fire
from core.schedules.model import Definition
from core.schedules.store import ScheduleStore
from core.settings import Settings
from jobs import schedules as declared
from workers.periodic import PeriodicScheduler, TickCounts

T0 = 1_800_000_000.0


def settings(**overrides: Any) -> Settings:
    return Settings(redis_url="redis://unused:6379/0", **overrides)


def definition(**fields: Any) -> Definition:
    base: dict[str, Any] = dict(type="demo.noop", args={}, queue="default", timeout=60, retries=0, description="d")
    return Definition(**{**base, "every": 1, "created_at": T0, "owner": "alice", **fields})


def scheduler(redis: fakeredis.FakeRedis, **overrides: Any) -> PeriodicScheduler:
    made = PeriodicScheduler(redis, settings(**overrides))
    made._declared = True  # the declarations are tested on their own below
    return made


def jobs_of(redis: fakeredis.FakeRedis, schedule_id: str) -> list[Job]:
    members: list[bytes] = redis.zrange(keys.schedule_runs(schedule_id), 0, -1)  # type: ignore[assignment]
    ids = [member.decode() for member in members]
    return [Job.fetch(job_id, connection=redis, serializer=SERIALIZER) for job_id in ids]


def test_racing_schedulers_fire_each_due_time_once(fake_redis: fakeredis.FakeRedis) -> None:
    store = ScheduleStore(fake_redis)
    made = store.create(definition(overlap=True), now=T0)
    racers = [scheduler(fake_redis) for _ in range(4)]
    for second in range(1, 11):
        for racer in racers:  # every process looks at the same instant
            racer.tick(T0 + second + 0.2)
    runs = jobs_of(fake_redis, made.id)
    due = [job.meta["scheduled_for"] for job in runs]
    assert len(runs) == 10 and len(set(due)) == 10
    assert all(job.meta["schedule_id"] == made.id and job.meta["owner"] == "alice" for job in runs)
    assert fake_redis.llen("rq:queue:default") == 10
    state = store.get(made.id)
    assert state is not None and state.state.runs == 10 and state.state.skipped == 0


def test_a_pass_planned_on_a_stale_read_writes_nothing(fake_redis: fakeredis.FakeRedis) -> None:
    store = ScheduleStore(fake_redis)
    made = store.create(definition(overlap=True), now=T0)
    first, second = scheduler(fake_redis), scheduler(fake_redis)
    read = store.get(made.id)
    assert read is not None and read.state.next_run_ms == int((T0 + 1) * 1000)
    assert first.fire(read, read.state.next_run_ms, T0 + 1.1) == schedule_fire.FIRED
    assert second.fire(read, read.state.next_run_ms, T0 + 1.1) == schedule_fire.STALE  # read before the first fired
    changed = store.update(made.id, lambda d: d.changed(args={}), now=T0 + 1.2)  # a new version, same timing
    assert changed is not None
    stale_version = store.get(made.id)
    assert stale_version is not None
    store.update(made.id, lambda d: d.changed(description="new"), now=T0 + 1.3)
    assert second.fire(stale_version, changed.state.next_run_ms or 0, T0 + 2.1) == schedule_fire.STALE
    assert len(jobs_of(fake_redis, made.id)) == 1


def test_missed_due_times_give_one_catch_up_run(fake_redis: fakeredis.FakeRedis) -> None:
    store = ScheduleStore(fake_redis)
    made = store.create(definition(every=2, overlap=True), now=T0)
    scheduler(fake_redis).tick(T0 + 2.1)  # on time
    scheduler(fake_redis).tick(T0 + 31)  # 4, 6 .. 30 missed: 14 due times, the newest 1 s old
    after = store.get(made.id)
    assert after is not None and (after.state.runs, after.state.skipped) == (2, 13)
    assert [job.meta["scheduled_for"][11:19] for job in jobs_of(fake_redis, made.id)] == ["08:00:02", "08:00:30"]
    assert after.state.next_run_ms == int((T0 + 32) * 1000)
    scheduler(fake_redis).tick(T0 + 31.5)
    assert len(jobs_of(fake_redis, made.id)) == 2  # no burst


def test_misses_past_the_grace_fire_nothing(fake_redis: fakeredis.FakeRedis) -> None:
    store = ScheduleStore(fake_redis)
    made = store.create(definition(every=60, overlap=True), now=T0)
    scheduler(fake_redis, schedule_misfire_grace=10).tick(T0 + 60 * 5 + 30)
    after = store.get(made.id)
    assert after is not None and (after.state.runs, after.state.skipped) == (0, 5)
    assert jobs_of(fake_redis, made.id) == []


def test_without_overlap_a_run_waits_for_the_previous_one(fake_redis: fakeredis.FakeRedis) -> None:
    store = ScheduleStore(fake_redis)
    made = store.create(definition(), now=T0)
    ticker = scheduler(fake_redis)
    ticker.tick(T0 + 1.1)
    ticker.tick(T0 + 2.1)  # the first run is still queued: skipped
    after = store.get(made.id)
    assert after is not None and (after.state.runs, after.state.skipped) == (1, 1)
    first = jobs_of(fake_redis, made.id)[0]
    fake_redis.hset(first.key, "status", "finished")
    ticker.tick(T0 + 3.1)
    after = store.get(made.id)
    assert after is not None and (after.state.runs, after.state.skipped) == (2, 1)


def test_the_owners_quota_skips_a_run(fake_redis: fakeredis.FakeRedis) -> None:
    store = ScheduleStore(fake_redis)
    made = store.create(definition(overlap=True), now=T0)
    ticker = scheduler(fake_redis, max_active_jobs=1)
    ticker.tick(T0 + 1.1)
    ticker.tick(T0 + 2.1)
    after = store.get(made.id)
    assert after is not None and (after.state.runs, after.state.skipped) == (1, 1)
    assert fake_redis.hmget(keys.SCHEDULE_METRICS, "runs", "skipped") == [b"1", b"1"]


def test_a_paused_schedule_fires_nothing(fake_redis: fakeredis.FakeRedis) -> None:
    store = ScheduleStore(fake_redis)
    made = store.create(definition(enabled=False), now=T0)
    scheduler(fake_redis).tick(T0 + 100)
    assert jobs_of(fake_redis, made.id) == []
    resumed = store.update(made.id, lambda d: d.changed(enabled=True), now=T0 + 100)
    assert resumed is not None and resumed.state.next_run_ms == int((T0 + 101) * 1000)  # no catch-up for the pause


def test_runs_are_listed_newest_first_with_their_schedule(
    client: TestClient, fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = client.post("/schedules", json={"type": "demo.noop", "every": 1, "overlap": True}).json()
    other = client.post("/jobs", json={"type": "demo.noop"}).json()
    stored = ScheduleStore(fake_redis).get(made["id"])
    assert stored is not None and stored.state.next_run_ms is not None
    due = stored.state.next_run_ms / 1000
    ticker = scheduler(fake_redis)
    for step in range(3):
        ticker.tick(due + step + 0.1)
    page = client.get("/jobs", params={"schedule": made["id"]}).json()
    listed = [job["id"] for job in page["jobs"]]
    assert len(listed) == 3 and other["id"] not in listed
    assert [job["scheduled_for"] for job in page["jobs"]] == sorted(
        (job["scheduled_for"] for job in page["jobs"]), reverse=True
    )
    view = client.get(f"/jobs/{listed[0]}").json()
    assert view["schedule_id"] == made["id"] and view["status"] == "queued"
    assert client.get(f"/schedules/{made['id']}").json()["last_job_id"] == listed[0]
    assert client.get("/jobs", params={"schedule": made["id"], "status": "queued"}).json()["jobs"][0]["id"] in listed
    assert "jobsvc_schedule_runs_total 3.0" in client.get("/metrics").text


@pytest.fixture
def declarations() -> Iterator[None]:
    saved = dict(declared._declared)
    declared._declared.clear()
    yield
    declared._declared.clear()
    declared._declared.update(saved)


def test_declared_schedules_are_registered_once(fake_redis: fakeredis.FakeRedis, declarations: None) -> None:
    declared.periodic("nightly", "demo.noop", cron="0 3 * * *", timezone="Europe/Paris")
    store = ScheduleStore(fake_redis)
    assert declared.register_all(store) == 1
    first = store.get("svc-nightly")
    assert first is not None and first.definition.owner == "service" and first.definition.declared
    assert declared.register_all(store) == 1
    assert store.get("svc-nightly") == first  # unchanged: left alone
    store.update("svc-nightly", lambda d: d.changed(enabled=False))
    declared.register_all(store)
    again = store.get("svc-nightly")
    assert again is not None and again.definition.enabled is False  # a pause sticks across start-ups
    declared.periodic("nightly", "demo.noop", cron="0 4 * * *", timezone="Europe/Paris")
    declared.register_all(store)
    moved = store.get("svc-nightly")
    assert (
        moved is not None
        and moved.definition.cron == "0 4 * * *"
        and moved.definition.created_at == (first.definition.created_at)
    )
    with pytest.raises(ValueError, match="exactly one"):
        declared.periodic("bad", "demo.noop")


def test_service_schedules_are_seen_by_every_key_and_changed_by_admins(
    keyed: TestClient, fake_redis: fakeredis.FakeRedis, declarations: None
) -> None:
    from tests.unit.conftest import bearer

    declared.periodic("nightly", "demo.noop", every=3600)
    declared.register_all(ScheduleStore(fake_redis))
    listed = keyed.get("/schedules", headers=bearer("alice")).json()["schedules"]
    assert [s["id"] for s in listed] == ["svc-nightly"] and listed[0]["owner"] == "service"
    assert keyed.patch("/schedules/svc-nightly", json={"enabled": False}, headers=bearer("alice")).status_code == 409
    assert keyed.patch("/schedules/svc-nightly", json={"enabled": False}, headers=bearer("ops")).status_code == 200


def test_maybe_tick_is_rate_limited_and_waits_out_redis(
    fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticker = scheduler(fake_redis)
    calls: list[float] = []
    monkeypatch.setattr(ticker, "tick", lambda now=None: calls.append(1) or TickCounts())  # type: ignore[func-returns-value]
    ticker.maybe_tick()
    ticker.maybe_tick()  # within TICK_INTERVAL: nothing
    assert len(calls) == 1

    def down(now: float | None = None) -> TickCounts:
        raise redis.ConnectionError("refused")

    monkeypatch.setattr(ticker, "tick", down)
    ticker._next_tick = 0
    ticker.maybe_tick()  # logged, not raised


def test_a_run_of_an_unregistered_type_is_skipped(fake_redis: fakeredis.FakeRedis) -> None:
    store = ScheduleStore(fake_redis)
    made = store.create(definition(type="gone.away", overlap=True), now=T0)
    scheduler(fake_redis).tick(T0 + 1.1)
    after = store.get(made.id)
    assert after is not None and (after.state.runs, after.state.skipped) == (0, 1)
    assert after.state.next_run_ms == int((T0 + 2) * 1000)


def test_a_deleted_schedule_left_in_the_due_set_is_dropped(fake_redis: fakeredis.FakeRedis) -> None:
    fake_redis.zadd(keys.SCHEDULES_DUE, {"ghost": 1000})
    assert scheduler(fake_redis).tick(T0).fired == 0
    assert fake_redis.zcard(keys.SCHEDULES_DUE) == 0


def test_the_first_tick_declares_the_schedules_written_in_code(
    fake_redis: fakeredis.FakeRedis, declarations: None
) -> None:
    declared.periodic("tick-declared", "demo.noop", every=60)
    PeriodicScheduler(fake_redis, settings()).tick(T0)
    assert ScheduleStore(fake_redis).get("svc-tick-declared") is not None
