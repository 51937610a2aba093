"""What `/job-types` advertises for `text.characters` is exactly what the service accepts, and a whole
book (over 1 MB of text) goes through with the default settings."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest
from starlette.testclient import TestClient

from app.main import create_app
from core.settings import Settings


@pytest.fixture
def defaults(fake_server: fakeredis.FakeServer) -> Iterator[TestClient]:
    """The app with default settings (only Redis replaced): what a fresh deployment accepts."""
    connections = (fakeredis.FakeRedis(server=fake_server), fakeredis.FakeAsyncRedis(server=fake_server))
    with TestClient(create_app(Settings(), connections), raise_server_exceptions=False) as client:
        yield client


def advertised_text_limit(client: TestClient) -> int:
    types = {item["type"]: item for item in client.get("/job-types").json()}
    limit: int = types["text.characters"]["args_schema"]["properties"]["text"]["maxLength"]
    return limit


def test_the_advertised_limit_is_the_accepted_limit(defaults: TestClient) -> None:
    limit = advertised_text_limit(defaults)
    assert limit == Settings().max_string_chars
    at_limit = defaults.post("/jobs", json={"type": "text.characters", "args": {"text": "a" * limit}})
    assert at_limit.status_code == 202, at_limit.text[:300]
    over = defaults.post("/jobs", json={"type": "text.characters", "args": {"text": "a" * (limit + 1)}})
    assert over.status_code == 422 and over.headers["content-type"] == "application/problem+json"
    problem = over.json()
    assert problem["errors"][0]["loc"] == ["args", "text"]
    assert "MAX_STRING_CHARS" in problem["detail"] and str(limit) in problem["detail"]


def test_a_book_of_over_a_megabyte_is_accepted_with_the_defaults(defaults: TestClient) -> None:
    paragraph = "“Ready?” asked Eleanor Voss. “Always,” said Tobias Crane, and the ship left the harbour.\n\n"
    book = paragraph * (1_100_000 // len(paragraph))
    assert len(book.encode()) > 1_000_000
    response = defaults.post("/jobs", json={"type": "text.characters", "args": {"text": book}})
    assert response.status_code == 202, response.text[:300]


def test_the_body_limit_leaves_room_for_the_longest_string() -> None:
    settings = Settings()
    assert settings.max_body_bytes >= 4 * settings.max_string_chars, "any advertised string fits as UTF-8"
