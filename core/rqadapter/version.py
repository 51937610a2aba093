"""Refuse to start on an RQ or redis-py this adapter was not verified against.

The adapter writes RQ's Redis schema by hand and uses private names of RQ and redis-py (async
connection internals, a pipeline's command stack); a release of either may change them without
notice. `tests/differential` proves the schema for the versions in `VERIFIED`. `check_rq_version()`,
called once at start-up by the web and by every worker, raises `UnverifiedVersionError` for any
other version unless `RQ_VERSION_CHECK=off`, which lets the process start with a logged warning.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from core.settings import Settings

logger = logging.getLogger(__name__)

#: Distribution name -> the versions this adapter was verified against (exact version strings).
VERIFIED: Final[Mapping[str, frozenset[str]]] = {
    "rq": frozenset({"3.0.0"}),
    "redis": frozenset({"8.1.0"}),
}

#: The setting that turns the check off (`off`) or on (`on`, the default).
OVERRIDE: Final = "RQ_VERSION_CHECK"


@dataclass(frozen=True)
class Mismatch:
    distribution: str
    #: None when the distribution is not installed at all.
    installed: str | None
    verified: frozenset[str]

    def __str__(self) -> str:
        verified = ", ".join(sorted(self.verified))
        return f"{self.distribution} {self.installed or '(not installed)'} (verified: {verified})"


class UnverifiedVersionError(RuntimeError):
    """An installed RQ or redis-py is not one this adapter was verified against."""

    def __init__(self, mismatches: list[Mismatch]) -> None:
        self.mismatches = mismatches
        found = "; ".join(str(mismatch) for mismatch in mismatches)
        super().__init__(
            f"unverified versions installed: {found}. The service writes RQ's Redis schema itself "
            "(core/rqadapter), so another version may leave jobs RQ reads differently. Install a verified "
            "version (requirements.txt pins them), or run tests/differential against this one and add it to "
            f"core.rqadapter.version.VERIFIED. To start anyway, set {OVERRIDE}=off (logged as a warning)."
        )


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def mismatches() -> list[Mismatch]:
    """The distributions in `VERIFIED` whose installed version is not a verified one."""
    found = []
    for distribution, verified in VERIFIED.items():
        installed = installed_version(distribution)
        if installed not in verified:
            found.append(Mismatch(distribution, installed, verified))
    return found


def check_rq_version(settings: Settings) -> None:
    """Raise `UnverifiedVersionError` unless RQ and redis-py are verified versions; with `RQ_VERSION_CHECK=off`,
    log a warning instead (also when the versions are fine: the check is off either way)."""
    found = mismatches()
    if settings.rq_version_check == "on":
        if found:
            raise UnverifiedVersionError(found)
        return
    if found:
        logger.warning(
            "%s=off: starting with unverified versions: %s; RQ's Redis schema is written by hand and may "
            "not be what this RQ reads",
            OVERRIDE,
            "; ".join(str(mismatch) for mismatch in found),
        )
    else:
        logger.warning(
            "%s=off: the RQ and redis-py version check is disabled (the installed ones are verified)", OVERRIDE
        )
