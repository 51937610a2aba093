"""Body size (413 before the body is read whole), JSON depth and string bounds, awkward Unicode (never 500)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from app.errors import PayloadTooLargeError
from app.sizelimit import BodySizeLimitMiddleware, check_json_limits
from tests.factories import steps_job
from tests.unit.test_api_validation import assert_problem

MAX = 4096


@pytest.fixture
def small(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(max_body_bytes=MAX, max_json_depth=8, max_string_chars=100)


def test_declared_oversize_body_is_413(small: TestClient) -> None:
    response = small.post("/jobs", json=steps_job(args={"x": "y" * MAX}))
    assert_problem(response, 413)
    assert response.headers["connection"] == "close"


def test_chunked_oversize_body_is_413(small: TestClient) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        yield b'{"type": "demo.steps", "description": "'
        for _ in range(100):  # 100 KiB in all, no Content-Length: Transfer-Encoding: chunked
            sent.append(1)
            yield b"x" * 1024
        yield b'"}'

    response = small.post("/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(response, 413)


def run_asgi(app: BodySizeLimitMiddleware, headers: list[tuple[bytes, bytes]], chunks: Iterator[bytes]) -> Any:
    """Drive the middleware like a server would: return (status, bytes the app pulled)."""
    pulled = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal pulled
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "POST", "path": "/jobs", "headers": headers}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], pulled


async def read_everything(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads until the body ends (and would never stop on an endless one)."""
    try:
        while (await receive()).get("more_body"):
            pass
    except PayloadTooLargeError:
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def endless(size: int = 1024) -> Iterator[bytes]:
    while True:
        yield b"x" * size


def test_a_lying_content_length_cannot_push_more_than_the_limit() -> None:
    """A body that keeps coming after a small Content-Length (or none) is cut off just past the limit."""
    app = BodySizeLimitMiddleware(read_everything, max_bytes=MAX)
    status, pulled = run_asgi(app, [(b"content-length", b"10")], endless())
    assert status == 413 and MAX < pulled <= MAX + 1024
    status, pulled = run_asgi(app, [], endless())
    assert status == 413 and MAX < pulled <= MAX + 1024


def test_a_content_length_over_the_limit_is_refused_unread() -> None:
    app = BodySizeLimitMiddleware(read_everything, max_bytes=MAX)
    status, pulled = run_asgi(app, [(b"content-length", str(MAX + 1).encode())], endless())
    assert status == 413 and pulled == 0
    status, pulled = run_asgi(app, [(b"content-length", b"12abc")], endless())
    assert status == 400 and pulled == 0


def test_a_body_within_the_limit_passes() -> None:
    app = BodySizeLimitMiddleware(read_everything, max_bytes=MAX)
    status, pulled = run_asgi(app, [(b"content-length", str(MAX).encode())], iter([b"x" * MAX]))
    assert status == 200 and pulled == MAX


def nested(depth: int) -> Any:
    """`depth` objects, one inside the other."""
    value: Any = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("depth", [8, 50, 2000])
def test_deep_nesting_is_422(small: TestClient, depth: int) -> None:
    raw = '{"type": "demo.steps", "args": ' + "[" * depth + "]" * depth + "}"  # depth + 1 levels in all
    body = assert_problem(small.post("/jobs", content=raw, headers={"content-type": "application/json"}), 422)
    assert "nested deeper than 8" in body["detail"]


def test_nesting_beyond_pythons_recursion_limit_is_422(client: TestClient) -> None:
    depth = 200_000  # json.loads itself gives up (RecursionError): still a clean 422
    raw = '{"args": ' + "[" * depth + "]" * depth + "}"
    body = assert_problem(client.post("/jobs", content=raw, headers={"content-type": "application/json"}), 422)
    assert "nested deeper than 32" in body["detail"]


def test_json_limits_walk() -> None:
    check_json_limits(nested(8), max_depth=8, max_string_chars=10)
    with pytest.raises(Exception, match="nested deeper than 8") as caught:
        check_json_limits({"args": nested(8)}, max_depth=8, max_string_chars=10)
    assert caught.value.errors[0]["loc"][:2] == ["args", "a"]  # type: ignore[attr-defined]
    check_json_limits({"k": "x" * 10, "l": ["y" * 10]}, max_depth=8, max_string_chars=10)
    with pytest.raises(Exception, match="string longer than 10") as caught:
        check_json_limits({"k": ["ok", "x" * 11]}, max_depth=8, max_string_chars=10)
    assert caught.value.errors[0]["loc"] == ["k", 1]  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="a key longer than 10"):
        check_json_limits({"k" * 11: 1}, max_depth=8, max_string_chars=10)


def test_long_strings_are_422(small: TestClient) -> None:
    body = assert_problem(small.post("/jobs", json=steps_job(args={"k" * 101: 1})), 422)
    assert "longer than 100" in body["detail"]
    body = assert_problem(small.post("/jobs", json={"type": "x" * 101}), 422)
    assert body["errors"][0]["loc"] == ["type"]


AWKWARD = {
    "nul": "a\u0000b",
    "rtl override": "abc\u202edef",
    "emoji": "job \U0001f680\U0001f469\u200d\U0001f4bb",
    "combining": "e\u0301",
    "bom": "\ufeffx",
}


@pytest.mark.parametrize("text", list(AWKWARD.values()), ids=list(AWKWARD))
def test_awkward_text_round_trips(client: TestClient, text: str) -> None:
    response = client.post("/jobs", json=steps_job(description=text))
    assert response.status_code == 202, response.text
    assert response.json()["description"] == text
    assert client.get(f"/jobs/{response.json()['id']}").json()["description"] == text


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "demo.steps", "description": "\\ud800"}',
        '{"type": "demo.steps", "description": "x\\udfffy"}',
        '{"type": "demo.steps", "args": {"\\ud83d": 1}}',
        '{"type": "\\ud800"}',
        '{"type": "demo.steps", "args": {"steps": "\\ud800"}}',
        '{"type": "demo.steps\\u0000"}',
        '{"type": "demo.steps\\u202e", "args": {"\\u0000": "\\u202e"}}',
        '{"type": "demo.steps", "args": {"steps": "\U0001f680"}}',
    ],
)
def test_lone_surrogates_and_bad_args_are_422_never_500(client: TestClient, raw: str) -> None:
    response = client.post("/jobs", content=raw.encode("utf-8"), headers={"content-type": "application/json"})
    body = assert_problem(response, 422)
    json.dumps(body, ensure_ascii=False).encode("utf-8")  # the problem document itself is valid UTF-8 JSON


@pytest.mark.parametrize("path", ["/jobs/%ED%A0%80", "/jobs/a%00b", "/jobs/%E2%80%AE", "/jobs/%F0%9F%9A%80"])
def test_awkward_ids_are_404(client: TestClient, path: str) -> None:
    assert_problem(client.get(path), 404)


@pytest.mark.parametrize("value", ["%ED%A0%80", "a%00b", "%E2%80%AE", "%F0%9F%9A%80"])
def test_awkward_query_values_are_422(client: TestClient, value: str) -> None:
    assert_problem(client.get(f"/jobs?type={value}"), 422)
    assert_problem(client.get(f"/jobs?cursor={value}"), 422)
