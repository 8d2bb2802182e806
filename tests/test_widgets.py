"""The panels' Python side, without a browser: state, intents, actions, static forms,
live reading of a run's points, downsampling, and the watcher's throttle."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from IPython.core.error import UsageError

from nbtrack.colors import run_color
from nbtrack.errors import InvalidFilterError
from nbtrack.render import (
    format_duration,
    run_card_html,
    run_card_text,
    runs_table_html,
    runs_table_text,
)
from nbtrack.tracking import fluent
from nbtrack.widgets import commands, live
from nbtrack.widgets.card import (
    CARD_ACTIONS,
    RunCard,
    card_fields,
    compare_with_previous,
    show_run_card,
    watch_run,
)
from nbtrack.widgets.compare import CompareRuns, direction
from nbtrack.widgets.curves import MetricCurves
from nbtrack.widgets.panel import Action, SharedModule, esm, vega_bundle
from nbtrack.widgets.register import RegisterForm
from nbtrack.widgets.registry import RegistryPanel
from nbtrack.widgets.series import MAX_POINTS, SeriesReader, downsample, smooth
from nbtrack.widgets.table import TABLE_ACTIONS, RunTable

ROOT = Path(__file__).resolve().parents[1]
WIDGET = "application/vnd.jupyter.widget-view+json"
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(autouse=True)
def _panels_closed():
    """Each test's panels stop ticking and close, so no thread outlives its store."""
    yield
    import ipywidgets

    live.clear()
    ipywidgets.Widget.close_all()


def make_run(tracking, name: str, params=None, metrics=None, steps: int = 0, **tags) -> str:
    with tracking.start_run(run_name=name, tags=tags or None) as run:
        if params:
            tracking.log_params(params)
        for key, value in (metrics or {}).items():
            tracking.log_metric(key, value)
        for step in range(steps):
            tracking.log_metrics({"loss": 1 / (step + 1), "acc": step / steps}, step=step)
    time.sleep(0.002)  # distinct start times (ms), so "newest first" is well defined
    return run.run_id


def add_cell(tracking, run_id: str, source: str) -> None:

    record = {"op": "cell", "source": source, "execution_count": 1, "cell_id": "c1"}
    fluent.current_store().append(run_id, [{**record, "notebook": None}])


def send(panel: Any, content: dict[str, Any]) -> None:
    """A message from the page, through the widget's own handler (as a click sends it)."""
    panel._handle_custom_msg(content, [])


def names(table: RunTable) -> list[str]:
    column = table.visible.index("name")
    return [row["cells"][column] for row in table.rows]


# -- series ------------------------------------------------------------------------------------


def test_downsample_keeps_the_shape_within_the_budget():
    rng = np.random.default_rng(0)
    values = rng.normal(size=1_000_000)
    values[123_457] = 50.0  # a spike that sampling every n-th point would miss
    values[876_543] = -50.0
    keep = downsample(values)
    assert len(keep) <= MAX_POINTS
    assert np.all(np.diff(keep) > 0)  # sorted, unique
    assert {0, len(values) - 1, 123_457, 876_543} <= set(keep.tolist())
    short = np.arange(10.0)
    assert downsample(short).tolist() == list(range(10))


def test_downsample_ignores_nan_when_choosing_extremes():
    values = np.linspace(0, 1, 10_000)
    values[::7] = np.nan
    keep = downsample(values, limit=100)
    assert len(keep) <= 100
    assert not np.isnan(values[keep][1:-1]).all()


def test_smoothing_is_tensorboards_debiased_ema():
    values = np.array([1.0, 1.0, 1.0, 5.0])
    assert smooth(values, 0.0) is values
    smoothed = smooth(values, 0.6)
    assert smoothed[:3].tolist() == pytest.approx([1.0, 1.0, 1.0])  # no bias towards 0
    assert 1.0 < smoothed[3] < 5.0
    assert smooth(np.array([2.0, np.nan, 2.0]), 0.5).tolist()[1] == 2.0


def test_series_reader_sees_journal_and_buffer_once_each(tracking):
    run = tracking.start_run(run_name="live")
    reader = SeriesReader(run.store, run.run_id)
    for step in range(100):
        tracking.log_metric("loss", float(step), step=step)
    run.writer.flush()  # the first 100 go to the journal
    for step in range(100, 150):
        tracking.log_metric("loss", float(step), step=step)  # these stay buffered
    assert reader.update()
    steps, values, _ = reader.columns("loss")
    assert steps.tolist() == list(range(150)) and values.tolist() == list(map(float, range(150)))
    assert not reader.update()  # nothing new
    run.writer.flush()  # the buffered 50 move to the journal: still counted once
    reader.update()
    assert reader.columns("loss")[0].tolist() == list(range(150))
    tracking.end_run()
    reader.update()
    history = tracking.get_metric_history(run.run_id, "loss")
    assert reader.columns("loss")[0].tolist() == history.steps.tolist()


def test_series_reader_never_loses_or_repeats_points_under_concurrent_flushes(tracking):
    run = tracking.start_run(run_name="race")
    reader = SeriesReader(run.store, run.run_id)
    stop = threading.Event()
    problems: list[str] = []

    def read_and_flush() -> None:
        while not stop.is_set():
            run.writer.flush()
            reader.update()
            steps = reader.columns("m")[0]
            if steps.tolist() != list(range(len(steps))):
                problems.append(f"not 0..n-1 after {len(steps)} points")
                return

    thread = threading.Thread(target=read_and_flush)
    thread.start()
    for step in range(200_000):
        tracking.log_metric("m", 1.0, step=step)
    stop.set()
    thread.join()
    tracking.end_run()
    reader.update()
    assert problems == []
    assert reader.columns("m")[0].tolist() == list(range(200_000))


# -- run table ---------------------------------------------------------------------------------


def test_table_lists_the_active_experiments_runs_with_static_forms(tracking):
    tracking.set_experiment("a")
    make_run(tracking, "one", {"lr": "0.1"}, {"acc": 0.5})
    make_run(tracking, XSS, {"lr": "0.2"}, {"acc": 0.9}, note="<script>alert(2)</script>")
    tracking.set_experiment("b")
    make_run(tracking, "elsewhere")
    tracking.set_experiment("a")
    table = RunTable()
    assert sorted(names(table)) == sorted(["one", XSS])
    assert table.total == 2 and table.experiment == "a"
    bundle = table.bundle()
    assert bundle[WIDGET]["model_id"] == table.model_id
    assert "<td>one</td>" in bundle["text/html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in bundle["text/html"]
    assert XSS not in bundle["text/html"] and "<script>" not in bundle["text/html"]
    assert "elsewhere" not in bundle["text/html"] + bundle["text/plain"]
    assert re.search(r"^\w{8}\s+one\s+FINISHED", bundle["text/plain"], re.M)
    assert "(2 runs)" in bundle["text/plain"]
    tracking.set_experiment("b")  # the table stays on the experiment it showed
    table.refresh()
    assert sorted(names(table)) == sorted(["one", XSS])


def test_table_filter_applies_or_reports_inline(tracking):
    for i, acc in enumerate([0.2, 0.6, 0.9]):
        make_run(tracking, f"r{i}", {"depth": str(i)}, {"acc": acc})
    with pytest.raises(InvalidFilterError):
        RunTable("metrics.acc >> 1")  # asked for in code: a clear error at once
    table = RunTable()
    send(table, {"kind": "filter", "text": "metrics.acc > 0.5"})
    assert sorted(names(table)) == ["r1", "r2"] and table.error == ""
    send(table, {"kind": "filter", "text": "metrics.acc >> 0.5"})
    assert "'>>'" in table.error
    assert sorted(names(table)) == ["r1", "r2"]  # the rows stay
    assert table.filter == "metrics.acc >> 0.5" and table.applied == "metrics.acc > 0.5"
    # The page marks the offending token itself, from its position in the filter.
    found = table.filter_error
    assert found["text"][found["start"] : found["end"]] == ">>"
    assert found["message"].startswith("Invalid filter at column 13: comparator '>>'")
    table.apply_filter("")
    assert table.total == 3 and table.error == "" and table.filter_error == {}


def test_table_columns_come_from_the_experiment_in_a_stable_order(tracking):
    make_run(tracking, "a", {"lr": "0.1"}, {"acc": 0.5})
    make_run(tracking, "b", {"depth": "3"}, {"loss": 0.2})
    table = RunTable()
    expected = ["name", "status", "start", "duration", "metrics.acc", "metrics.loss"]
    expected += ["params.depth", "params.lr", "run_id"]
    assert table.columns == table.visible == expected  # metrics before params
    table.apply_filter("metrics.loss < 1")  # excludes the only run with acc and lr
    assert names(table) == ["b"] and table.columns == table.visible == expected
    assert table.rows[0]["cells"][expected.index("metrics.acc")] == ""
    table.view = "deleted"  # no runs at all: the columns stay
    assert table.total == 0 and table.visible == expected
    table.view = "active"
    table.visible = ["run_id", "params.lr", "status"]  # any order, without the name
    assert table.visible == ["name", "status", "params.lr", "run_id"]
    assert table.rows[0]["cells"] == ["b", "FINISHED", "", table.rows[0]["id"][:8]]
    table.first_kind = "params"
    assert table.columns[4:8] == ["params.depth", "params.lr", "metrics.acc", "metrics.loss"]
    make_run(tracking, "c", {}, {"auc": 0.9})  # a new key lands in its place, not at the end
    table.apply_filter("")
    assert table.visible == ["name", "status", "params.lr", "metrics.auc", "run_id"]


def test_static_table_reads_names_ids_and_metrics_first_on_one_line(tracking):
    params = {f"param_{i:02d}": "x" * 12 for i in range(12)}
    run_id = make_run(tracking, "a run with a long descriptive name", params, {"zeta": 0.5})
    row = _row(run_id)
    markup, text = runs_table_html([row]), runs_table_text([row])
    assert "white-space:nowrap" in markup.split(">", 1)[0]  # the table's own style
    header = re.findall(r"<th>([^<]*)</th>", markup)
    assert header[:6] == ["name", "run_id", "status", "zeta", "start", "duration"]
    assert header[6:18] == sorted(params) and header.index("zeta") < header.index("param_00")
    assert f"<code>{run_id[:8]}</code>" in markup
    assert f"border-left:4px solid {run_color(run_id)}" in markup
    assert text.splitlines()[0].split()[:6] == [
        "run_id",
        "name",
        "status",
        "metrics.zeta",
        "start",
        "duration",
    ]


def test_table_order_by_reads_mlflow_clauses(tracking):
    make_run(tracking, "low", {}, {"val loss": 0.1})
    make_run(tracking, "high", {}, {"val loss": 0.7})
    table = RunTable(order_by=["metrics.`val loss` DESC"])
    assert (table.sort_by, table.descending) == ("metrics.val loss", True)
    assert names(table) == ["high", "low"]
    assert (RunTable(order_by=["created"]).sort_by, RunTable(order_by=["tag.t"]).sort_by) == (
        "start",
        "tags.t",
    )
    with pytest.raises(InvalidFilterError, match="expected ASC or DESC"):
        RunTable(order_by=["metrics.`val loss` SIDEWAYS"])


def test_table_sorts_by_any_column_missing_values_last(tracking):
    make_run(tracking, "b", {"lr": "10"}, {"acc": 0.3})
    make_run(tracking, "a", {"lr": "2"}, {"acc": 0.9})
    make_run(tracking, "c", {"lr": "big"})
    make_run(tracking, "d", {}, {"acc": 0.5})
    table = RunTable()
    assert names(table) == ["d", "c", "a", "b"]  # newest first by default
    table.sort("params.lr")
    assert (table.sort_by, table.descending) == ("params.lr", False)
    assert names(table) == ["a", "b", "c", "d"]  # 2 < 10 by value, text after numbers
    table.sort("metrics.acc")
    assert table.descending is True  # metrics read best-first
    assert names(table) == ["a", "d", "b", "c"]
    table.sort("metrics.acc")
    assert names(table) == ["b", "d", "a", "c"]  # reversed, the run without acc still last
    table.sort("name")
    assert names(table) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="no column"):
        table.sort("params.nope")


def test_table_pages_and_chooses_columns(tracking):
    for i in range(60):
        make_run(tracking, f"run{i:02d}", {"i": str(i), "k": "x"})
    table = RunTable(page_size=25)
    assert (table.total, len(table.rows)) == (60, 25)
    send(table, {"kind": "page", "page": 2})
    assert len(table.rows) == 10 and names(table)[-1] == "run00"
    table.page_size = 50
    assert table.page == 1 and len(table.rows) == 10
    assert "params.k" in table.visible
    table.visible = ["name", "params.i"]
    assert table.rows[0]["cells"] == ["run09", "9"]


def test_table_actions_need_the_right_selection(tracking):
    ids = [make_run(tracking, f"r{i}", {"lr": str(i)}, {"loss": 1.0 / (i + 1)}) for i in range(3)]
    table = RunTable()
    table.selected = [*ids[:1], "not-a-run"]
    assert table.selected == ids[:1]  # only runs the table shows
    send(table, {"kind": "action", "name": "compare", "run_ids": ids[:1]})
    assert "at least 2 runs" in table.error and table.detail is None
    send(table, {"kind": "action", "name": "compare", "run_ids": ids[:2]})
    assert table.error == "" and isinstance(table.detail, CompareRuns)
    assert [r["id"] for r in table.detail.runs] == ids[:2]  # oldest first
    send(table, {"kind": "action", "name": "curves", "run_ids": ids})
    assert isinstance(table.detail, MetricCurves)
    send(table, {"kind": "close_detail"})
    assert table.detail is None


def test_table_shows_cell_source_and_deletes_and_restores(tracking):
    ids = [make_run(tracking, f"r{i}") for i in range(3)]
    add_cell(tracking, ids[0], "x = 1\nprint(x)")
    table = RunTable()
    table.run_action("source", ids[:1])
    assert table.detail_text == "x = 1\nprint(x)" and table.detail_title.startswith("r0")
    assert [a["name"] for a in table.actions] == [
        "compare",
        "curves",
        "source",
        "register",
        "delete",
    ]
    table.run_action("delete", ids[1:])
    assert names(table) == ["r0"] and "Deleted 2 runs" in table.message
    assert tracking.get_run(ids[1]).info.lifecycle_stage == "deleted"
    table.view = "deleted"
    assert sorted(names(table)) == ["r1", "r2"]
    assert all(row["deleted"] for row in table.rows)
    assert "restore" in [a["name"] for a in table.actions]
    table.run_action("restore", ids[1:2])
    assert names(table) == ["r2"]
    assert tracking.get_run(ids[1]).info.lifecycle_stage == "active"


def test_actions_are_extensible(tracking, monkeypatch):
    run_id = make_run(tracking, "r")
    seen: list[tuple[Any, list[str]]] = []

    def register(panel: Any, run_ids: list[str]) -> str:
        seen.append((panel, run_ids))
        return f"registered {len(run_ids)}"

    monkeypatch.setitem(TABLE_ACTIONS, "register", Action("Register", register, 1, 1))
    monkeypatch.setitem(CARD_ACTIONS, "register", Action("Register", register, 1, 1))
    table = RunTable()
    assert {"name": "register", "label": "Register", "min": 1, "max": 1}.items() <= next(
        a for a in table.actions if a["name"] == "register"
    ).items()
    send(table, {"kind": "action", "name": "register", "run_ids": [run_id]})
    assert table.message == "registered 1" and seen == [(table, [run_id])]
    card = RunCard(_row(run_id))
    assert "register" in [a["name"] for a in card.actions]


def _row(run_id: str) -> dict[str, Any]:

    return fluent.current_store().get_run(run_id)


def test_table_refreshes_when_another_process_adds_a_run(tracking, tmp_path):
    make_run(tracking, "mine")
    table = RunTable()
    assert names(table) == ["mine"]
    assert table.tick() is True  # nothing changed: nothing to do, keep watching
    code = (
        "import nbtrack\n"
        f"nbtrack.set_tracking_uri({str(tmp_path / 'store')!r})\n"
        "with nbtrack.start_run(run_name='theirs'):\n"
        "    nbtrack.log_metric('acc', 1.0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=_child_env())
    table.tick()
    assert sorted(names(table)) == ["mine", "theirs"]


def _child_env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def test_table_and_card_show_a_stale_reason(tracking):
    run_id = make_run(tracking, "old")

    stale = {"op": "set", "fields": {"stale": "cell 3 changed since"}}
    fluent.current_store().append(run_id, [stale])
    table = RunTable()
    assert table.rows[0]["stale"] == "cell 3 changed since"
    assert card_fields(_row(run_id))["stale"] == "cell 3 changed since"


# -- metric curves -------------------------------------------------------------------------------


def test_curves_downsample_and_describe_what_they_draw(tracking):
    run_id = make_run(tracking, "long", steps=10_000)
    curves = MetricCurves([run_id])
    assert curves.metrics == ["acc", "loss"] and curves.shown == ["acc", "loss"]
    assert [s["metric"] for s in curves.series] == ["acc", "loss"]
    assert all(0 < s["n"] <= MAX_POINTS for s in curves.series)
    floats = np.frombuffer(curves.columns, "<f8")
    assert len(floats) == 5 * sum(s["n"] for s in curves.series)
    loss = curves.series[1]
    steps = floats[loss["offset"] : loss["offset"] + loss["n"]]
    assert steps[0] == 0 and steps[-1] == 9_999
    assert curves.summary == f"1 run · 2 metrics · 20,000 points ({2 * loss['n']:,} drawn)"
    panels = curves.spec["concat"]  # a panel per metric, each with its own scales
    assert [p["transform"][0]["filter"] for p in panels] == [
        {"field": "metric", "equal": "acc"},
        {"field": "metric", "equal": "loss"},
    ]
    assert curves.spec["data"] == {"name": "points"}
    assert panels[0]["layer"][-1]["mark"]["point"] is False  # too many for dots
    assert curves.live is False


def test_curves_mark_each_point_of_short_series(tracking):
    run_id = make_run(tracking, "once", metrics={"acc": 0.5})  # one point: a dot, not nothing
    curves = MetricCurves([run_id])
    assert curves.shown == ["acc"] and curves.series[0]["n"] == 1
    assert curves.spec["layer"][-1]["mark"]["point"] is True


def test_curves_options_change_spec_and_data(tracking):
    run_id = make_run(tracking, "r", steps=50)
    curves = MetricCurves([run_id], ["loss"])
    assert curves.shown == ["loss"] and "concat" not in curves.spec
    plain = bytes(curves.columns)
    curves.smoothing = 0.9
    assert curves.spec["layer"][0]["mark"]["opacity"] == 0.3  # raw line under the smoothed
    smoothed = np.frombuffer(curves.columns, "<f8")
    n = curves.series[0]["n"]
    assert not np.allclose(smoothed[2 * n : 3 * n], smoothed[n : 2 * n])
    assert bytes(curves.columns) != plain
    curves.log_y = True
    assert curves.spec["layer"][1]["encoding"]["y"]["scale"]["type"] == "log"
    curves.x_axis = "wall"
    assert curves.spec["layer"][1]["encoding"]["x"]["type"] == "temporal"
    curves.shown = ["acc", "loss"]
    assert len(curves.series) == 2


def test_curves_static_forms_hold_a_png(tracking):
    run_id = make_run(tracking, XSS, steps=20)
    bundle = MetricCurves([run_id]).bundle()
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert f'src="data:image/png;base64,{bundle["image/png"]}"' in bundle["text/html"]
    assert XSS not in bundle["text/html"] and "&lt;img src=x" in bundle["text/html"]
    assert re.search(rf"^{re.escape(XSS)}\s+loss\s+20\s+19\s+0.05\s", bundle["text/plain"], re.M)


def test_curves_follow_a_live_run(tracking):
    run = tracking.start_run(run_name="live")
    for step in range(100):
        tracking.log_metric("loss", 1.0 / (step + 1), step=step)
    curves = MetricCurves([run.run_id])
    assert curves.live and live.scheduled(curves)
    assert curves.series[0]["n"] == 100
    for step in range(100, 250):
        tracking.log_metric("loss", 1.0 / (step + 1), step=step)
    assert curves.tick() is True
    assert curves.series[0]["n"] == 250
    tracking.end_run()
    assert curves.tick() is False and curves.live is False


# -- compare -----------------------------------------------------------------------------------


def test_direction_is_inferred_from_the_name_or_chosen():
    assert direction("val_loss") == direction("error_rate") == direction("rmse") == "min"
    assert direction("accuracy") == direction("f1") == direction("auc") == "max"
    assert direction("accuracy", {"accuracy": "min"}) == "min"


def test_compare_marks_differences_best_values_and_diffs_code(tracking):
    a = make_run(tracking, "a", {"lr": "0.1", "depth": "3"}, {"loss": 0.5, "acc": 0.8})
    b = make_run(tracking, "b", {"lr": "0.01", "depth": "3"}, {"loss": 0.3, "acc": 0.7})
    add_cell(tracking, a, "lr = 0.1\ndepth = 3\nfit()")
    add_cell(tracking, b, "lr = 0.01\ndepth = 3\nfit()")
    compare = CompareRuns([a, b])
    params = {p["key"]: p for p in compare.params}
    assert params["lr"]["differs"] and not params["depth"]["differs"]
    metrics = {m["key"]: m for m in compare.metrics}
    assert metrics["loss"]["best"] == [False, True] and metrics["loss"]["direction"] == "min"
    assert metrics["acc"]["best"] == [True, False] and metrics["acc"]["direction"] == "max"
    compare.directions = {"acc": "min"}
    assert {m["key"]: m for m in compare.metrics}["acc"]["best"] == [False, True]
    [diff] = compare.code
    assert diff["title"] == "a → b"
    assert ["del", "-lr = 0.1"] in diff["lines"] and ["add", "+lr = 0.01"] in diff["lines"]
    assert ["same", " depth = 3"] in diff["lines"]
    assert compare.scatter_x == "lr" and compare.pc_metric == "acc"
    assert compare.scatter_spec["mark"]["type"] == "point"
    compare.scatter_y = "loss"
    assert compare.scatter_spec["encoding"]["y"]["title"] == "loss"


def test_compare_static_forms_escape_everything(tracking):
    a = make_run(tracking, XSS, {"p": "<b>1</b>"}, {"acc": 0.5})
    b = make_run(tracking, "plain", {"p": "2"}, {"acc": 0.6})
    add_cell(tracking, a, "x = '<script>alert(3)</script>'")
    bundle = CompareRuns([a, b]).bundle()
    markup = bundle["text/html"]
    for raw in (XSS, "<b>1</b>", "<script>"):
        assert raw not in markup
    assert "&lt;b&gt;1&lt;/b&gt;" in markup
    assert "no cell recorded for plain" in bundle["text/plain"]
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")


def test_compare_needs_two_runs(tracking):
    run_id = make_run(tracking, "only")
    with pytest.raises(ValueError, match="at least two"):
        CompareRuns([run_id, run_id])


# -- run card --------------------------------------------------------------------------------------


def test_card_static_forms_are_the_static_card(tracking):
    row = _row(make_run(tracking, "c", {"lr": "0.1"}, {"acc": 0.5}))
    card = RunCard(row)
    bundle = card.bundle()
    assert bundle["text/html"] == run_card_html(row) and bundle["text/plain"] == run_card_text(row)
    assert bundle[WIDGET]["model_id"] == card.model_id
    assert [a["name"] for a in card.actions] == ["compare_previous", "curves", "register"]
    assert card.run["params"] == [["lr", "0.1"]] and card.run["metrics"] == [["acc", "0.5"]]


def test_a_running_card_shows_the_time_so_far(tracking):
    run = tracking.start_run(run_name="slow")
    time.sleep(0.05)
    fields = card_fields(_row(run.run_id))
    assert fields["duration"].endswith("s so far") and fields["status"] == "RUNNING"
    assert fields["now"] - fields["start_time"] >= 50  # the page ticks on from here
    assert format_duration(_row(run.run_id), now_ms=fields["start_time"] + 65_000) == (
        "1m05s so far"
    )
    assert "so far" in run_card_text(_row(run.run_id))
    tracking.end_run()
    assert "so far" not in card_fields(_row(run.run_id))["duration"]


def test_run_details_is_the_card_in_full_with_a_static_text_form(tracking):
    from nbtrack import render
    from nbtrack.widgets import run_details

    with tracking.start_run(run_name=XSS) as run:
        tracking.log_params({"lr": "0.1", "note": "<b>x</b>"})
        for step in range(500):
            tracking.log_metric("loss", 1.0 / (step + 1), step=step)
        tracking.set_tag("team", "<script>alert(1)</script>")
        tracking.log_text("hello", "notes/readme.txt")
    add_cell(tracking, run.run_id, "lr = 0.1\nfit()")
    card = run_details(XSS)
    assert isinstance(card, RunCard) and card.run["name"] == XSS
    details = card.details
    assert details["params"] == [["lr", "0.1"], ["note", "<b>x</b>"]]
    [loss] = details["metrics"]
    assert (loss["key"], loss["points"], loss["last_step"], loss["last"]) == (
        "loss",
        500,
        499,
        "0.002",
    )
    assert (loss["min"], loss["max"]) == ("0.002", "1")
    assert 2 < len(loss["spark"]) <= 80 and loss["spark"][0] == 1.0  # first point kept
    assert details["tags"] == [["team", "<script>alert(1)</script>"]]
    assert ["mlflow.runName", XSS] in details["system_tags"]
    assert [a["path"] for a in details["artifacts"]] == ["notes/readme.txt"]
    assert details["artifacts"][0]["size"] == "5 B"
    assert [b["title"].split(" ")[0] for b in details["blocks"]] == ["cell"]
    assert "lr = 0.1" in details["blocks"][0]["text"]
    assert ["run_id", run.run_id] in details["info"]
    bundle = card.bundle()
    static = render.run_details(_row(run.run_id), fluent_store().records(run.run_id))
    assert bundle[WIDGET]["model_id"] == card.model_id
    assert (bundle["text/plain"], bundle["text/html"]) == (static.text, static.html)
    for raw in (XSS, "<b>x</b>", "<script>"):
        assert raw not in bundle["text/html"]


def fluent_store() -> Any:
    from nbtrack.tracking import fluent

    return fluent.current_store()


def test_card_buttons_compare_with_previous_and_toggle_curves(tracking):
    first = make_run(tracking, "first", {"lr": "0.1"}, steps=5)
    second = make_run(tracking, "second", {"lr": "0.2"}, steps=5)
    card = RunCard(_row(second))
    send(card, {"kind": "action", "name": "compare_previous", "run_ids": [second]})
    assert isinstance(card.detail, CompareRuns)
    assert [r["id"] for r in card.detail.runs] == [first, second]
    send(card, {"kind": "action", "name": "curves", "run_ids": [second]})
    assert isinstance(card.curves, MetricCurves) and card.show_curves
    assert next(a for a in card.actions if a["name"] == "curves")["label"] == "Hide curves"
    send(card, {"kind": "action", "name": "curves", "run_ids": [second]})
    assert not card.show_curves
    assert next(a for a in card.actions if a["name"] == "curves")["label"] == "Show curves"
    lonely = RunCard(_row(first))
    lonely.run_action("compare_previous", [first])
    assert lonely.detail is None and "No earlier run" in lonely.message


def test_card_under_a_cell_shows_live_then_updates_in_place(tracking, monkeypatch):
    shown: list[tuple[str, dict[str, Any], str | None]] = []
    monkeypatch.setattr(
        "nbtrack.widgets.card.display",
        lambda bundle, raw, display_id=None: shown.append(("display", bundle, display_id)),
    )
    monkeypatch.setattr(
        "nbtrack.widgets.card.update_display",
        lambda bundle, raw, display_id: shown.append(("update", bundle, display_id)),
    )
    from nbtrack.widgets import card as card_module

    run = tracking.start_run(run_name="cell")
    watch_run(run.run_id)
    watch = card_module._watches[run.run_id]
    tracking.log_metric("loss", 1.0, step=0)
    assert watch.tick() is True and shown == []  # step 0 only: nothing to chart yet
    tracking.log_metric("loss", 0.5, step=1)
    assert watch.tick() is False  # shown: the curves keep themselves current now
    [(kind, bundle, display_id)] = shown
    assert kind == "display" and display_id and "image/png" not in bundle  # no PNG mid-cell
    assert "RUNNING" in bundle["text/plain"]
    tracking.end_run()
    card = show_run_card(_row(run.run_id))
    kind, bundle, updated = shown[-1]
    assert (kind, updated) == ("update", display_id) and len(shown) == 2
    assert bundle[WIDGET]["model_id"] == card.model_id and "FINISHED" in bundle["text/plain"]
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert card.curves is not None and not live.scheduled(card.curves)


def test_card_for_a_quick_cell_is_displayed_once_at_its_end(tracking, monkeypatch):
    shown: list[dict[str, Any]] = []
    monkeypatch.setattr("nbtrack.widgets.card.display", lambda bundle, raw: shown.append(bundle))
    run_id = make_run(tracking, "quick", {"a": "1"})
    card = show_run_card(_row(run_id))
    assert [b[WIDGET]["model_id"] for b in shown] == [card.model_id]
    assert card.curves is None and "image/png" not in shown[0]


# -- magics, runtime, modules ----------------------------------------------------------------------


def test_curves_and_compare_commands(tracking):
    a = make_run(tracking, "a", {"lr": "1"}, steps=3)
    b = make_run(tracking, "b", {"lr": "2"}, steps=3)
    curves = commands.curves(None, ["a", "--metric", "loss"], "a --metric loss")
    assert [r["id"] for r in curves.runs] == [a] and curves.shown == ["loss"]
    assert [r["id"] for r in commands.curves(None, [], "").runs] == [b]  # default: last
    compare = commands.compare(None, ["--last", "2", "--min", "acc"], "")
    assert [r["id"] for r in compare.runs] == [a, b] and compare.directions == {"acc": "min"}
    for argv in ([], ["a", "--last", "2"], ["--bogus"]):
        with pytest.raises(UsageError):
            commands.compare(None, argv, "")


def test_magic_table_names_the_panel_commands():
    from nbtrack.magics import LINE_COMMANDS

    for name in ("curves", "compare"):
        handler = LINE_COMMANDS[name][1]
        module, _, function = handler.partition(":")
        assert getattr(__import__(module, fromlist=[function]), function) is getattr(commands, name)


def test_chart_panels_share_one_vega_runtime(tracking):
    a = make_run(tracking, "a", {"x": "1"}, {"acc": 0.1}, steps=3)
    b = make_run(tracking, "b", {"x": "2"}, {"acc": 0.2}, steps=3)
    first, second = MetricCurves([a]), CompareRuns([a, b])
    assert isinstance(first.runtime, SharedModule) and first.runtime is second.runtime
    assert second.curves is not None and second.curves.runtime is first.runtime
    assert "export{" in vega_bundle().replace(" ", "") and "vegaEmbed" in vega_bundle()
    assert first.runtime.code == vega_bundle()


def test_panels_of_a_kind_share_one_module_and_send_a_small_loader(tracking):
    runs = [make_run(tracking, name, {"x": "1"}, {"acc": 0.5}) for name in "ab"]
    cards = [RunCard(_row(run_id)) for run_id in runs]
    first, second = cards
    assert first._module is second._module and first._module.code == esm("card.js")
    table = RunTable()
    assert table._module is not first._module and table._module.code == esm("table.js")
    assert first._module.digest != table._module.digest
    state = first.get_state()
    assert state["_module"] == f"IPY_MODEL_{first._module.model_id}"
    # The card's own state carries the loader, not the 19 kB of its module.
    assert len(json.dumps(state)) < 3_000 < len(esm("card.js"))
    assert "importShared" in state["_esm"] and "function h(" not in state["_esm"]


PANELS = {
    "table.js": RunTable,
    "curves.js": MetricCurves,
    "compare.js": CompareRuns,
    "card.js": RunCard,
    "registry.js": RegistryPanel,
    "register.js": RegisterForm,
}
BASE_TRAITS = {"error", "message", "layout", "tabbable", "tooltip", "_dom_classes", "runtime"}


@pytest.mark.parametrize("module", sorted(PANELS))
def test_each_module_opens_with_the_traitlets_it_reads_and_writes(module):
    text = (ROOT / "js" / module).read_text()
    header = text.split("\n\n")[0]
    assert header.startswith("// ") and "reads:" in header and "writes:" in header
    synced = {
        name
        for name, trait in PANELS[module].class_traits(sync=True).items()
        if not name.startswith("_")
    }
    missing = {name for name in synced - BASE_TRAITS if not re.search(rf"\b{name}\b", header)}
    assert missing == set(), f"{module} does not say whether it reads or writes {missing}"


def test_no_module_writes_markup_from_strings():
    for path in (ROOT / "js").glob("*.js"):
        text = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert sink not in text, f"{path.name} uses {sink}"


# -- the watcher ---------------------------------------------------------------------------------


class _Task:
    def __init__(self, cost: float = 0.0, keep: bool = True, fail: bool = False) -> None:
        self.cost, self.keep, self.fail, self.calls = cost, keep, fail, 0

    def tick(self) -> bool:
        self.calls += 1
        if self.fail:
            raise RuntimeError("broken")
        time.sleep(self.cost)
        return self.keep


def test_watcher_waits_twenty_times_a_ticks_cost():
    slow = _Task(cost=0.05)
    entry = live._Entry(slow, live.MIN_INTERVAL, live.contextvars.copy_context())
    with live._lock:
        live._entries[id(slow)] = entry
    live._tick(id(slow), entry)
    # The tick took >= 50 ms, so the next is >= 1 s after it ended (20x), not 0.25 s.
    assert entry.due - time.monotonic() > 0.5
    assert live.scheduled(slow)


def test_watcher_drops_finished_and_failing_tasks():
    done, broken = _Task(keep=False), _Task(fail=True)
    for task in (done, broken):
        entry = live._Entry(task, live.MIN_INTERVAL, live.contextvars.copy_context())
        with live._lock:
            live._entries[id(task)] = entry
        with pytest.warns(UserWarning) if task is broken else contextlib.nullcontext():
            live._tick(id(task), entry)
        assert not live.scheduled(task) and task.calls == 1


def test_panels_act_on_the_store_they_show_after_the_store_changes(tracking, tmp_path):
    ids = [make_run(tracking, f"r{i}", {"lr": str(i)}, {"loss": 1.0 / (i + 1)}) for i in range(2)]
    table = RunTable()
    card = RunCard(fluent.current_store().get_run(ids[1]))
    tracking.set_tracking_uri(tmp_path / "elsewhere")  # what the next cells write to
    other = make_run(tracking, "other-store-run")

    compared = compare_with_previous(card, [ids[1]])
    assert isinstance(compared, CompareRuns)
    assert [r["id"] for r in compared.runs] == ids
    table.run_action("curves", ids)
    assert isinstance(table.detail, MetricCurves)
    table.run_action("delete", ids[:1])
    assert names(table) == ["r1"]
    assert tracking.get_run(other).info.lifecycle_stage == "active"
    tracking.set_tracking_uri(tmp_path / "store")
    assert tracking.get_run(ids[0]).info.lifecycle_stage == "deleted"
