"""Job control: cancel or stop (DELETE /jobs/{id}) and requeue (POST /jobs/{id}/retry)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import control
from app.ownership import owned_job, owner_of
from app.quota import Quota
from app.routes.jobs import _settings, _store
from app.views import job_view


async def cancel_job(request: Request) -> Response:
    """Waiting jobs are canceled at once (200); a running job is asked to stop (202)."""
    job_id = request.path_params["job_id"]
    owned = await owned_job(request, job_id)  # another key's job is a 404
    outcome = await control.cancel(_store(request), job_id, owned)
    record = outcome.record
    view = job_view(record.job, result=record.result, position=record.position)
    return JSONResponse(view, status_code=202 if outcome.stopping else 200)


async def retry_job(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    owned = await owned_job(request, job_id)
    settings = _settings(request)
    owner = owner_of(owned.job)
    if settings.max_active_jobs and owner:
        await _store(request).reserve_slot(Quota(owner, settings.max_active_jobs), job_id)
    record = await control.requeue(_store(request), job_id)
    view = job_view(record.job, result=record.result, position=record.position)
    return JSONResponse(view, status_code=202, headers={"Location": f"/jobs/{record.job.id}"})


routes = [
    Route("/jobs/{job_id}", cancel_job, methods=["DELETE"]),
    Route("/jobs/{job_id}/retry", retry_job, methods=["POST"]),
]
