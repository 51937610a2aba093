"""What a platform (Heroku, Render) builds from the repository: a slug and a runtime-only venv.

- `runtime_venv()`: a virtualenv with `requirements.txt` installed and nothing else (no test or
  lint packages), as the platforms' Python build step makes. Built once per content of
  requirements.txt and Python version, cached under `~/.cache/jobsvc/` (or `$XDG_CACHE_HOME`);
  later runs reuse it in well under a second.
- `slug()`: a copy of the files git would deploy (tracked and not ignored), so nothing that
  only exists in a developer's tree (`.env`, `.venv`, `.data`) takes part.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.procs import ROOT


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jobsvc"


def _base_python() -> str:
    # The interpreter this venv was made from, so the runtime venv inherits nothing from it.
    return getattr(sys, "_base_executable", None) or sys.executable


def runtime_venv() -> Path:
    requirements = (ROOT / "requirements.txt").read_bytes()
    key = hashlib.sha256(requirements + sys.version.encode() + platform.machine().encode()).hexdigest()[:16]
    venv = _cache_dir() / f"runtime-venv-{key}"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"runtime-venv-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test runs build it once
        done = venv / ".requirements-installed"
        if done.is_file():
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # a build that was interrupted
        subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "-r", str(ROOT / "requirements.txt")],
            check=True,
        )  # fmt: skip
        done.write_text(requirements.decode())
    return venv


def slug(destination: Path) -> Path:
    """Copy what git would deploy (tracked and untracked-but-not-ignored files) into `destination`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode()  # fmt: skip
    for relative in filter(None, listed.split("\0")):
        source = ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination
