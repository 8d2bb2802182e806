"""Shared fixtures: a fresh store per test, and real kernels in temporary folders."""

from __future__ import annotations

from pathlib import Path

import pytest

import nbtrack
from nbtrack.store import Store
from nbtrack.tracking import fluent
from nbtrack.tracking.session import Session, close_stores
from notebook_helpers import prepare_kernel_environment
from plugin_helpers import ensure_entry_points

ensure_entry_points()  # before any test module imports MLflow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
# Fixtures that start a real kernel: every test using one (directly or through another
# fixture) is marked ``kernel``; tests of the browser modules are marked ``browser``.
KERNEL_FIXTURES = {"kernel_env", "executed"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module.__name__.startswith("test_browser"):
            item.add_marker(pytest.mark.browser)
        elif KERNEL_FIXTURES.intersection(item.fixturenames):
            item.add_marker(pytest.mark.kernel)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_dir: Path):
    """A Store opened directly (no fluent state), closed after the test."""
    with Store(store_dir) as opened:
        yield opened


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The fluent API over a fresh session on a store in ``tmp_path``; runs it left open
    end KILLED and its stores close afterwards.

    Yields the nbtrack module, so tests read like user code: ``tracking.log_metric(...)``.
    """
    monkeypatch.chdir(tmp_path)
    for variable in (
        "NBTRACK_DIR",
        "NBTRACK_TRACKING_URI",
        "NBTRACK_RUN_ID",
        "NBTRACK_EXPERIMENT_NAME",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING",
    ):
        monkeypatch.delenv(variable, raising=False)
    session = Session(tmp_path / "store")
    with fluent.use_session(session):
        yield nbtrack
        session.close("KILLED")
    close_stores()


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder for a real kernel: its store lands in ``<tmp>/.nbtrack``.

    Kernels inherit this process's environment, so NBTRACK_* variables are cleared.
    """
    prepare_kernel_environment(monkeypatch)
    return tmp_path
