"""The environment a session runs in: Python, platform, packages, git state, allowed env vars.

It is captured once per process (a kernel session) and stored once per store as a
content-addressed file, ``<store>/environments/<digest>.json``; each run references it by
digest and carries MLflow's git tags. No environment variable is read except those on an
allow-list, and any whose name or value looks secret is stored redacted.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtrack.capture.notebook import notebook_path
from nbtrack.capture.redact import redact
from nbtrack.store.artifacts import write_bytes
from nbtrack.store.records import environment_record
from nbtrack.tracking.context import RunContext
from nbtrack.tracking.identity import os_user

if TYPE_CHECKING:
    from nbtrack.store import Store

ENVIRONMENTS = "environments"

# Variables that change results or explain them, never credentials. Extend with
# NBTRACK_ENV_ALLOWLIST="A,B"; a secret name or value is still redacted.
ALLOWED_VARIABLES = (
    "CONDA_DEFAULT_ENV",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_VISIBLE_DEVICES",
    "LANG",
    "LC_ALL",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "PYTHONHASHSEED",
    "TZ",
    "VIRTUAL_ENV",
)
GIT_TIMEOUT_SECONDS = 5

_lock = threading.Lock()
_session: _Capture | None = None  # the capture of this process, started once
_stored: dict[Path, RunContext] = {}  # store root -> the context of its runs


def capture() -> dict[str, Any]:
    """Capture the environment now: ~10 ms, most of it the ``git`` calls, run side by side."""
    packages = installed_distributions()
    notebook = notebook_path()
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "platform": platform_text(),
        },
        "host": socket.gethostname(),
        "user": os_user(),
        "packages": packages,
        "packages_digest": _sha256("\n".join(packages).encode()),
        "git": git_state(Path(notebook).parent if notebook else Path.cwd()),
        "notebook": notebook,
        "variables": allowed_variables(),
    }


def platform_text() -> str:
    """``platform.platform()``, without the ``uname -p`` process it starts on Linux
    (3-15 ms) for a processor name that Linux leaves out of the text."""
    if not sys.platform.startswith("linux"):
        return platform.platform()
    libc, version = platform.libc_ver()
    parts = [platform.system(), platform.release(), platform.machine()]
    if libc:
        parts += ["with", libc + version]
    return "-".join(parts)


def session_environment() -> dict[str, Any]:
    """This process's environment, captured on first use (or by :func:`prefetch`)."""
    return prefetch().result()


class _Capture:
    """One capture running in a background thread (concurrent.futures costs 10 ms to import)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: dict[str, Any] | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, name="nbtrack-environment", daemon=True).start()

    def _run(self) -> None:
        try:
            self._value = capture()
        except BaseException as error:  # raised again to whoever waits for the result
            self._error = error
        finally:
            self._done.set()

    def result(self) -> dict[str, Any]:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def prefetch() -> _Capture:
    """Start capturing in a background thread, once; ``%load_ext`` calls this so the first
    tracked cell does not wait."""
    global _session
    with _lock:
        if _session is None:
            _session = _Capture()
        return _session


def run_context(store: Store) -> RunContext:
    """The run context provider (tracking/context.py): a record referencing this session's
    environment, and its git tags. The environment file is written to the store the first
    time; later calls cost a dictionary lookup."""
    cached = _stored.get(store.root)
    if cached is None:
        environment = session_environment()
        digest = write(store.root, environment)
        cached = _stored[store.root] = RunContext(
            git_tags(environment.get("git")), [environment_record(digest)]
        )
    return cached


def write(store_root: Path, environment: dict[str, Any]) -> str:
    """Write ``environment`` as ``environments/<sha256>.json`` unless present; return the digest."""
    data = json.dumps(environment, sort_keys=True, indent=1).encode()
    digest = _sha256(data)
    target = Path(store_root) / ENVIRONMENTS / f"{digest}.json"
    if not target.exists():  # content-addressed: a racing writer writes the same bytes
        write_bytes(target, data)
    return digest


def load(store_root: Path, digest: str) -> dict[str, Any]:
    """The environment stored under ``digest``."""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"{digest!r} is not an environment digest.")
    return json.loads((Path(store_root) / ENVIRONMENTS / f"{digest}.json").read_text())


def git_tags(git: dict[str, Any] | None) -> dict[str, str]:
    """MLflow's ``mlflow.source.git.*`` tags for a captured git state."""
    if not git:
        return {}
    tags = {"mlflow.source.git.commit": git["commit"]}
    if git.get("branch"):
        tags["mlflow.source.git.branch"] = git["branch"]
    if git.get("remote"):
        tags["mlflow.source.git.repoURL"] = git["remote"]
    return tags


# -- the parts -----------------------------------------------------------------------------------


def installed_distributions() -> list[str]:
    """``name==version`` of every installed distribution, sorted, first on sys.path wins.

    Read from the ``*.dist-info`` folder names (PEP 376/427 escape ``-`` in both parts),
    which costs one directory listing per path entry instead of parsing ~200 metadata
    files (300 ms); anything else falls back to :mod:`importlib.metadata`.
    """
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            parsed = _dist_info_name(name)
            if parsed is None and name.endswith(".egg-info"):
                parsed = _egg_info_name(Path(entry or ".") / name)
            if parsed is not None:
                found.setdefault(_normalized(parsed[0]), parsed[1])
    return sorted(f"{name}=={version}" for name, version in found.items())


def _dist_info_name(folder: str) -> tuple[str, str] | None:
    if not folder.endswith(".dist-info"):
        return None
    name, sep, version = folder[: -len(".dist-info")].partition("-")
    return (name, version) if sep and name and version else None


def _egg_info_name(path: Path) -> tuple[str, str] | None:
    from importlib.metadata import PathDistribution

    try:
        metadata = PathDistribution(path).metadata
        return metadata["Name"], metadata["Version"]
    except Exception:  # a broken egg must not stop the capture
        return None


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def git_state(folder: Path) -> dict[str, Any] | None:
    """Commit, branch, dirty flag, diff digest and remote of the repository holding ``folder``.

    None when there is no repository or no ``git``. A remote URL's credentials
    (``https://user:token@host/...``) are removed.
    """
    status, root, remote = _git_side_by_side(
        folder,
        ("status", "--porcelain=v2", "--branch", "--untracked-files=no"),
        ("rev-parse", "--show-toplevel"),
        ("config", "--get", "remote.origin.url"),
    )
    if status is None:
        return None
    headers = dict(line[2:].split(" ", 1) for line in status.splitlines() if line.startswith("# "))
    commit = headers.get("branch.oid")
    if not commit or commit == "(initial)":
        return None
    dirty = any(not line.startswith("#") for line in status.splitlines() if line)
    diff = _git(folder, "diff", "HEAD", "--no-color", "--no-ext-diff") if dirty else ""
    branch = headers.get("branch.head")
    return {
        "commit": commit,
        "branch": None if branch in (None, "(detached)") else branch,
        "dirty": dirty,
        "diff_digest": _sha256(diff.encode()) if dirty and diff is not None else None,
        "root": root.strip() if root else None,
        "remote": _without_credentials(remote),
    }


def _git(folder: Path, *args: str) -> str | None:
    return _git_side_by_side(folder, args)[0]


def _git_side_by_side(folder: Path, *commands: tuple[str, ...]) -> list[str | None]:
    """Each git command's output, None where it failed: run at once, as each is mostly a
    process start (2-4 ms)."""
    environment = {**_git_environment(), "GIT_TERMINAL_PROMPT": "0"}
    try:
        processes = [
            subprocess.Popen(
                ["git", "-C", str(folder), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=environment,
            )
            for args in commands
        ]
    except OSError:  # no git
        return [None] * len(commands)
    deadline = time.monotonic() + GIT_TIMEOUT_SECONDS
    return [_output(process, deadline) for process in processes]


def _output(process: subprocess.Popen, deadline: float) -> str | None:
    try:
        output, _ = process.communicate(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return None
    return output if process.returncode == 0 else None


def _git_environment() -> dict[str, str]:
    # git needs PATH and HOME (for its config), nothing else of ours.
    return {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}


def _without_credentials(url: str | None) -> str | None:
    if not url:
        return None
    return re.sub(r"^([a-zA-Z][\w+.-]*://)[^/@]*@", r"\1", url.strip())


def allowed_variables() -> dict[str, str]:
    """The allow-listed environment variables that are set; secret names and values redacted."""
    extra = os.environ.get("NBTRACK_ENV_ALLOWLIST", "")
    names = set(ALLOWED_VARIABLES) | {n.strip() for n in extra.split(",") if n.strip()}
    return {name: redact(name, os.environ[name]) for name in sorted(names) if name in os.environ}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _reset() -> None:
    """Forget the captured environment (tests; a long-lived process after ``pip install``)."""
    global _session
    with _lock:
        _session = None
    _stored.clear()
