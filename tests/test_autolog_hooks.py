"""The other autolog integrations: pandas readers, system metrics, matplotlib figures (in a
real kernel), and turning integrations on and off by name and by magic."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import pandas as pd
import pytest

import nbtrack
from nbtrack.errors import InvalidParameterError
from nbtrack.store import Store
from test_kernel import Kernel, runs_by_name


@pytest.fixture
def autolog_off():
    yield
    nbtrack.autolog(disable=True)


def test_dataframes_read_in_a_run_become_inputs_outside_none(tracking, tmp_path, autolog_off):
    path = tmp_path / "train.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["a", "b", "a"]}).to_csv(path, index=False)
    original = pd.read_csv
    nbtrack.autolog(integrations="pandas")
    assert pd.read_csv is not original

    outside = pd.read_csv(path)  # no run: nothing is logged and no run starts
    assert tracking.active_run() is None and tracking.search_runs(output_format="list") == []
    with tracking.start_run() as run:
        frame = pd.read_csv(path)
        pd.read_csv(str(path))  # the same file and content again: one input
    pd.testing.assert_frame_equal(frame, outside)
    [dataset] = tracking.get_run(run.info.run_id).inputs.dataset_inputs
    expected = nbtrack.data.from_pandas(frame, source=str(path), name="train.csv")
    assert dataset.dataset._asdict() == {
        "name": "train.csv",
        "digest": expected.digest,
        "source_type": "local",
        "source": expected.source,
        "schema": expected.schema,
        "profile": expected.profile,
    }
    assert str(path) in dataset.dataset.source

    nbtrack.autolog(integrations="pandas", disable=True)
    assert pd.read_csv is original


def test_system_metrics_per_run_and_sampled(tracking, monkeypatch, autolog_off):
    monkeypatch.setenv("NBTRACK_SYSTEM_SAMPLING_SECONDS", "0.1")
    nbtrack.autolog(integrations="system")
    with tracking.start_run() as run:
        started = time.process_time()
        while time.process_time() - started < 0.3:  # keep a CPU busy for a while
            pass
        big = bytearray(150_000_000)  # a new memory high for this process
        time.sleep(0.3)
        del big
    metrics = tracking.get_run(run.info.run_id).data.metrics
    assert metrics["system/wall_time_seconds"] >= 0.6
    assert metrics["system/cpu_time_seconds"] >= 0.25
    assert metrics["system/peak_memory_megabytes"] >= 150
    history = tracking.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert len(history) >= 2 and [m.step for m in history][:2] == [1, 2]
    assert "system/system_memory_usage_megabytes" in metrics

    nbtrack.autolog(integrations="system", disable=True)
    with tracking.start_run() as plain:
        pass
    assert tracking.get_run(plain.info.run_id).data.metrics == {}


def test_autolog_names_and_errors(autolog_off):
    assert nbtrack.autologging.resolve("sklearn, figures") == ["sklearn", "matplotlib"]
    assert "system" not in nbtrack.autologging.resolve(None, exclude=["system"])
    with pytest.raises(InvalidParameterError, match="Unknown autolog integration 'keras'"):
        nbtrack.autolog(integrations=["keras"])
    nbtrack.autolog(integrations="pandas,system")
    assert nbtrack.autologging.enabled_integrations() == ("pandas", "system")
    nbtrack.autolog(disable=True)
    assert nbtrack.autologging.enabled_integrations() == ()


# -- in a real kernel ------------------------------------------------------------------------


@pytest.fixture
def kernel(kernel_env: Path):
    started = Kernel(kernel_env)
    started.ok("%load_ext nbtrack\nimport nbtrack")
    yield started
    started.close()


FIGURE = "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 3, 2])"


def _shown_pngs(cell) -> list[bytes]:
    return [base64.b64decode(d["image/png"]) for d in cell.displays if "image/png" in d]


def test_figures_a_tracked_cell_shows_are_saved_once_each(kernel, kernel_env):
    # The inline backend's printer exists before autolog starts (the notebook test covers
    # one registered afterwards, by the first pyplot import inside a tracked cell).
    kernel.ok("%matplotlib inline")
    on = kernel.ok("%track autolog on matplotlib,system")
    assert "autolog: matplotlib, system" in on.stdout
    untracked = kernel.ok(FIGURE)  # shown, but no run: not saved
    assert len(_shown_pngs(untracked)) == 1
    cell = kernel.ok(
        "%%track --name plots\n" + FIGURE + "\nplt.show()\ndisplay(fig)\n"
        "fig2, ax2 = plt.subplots()\nax2.bar([1, 2], [3, 4])"
    )
    shown = _shown_pngs(cell)
    assert len(shown) == 3  # plt.show(), display(fig) of the same figure, fig2 at the end

    store = kernel_env / ".nbtrack"
    runs = runs_by_name(store)
    assert list(runs) == ["plots"]
    run_id = runs["plots"]["run_id"]
    with Store(store) as opened:
        folder = opened.artifact_dir(run_id) / "figures"
        saved = {p.name: p.read_bytes() for p in folder.iterdir()}
        paths = [r["path"] for r in opened.records(run_id) if r["op"] == "artifact"]
    # Two distinct images: stored once each, exactly the bytes the notebook showed.
    assert sorted(saved.values()) == sorted(set(shown))
    assert all(name == f"{hashlib.sha256(b).hexdigest()[:16]}.png" for name, b in saved.items())
    assert len(paths) == 2
    assert "system/wall_time_seconds" in runs["plots"]["metrics"]

    kernel.ok("%track autolog off")
    kernel.ok("%%track --name after\n" + FIGURE)
    after = runs_by_name(store)["after"]
    with Store(store) as opened:
        assert not opened.artifact_dir(after["run_id"]).exists()


def test_the_autolog_magic_reports_usage_errors(kernel):
    bad = kernel.run("%track autolog maybe")
    assert (bad.status, bad.reply["ename"]) == ("error", "UsageError")
    assert "on|off" in bad.reply["evalue"]
    unknown = kernel.run("%track autolog on tensorflow")
    assert unknown.status == "error" and "tensorflow" in unknown.reply["evalue"]
