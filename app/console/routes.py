"""Routes of the console: the page shell for every `/console/...` URL, its static files, `<job-progress>`.

The console is a set of ES modules (no build step) that talk to the public JSON API only; the
server's part is to hand out the same shell for every page URL (the page routes itself on the
client) and the files it loads. Nothing is loaded from another host. The strict
`Content-Security-Policy` on the shell allows scripts, styles and requests to this origin only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.console import activity

STATIC = Path(__file__).parent / "static"
SHELL = (STATIC / "index.html").read_bytes()
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SHELL_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class ConsoleFiles(StaticFiles):
    """The console's files, revalidated on every load (ETag): a new release is never half-cached."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


async def redirect_home(request: Request) -> Response:
    return RedirectResponse("/console/", status_code=307)


async def shell(request: Request) -> Response:
    """The same page for every console URL; its script reads the path and draws that page."""
    return Response(SHELL, media_type="text/html; charset=utf-8", headers=SHELL_HEADERS)


async def job_progress_module(request: Request) -> Response:
    """`<job-progress>` for other sites' pages: CORS headers come from the CORS middleware (CORS_ORIGINS)."""
    return FileResponse(
        STATIC / "job-progress.js",
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


console: list[BaseRoute] = [
    Route("/job-progress.js", job_progress_module, methods=["GET"]),
    *activity.routes,
    Mount("/assets", ConsoleFiles(directory=STATIC), name="console-assets"),
    Route("/", shell, methods=["GET"]),
    Route("/{page:path}", shell, methods=["GET"]),
]

#: `GET /` and one mount: the console's pages, files and its changes stream are the console's, not
#: operations of the API (the OpenAPI table lists those; its fuzzing could not end a stream).
routes: list[BaseRoute] = [
    Route("/", redirect_home, methods=["GET"]),
    Mount("/console", routes=console),
]
