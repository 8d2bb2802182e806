"""Every notebook in notebooks/ runs again, top to bottom, in the same place, with the same
result: no new error, and the same runs, metrics and registry moves as the first time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from nbtrack.store import Store
from notebook_helpers import code_cells, execute_notebook, outputs, scratch_store

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NOT_REPRODUCIBLE = {"system/", "training_"}  # timings; none of the notebooks log random data


def _errors(nb: Any) -> list[str]:
    """The cells that raised, by their first line (some raise on purpose, tagged so)."""
    return [
        "".join(cell.source).splitlines()[0] for cell in code_cells(nb) if outputs(cell, "error")
    ]


def _tables(store_path: Path) -> dict[str, Any]:
    """What the notebook's tables show: each experiment's runs (name, status, params,
    metrics) and the registry's moves, without ids, times or durations."""
    with Store(store_path) as store:
        names = {e["experiment_id"]: e["name"] for e in store.experiments()}
        runs = sorted(
            (
                names[r["experiment_id"]],
                r.get("run_name", ""),
                r["status"],
                tuple(sorted(r.get("params", {}).items())),
                tuple(
                    sorted(
                        (k, round(p[0], 6) if math.isfinite(p[0]) else str(p[0]))
                        for k, p in r.get("metrics", {}).items()
                        if not k.startswith(tuple(NOT_REPRODUCIBLE))
                    )
                ),
            )
            for r in store.runs()
        )
        with store.registry.reading() as state:
            moves = [
                (e["op"], e.get("model"), e.get("version"), e.get("to"), e.get("reason"))
                for e in state.events
            ]
    return {"runs": runs, "registry": moves}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_a_notebook_runs_twice_in_one_place_with_the_same_result(notebook: Path, kernel_env):
    first = execute_notebook(notebook, kernel_env, allow_errors=True)
    second = execute_notebook(notebook, kernel_env, allow_errors=True)
    assert _errors(second) == _errors(first)
    assert scratch_store(second) != scratch_store(first)
    assert _tables(scratch_store(second)) == _tables(scratch_store(first))
    assert _tables(scratch_store(first))["runs"], "the notebook made no runs"
