"""Flow-control settings: parsing, the errors that stop a process, and what the web shows of the limits."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest

from core.flow.limits import Declared, FlowSettingError, Limits, Rate, parse_limits
from core.flow.state import read_state, waiting_reason
from core.rqadapter.claims import Claims
from tests.unit.conftest import app_client
from tests.unit.test_flow_claims import queue_keys, submit

KNOWN = ["demo.sleep", "demo.noop", "text.summarize"]


def test_settings_parse() -> None:
    limits = parse_limits(
        type_concurrency="demo.sleep=2, text.summarize=4",
        type_rate_limit="demo.sleep=10/second,text.summarize=60/minute,demo.noop=3/hours",
        key_concurrency="5",
        known_types=KNOWN,
    )
    assert limits.concurrency == {"demo.sleep": 2, "text.summarize": 4}
    assert limits.rates == {
        "demo.sleep": Rate(10, "second"),
        "text.summarize": Rate(60, "minute"),
        "demo.noop": Rate(3, "hour"),
    }
    assert limits.key_concurrency == 5 and limits.fair


def test_the_setting_overrides_what_a_type_declares() -> None:
    declared = {"demo.sleep": Declared(concurrency=3, rate_limit="1/minute"), "demo.noop": Declared(concurrency=7)}
    limits = parse_limits(type_concurrency="demo.sleep=2", known_types=KNOWN, declared=declared)
    assert limits.concurrency == {"demo.sleep": 2, "demo.noop": 7}
    assert limits.rates == {"demo.sleep": Rate(1, "minute")}


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("type_concurrency", "demo.nope=2", "TYPE_CONCURRENCY: 'demo.nope=2': unknown job type 'demo.nope'"),
        ("type_concurrency", "demo.sleep=0", "TYPE_CONCURRENCY: 'demo.sleep=0': the limit must be at least 1"),
        ("type_concurrency", "demo.sleep=-1", "TYPE_CONCURRENCY: 'demo.sleep=-1': the limit must be at least 1"),
        ("type_concurrency", "demo.sleep", "TYPE_CONCURRENCY: 'demo.sleep' is not type=value"),
        ("type_concurrency", "demo.sleep=two", "TYPE_CONCURRENCY: 'demo.sleep=two': 'two' is not a whole number"),
        ("type_rate_limit", "demo.sleep=10/day", "TYPE_RATE_LIMIT: 'demo.sleep=10/day': unknown unit 'day'"),
        ("type_rate_limit", "demo.sleep=0/second", "TYPE_RATE_LIMIT: 'demo.sleep=0/second': the limit must be at"),
        ("type_rate_limit", "demo.sleep=10", "TYPE_RATE_LIMIT: 'demo.sleep=10' is not N/second, N/minute or N/hour"),
        ("type_rate_limit", "x=1/second", "TYPE_RATE_LIMIT: 'x=1/second': unknown job type 'x'"),
        ("key_concurrency", "0", "KEY_CONCURRENCY: '0': the limit must be at least 1"),
        ("key_concurrency", "-3", "KEY_CONCURRENCY: '-3': the limit must be at least 1"),
        ("key_concurrency", "many", "KEY_CONCURRENCY: 'many': 'many' is not a whole number"),
    ],
)
def test_malformed_settings_name_the_setting_and_the_entry(setting: str, value: str, message: str) -> None:
    with pytest.raises(FlowSettingError) as caught:
        settings: dict[str, Any] = {setting: value}
        parse_limits(known_types=KNOWN, **settings)
    assert str(caught.value).startswith(message)


def test_the_web_app_refuses_to_start_with_a_malformed_setting(fake_server: fakeredis.FakeServer) -> None:
    with pytest.raises(FlowSettingError, match="TYPE_CONCURRENCY: 'demo.sleep=0'"):
        app_client(fake_server, type_concurrency="demo.sleep=0")


def test_state_read_and_waiting_reasons(fake_redis: fakeredis.FakeRedis) -> None:
    limits = Limits(concurrency={"demo.sleep": 1}, rates={"demo.noop": Rate(1, "hour")}, key_concurrency=5)
    for job_type in ("demo.sleep", "demo.sleep", "demo.noop", "demo.noop"):
        submit(fake_redis, job_type)
    Claims(fake_redis, limits).claim_many(queue_keys(), "w1", 10)
    state = read_state(fake_redis, limits)
    assert {name: limit.as_json() for name, limit in state.limits.items()} == {
        "demo.sleep": {"running": 1, "limit": 1, "waiting": 1},
        "demo.noop/hour": {"running": 1, "limit": 1, "waiting": 1},
        "key alice": {"running": 2, "limit": 5, "waiting": 2},
    }
    assert state.held_back == {"type:demo.sleep": 1, "type:demo.noop": 1}
    assert waiting_reason(limits, "demo.sleep", "alice", [1, 0, 2]) == "demo.sleep: 1 of 1 running"
    assert (
        waiting_reason(limits, "demo.noop", "alice", [0, 1, 2]) == "demo.noop: 1 starts in the last hour (limit 1/hour)"
    )
    assert waiting_reason(limits, "demo.noop", "bob", [0, 0, 5]) == "key bob: 5 of 5 running"
    assert waiting_reason(limits, "demo.noop", "bob", [0, 0, 4]) is None


def test_stats_metrics_and_the_job_view_show_the_limits(fake_server: fakeredis.FakeServer) -> None:
    with app_client(fake_server, type_concurrency="demo.sleep=1") as client:
        first = client.post("/jobs", json={"type": "demo.sleep", "args": {"seconds": 1}}).json()["id"]
        second = client.post("/jobs", json={"type": "demo.sleep", "args": {"seconds": 1}}).json()["id"]
        assert client.get(f"/jobs/{second}").json()["waiting"] is None
        redis = fakeredis.FakeRedis(server=fake_server)
        Claims(redis, Limits(concurrency={"demo.sleep": 1})).claim_many(queue_keys(), "w1", 10)
        assert client.get(f"/jobs/{first}").json()["waiting"] is None  # claimed: no longer queued in RQ's list
        assert client.get(f"/jobs/{second}").json()["waiting"] == "demo.sleep: 1 of 1 running"
        assert client.get("/stats").json()["limits"] == {"demo.sleep": {"running": 1, "limit": 1, "waiting": 1}}
        metrics = client.get("/metrics").text
        assert 'jobsvc_flow_running{limit="demo.sleep"} 1.0' in metrics
        assert 'jobsvc_flow_waiting{limit="demo.sleep"} 1.0' in metrics
        assert 'jobsvc_flow_held_back_total{limit="type:demo.sleep"} 1.0' in metrics
