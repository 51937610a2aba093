"""Job types: the only things a client can ask the service to run.

A job type maps a public name (``demo.steps``) to a function, its argument model and its
defaults. Clients name types, never Python paths; workers refuse any job whose function is
not registered here.

Job modules import their heavy dependencies inside the function body, so the web process
can import every spec and argument model without paying for what the jobs need.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from core.queues import QUEUE_NAMES, QueueName

F = TypeVar("F", bound=Callable[..., Any])


class NoArgs(BaseModel):
    """Argument model for job types that take none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class JobSpec:
    name: str
    func_path: str
    args_model: type[BaseModel]
    description: str
    queue: QueueName = "default"
    timeout: int = 180
    retries: int = 0
    #: Run by workers but hidden from clients: not submittable, not listed in /job-types.
    internal: bool = False
    #: Meaningful only as a batch's `on_complete` job (it reports on the batch that enqueued it): listed,
    #: but refused as a job of its own, a batch member or a schedule's run.
    on_complete_only: bool = False
    #: At most this many jobs of the type running at once across all workers (`TYPE_CONCURRENCY` overrides it).
    concurrency: int | None = None
    #: At most this many starts per window, `N/second|minute|hour` (`TYPE_RATE_LIMIT` overrides it).
    rate_limit: str | None = None
    #: Result reuse by default: POST /jobs answers with an identical job of the same key that waits, runs or
    #: finished less than this many seconds ago (capped at RESULT_TTL); a request's `cache_ttl` overrides it.
    cache_ttl: int | None = None

    def args_schema(self) -> dict[str, Any]:
        return self.args_model.model_json_schema()


class UnknownJobTypeError(LookupError):
    """No job type is registered under that name or function."""


class Registry:
    def __init__(self) -> None:
        self._by_name: dict[str, JobSpec] = {}
        self._by_func: dict[str, JobSpec] = {}

    def add(self, spec: JobSpec) -> None:
        if spec.queue not in QUEUE_NAMES:
            raise ValueError(f"job type {spec.name!r}: unknown queue {spec.queue!r}")
        if spec.cache_ttl is not None and spec.cache_ttl < 1:
            raise ValueError(f"job type {spec.name!r}: cache_ttl must be at least 1 second, got {spec.cache_ttl}")
        if spec.name in self._by_name or spec.func_path in self._by_func:
            raise ValueError(f"job type {spec.name!r} ({spec.func_path}) registered twice")
        self._by_name[spec.name] = spec
        self._by_func[spec.func_path] = spec

    def alias(self, former_path: str, func: Callable[..., Any]) -> None:
        """Let jobs queued under `func`'s former dotted path run after it moved (workers resolve by path)."""
        self._by_func[former_path] = self.for_function(f"{func.__module__}.{func.__qualname__}")

    def get(self, name: str) -> JobSpec:
        """A job type clients may submit (internal ones are unknown to them)."""
        spec = self._by_name.get(name)
        if spec is None or spec.internal:
            raise UnknownJobTypeError(name)
        return spec

    def for_function(self, func_path: str) -> JobSpec:
        """Any registered job type, internal ones included: what workers may run."""
        try:
            return self._by_func[func_path]
        except KeyError:
            raise UnknownJobTypeError(func_path) from None

    def __contains__(self, name: object) -> bool:
        spec = self._by_name.get(name) if isinstance(name, str) else None
        return spec is not None and not spec.internal

    def __iter__(self) -> Iterator[JobSpec]:
        """The public job types, by name."""
        return iter(sorted((spec for spec in self._by_name.values() if not spec.internal), key=lambda s: s.name))

    def every(self) -> list[JobSpec]:
        """Every job type, internal ones included (what workers run and flow limits may name)."""
        return sorted(self._by_name.values(), key=lambda s: s.name)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def job_type(
        self,
        name: str,
        *,
        args: type[BaseModel] = NoArgs,
        description: str,
        queue: QueueName = "default",
        timeout: int = 180,
        retries: int = 0,
        internal: bool = False,
        on_complete_only: bool = False,
        concurrency: int | None = None,
        rate_limit: str | None = None,
        cache_ttl: int | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated module-level function as job type `name`."""

        def register(func: F) -> F:
            func_path = f"{func.__module__}.{func.__qualname__}"
            spec = JobSpec(name, func_path, args, description, queue, timeout, retries, internal, on_complete_only)
            self.add(dataclasses.replace(spec, concurrency=concurrency, rate_limit=rate_limit, cache_ttl=cache_ttl))
            return func

        return register


#: The service's registry; `jobs.catalog` fills it with every built-in job type.
registry = Registry()
job_type = registry.job_type
