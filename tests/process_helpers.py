"""Real child processes for tests: a Python script that stops at a point until told to go on."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def paused_child(script: str, *args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """Run ``script`` with ``args``; yield the process and the first line it prints (say,
    a run id), after which the script should wait for a line on stdin. Send it one with
    ``communicate("go\\n")``. A child still running when the block ends is killed."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline().strip()
        assert line, child.communicate(timeout=60)[1]
        yield child, line
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
