"""A store that tests of one module share: filled once, with nbtrack's global state reset."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import nbtrack
from conftest import reset_fluent

_CLEARED = ("NBTRACK_DIR", "NBTRACK_TRACKING_URI", "NBTRACK_RUN_ID", "NBTRACK_EXPERIMENT_NAME")


@contextlib.contextmanager
def fluent_store(root: Path) -> Iterator[Path]:
    """The fluent API on a fresh store in ``root / "nbtrack"`` (the working folder ``root``,
    NBTRACK_* variables cleared) for the block; nbtrack's global state reset around it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for variable in _CLEARED:
            patch.delenv(variable, raising=False)
        reset_fluent()
        try:
            nbtrack.set_tracking_uri(root / "nbtrack")
            yield root / "nbtrack"
        finally:
            reset_fluent()
