"""Client for the jobs service: `JobsClient` (blocking) and `AsyncJobsClient` (asyncio).

Depends on httpx only. The `jobsvc` command (`jobs_client.cli`) adds rich.
"""

from jobs_client._async_client import AsyncJobsClient
from jobs_client._client import JobsClient
from jobs_client._core import SSEDecoder, SSEEvent, __version__
from jobs_client._exceptions import (
    AmbiguousJobId,
    APIError,
    BadRequest,
    Conflict,
    JobEndedBadly,
    JobsError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    UnknownJobId,
    UnsupportedMediaType,
    ValidationError,
    WaitTimeout,
)
from jobs_client._models import ENDED_STATUSES, Job, JobType, OutputChunk, Page, ProgressEvent
from jobs_client._schedules import Schedule

__all__ = [
    "APIError",
    "AmbiguousJobId",
    "AsyncJobsClient",
    "BadRequest",
    "Conflict",
    "ENDED_STATUSES",
    "Job",
    "JobEndedBadly",
    "JobType",
    "JobsClient",
    "JobsError",
    "NotFound",
    "OutputChunk",
    "Page",
    "PayloadTooLarge",
    "ProgressEvent",
    "RateLimited",
    "SSEDecoder",
    "Schedule",
    "SSEEvent",
    "ServerError",
    "ServiceUnavailable",
    "TransportError",
    "Unauthorized",
    "UnknownJobId",
    "UnsupportedMediaType",
    "ValidationError",
    "WaitTimeout",
    "__version__",
]
