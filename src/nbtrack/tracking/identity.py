"""Who is acting: the user recorded as ``mlflow.user`` and in the registry's audit trail."""

from __future__ import annotations

import functools
import getpass
import os


def current_user() -> str:
    """``$NBTRACK_USER``, else MLflow's ``$MLFLOW_TRACKING_USERNAME``, else the OS user."""
    for variable in ("NBTRACK_USER", "MLFLOW_TRACKING_USERNAME"):
        configured = os.environ.get(variable, "").strip()
        if configured:
            return configured
    return os_user()


@functools.cache
def os_user() -> str:
    """The operating system's name for the user running this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"
