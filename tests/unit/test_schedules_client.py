"""The Python clients (blocking and asyncio) and the `jobs schedule` command against the real app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from jobs_client import AsyncJobsClient, JobsClient, NotFound, ValidationError
from jobs_client import cli as jobs_cli
from starlette.testclient import TestClient


def forwarding(app_client: TestClient) -> httpx.MockTransport:
    """A transport that hands each request to the app (through Starlette's test client)."""

    def handle(request: httpx.Request) -> httpx.Response:
        answer = app_client.request(
            request.method, request.url.raw_path.decode(), content=request.content, headers=dict(request.headers)
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return httpx.MockTransport(handle)


def test_blocking_client_manages_schedules(client: TestClient) -> None:
    with JobsClient("http://app", transport=forwarding(client)) as jobs:
        made = jobs.create_schedule("demo.steps", {"steps": 3}, cron="0 3 * * *", timezone="Europe/Paris")
        assert made.cron == "0 3 * * *" and made.args["steps"] == 3 and made.enabled and made.next_run_at
        assert [s.id for s in jobs.schedules(limit=1)] == [made.id]
        assert jobs.pause_schedule(made.id).enabled is False
        assert jobs.resume_schedule(made.id).next_run_at is not None
        switched = jobs.update_schedule(made.id, every=30, cron=None)
        assert switched.every == 30 and switched.cron is None
        assert jobs.get_schedule(made.id).every == 30
        assert jobs.schedule_runs(made.id) == []
        with pytest.raises(ValidationError):
            jobs.create_schedule("demo.noop", cron="* * * * * *")
        jobs.delete_schedule(made.id)
        with pytest.raises(NotFound):
            jobs.get_schedule(made.id)


def test_async_client_manages_schedules(client: TestClient) -> None:
    async def scenario() -> None:
        async with AsyncJobsClient("http://app", transport=forwarding(client)) as jobs:
            made = await jobs.create_schedule("demo.noop", every=5, overlap=True)
            assert made.every == 5 and made.overlap
            assert [s.id async for s in jobs.schedules()] == [made.id]
            assert (await jobs.pause_schedule(made.id)).enabled is False
            assert (await jobs.update_schedule(made.id, description="hourly")).raw["description"] == "hourly"
            assert (await jobs.get_schedule(made.id)).id == made.id
            assert await jobs.schedule_runs(made.id) == []
            await jobs.delete_schedule(made.id)

    asyncio.run(scenario())


def run_cli(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str]:
    transport = forwarding(client)
    real: Callable[..., JobsClient] = JobsClient
    monkeypatch.setattr(jobs_cli, "JobsClient", lambda *a, **k: real(*a, **{**k, "transport": transport}))
    code = jobs_cli.main(list(argv))
    lines = capsys.readouterr().out.splitlines(keepends=True)
    return code, "".join(line for line in lines if " INFO " not in line)  # the tests' log lines share stdout


def test_the_schedule_command(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(client, monkeypatch, capsys, "schedule", "create", "demo.steps", "--every", "60",
                        "--arg", "steps=2", "--json")  # fmt: skip
    assert code == 0
    made: dict[str, Any] = json.loads(out)
    assert made["every"] == 60 and made["args"]["steps"] == 2
    code, out = run_cli(client, monkeypatch, capsys, "schedule", "update", made["id"], "--cron", "*/5 * * * *")
    assert code == 0 and "*/5 * * * *" in out
    code, out = run_cli(client, monkeypatch, capsys, "schedule", "pause", made["id"])
    assert code == 0 and "paused" in out
    code, out = run_cli(client, monkeypatch, capsys, "schedule", "list", "--json")
    assert [s["id"] for s in json.loads(out)] == [made["id"]]
    code, _ = run_cli(client, monkeypatch, capsys, "schedule", "create", "demo.noop", "--cron", "0 99 * * *")
    assert code == 1
    code, _ = run_cli(client, monkeypatch, capsys, "schedule", "delete", made["id"])
    assert code == 0
    code, _ = run_cli(client, monkeypatch, capsys, "schedule", "get", made["id"])
    assert code == 1
