"""Exceptions raised by the client. Every API error carries the server's problem document.

JobsError
  TransportError                 the service could not be reached (connection refused, DNS, timeout)
  WaitTimeout                    wait() gave up before the job ended (also a TimeoutError)
  JobEndedBadly                  Job.raise_for_status() on a failed, stopped or canceled job
  AmbiguousJobId                 resolve(): several job ids start with that prefix; .candidates
  APIError                       any problem document (RFC 9457) answer: .status, .problem, .title, .detail
    BadRequest                   400  malformed JSON, body not an object
    Unauthorized                 401  missing or invalid API key
    NotFound                     404  no such job (or it expired)
      UnknownJobId                    resolve(): no job id starts with that prefix (among the newest jobs)
    Conflict                     409  the job's state forbids the action (cancel an ended job)
    PayloadTooLarge              413
    UnsupportedMediaType         415
    ValidationError              422  .errors: the field list [{"loc": [...], "msg": ...}]
    RateLimited                  429  .retry_after (seconds)
    ServerError                  5xx
      ServiceUnavailable         503  .retry_after (seconds)
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from jobs_client._models import Job


class JobsError(Exception):
    """Base class of everything this package raises."""


class TransportError(JobsError):
    """The service could not be reached or did not answer in time; `__cause__` is httpx's error."""


class WaitTimeout(JobsError, TimeoutError):
    def __init__(self, job_id: str, timeout: float, last: Job | None) -> None:
        super().__init__(f"job {job_id} did not end within {timeout:g} s (last status: {last.status if last else '?'})")
        self.job_id = job_id
        self.timeout = timeout
        self.last = last


class JobEndedBadly(JobsError):
    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} {job.status}: {job.error or 'no error recorded'}")
        self.job = job


class APIError(JobsError):
    status = 0

    def __init__(self, problem: dict[str, Any], response: httpx.Response | None = None) -> None:
        self.problem = problem
        self.response = response
        self.status = int(problem.get("status") or (response.status_code if response is not None else 0))
        self.title = str(problem.get("title") or "")
        self.detail = str(problem.get("detail") or "")
        self.type = str(problem.get("type") or "about:blank")
        super().__init__(f"{self.status} {self.title}: {self.detail}" if self.detail else f"{self.status} {self.title}")


class BadRequest(APIError):
    pass


class Unauthorized(APIError):
    pass


class NotFound(APIError):
    pass


class UnknownJobId(NotFound):
    """No job id starts with this prefix: a 404 as the API would answer for a whole id."""

    def __init__(self, prefix: str, scanned: int) -> None:
        detail = f"no job id starts with {prefix!r} (among the newest {scanned} jobs listed)"
        super().__init__({"type": "/problems/not-found", "title": "Not found", "status": 404, "detail": detail})
        self.prefix = prefix


class AmbiguousJobId(JobsError):
    def __init__(self, prefix: str, candidates: list[str]) -> None:
        shown = ", ".join(candidates)
        super().__init__(f"{len(candidates)} job ids start with {prefix!r}: {shown}; give more characters")
        self.prefix = prefix
        self.candidates = candidates


class Conflict(APIError):
    pass


class PayloadTooLarge(APIError):
    pass


class UnsupportedMediaType(APIError):
    pass


class ValidationError(APIError):
    @property
    def errors(self) -> list[dict[str, Any]]:
        """Field problems: `[{"loc": ["args", "steps"], "msg": "..."}]`."""
        return list(self.problem.get("errors") or [])

    @property
    def fields(self) -> dict[str, str]:
        """The same as `{"args.steps": "msg"}`."""
        return {".".join(str(part) for part in e.get("loc", [])): str(e.get("msg", "")) for e in self.errors}


class _RetryAfter(APIError):
    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked to wait (`Retry-After`), or None when it did not say."""
        if self.response is None:
            return None
        return parse_retry_after(self.response.headers.get("retry-after"))


class RateLimited(_RetryAfter):
    pass


class ServerError(APIError):
    pass


class ServiceUnavailable(ServerError, _RetryAfter):
    pass


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationError,
    429: RateLimited,
    503: ServiceUnavailable,
}


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())  # noqa: UP017  (clients may run 3.10)


def error_for(response: httpx.Response) -> APIError:
    """The typed exception for an error response (which must have been read)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("title" in body or "status" in body):
        problem: dict[str, Any] = body
    else:
        problem = {
            "type": "about:blank",
            "title": response.reason_phrase or "HTTP error",
            "status": response.status_code,
            "detail": response.text[:300],
        }
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else APIError
    return cls(problem, response)
