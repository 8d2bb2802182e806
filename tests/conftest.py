"""Shared fixtures: a fresh store per test, and real kernels in temporary folders."""

from __future__ import annotations

from pathlib import Path

import pytest

import nbtrack
from nbtrack.store import Store
from nbtrack.tracking import fluent
from notebook_helpers import prepare_kernel_environment

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


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
    """The fluent API pointed at a fresh store in ``tmp_path``; state reset afterwards.

    Yields the nbtrack module, so tests read like user code: ``tracking.log_metric(...)``.
    """
    monkeypatch.chdir(tmp_path)
    for variable in (
        "NBTRACK_DIR",
        "NBTRACK_TRACKING_URI",
        "NBTRACK_RUN_ID",
        "NBTRACK_EXPERIMENT_NAME",
        "MLFLOW_EXPERIMENT_NAME",
    ):
        monkeypatch.delenv(variable, raising=False)
    reset_fluent()
    nbtrack.set_tracking_uri(tmp_path / "store")
    yield nbtrack
    reset_fluent()


def reset_fluent() -> None:
    """Forget nbtrack's module state: active runs (ended KILLED), stores, experiment."""
    while fluent._active:
        run = fluent._active.pop()
        run._store.finish_run(run.run_id, "KILLED")
    for opened in fluent._stores.values():
        opened.close()
    fluent._stores.clear()
    fluent._tracking_uri = None
    fluent._experiment_id = None
    fluent._experiment_name = None
    fluent._run_factory = None
    fluent._last_run_id = None
    fluent._known_inputs.clear()


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder for a real kernel: its store lands in ``<tmp>/.nbtrack``.

    Kernels inherit this process's environment, so NBTRACK_* variables are cleared.
    """
    prepare_kernel_environment(monkeypatch)
    return tmp_path
