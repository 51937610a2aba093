"""/openapi.json: valid OpenAPI 3.1 for every route, from the models the routes use; /docs needs no CDN."""

from __future__ import annotations

import re
from typing import Any

import schemathesis
from pydantic import BaseModel, TypeAdapter
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from app.main import create_app
from app.openapi import OPERATIONS, build_openapi
from app.response_models import Health, JobPage, JobTypeInfo, JobView, Problem, Ready, Stats
from app.routes.docs import DOCS_HTML, DOCS_INIT_JS
from app.routes.jobs import ListQuery
from app.schemas import SubmitRequest
from core.settings import Settings
from jobs.catalog import registry
from tests.factories import steps_job
from tests.unit.conftest import bearer

ASSETS = {"/docs/init.js"}  # files the /docs page loads; not API operations


def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def test_spec_is_valid_openapi_3_1(keyed: TestClient) -> None:
    document = spec(keyed)
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()  # the OpenAPI 3.1 meta-schema


def test_every_route_is_described() -> None:
    app = create_app(Settings(redis_url="redis://unused:6379/0"))
    served = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, Route) and route.path not in ASSETS
        for method in (route.methods or set()) - {"HEAD"}
    }
    described = {(op.method, op.path) for op in OPERATIONS}
    assert served == described
    assert any(isinstance(route, Mount) and route.path == "/docs/static" for route in app.routes)


def test_security_scheme_and_problem_schema(keyed: TestClient) -> None:
    document = spec(keyed)
    scheme = document["components"]["securitySchemes"]["apiKey"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer" and "Bearer" in scheme["description"]
    assert document["security"] == [{"apiKey": []}]
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    for op in OPERATIONS:
        entry = document["paths"][op.path][op.method.lower()]
        assert ("security" in entry) is op.public and entry.get("security", []) == []
        assert ("401" in entry["responses"]) is (not op.public or 401 in op.problems)
        for status, response in entry["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }
    assert "WWW-Authenticate" in document["paths"]["/jobs"]["get"]["responses"]["401"]["headers"]
    assert "Retry-After" in document["paths"]["/jobs"]["post"]["responses"]["429"]["headers"]


def test_schemas_come_from_the_route_models(keyed: TestClient) -> None:
    document = spec(keyed)
    schemas = document["components"]["schemas"]
    assert set(schemas["SubmitRequest"]["properties"]) == set(SubmitRequest.model_fields)
    assert schemas["SubmitRequest"]["additionalProperties"] is False
    params = {p["name"]: p for p in document["paths"]["/jobs"]["get"]["parameters"]}
    assert set(params) == set(ListQuery.model_fields)
    assert params["limit"]["schema"]["maximum"] == 200 and params["limit"]["schema"]["minimum"] == 1
    assert "queued" in schemas["ListedStatus"]["enum"] and "JobStatus" not in schemas
    assert not {"created", "rate_limited", "ready_to_enqueue"} & set(schemas["ListedStatus"]["enum"])
    post = document["paths"]["/jobs"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SubmitRequest"
    }
    assert post["responses"]["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobView"}
    assert set(schemas["SubmitRequest"]["properties"]["type"]["enum"]) == {spec.name for spec in registry}
    assert params["type"]["schema"]["enum"] == schemas["SubmitRequest"]["properties"]["type"]["enum"]
    timeout = schemas["SubmitRequest"]["properties"]["timeout"]["anyOf"][0]
    assert timeout == {"type": "integer", "minimum": 1, "maximum": 600}  # JOB_MAX_TIMEOUT of the test settings
    generic = build_openapi()  # without settings: the models alone, no deployment limits
    assert "enum" not in generic["components"]["schemas"]["SubmitRequest"]["properties"]["type"]
    assert generic["paths"].keys() == document["paths"].keys()


def test_a_batch_member_advertises_no_field_only_post_jobs_takes(keyed: TestClient) -> None:
    document = spec(keyed)
    schemas = document["components"]["schemas"]
    batch_body = document["paths"]["/batches"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    member_ref = schemas[batch_body["$ref"].rsplit("/", 1)[1]]["properties"]["jobs"]["items"]["$ref"]
    member = schemas[member_ref.rsplit("/", 1)[1]]
    submit = schemas["SubmitRequest"]["properties"]
    assert {"cache_ttl", "depends_on"} <= set(submit)
    assert set(member["properties"]) == set(submit) - {"cache_ttl", "depends_on"}
    assert member["additionalProperties"] is False
    assert set(member["properties"]["type"]["enum"]) == {spec.name for spec in registry}
    assert member["properties"]["timeout"]["anyOf"][0] == submit["timeout"]["anyOf"][0]
    for refused in ({"cache_ttl": 60}, {"depends_on": ["some-job"]}):  # what POST /batches says of such a member
        body = {"jobs": [steps_job(steps=1, **refused)]}
        answer = keyed.post("/batches", json=body, headers=bearer("alice"))
        assert answer.status_code == 422, answer.text
        assert [error["loc"] for error in answer.json()["errors"]] == [["jobs", 0, *refused]]


def check(model: type[BaseModel] | TypeAdapter[Any], response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    if isinstance(model, TypeAdapter):
        model.validate_json(response.text)
    else:
        model.model_validate_json(response.text, strict=False)


def test_real_responses_match_the_documented_models(keyed: TestClient) -> None:
    alice = bearer("alice")
    created = keyed.post("/jobs", json=steps_job(description="x"), headers=alice)
    check(JobView, created, 202)
    check(JobView, keyed.get(f"/jobs/{created.json()['id']}", headers=alice), 200)
    check(JobPage, keyed.get("/jobs", headers=alice), 200)
    check(Stats, keyed.get("/stats", headers=alice), 200)
    check(TypeAdapter(list[JobTypeInfo]), keyed.get("/job-types", headers=alice), 200)
    check(Health, keyed.get("/healthz"), 200)
    check(Ready, keyed.get("/readyz"), 200)
    for response, status in [
        (keyed.get("/jobs"), 401),
        (keyed.get("/jobs/nope", headers=alice), 404),
        (keyed.post("/jobs", json={"type": "x"}, headers=alice), 422),
        (keyed.post("/jobs", content=b"{", headers={**alice, "content-type": "application/json"}), 400),
    ]:
        check(Problem, response, status)


def test_docs_page_uses_no_cdn(keyed: TestClient) -> None:
    page = keyed.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text == DOCS_HTML
    assert not re.search(r"https?://", DOCS_HTML + DOCS_INIT_JS)
    sources = re.findall(r'(?:src|href)="([^"]+)"', DOCS_HTML)
    assert sources and all(source.startswith("/docs/") for source in sources)
    for source in sources:
        asset = keyed.get(source)
        assert asset.status_code == 200 and len(asset.content) > 100, source
    bundle = keyed.get("/docs/static/swagger-ui-bundle.js").text
    assert re.search(r'"5\.\d+\.\d+"', bundle), "Swagger UI 5 (renders OpenAPI 3.1) expected"
    assert '"/openapi.json"' in keyed.get("/docs/init.js").text
