"""notebooks/registry.ipynb, executed headless by nbclient in a real kernel.

Train two models, register both, the gate refuses the weaker one, a forced move with its
reason, the better one promoted with a reason, a rollback, and the history: the tests check
the cells' outputs and the registry the kernel left in ``<workdir>/.nbtrack``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nbtrack.store import Store
from notebook_helpers import cell_starting, code_cells, execute_notebook, outputs, scratch_store

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "registry.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    workdir = tmp_path_factory.mktemp("registry")
    nb = execute_notebook(NOTEBOOK, workdir, env={"NBTRACK_USER": "dana"})
    yield SimpleNamespace(nb=nb, store=scratch_store(nb))


def _events(executed) -> list[dict[str, Any]]:
    lines = (executed.store / "registry.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_only_the_tagged_cell_errors(executed) -> None:
    import nbformat  # here: importing it takes seconds, and collection needs no kernel

    nbformat.validate(executed.nb)
    errored = [c for c in code_cells(executed.nb) if outputs(c, "error")]
    assert [c.metadata.get("tags") for c in errored] == [["raises-exception"]]


def test_the_gate_refuses_the_weaker_model_listing_the_failed_check(executed) -> None:
    cell = cell_starting(executed.nb, '%track promote cancer 1 --to Production --reason "ship')
    [error] = outputs(cell, "error")
    assert error["ename"] == "TransitionRefused"
    with Store(executed.store) as store, store.registry.reading() as state:
        baseline_auc = state.version(state.names["cancer"], 1)["metrics"]["val_auc"][0]
    assert baseline_auc < 0.95
    assert (
        f"[FAIL] metrics.val_auc >= 0.95 (actual: metrics.val_auc = {baseline_auc:.6g})"
        in error["evalue"]
    )
    assert "1 of 2 check(s) failed" in error["evalue"]


def test_the_registry_records_every_move_with_who_and_why(executed) -> None:
    events = _events(executed)
    assert [e["op"] for e in events] == [
        "model.create",
        "model.policy",
        "version.create",
        "version.create",
        "version.stage",
        "version.stage",
        "version.stage",
        "alias.set",
        "version.rollback",
        "alias.set",  # the rollback moves @champion off the version it archives
    ]
    assert {e["who"] for e in events} == {"dana"}
    forced, promoted, archived = events[4:7]
    assert (forced["version"], forced["to"], forced["forced"]) == (1, "Production", True)
    assert forced["reason"].startswith("launch deadline")
    assert [c["passed"] for c in forced["checks"]] == [False, True]
    assert (promoted["version"], promoted["forced"]) == (2, False)
    assert [c["passed"] for c in promoted["checks"]] == [True, True]
    assert promoted["checks"][1]["actual"].endswith("(incumbent version 1)")
    assert (archived["version"], archived["to"], archived["cause"]) == (
        1,
        "Archived",
        promoted["seq"],
    )
    rollback, moved = events[-2:]
    assert (rollback["version"], rollback["from"]) == (1, 2)
    assert rollback["reason"] == "forest p99 latency is 4x the serving budget"
    assert (moved["alias"], moved["version"]) == ("champion", 1)
    assert moved["reason"] == "rollback: forest p99 latency is 4x the serving budget"
    with Store(executed.store) as store, store.registry.reading() as state:
        model_id = state.names["cancer"]
        stages = {v["version"]: v["current_stage"] for v in state.versions_of(model_id)}
        assert stages == {1: "Production", 2: "Archived"}
        assert state.model("cancer")["aliases"] == {"champion": 1}


def test_loading_by_alias_and_stage(executed) -> None:
    [champion] = outputs(
        cell_starting(executed.nb, "champion = nbtrack.load_model"), "execute_result"
    )
    assert champion["data"]["text/plain"].startswith("array([")
    [restored] = outputs(
        cell_starting(executed.nb, 'nbtrack.load_model("models:/cancer/Production")'),
        "execute_result",
    )
    assert restored["data"]["text/plain"].startswith("LogisticRegression(")


def test_registry_view_and_history_are_shown(executed) -> None:
    [view] = outputs(cell_starting(executed.nb, "%track registry cancer"), "execute_result")
    html, text = view["data"]["text/html"], view["data"]["text/plain"]
    assert 'class="nbtrack-registry"' in html and "<script" not in html
    assert "cancer (2 versions)" in text and "version.rollback" in text
    assert "1/2 passed (forced)" in text
    [history] = outputs(
        cell_starting(executed.nb, 'history = registry.history("cancer")'), "execute_result"
    )
    assert "version.rollback" in history["data"]["text/plain"]
    assert "<table" in history["data"]["text/html"]
