"""The console's server side: one shell for every page URL, its files, `<job-progress>`, keys and CORS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import fakeredis
import pytest
from starlette.testclient import TestClient

from app.auth import is_public
from app.console.activity import Activity
from app.console.routes import STATIC
from core import keys
from tests.unit.conftest import KEYS, bearer

ORIGIN = "https://app.example.com"


def test_home_redirects_to_the_console(make_client: Callable[..., TestClient], keyed: TestClient) -> None:
    response = make_client().get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/console/"
    # With keys configured the redirect holds no data, so it needs none: the console page asks for one
    assert keyed.get("/", follow_redirects=False).headers["location"] == "/console/"
    assert keyed.get("/", headers=bearer("alice"), follow_redirects=False).headers["location"] == "/console/"


@pytest.mark.parametrize(
    "path",
    [
        "/console/",
        "/console/jobs/5f0c-abc",
        "/console/new?type=demo.steps",
        "/console/schedules",
        "/console/batches/b1",
    ],
)
def test_every_page_url_gets_the_shell_without_a_key(keyed: TestClient, path: str) -> None:
    response = keyed.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/console/assets/console.js"></script>' in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "unsafe-inline" not in policy


def test_the_shell_loads_nothing_from_another_host_and_runs_no_inline_script() -> None:
    for page in STATIC.rglob("*"):
        if page.suffix in {".html", ".js", ".css"}:
            text = page.read_text()
            assert "http://" not in text.replace("http://www.w3.org", "") or page.name == "job-progress.js", page
            assert "https://" not in text or page.name == "job-progress.js", page
            assert "innerHTML" not in text and "insertAdjacentHTML" not in text, page
    shell = (STATIC / "index.html").read_text()
    assert shell.count("<script") == 1 and "<style" not in shell and "style=" not in shell


def test_console_files_are_served_and_revalidated(keyed: TestClient) -> None:
    for path in ("/console/assets/console.js", "/console/assets/console.css", "/console/assets/pages/job.js"):
        response = keyed.get(path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "no-cache"
    assert keyed.get("/console/assets/no-such.js").status_code == 404


def test_job_progress_module_carries_cors_headers_for_allowed_origins(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_keys=f"alice={KEYS['alice']}", cors_origins=ORIGIN)
    module = client.get("/console/job-progress.js", headers={"Origin": ORIGIN})
    assert module.status_code == 200 and module.headers["content-type"].startswith("text/javascript")
    assert module.headers["access-control-allow-origin"] == ORIGIN
    assert 'customElements.define("job-progress"' in module.text
    imported = client.get("/console/assets/sse.js", headers={"Origin": ORIGIN})
    assert imported.headers["access-control-allow-origin"] == ORIGIN
    stranger = client.get("/console/job-progress.js", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in stranger.headers
    preflight = client.options(
        "/jobs/some-id/events",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, last-event-id",
        },
    )
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ORIGIN


def test_the_changes_stream_asks_for_a_key(keyed: TestClient) -> None:
    assert not is_public("/console/changes") and is_public("/console/jobs/x")
    response = keyed.get("/console/changes")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert (
        keyed.get("/console/changes", headers={**bearer("alice"), "Authorization": "Bearer wrong"}).status_code == 401
    )


def test_one_subscription_wakes_every_open_changes_stream(fake_server: fakeredis.FakeServer) -> None:
    async def scenario() -> None:
        aio = fakeredis.FakeAsyncRedis(server=fake_server)
        activity = Activity(aio)
        first, second = activity.join(), activity.join()
        task = activity.task
        assert task is not None
        await asyncio.wait_for(first.wait(), 5)  # the subscription itself wakes them: catch up
        first.clear()
        second.clear()
        await aio.publish(keys.EVENTS_CHANNEL, "some-job")
        await asyncio.wait_for(asyncio.gather(first.wait(), second.wait()), 5)
        assert activity.task is task  # one subscription for both
        activity.leave(first)
        assert activity.task is task
        activity.leave(second)  # the last stream gone: the subscription goes too
        assert activity.task is None
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled()
        await aio.aclose()

    asyncio.run(scenario())
