"""API keys: every protected route answers 401 without a valid key; probes and docs stay open."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from app.auth import KeyRing, is_public
from app.main import create_app
from app.openapi import OPERATIONS
from core.settings import Settings
from tests.factories import noop_job
from tests.unit.conftest import KEYS, bearer
from tests.unit.test_api_validation import assert_problem

PROTECTED = [(op.method, op.path.replace("{job_id}", "some-id")) for op in OPERATIONS if not op.public]
PUBLIC = [op.path for op in OPERATIONS if op.public] + ["/openapi.json", "/docs", "/docs/static/swagger-ui.css"]


def call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"json": noop_job()} if method == "POST" else {}
    return client.request(method, path, headers=headers, **kwargs)


def test_every_app_route_but_the_public_ones_is_protected() -> None:
    app = create_app(Settings(redis_url="redis://unused:6379/0"))
    paths = {route.path for route in app.routes if isinstance(route, Route)}
    paths |= {f"{route.path}/" for route in app.routes if isinstance(route, Mount)}
    protected = {path for _, path in PROTECTED}
    for path in paths:
        concrete = path.replace("{job_id}", "some-id")
        assert is_public(concrete) or concrete in protected, f"{path} is neither public nor tested as protected"


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    ("headers", "invalid"),
    [
        ({}, False),
        ({"Authorization": "Bearer wrong-key"}, True),
        ({"Authorization": f"Bearer {KEYS['alice']}x"}, True),
        ({"Authorization": f"Basic {KEYS['alice']}"}, False),
        ({"Authorization": "Bearer "}, False),
        ({"Authorization": KEYS["alice"]}, False),
    ],
)
def test_protected_routes_are_401_without_a_valid_key(
    keyed: TestClient, method: str, path: str, headers: dict[str, str], invalid: bool
) -> None:
    response = call(keyed, method, path, headers)
    body = assert_problem(response, 401)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="jobs"')
    assert ('error="invalid_token"' in challenge) is invalid
    assert KEYS["alice"] not in response.text and "wrong-key" not in response.text
    assert body["type"] == "/problems/unauthorized"


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_routes_serve_a_valid_key(keyed: TestClient, method: str, path: str) -> None:
    response = call(keyed, method, path, bearer("alice"))
    assert response.status_code != 401 and response.status_code < 500, response.text


@pytest.mark.parametrize("path", PUBLIC)
def test_probes_and_docs_need_no_key(keyed: TestClient, path: str) -> None:
    response = keyed.get(path)
    assert response.status_code == 200, response.text


def test_scheme_is_case_insensitive_and_sha256_entries_match(keyed: TestClient) -> None:
    assert keyed.get("/jobs", headers={"Authorization": f"bearer {KEYS['alice']}"}).status_code == 200
    assert keyed.get("/jobs", headers=bearer("ops")).status_code == 200  # configured as sha256:<hex>
    digest = hashlib.sha256(KEYS["ops"].encode()).hexdigest()
    assert keyed.get("/jobs", headers={"Authorization": f"Bearer sha256:{digest}"}).status_code == 401


def test_keyring_parsing() -> None:
    ring = KeyRing.parse("web=k1, mobile = k2 ,ops=sha256:" + hashlib.sha256(b"k3").hexdigest(), "ops")
    assert [(e.name, e.admin) for e in ring.entries] == [("web", False), ("mobile", False), ("ops", True)]
    assert ring.match("k1") == ring.match("k1") and ring.match("k1").name == "web"  # type: ignore[union-attr]
    assert ring.match("k3").admin and ring.match("k2").name == "mobile"  # type: ignore[union-attr]
    assert ring.match("k4") is None and ring.match("") is None
    assert KeyRing.parse("").open and KeyRing.parse(" , ").open
    assert ring.match("sha256:" + hashlib.sha256(b"k3").hexdigest()) is None  # the digest is not the key


@pytest.mark.parametrize(
    ("api_keys", "admin_keys", "message"),
    [
        ("web", "", "name=key"),
        ("web=", "", "name=key"),
        ("=k1", "", "must match"),
        ("we b=k1", "", "must match"),
        ("web=k1,web=k2", "", "unique"),
        ("web=k1,mobile=k1", "", "same key"),
        ("web=sha256:abc", "", "64 hex"),
        ("web=k1", "ops", "not in API_KEYS"),
    ],
)
def test_keyring_refuses_ambiguous_configuration(api_keys: str, admin_keys: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        KeyRing.parse(api_keys, admin_keys)
    assert "k1" not in str(caught.value).replace("k1,", "")  # keys are never echoed


def test_no_keys_means_open_with_a_loud_warning(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.auth"):
        client = make_client()
    assert any("OPEN" in record.getMessage() and record.levelno == logging.WARNING for record in caplog.records)
    response = client.post("/jobs", json=noop_job())
    assert response.status_code == 202 and response.json()["owner"] == "anonymous"
    assert client.get("/jobs").status_code == 200


def test_configured_keys_log_no_warning(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.auth"):
        make_client(api_keys="web=k1")
    assert not [r for r in caplog.records if r.name == "app.auth" and r.levelno >= logging.WARNING]
    assert "k1" not in caplog.text


def test_unknown_routes_need_a_key_before_saying_404(keyed: TestClient) -> None:
    assert_problem(keyed.get("/nope"), 401)
    assert_problem(keyed.get("/nope", headers=bearer("bob")), 404)


def test_public_paths_are_exact() -> None:
    public = ("/", "/healthz", "/readyz", "/openapi.json", "/docs", "/docs/static/x.css", "/console/jobs/x")
    assert all(is_public(path) for path in public)
    for path in ("/healthz/", "/healthzx", "/docs/", "/docs/x", "/docsx", "/openapi.json/x", "/jobs", "/stats", "//"):
        assert not is_public(path), path
