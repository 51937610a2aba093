"""The Python client's `client.batches` and the `jobs batch` commands, against the app on FakeRedis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
from jobs_client import JobsClient, ValidationError
from jobs_client import cli as jobs_cli
from starlette.testclient import TestClient

from tests.factories import noop_job, steps_job
from tests.unit.test_batches import run_all


class Buffered(httpx.BaseTransport):
    """The TestClient's app as a plain sync transport (each response read whole)."""

    def __init__(self, client: TestClient) -> None:
        self.inner: Any = client._transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        return httpx.Response(response.status_code, headers=response.headers, content=response.read())


@pytest.fixture
def api(client: TestClient) -> JobsClient:
    return JobsClient("http://testserver", transport=Buffered(client))


def test_create_get_members_list_and_wait(api: JobsClient, fake_redis: fakeredis.FakeRedis) -> None:
    batch = api.batches.create([noop_job(), steps_job(1)], description="two", on_complete={"type": "demo.batch_report"})
    assert (batch.status, batch.total, batch.counts["queued"], batch.ended) == ("running", 2, 2, False)
    assert api.batches.get(batch.id).description == "two"
    [members] = list(api.batches.members(batch.id))
    assert len(members) == 2
    assert [found.id for page in api.batches.list() for found in page] == [batch.id]
    run_all(fake_redis)
    ended = api.batches.wait(batch.id, timeout=10)
    assert ended.status == "finished" and ended.counts["finished"] == 2 and ended.on_complete_job_id


def test_an_invalid_member_raises_naming_it(api: JobsClient) -> None:
    with pytest.raises(ValidationError) as caught:
        api.batches.create([noop_job(), {"type": "demo.steps", "args": {"steps": 0}}])
    assert "jobs.1.args.steps" in caught.value.fields


def json_out(stdout: str) -> Any:
    """The JSON document the command printed (the in-process app logs to stdout too)."""
    lines = stdout.splitlines()
    return json.loads("\n".join(lines[lines.index("{") :]))


def test_cli_creates_from_a_file_and_cancels(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def connected(url: str, api_key: str | None = None, **options: Any) -> JobsClient:
        return JobsClient(url, api_key, transport=Buffered(client), **options)

    monkeypatch.setattr(jobs_cli, "JobsClient", connected)
    body = tmp_path / "batch.json"
    body.write_text(json.dumps({"jobs": [noop_job(delay=60), noop_job(delay=60)], "description": "later"}))
    assert jobs_cli.main(["batch", "create", str(body), "--json", "--url", "http://testserver"]) == 0
    created = json_out(capsys.readouterr().out)
    assert created["total"] == 2 and created["description"] == "later"
    assert jobs_cli.main(["batch", "cancel", created["id"], "--url", "http://testserver"]) == 0
    assert "canceled" in capsys.readouterr().out
    assert jobs_cli.main(["batch", "watch", created["id"], "--json", "--url", "http://testserver"]) == 1
    assert json_out(capsys.readouterr().out)["status"] == "canceled"
