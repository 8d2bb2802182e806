"""Real ``import mlflow`` in a real kernel with ``%load_ext nbtrack``: MLflow's runs carry the
notebook, the cell, the execution trace and stale verdict; inside a ``%%track`` cell MLflow
logs into the cell's run; nbtrack's run table, curves and ``nbtrack show`` show them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbtrack.store import Store
from test_kernel import Kernel, cell_record, runs_by_name

ROOT = Path(__file__).resolve().parents[1]
PLAIN = (
    "with mlflow.start_run(run_name='plain'):\n"
    "    mlflow.log_param('alpha', alpha)\n"
    "    for step in range(3):\n"
    "        mlflow.log_metric('loss', 1 / (step + 1) * alpha, step=step)"
)
TRACKED = (
    "%%track --name tracked\n"
    "beta = 2\n"
    "with mlflow.start_run():\n"
    "    mlflow.log_param('gamma', 3)\n"
    "    mlflow.log_metric('acc', 0.9)\n"
    "    with mlflow.start_run(run_name='inner', nested=True):\n"
    "        mlflow.log_metric('acc', 0.5)"
)
AUTOSTARTED = "%%track --name autostarted\nmlflow.log_metric('f1', 0.7)"


@pytest.fixture
def nb(kernel_env: Path):
    notebook = kernel_env / "analysis.ipynb"
    env = {
        **os.environ,
        "JPY_SESSION_NAME": str(notebook),
        "MLFLOW_TRACKING_URI": "nbtrack:.nbtrack",
    }
    kernel = Kernel(kernel_env, env=env)
    kernel.ok("%load_ext nbtrack\nimport mlflow, nbtrack", cell_id="setup")
    yield kernel
    kernel.close()


def _journal(store: Path, run_id: str, op: str) -> list[dict]:
    with Store(store) as opened:
        return opened.records(run_id, op)


def test_mlflow_runs_in_a_kernel_are_nbtrack_runs(nb: Kernel, kernel_env: Path) -> None:
    import nbformat  # here: importing it takes seconds, and collection needs no kernel

    store = kernel_env / ".nbtrack"
    notebook = str(kernel_env / "analysis.ipynb")
    nb.ok("alpha = 0.5", cell_id="c-alpha")
    plain = nb.ok(PLAIN, cell_id="c-plain")
    nb.ok(TRACKED, cell_id="c-tracked")
    nb.ok(AUTOSTARTED, cell_id="c-auto")
    after = nb.ok("print(mlflow.active_run())", cell_id="c-after")
    assert after.stdout.strip() == "None"  # the cell ended the run MLflow had started
    nb.ok("alpha = 0.1", cell_id="c-tweak")  # a cell further down changes alpha...
    nb.ok(PLAIN.replace("'plain'", "'stale'"), cell_id="c-plain")  # ...and the cell reruns

    runs = runs_by_name(store)
    assert sorted(runs) == ["autostarted", "inner", "plain", "stale", "tracked"]

    row = runs["plain"]
    assert row["status"] == "FINISHED" and row["params"] == {"alpha": "0.5"}
    assert row["tags"]["mlflow.source.name"] == notebook
    assert row["tags"]["mlflow.source.type"] == "NOTEBOOK"
    cell = cell_record(store, row["run_id"])
    assert (cell["notebook"], cell["cell_id"]) == (notebook, "c-plain")
    assert cell["execution_count"] == plain.execution_count
    assert cell["source"] == PLAIN
    [trace] = _journal(store, row["run_id"], "trace")
    # The cells the run read from (the import, alpha), then its own.
    assert [c["cell_id"] for c in trace["slice"]][-2:] == ["c-alpha", "c-plain"]
    assert not trace["stale"]
    assert len(_journal(store, row["run_id"], "environment")) == 1

    stale = runs["stale"]
    assert stale["stale"].startswith("out of order")
    assert stale["tags"]["nbtrack.stale"] == stale["stale"]

    # One run per %%track cell: MLflow's start_run joined it, its nested run is a child.
    tracked = runs["tracked"]
    assert tracked["params"] == {"beta": "2", "gamma": "3"}
    assert tracked["metrics"]["acc"][0] == 0.9
    assert runs["inner"]["tags"]["mlflow.parentRunId"] == tracked["run_id"]
    assert runs["autostarted"]["metrics"]["f1"][0] == 0.7
    assert runs["autostarted"]["status"] == "FINISHED"

    # nbtrack's panels and commands in the kernel show MLflow's runs.
    table = nb.ok("%track runs").result
    for name in ("plain", "stale", "tracked"):
        assert name in table["text/plain"]
    assert "out of order" in table["text/plain"]
    details = nb.ok("nbtrack.run_details('plain')").result["text/plain"]
    assert "notebook=" + notebook in details and "cell_id=c-plain" in details
    assert "mlflow.log_param('alpha', alpha)" in details
    curves = nb.ok(
        "c = nbtrack.metric_curves(['plain']); print([(s['metric'], s['n']) for s in c.series])"
    )
    assert curves.stdout.strip() == "[('loss', 3)]"
    written = nb.ok("print(nbtrack.reproduce('plain').notebook)").stdout.strip()
    sources = [c.source for c in nbformat.read(written, as_version=4).cells]
    assert any("alpha = 0.5" in s for s in sources) and PLAIN in sources


def test_nbtrack_show_and_the_run_table_read_mlflow_runs(nb: Kernel, kernel_env: Path) -> None:
    nb.ok("alpha = 0.5", cell_id="c-alpha")
    nb.ok(PLAIN, cell_id="c-plain")
    store = kernel_env / ".nbtrack"
    runs_by_name(store)
    shown = subprocess.run(
        [sys.executable, "-m", "nbtrack", "--store", str(store), "show", "plain"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "alpha = 0.5" in shown.stdout and "loss = 0.1666" in shown.stdout
    assert "cell_id=c-plain" in shown.stdout and "analysis.ipynb" in shown.stdout
