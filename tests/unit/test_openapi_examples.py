"""Every example in `/openapi.json` is accepted as it stands: each is sent and none is refused. Swagger UI
builds its "Try it out" body from these, so it never offers `args.additionalProp1`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.testclient import TestClient

from jobs.catalog import registry


def walk(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, value) of every example in the document: `example`, `examples` lists and maps."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "example":
                yield (*path, key), value
            elif key == "examples" and isinstance(value, list):
                yield from (((*path, key, i), item) for i, item in enumerate(value))
            elif key == "examples" and isinstance(value, dict):
                yield from (((*path, key, name), item["value"]) for name, item in value.items())
            else:
                yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from walk(item, (*path, index))


def request_for(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> tuple[str, str, dict[str, Any]]:
    """The request that sends the example at `path`: (method, url, httpx keyword arguments)."""
    submit = document["components"]["schemas"]["SubmitRequest"]
    if path[:4] == ("paths", "/jobs", "post", "requestBody") or path[:4] == (
        "components",
        "schemas",
        "SubmitRequest",
        "examples",
    ):
        return "POST", "/jobs", {"json": value}
    if path[:5] == ("components", "schemas", "SubmitRequest", "properties", "args"):
        job_type = submit["examples"][path[-1]]["type"]  # the args examples follow the body examples' order
        return "POST", "/jobs", {"json": {"type": job_type, "args": value}}
    if path[:2] == ("paths", "/schedules/{schedule_id}") and "requestBody" in path:
        return path[2].upper(), "/schedules/{schedule_id}", {"json": value}  # on a schedule the test creates
    if path[0] == "paths" and "requestBody" in path:
        return path[2].upper(), path[1], {"json": value}
    if path[0] == "paths" and "parameters" in path:
        parameter = document["paths"][path[1]][path[2]]["parameters"][path[path.index("parameters") + 1]]
        assert parameter["in"] == "query", path
        return path[2].upper(), path[1], {"params": {parameter["name"]: value}}
    raise AssertionError(f"an example this test does not know how to send: {path}")


def test_every_example_in_the_document_is_accepted(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    submit = document["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    # one example per job type a client may submit on its own (an on_complete-only type is refused here)
    assert set(submit) == {spec.name for spec in registry if not spec.on_complete_only}, "one example per job type"
    sent = 0
    for path, value in walk(document):
        if "responses" in path:
            continue  # what the service answers, not something to send
        method, url, kwargs = request_for(document, path, value)
        if "{schedule_id}" in url:
            created = client.post("/schedules", json={"type": "demo.noop", "every": 60})
            url = url.replace("{schedule_id}", created.json()["id"])
        response = client.request(method, url, **kwargs)
        assert response.status_code < 400, (path, value, response.text)
        sent += 1
    assert sent >= 3 * len(submit), "the media type's, the schema's and the args' examples were all sent"


def test_every_body_swagger_ui_offers_is_an_example_and_a_change_shows_no_defaults(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    for path, methods in document["paths"].items():
        for method, entry in methods.items():
            content = entry.get("requestBody", {}).get("content", {}).get("application/json")
            if content is not None:
                assert content.get("examples"), f"{method.upper()} {path} offers no example body"
    change = document["components"]["schemas"]["ScheduleChange"]["properties"]
    assert not [name for name, prop in change.items() if "default" in prop], "a PATCH form would send defaults"


def test_swagger_ui_builds_its_body_from_real_examples(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schema = document["components"]["schemas"]["SubmitRequest"]
    assert [body["type"] for body in schema["examples"]] == [s.name for s in registry if not s.on_complete_only]
    assert [body["args"] for body in schema["examples"]] == schema["properties"]["args"]["examples"]
    content = document["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert [example["value"] for example in content["examples"].values()] == schema["examples"]
