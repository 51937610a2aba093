"""Result reuse in the client: `submit(cache_ttl=, refresh=)`, `Job.reused`, and `jobsvc submit --cache-ttl`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from jobs_client import JobsClient, cli
from jobs_client._core import reused, submit_request
from starlette.testclient import TestClient

from tests.unit.test_schedules_client import forwarding

QUICK = {"steps": 1, "delay": 0}


def in_process(client: TestClient) -> JobsClient:
    """A `JobsClient` whose requests the app of `client` answers in this process."""
    return JobsClient("http://app", transport=forwarding(client))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("jobsvc; hit", True),
        ("jobsvc; hit; ttl=540", True),
        ("jobsvc;hit=?1", True),
        ("CDN; fwd=uri-miss, jobsvc; hit", True),
        ("jobsvc; hit, CDN; fwd=miss", True),
        ("jobsvc; fwd=miss", False),
        ("jobsvc; fwd=request", False),
        ("jobsvc; hit=?0", False),
        ("other; hit", False),
        ("jobsvcx; hit", False),
        (None, False),
        ("", False),
    ],
)
def test_reused_reads_the_services_member_of_cache_status(header: str | None, expected: bool) -> None:
    assert reused(header) is expected


def test_submit_request_sends_cache_ttl_in_whole_seconds_and_refresh_as_no_cache() -> None:
    body, headers = submit_request("demo.noop", None, {"cache_ttl": timedelta(minutes=10), "refresh": True})
    assert body == {"type": "demo.noop", "args": {}, "cache_ttl": 600}
    assert headers == {"Cache-Control": "no-cache"}
    body, headers = submit_request("demo.noop", None, {"cache_ttl": 5, "refresh": False})
    assert body["cache_ttl"] == 5 and headers == {}


def test_submit_says_whether_the_job_was_reused(client: TestClient) -> None:
    with in_process(client) as jobs:
        first = jobs.submit("demo.steps", QUICK, cache_ttl=60)
        again = jobs.submit("demo.steps", QUICK, cache_ttl=timedelta(seconds=60))
        forced = jobs.submit("demo.steps", QUICK, cache_ttl=60, refresh=True)
        plain = jobs.submit("demo.steps", QUICK)
        types = {t.type: t for t in jobs.types()}
    assert (first.reused, again.reused, forced.reused, plain.reused) == (False, True, False, False)
    assert again.id == first.id and forced.id != first.id and plain.id not in (first.id, forced.id)
    assert types["demo.steps"].cache_ttl is None


@pytest.fixture
def app_logs_off() -> Iterator[None]:
    """The in-process app logs to stdout, which is the command's: keep it for the command alone."""
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.usefixtures("app_logs_off")
def test_jobsvc_submit_with_cache_ttl_says_reused_job(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "JobsClient", lambda *_args, **_kwargs: in_process(client))

    def submit(*extra: str) -> tuple[int, str, str]:
        code = cli.main(["submit", "demo.steps", "--arg", "steps=1", "--arg", "delay=0", *extra])
        captured = capsys.readouterr()
        return code, captured.out.strip(), captured.err

    code, first, err = submit("--cache-ttl", "60")
    assert code == 0 and "reused" not in err
    code, second, err = submit("--cache-ttl", "60")
    assert code == 0 and second == first and f"reused job {first}" in err
    code, third, err = submit("--cache-ttl", "60", "--refresh")
    assert code == 0 and third != first and "reused" not in err
    code, _, err = submit("--cache-ttl", "0")
    assert code == 1 and "cache_ttl" in err
    code, out, _ = submit("--cache-ttl", "60", "--json")
    payload: dict[str, Any] = httpx.Response(200, content=out).json()
    assert code == 0 and payload["id"] == third
