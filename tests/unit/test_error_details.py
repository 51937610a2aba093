"""Each 422 detail says what to fix: the field, the expected type and what was sent; hints for
arguments sent outside `args`; positions in malformed JSON; the setting behind a limit; the
statuses a listing filter accepts. Every rejection stays a problem document naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from app.listing import LISTED_STATUSES
from tests.factories import steps_job

PROBLEM = "application/problem+json"


def problem(response: Any, status: int, loc: list[Any] | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    if loc is not None:
        assert loc in [error["loc"] for error in body["errors"]], body
    return body


def test_a_wrong_argument_type_names_the_field_the_type_and_the_value(client: TestClient) -> None:
    body = problem(client.post("/jobs", json=steps_job(args={"steps": "five"})), 422, ["args", "steps"])
    assert body["detail"] == 'args.steps: expected an integer, got "five"'
    assert body["errors"] == [{"loc": ["args", "steps"], "msg": 'expected an integer, got "five"'}]


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (steps_job(args={"delay": "soon"}), 'args.delay: expected a number, got "soon"'),
        (steps_job(steps=0), "args.steps: must be greater than or equal to 1, got 0"),
        ({"type": "demo.steps", "args": [1]}, "args: expected a JSON object, got [1]"),
        ({"type": "demo.steps", "timeout": "60"}, 'timeout: expected an integer, got "60"'),
        ({"type": 5}, "type: expected a string, got 5"),
        ({}, "type: required field is missing"),
        (
            steps_job(args={"stepz": 3}),
            "args.stepz: unknown field, not permitted here; accepted: steps, delay, fail_at, fail_attempts",
        ),
    ],
)
def test_details_say_what_was_expected(client: TestClient, payload: dict[str, Any], detail: str) -> None:
    assert problem(client.post("/jobs", json=payload), 422)["detail"] == detail


def test_a_nested_unknown_field_lists_the_nested_models_fields(client: TestClient) -> None:
    payload = {"type": "text.summarize", "args": {"turns": [{"role": "user", "content": "hi", "name": "x"}]}}
    body = problem(client.post("/jobs", json=payload), 422, ["args", "turns", 0, "name"])
    assert body["detail"] == "args.turns.0.name: unknown field, not permitted here; accepted: role, content"


def test_an_argument_sent_beside_args_gets_a_hint(client: TestClient) -> None:
    body = problem(client.post("/jobs", json={"type": "demo.steps", "steps": 3}), 422, ["steps"])
    assert "did you mean args.steps?" in body["detail"]
    other = problem(client.post("/jobs", json={"type": "demo.steps", "colour": 3}), 422, ["colour"])
    assert "unknown field" in other["detail"] and "type, args, queue" in other["detail"]
    assert "did you mean" not in other["detail"]


def test_malformed_json_gives_line_column_and_position(client: TestClient) -> None:
    raw = '{\n  "type": "demo.steps",\n  "args": {"steps": 3,}\n}'
    body = problem(client.post("/jobs", content=raw, headers={"content-type": "application/json"}), 400)
    position = raw.index(",}") + 1  # where a property name was expected
    column = position - raw.rindex("\n", 0, position)
    assert body["detail"].startswith(f"malformed JSON at line 3, column {column} (character {position}): ")
    assert (column, position) == (23, 48)
    bad_utf8 = problem(
        client.post("/jobs", content=b'{"type": "\xff"}', headers={"content-type": "application/json"}), 400
    )
    assert "not valid UTF-8 at byte 10" in bad_utf8["detail"]


def test_the_string_limit_names_its_setting(make_client: Any) -> None:
    small = make_client(max_string_chars=100)
    body = problem(small.post("/jobs", json=steps_job(description="x" * 101)), 422, ["description"])
    assert body["detail"] == "description: string longer than 100 characters (MAX_STRING_CHARS): got 101"


@pytest.mark.parametrize("word", ["created", "rate_limited", "ready_to_enqueue"])
def test_the_status_filter_refuses_rq_internal_words(client: TestClient, word: str) -> None:
    body = problem(client.get("/jobs", params={"status": word}), 422, ["status"])
    assert word in body["detail"]
    assert all(status in body["detail"] for status in LISTED_STATUSES)


def test_the_status_filter_takes_every_documented_status(client: TestClient) -> None:
    assert LISTED_STATUSES == (
        "queued",
        "scheduled",
        "deferred",
        "started",
        "finished",
        "failed",
        "stopped",
        "canceled",
    )
    for status in LISTED_STATUSES:
        response = client.get("/jobs", params={"status": status})
        assert response.status_code == 200, (status, response.text)
    listed = client.get("/openapi.json").json()["paths"]["/jobs"]["get"]["parameters"]
    assert next(p for p in listed if p["name"] == "status")["schema"]["enum"] == list(LISTED_STATUSES)


def test_a_bad_query_value_names_the_parameter_and_the_value(client: TestClient) -> None:
    body = problem(client.get("/jobs", params={"limit": "many"}), 422, ["limit"])
    assert body["detail"] == 'limit: expected an integer, got "many"'
