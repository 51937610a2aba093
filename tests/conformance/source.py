"""RQ's source distribution for the installed (pinned) RQ: fetched once into a cache, its tests extracted.

RQ's tests ship in its sdist; nothing of RQ's is copied into this repository.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

#: What of the sdist the run needs: RQ's tests, and its pytest settings (markers).
MEMBERS = ("tests/", "pyproject.toml")


def rq_version() -> str:
    return version("rq")


def fetch_sdist(cache: Path, rq: str) -> Path:
    """`rq-<rq>.tar.gz` in `cache`, downloaded with pip if it is not there yet."""
    archive = cache / f"rq-{rq}.tar.gz"
    if not archive.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
             f"rq=={rq}", "--dest", str(cache)],
            check=True,
        )  # fmt: skip
    return archive


def extract_tests(archive: Path, into: Path, rq: str) -> Path:
    """RQ's `tests/` and `pyproject.toml` from `archive` under `into/rq-<rq>/` (the run's root directory)."""
    root = into / f"rq-{rq}"
    if (root / "tests" / "__init__.py").is_file():
        return root
    prefix = f"rq-{rq}/"
    with tarfile.open(archive) as tar:
        members = [
            member
            for member in tar.getmembers()
            if member.name.startswith(prefix) and member.name[len(prefix) :].startswith(MEMBERS)
        ]
        tar.extractall(into, members=members, filter="data")
    return root
