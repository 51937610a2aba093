"""CORS: none by default; CORS_ORIGINS lets the named browser origins in (preflights need no key)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.testclient import TestClient

from tests.unit.conftest import bearer

ORIGIN = "https://app.example.com"


def test_no_cors_headers_by_default(keyed: TestClient) -> None:
    response = keyed.get("/jobs", headers={**bearer("alice"), "Origin": ORIGIN})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers
    preflight = keyed.options("/jobs", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_configured_origins_are_allowed(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_keys="alice=alice-key-0123456789", cors_origins=f"{ORIGIN}/, http://localhost:5173")
    preflight = client.options(
        "/jobs",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, traceparent, cache-control",
        },
    )
    assert preflight.status_code == 200  # answered before auth: a preflight carries no key
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

    response = client.get("/jobs", headers={**bearer("alice"), "Origin": "http://localhost:5173"})
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "Location" in response.headers["access-control-expose-headers"]
    assert "Cache-Status" in response.headers["access-control-expose-headers"]  # a page can see a reused job
    unauthorized = client.get("/jobs", headers={"Origin": ORIGIN})  # the browser can read the 401
    assert unauthorized.status_code == 401 and unauthorized.headers["access-control-allow-origin"] == ORIGIN

    foreign = client.get("/jobs", headers={**bearer("alice"), "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers
    refused = client.options(
        "/jobs", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert refused.status_code == 400
