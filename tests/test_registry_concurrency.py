"""Two processes promoting different versions of one model at the same moment.

Each round starts two interpreters that wait at a file barrier and then promote at once.
The store lock serializes the two transactions, so exactly one version ends in Production
and both moves are in the history, whichever won.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model_helpers import register, store_path
from nbtrack import registry

pytestmark = pytest.mark.slow  # several processes promoting at once

ROOT = Path(__file__).resolve().parents[1]
PROMOTE = """
import os, sys, time
from pathlib import Path
import nbtrack
from nbtrack import registry

model, version, barrier = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
nbtrack.set_tracking_uri(sys.argv[4])
registry.get_registered_model(model)  # open the store and fold the registry before the race
(barrier / f"ready-{version}").touch()
while not (barrier / "go").exists():
    time.sleep(0.001)
try:
    registry.promote(model, version, "Production", reason=f"process {os.getpid()} wants v{version}")
    print("promoted")
except registry.TransitionRefused as refused:
    print("refused:", refused.checks[0].actual)
"""


def _race(store: Path, barrier: Path, model: str, versions: tuple[int, int]) -> list[str]:
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NBTRACK_USER": "racer"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROMOTE, model, str(v), str(barrier), str(store)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in versions
    ]
    deadline = time.monotonic() + 120
    while not all((barrier / f"ready-{v}").exists() for v in versions):
        assert time.monotonic() < deadline, [p.poll() for p in procs]
        time.sleep(0.01)
    (barrier / "go").touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    return outputs


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_promotions_leave_one_production_version_and_both_events(
    tracking, tmp_path: Path, round_: int
) -> None:
    model = f"churn-{round_}"
    register(tracking, model, 0.8)
    register(tracking, model, 0.9)
    tracking.flush()
    outputs = _race(store_path(tracking), tmp_path / "barrier", model, (1, 2))
    assert outputs == ["promoted", "promoted"]

    stages = {
        v.version: v.current_stage for v in registry.search_model_versions(f"name = '{model}'")
    }
    assert sorted(stages.values()) == ["Archived", "Production"]
    history = registry.history(model)
    moves = history[history["event"] == "version.stage"]
    into_production = moves[moves["to"] == "Production"]
    assert sorted(into_production["version"]) == [1, 2]
    assert set(into_production["who"]) == {"racer"}
    winner = int(into_production["version"].iloc[-1])  # the later move wins
    assert stages[winner] == "Production"
    archived = moves[moves["to"] == "Archived"]
    assert list(archived["version"]) == [3 - winner]
    assert list(history["seq"]) == list(range(1, len(history) + 1))  # no event lost or torn


def test_a_gate_checked_under_the_lock_keeps_the_stronger_version(tracking, tmp_path: Path) -> None:
    register(tracking, "fraud", 0.95)
    register(tracking, "fraud", 0.85)
    registry.set_policy("fraud", production=["beats:metrics.val_auc"])
    tracking.flush()
    outputs = _race(store_path(tracking), tmp_path / "barrier", "fraud", (1, 2))
    # v2 is refused if v1 got there first; if v2 went first, v1 then beats it.
    assert outputs[0] == "promoted"
    assert outputs[1] in ("promoted", "refused: 0.85 vs 0.95 (incumbent version 1)")
    production = registry.get_latest_versions("fraud", ["Production"])
    assert [v.version for v in production] == [1]
