"""Imports every job module so that `registry` holds all job types. Import the registry from here.

Modules named in `JOB_MODULES` (comma-separated) are imported too, after the built-in ones.
"""

import importlib

from core.settings import get_settings
from jobs import builtin  # noqa: F401  (registers callbacks.*, demo.*, text.*)
from jobs.registry import registry

for _module in filter(None, (name.strip() for name in get_settings().job_modules.split(","))):
    importlib.import_module(_module)

__all__ = ["registry"]
