"""What job authors import: register a job type, report progress, stream output, notice a stop request.

    from jobs import job_type, report, write_output

Built-in job types live in `jobs.builtin`; `jobs.catalog` imports them all. `jobs` imports
neither `app` nor `workers`; both import from here, and all three from `core`.
"""

from jobs.control import StopRequested, cancel_requested
from jobs.output import write_output
from jobs.progress import attempt, report
from jobs.registry import JobSpec, job_type, registry

__all__ = [
    "JobSpec",
    "StopRequested",
    "attempt",
    "cancel_requested",
    "job_type",
    "registry",
    "report",
    "write_output",
]
