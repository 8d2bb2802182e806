"""A store that tests of one module share: filled once, through a session of its own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbtrack.tracking import fluent
from nbtrack.tracking.session import Session, close_stores

_CLEARED = (
    "NBTRACK_DIR",
    "NBTRACK_TRACKING_URI",
    "NBTRACK_RUN_ID",
    "NBTRACK_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_NAME",
)


@contextlib.contextmanager
def fluent_store(root: Path) -> Iterator[Path]:
    """The fluent API on a fresh session and store in ``root / "nbtrack"`` (the working
    folder ``root``, NBTRACK_* variables cleared) for the block."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for variable in _CLEARED:
            patch.delenv(variable, raising=False)
        session = Session(root / "nbtrack")
        with fluent.use_session(session):
            try:
                yield root / "nbtrack"
            finally:
                session.close("KILLED")
        close_stores()
