"""Who is writing a run, and whether that process still lives.

A RUNNING run records its host, pid and the pid's start time. On the same host a run
whose process is gone (or whose pid now belongs to a younger process) was killed.
"""

from __future__ import annotations

import functools
import os
import socket
from typing import TypedDict


class ProcessIdentity(TypedDict):
    host: str
    pid: int
    started: float  # the process's creation time, seconds since the epoch


def current_process() -> ProcessIdentity:
    return _identity(os.getpid())  # keyed by pid so a forked child gets its own


@functools.cache
def _identity(pid: int) -> ProcessIdentity:
    import psutil  # deferred: ~40 ms to import, and only needed once a run starts

    return {"host": socket.gethostname(), "pid": pid, "started": _rounded(psutil.Process(pid))}


def is_alive(identity: ProcessIdentity | None) -> bool | None:
    """True or False when it can be known from here, None for another host or no record."""
    if not identity or identity.get("host") != socket.gethostname():
        return None
    import psutil

    try:
        process = psutil.Process(identity["pid"])
        if process.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped by its parent
            return False
        started = _rounded(process)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # it exists; we cannot prove it is another process
        return True
    # A pid is reused by a process that started later than the one we recorded.
    return abs(started - identity["started"]) < 0.05


def _rounded(process: object) -> float:
    return round(process.create_time(), 2)  # type: ignore[attr-defined]
