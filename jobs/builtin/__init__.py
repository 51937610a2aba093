"""The job types the service ships: one module per job type (the `demo.*` family shares one).

Importing this package registers them all. Jobs queued before a built-in function moved still
run: the registry knows each function's former dotted path (`FORMER_PATHS`).
"""

from collections.abc import Callable
from typing import Any

from jobs.builtin import batch_report, callbacks, characters, demo, summarize  # noqa: F401  (batch_report registers)
from jobs.registry import registry

#: Dotted paths the built-in functions were queued under before they moved here.
FORMER_PATHS: dict[str, Callable[..., Any]] = {
    "jobs.callbacks.deliver": callbacks.deliver,
    "jobs.demo.steps": demo.steps,
    "jobs.demo.noop": demo.noop,
    "jobs.demo.sleep": demo.sleep,
    "jobs.text.characters": characters.characters,
    "jobs.text.summarize": summarize.summarize,
}
for _former, _func in FORMER_PATHS.items():
    registry.alias(_former, _func)
