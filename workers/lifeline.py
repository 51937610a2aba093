"""Tie every child of a worker to its parent, and cap a work horse's memory.

RQ puts the work horse in its own process group, so `kill -9 <worker pid>` leaves the horse
running: the job would go on there while recovery retries it elsewhere (double execution).
`install()` registers a fork hook in the worker: each child it forks (the horse, RQ's
scheduler process) asks Linux to SIGKILL it when the parent dies (`PR_SET_PDEATHSIG`), and
exits at once if the parent is already gone. Where prctl is unavailable (not Linux), a
daemon thread in the child polls its parent instead.

`limit_memory(mb)` caps the calling process's data segment (`RLIMIT_DATA`: heap and private
mappings, what Python allocates) at its current size plus `mb` megabytes: past it, allocation
raises `MemoryError` in the job instead of the platform's OOM killer taking the whole worker.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import signal
import threading
import time

_PR_SET_PDEATHSIG = 1
_installed = False
_parent_pid = 0
_libc: ctypes.CDLL | None = None


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _prctl_pdeathsig(sig: int) -> bool:
    prctl = getattr(_libc, "prctl", None)
    return prctl is not None and int(prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)


def _before_fork() -> None:
    global _parent_pid
    _parent_pid = os.getpid()


def _after_fork_in_child() -> None:
    parent = _parent_pid
    if not _prctl_pdeathsig(signal.SIGKILL):
        threading.Thread(target=_watch_parent, args=(parent,), name="lifeline", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the request above took effect
        os.kill(os.getpid(), signal.SIGKILL)


def install() -> None:
    """In the worker process: every child forked from now on dies with this process."""
    global _installed, _libc
    if not _installed:
        _libc = _load_libc()
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
        _installed = True


def data_size_bytes() -> int | None:
    """This process's current data segment size (Linux `VmData`), or None where unknown."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def limit_memory(megabytes: int) -> int:
    """Cap this process's data segment at its current size + `megabytes`; returns the cap in bytes."""
    base = data_size_bytes() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cap = base + megabytes * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    return cap
