"""Object-level authorization: a key sees only the jobs it submitted; an admin key sees all.

Every job records its owner (the submitting key's name) in `meta["owner"]`. Another key's job
is answered exactly like a job that does not exist (404), so ids cannot be probed.
"""

from __future__ import annotations

from rq.job import Job
from starlette.requests import Request

from app.auth import Principal, principal
from app.errors import NotFoundError
from app.store import JobRecord, JobStore
from core.meta import OWNER


def owner_of(job: Job) -> str | None:
    owner = job.meta.get(OWNER)
    return owner if isinstance(owner, str) else None


def can_see(caller: Principal, job: Job) -> bool:
    return caller.admin or owner_of(job) == caller.name


def not_found(job_id: str) -> NotFoundError:
    return NotFoundError(f"no job {job_id!r} (it never existed or has expired)")


async def owned_job(request: Request, job_id: str) -> JobRecord:
    """The job `job_id` if the caller may see it; otherwise 404, whether it exists or not."""
    store: JobStore = request.app.state.store
    record = await store.fetch(job_id)
    if record is None or not can_see(principal(request), record.job):
        raise not_found(job_id)
    return record


def listing_owner(request: Request) -> str | None:
    """Whose jobs a listing may show: None (all) for an admin, else the caller's own name."""
    caller = principal(request)
    return None if caller.admin else caller.name
