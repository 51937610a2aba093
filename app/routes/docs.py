"""The API description: `/openapi.json` and `/docs` (Swagger UI served from this process, no CDN).

Swagger UI's files come from the `swagger-ui-py` package (its `static/` directory, Swagger UI 5,
which renders OpenAPI 3.1); only its files are used, not its framework glue.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from app.openapi import build_openapi

DOCS_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>jobs service — API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""

DOCS_INIT_JS = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    persistAuthorization: true,
    presets: [SwaggerUIBundle.presets.apis],
  });
};
"""


def swagger_ui_static() -> Path:
    """The directory of Swagger UI's distribution files inside the installed `swagger-ui-py`."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed (see requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


async def openapi_json(request: Request) -> Response:
    spec: dict[str, Any] | None = getattr(request.app.state, "openapi", None)
    if spec is None:
        spec = request.app.state.openapi = build_openapi(settings=request.app.state.settings)
    return JSONResponse(spec)


async def docs(request: Request) -> Response:
    return HTMLResponse(DOCS_HTML)


async def docs_init(request: Request) -> Response:
    return Response(DOCS_INIT_JS, media_type="text/javascript")


routes = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
    Route("/docs/init.js", docs_init, methods=["GET"]),
    Mount("/docs/static", StaticFiles(directory=swagger_ui_static()), name="swagger-ui"),
]
