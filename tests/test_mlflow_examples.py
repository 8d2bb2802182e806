"""MLflow's own examples run with ``import nbtrack as mlflow`` (see tests/mlflow_examples/).

Each script runs in a fresh interpreter against a temporary store (NBTRACK_DIR); the test
then checks that MLflow itself was never imported, what the script printed, and what it
left in the store.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nbtrack.store import Store

pytestmark = pytest.mark.slow  # MLflow's own examples, end to end

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = Path(__file__).resolve().parent / "mlflow_examples"


def _run(script: str, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import json, runpy, sys; "
        f"sys.argv = [{script!r}, *{list(args)!r}]; "
        f"runpy.run_path({str(EXAMPLES / script)!r}, run_name='__main__'); "
        "print('MLFLOW_IMPORTED=' + json.dumps('mlflow' in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NBTRACK_DIR": str(workdir / "store")}
    for variable in ("NBTRACK_TRACKING_URI", "NBTRACK_RUN_ID", "NBTRACK_USER"):
        env.pop(variable, None)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "MLFLOW_IMPORTED=false" in result.stdout  # nbtrack did all the work
    return result


@pytest.mark.parametrize("args", [(), ("0.1", "0.2")])
def test_sklearn_elasticnet_wine_example(tmp_path: Path, args: tuple[str, ...]) -> None:
    import nbtrack

    result = _run("sklearn_elasticnet_wine.py", tmp_path, *args)
    alpha, l1_ratio = (float(a) for a in args) if args else (0.5, 0.5)
    assert f"Elasticnet model (alpha={alpha:f}, l1_ratio={l1_ratio:f}):" in result.stdout
    printed = {k.lower(): float(v) for k, v in re.findall(r"  (RMSE|MAE|R2): (\S+)", result.stdout)}
    with Store(tmp_path / "store") as store:
        [run] = store.runs()
        assert run["status"] == "FINISHED"
        assert run["params"] == {"alpha": str(alpha), "l1_ratio": str(l1_ratio)}
        assert {k: p[0] for k, p in run["metrics"].items()} == printed
        assert store.registry.path.exists() is False  # a file: store, so the example skips it
    from nbtrack.tracking import fluent
    from nbtrack.tracking.session import Session, close_stores

    with fluent.use_session(Session(tmp_path / "store")):
        model = nbtrack.sklearn.load_model(f"runs:/{run['run_id']}/model")
    close_stores()
    assert type(model).__name__ == "ElasticNet"
    assert (model.alpha, model.l1_ratio) == (alpha, l1_ratio)


def test_model_registry_workflow_documentation(tmp_path: Path) -> None:
    result = _run("model_registry_workflow.py", tmp_path)
    out = result.stdout
    assert (
        "create_registered_model raised: Registered model 'sk-learn-random-forest-reg-model'" in out
    )
    assert "alias Champion -> 2" in out
    # The documentation's printed output, before and after the registry round trip.
    expected = (
        "Coefficients: \n [938.23786125]\n"
        "Mean squared error: 2548.07\n"
        "Coefficient of determination: 0.47"
    )
    assert out.count(expected) == 2
    assert "'current_stage': 'None'" in out and "'name': 'sk-learn-random-forest-reg-model'" in out
    assert "workflow done" in out
    assert result.stderr.count("MissingReasonWarning") == 3
    assert "model_registry_workflow.py" in result.stderr  # the warning points at the caller

    events = [
        json.loads(line)
        for line in (tmp_path / "store" / "registry.jsonl").read_text().splitlines()
    ]
    by_model: dict[str, list[dict]] = {}
    for event in events:
        by_model.setdefault(event["model"], []).append(event)
    forest = by_model["sk-learn-random-forest-reg-model"]
    stages = [
        (e["version"], e["from"], e["to"], e["reason"])
        for e in forest
        if e["op"] == "version.stage"
    ]
    assert stages == [
        (2, "None", "Staging", "no reason given"),
        (3, "None", "Production", "no reason given"),
        (3, "Production", "Archived", "no reason given"),
    ]
    assert [e["op"] for e in forest][-4:] == ["version.delete"] * 3 + ["model.delete"]
    with Store(tmp_path / "store") as store, store.registry.reading() as state:
        assert sorted(state.names) == [
            "SklearnLinearRegression",
            "example-model",
            "regression-model-production",
            "regression-model-staging",
            "sk-learn-random-forest-reg",
        ]
        copied = state.versions_of(state.names["regression-model-production"])
        assert [v["version"] for v in copied] == [1]
        assert state.model("example-model")["aliases"] == {}  # "Champion" is "champion"
    moves = [
        (e["op"], e.get("from"), e["version"]) for e in by_model["example-model"] if "alias" in e
    ]
    assert moves == [("alias.set", None, 1), ("alias.set", 1, 2), ("alias.delete", None, 2)]
