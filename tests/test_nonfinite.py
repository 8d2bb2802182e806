"""NaN and infinities (a diverged loss) survive every path a metric value takes through a store.

JSON has no NaN, and orjson writes one as ``null`` without a word, so every place that
serializes a metric value must spell it. The paths: the run's journal, the catalog's
change log and snapshot, ``nbtrack doctor`` (and ``--rebuild``) indexing a run from its
journal, another process's refresh, the registry's mirror in the catalog, and reads
(``get_run``, ``search_runs``, ``get_metric_history``) in the logging process and others.
Every "other process" here is a real one.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from model_helpers import logged_run, store_path
from nbtrack.store import Store
from process_helpers import paused_child

pytestmark = pytest.mark.slow  # several processes read one store

# Per step, one value of each metric; the last row makes every latest value non-finite.
POINTS = [
    {"loss": 1.0, "acc": 0.5, "low": 0.25},
    {"loss": math.nan, "acc": math.inf, "low": -math.inf},
]
LATEST = {"loss": "nan", "acc": "inf", "low": "-inf"}  # repr() of each latest value
HISTORY = {key: [repr(point[key]) for point in POINTS] for key in POINTS[0]}

# Shared by the logger and the reader: what a process sees of the run, floats as repr().
DESCRIBE = textwrap.dedent(
    """
    import nbtrack

    def describe(run_id):
        run = nbtrack.get_run(run_id)
        frame = nbtrack.search_runs(search_all_experiments=True)
        infinite = nbtrack.search_runs(
            search_all_experiments=True, filter_string="metrics.acc > 1e300"
        )
        return {
            "status": run.info.status,
            "metrics": {k: repr(v) for k, v in run.data.metrics.items()},
            "history": {
                key: [repr(m.value) for m in nbtrack.get_metric_history(run_id, key)]
                for key in ("loss", "acc", "low")
            },
            "frame": {k: repr(float(frame[f"metrics.{k}"][0])) for k in ("loss", "acc", "low")},
            "infinite": list(infinite["run_id"]),
        }
    """
)

# The logging process. No background commits (the interval is an hour), so when it stops
# at the barrier the run is in its journal but not in the catalog, as in the second after
# a cell ends: another process must index it from the journal. It ends without end_run,
# so the exit hook ends it.
LOGGER = DESCRIBE + textwrap.dedent(
    """
    import json, math, sys
    from nbtrack.store import writer

    writer.FLUSH_INTERVAL_SECONDS = 3600.0
    points = json.loads(sys.argv[2])
    nbtrack.set_tracking_uri(sys.argv[1])
    run = nbtrack.start_run(run_name="diverged")
    for step, values in enumerate(points):
        nbtrack.log_metrics(values, step=step)
    nbtrack.get_metric_history(run.info.run_id, "loss")  # writes the journal, commits nothing
    print(run.info.run_id, flush=True)
    sys.stdin.readline()  # the other process runs now
    seen = {"before_flush": describe(run.info.run_id)}
    nbtrack.flush()
    seen["after_flush"] = describe(run.info.run_id)
    print(json.dumps(seen), flush=True)
    """
)

READER = DESCRIBE + textwrap.dedent(
    """
    import json, sys

    nbtrack.set_tracking_uri(sys.argv[1])
    print(json.dumps(describe(sys.argv[2])))
    """
)


def _python(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120
    )


def _cli(store_dir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nbtrack.cli", "--store", str(store_dir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _expected(run_id: str, status: str) -> dict:
    return {
        "status": status,
        "metrics": LATEST,
        "history": HISTORY,
        "frame": LATEST,
        "infinite": [run_id],
    }


def _latest(store: Store, run_id: str) -> dict[str, str]:
    return {key: repr(point[0]) for key, point in store.get_run(run_id)["metrics"].items()}


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "other",
    [["doctor"], ["doctor", "--rebuild"], ["show", "{run_id}"]],
    ids=["doctor", "rebuild", "show"],
)
def test_nan_latest_metric_survives_another_process_indexing_the_run(
    store_dir: Path, other: list[str]
) -> None:
    """The issue's bug: after another process indexed the run, every read in the logging
    process raised TypeError in rows._newer (the NaN had come back as null)."""
    watcher = Store(store_dir)  # a long-lived third process's view: it refreshes
    with paused_child(LOGGER, str(store_dir), json.dumps(POINTS)) as (logger, run_id):
        done = _cli(store_dir, *[arg.format(run_id=run_id) for arg in other])
        assert done.returncode == 0, done.stdout + done.stderr
        out, err = logger.communicate("go\n", timeout=120)
    assert logger.returncode == 0, err
    assert "Traceback" not in err and "Error" not in err, err
    seen = json.loads(out)
    assert seen["before_flush"] == _expected(run_id, "RUNNING")
    assert seen["after_flush"] == _expected(run_id, "RUNNING")

    # The exit hook ended the run; a fresh process and the watcher's refresh agree.
    reader = _python(READER, str(store_dir), run_id)
    assert reader.returncode == 0, reader.stderr
    assert json.loads(reader.stdout) == _expected(run_id, "FINISHED")
    assert _latest(watcher, run_id) == LATEST

    # Rebuilt from the journals into a new snapshot: read by a fresh process and a refresh.
    rebuilt = _cli(store_dir, "doctor", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    reader = _python(READER, str(store_dir), run_id)
    assert json.loads(reader.stdout) == _expected(run_id, "FINISHED")
    assert _latest(watcher, run_id) == LATEST
    checked = _cli(store_dir, "doctor")
    assert checked.returncode == 0 and "store is healthy" in checked.stdout, checked.stdout
    watcher.close()


def test_doctor_sees_a_changed_nan_metric_as_drift(store_dir: Path) -> None:
    """Doctor compares NaN latest values too (NaN != NaN must not hide or fake drift)."""
    with Store(store_dir) as store:
        writer = store.create_run("0", run_name="r", user_id="u", tags={})
        writer.points.extend(("loss", math.nan, 0, 1000.0))
        store.finish_run(writer.run_id, "FINISHED")
        store.flush()
        run_id = writer.run_id
    checked = _cli(store_dir, "doctor")
    assert checked.returncode == 0 and "store is healthy" in checked.stdout, checked.stdout
    with Store(store_dir) as store:  # the catalog's NaN is now at step 7, the journal's at 0
        store.catalog.stage("runs", run_id, {"set": {"metrics": {"loss": [math.nan, 7, 1000]}}})
        store.catalog.commit()
    checked = _cli(store_dir, "doctor")
    assert checked.returncode == 1 and "differ from their journal" in checked.stdout


def test_registry_mirror_keeps_non_finite_metrics_for_other_processes(tracking) -> None:
    """A model version's metrics reach the catalog's model_versions table (read by the
    panels) through the change log: another process must read NaN and inf, not null."""
    run_id = logged_run(tracking, math.nan, loss=math.inf)
    tracking.register_model(f"runs:/{run_id}/model", "churn")
    tracking.flush()
    script = textwrap.dedent(
        """
        import json, sys
        from nbtrack.store import Store

        with Store(sys.argv[1]) as store:
            [row] = store.catalog.documents("model_versions")
            print(json.dumps({k: repr(p[0]) for k, p in row["metrics"].items()}))
        """
    )
    reader = _python(script, str(store_path(tracking)))
    assert reader.returncode == 0, reader.stderr
    assert json.loads(reader.stdout) == {"val_auc": "nan", "loss": "inf"}
