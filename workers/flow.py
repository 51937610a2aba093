"""The flow-control limits this worker claims under: the settings and the job types' declared limits.

Parsed once per process; a malformed setting stops the worker at start-up (`core.flow.limits.FlowSettingError`
names the setting and the entry).
"""

from __future__ import annotations

from functools import lru_cache

from core.flow.limits import Limits, limits_from
from core.settings import get_settings
from jobs.catalog import registry


@lru_cache(maxsize=1)
def worker_limits() -> Limits:
    return limits_from(get_settings(), registry.every())
