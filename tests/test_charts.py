"""How the panels' charts read: run colours, time and step axes (checked on the labels
vl-convert draws), log y per metric, smoothing, parallel coordinates."""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from typing import Any

import pytest

from nbtrack.colors import PALETTE, dashes, run_color, run_hash
from nbtrack.tracking import fluent
from nbtrack.widgets import charts, live
from nbtrack.widgets.card import RunCard
from nbtrack.widgets.compare import CompareRuns
from nbtrack.widgets.curves import MetricCurves
from nbtrack.widgets.table import RunTable

T0 = 1_765_000_000_000  # ms


@pytest.fixture(autouse=True)
def _panels_closed():
    yield
    import ipywidgets

    live.clear()
    ipywidgets.Widget.close_all()


def x_labels(spec: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The x axis labels of the (first) panel, as vl-convert draws them in SVG."""
    import vl_convert

    svg = vl_convert.vegalite_to_svg({**spec, "datasets": {"points": rows}})
    axis = svg[svg.index('aria-label="X-axis') :]
    group = re.search(r"role-axis-label.*?</g>", axis, re.S).group()
    return re.findall(r"<text[^>]*>([^<]*)</text>", group)


def points(count: int, seconds_apart: float) -> list[dict[str, Any]]:
    return [
        {
            "run": "a",
            "metric": "loss",
            "step": s,
            "value": 1 / (s + 1),
            "smooth": 1 / (s + 1),
            "relative": s * seconds_apart,
            "wall": T0 + 123 + s * seconds_apart * 1000,
        }
        for s in range(count)
    ]


def spec_for(x_axis: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    span = rows[-1]["relative"] - rows[0]["relative"]
    return charts.curves_spec(["loss"], [("a", "#4e79a7")], x_axis=x_axis, span_seconds=span)


def make_run(tracking, name: str, params=None, metrics=None, steps: int = 0, **kw) -> str:
    with tracking.start_run(run_name=name) as run:
        if params:
            tracking.log_params(params)
        for key, value in (metrics or {}).items():
            tracking.log_metric(key, value)
        for step in range(steps):
            for key, value in kw.get("series", {"loss": lambda s: 1 / (s + 1)}).items():
                tracking.log_metric(key, value(step), step=step, timestamp=kw.get("t0", T0) + step)
    time.sleep(0.002)
    return run.run_id


# -- colours ---------------------------------------------------------------------------------


def test_run_colour_is_a_stable_hash_spread_over_the_palette():
    # Pinned: another tool (a sidebar, a script) computes the same colour for a run id.
    assert run_hash("a") == 444641715 and run_hash("") == 2872998923
    ids = [hashlib.md5(str(i).encode()).hexdigest() for i in range(20_000)]
    counts = Counter(run_color(run_id) for run_id in ids)
    assert set(counts) == set(PALETTE)
    assert max(counts.values()) < 1.1 * min(counts.values())  # FNV-1a alone: one colour
    assert dashes(["#1", "#2", "#1", "#1"]) == [[1, 0], [1, 0], [6, 3], [2, 2]]


def test_a_run_has_one_colour_in_every_panel(tracking):
    a = make_run(tracking, "a", {"lr": "0.1"}, {"acc": 0.5}, steps=3)
    b = make_run(tracking, "b", {"lr": "0.2"}, {"acc": 0.6}, steps=3)
    color = run_color(a)
    card = RunCard(fluent.current_store().get_run(a))
    assert card.run["color"] == color
    assert f"border-left:3px solid {color}" in card.bundle()["text/html"]
    table = RunTable()
    assert {r["id"]: r["color"] for r in table.rows} == {a: color, b: run_color(b)}
    assert f"border-left:4px solid {color}" in table.bundle()["text/html"]
    for panel in (MetricCurves([b, a]), CompareRuns([b, a])):
        assert {r["id"]: r["color"] for r in panel.runs} == {a: color, b: run_color(b)}
    compare = CompareRuns([b, a])  # the same run, the same colour, in whatever position
    scale = compare.curves.spec["layer"][0]["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"], strict=True))["a"] == color
    scatter = compare.scatter_spec["encoding"]["color"]["scale"]
    assert dict(zip(scatter["domain"], scatter["range"], strict=True))["a"] == color


def test_runs_sharing_a_colour_are_told_apart_by_dashes():
    same = charts.curves_spec(["loss"], [("a", "#4e79a7"), ("b", "#4e79a7")])
    encoding = same["layer"][-1]["encoding"]
    assert encoding["strokeDash"]["scale"] == {"domain": ["a", "b"], "range": [[1, 0], [6, 3]]}
    apart = charts.curves_spec(["loss"], [("a", "#4e79a7"), ("b", "#f28e2b")])
    assert "strokeDash" not in apart["layer"][-1]["encoding"]


def _legend_swatches(svg: str) -> list[tuple[str, str]]:
    labels = re.findall(r"role-legend-label.*?<text[^>]*>([^<]*)<", svg)
    strokes = re.findall(r'role-legend-symbol.*?stroke="([^"]*)"', svg)
    return list(zip(labels, strokes, strict=True))


def test_runs_sharing_a_colour_keep_one_legend_entry_each_in_their_colour():
    import vl_convert

    runs = [("a", "#4e79a7"), ("b", "#4e79a7"), ("c", "#f28e2b")]
    rows = [
        {"run": n, "axis": axis, "position": 0.5, "value": "1", "label": "1", "score": 0.5}
        for n, _ in runs
        for axis in ("lr", "loss")
    ]
    parallel = vl_convert.vegalite_to_svg(charts.parallel_spec(rows, ["lr", "loss"], "loss", runs))
    assert _legend_swatches(parallel) == runs  # one legend: colour and dash merged
    curves = charts.curves_spec(["loss"], runs)
    curves["datasets"] = {
        "points": [
            {
                "run": n,
                "metric": "loss",
                "step": s,
                "value": s,
                "smooth": s,
                "relative": s,
                "wall": T0,
            }
            for n, _ in runs
            for s in range(3)
        ]
    }
    assert _legend_swatches(vl_convert.vegalite_to_svg(curves)) == runs


# -- axes ------------------------------------------------------------------------------------


def test_a_wall_time_axis_over_five_seconds_reads_as_clock_time():
    labels = x_labels(spec_for("wall", points(5, 1.25)), points(5, 1.25))
    assert len(labels) >= 3 and len(set(labels)) == len(labels)
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d", label) for label in labels), labels


@pytest.mark.parametrize(
    ("seconds", "pattern"),
    [
        (3 * 3600, r"\d\d:\d\d"),  # an afternoon: hours and minutes
        (3 * 86400, r"[A-Z][a-z]{2} \d\d \d\d:\d\d"),  # a few days: dates with times
        (60 * 86400, r"\d{4}-\d\d-\d\d"),  # months: dates
    ],
)
def test_longer_wall_time_axes_switch_to_coarser_labels(seconds, pattern):
    rows = points(6, seconds / 5)
    labels = x_labels(spec_for("wall", rows), rows)
    assert labels and all(re.fullmatch(pattern, label) for label in labels), labels


@pytest.mark.parametrize(
    ("seconds", "title", "last_label"),
    [
        (5, "seconds since start", "5"),
        (1800, "minutes since start", "30"),
        (36_000, "hours since start", "10"),
    ],
)
def test_elapsed_time_is_shown_in_a_unit_that_suits_its_span(seconds, title, last_label):
    rows = points(6, seconds / 5)
    spec = spec_for("relative", rows)
    assert spec["layer"][-1]["encoding"]["x"]["title"] == title
    assert x_labels(spec, rows)[-1] == last_label


def test_a_short_run_gets_integer_step_ticks():
    rows = points(3, 1.0)
    assert x_labels(spec_for("step", rows), rows) == ["0", "1", "2"]


# -- log y and smoothing -----------------------------------------------------------------------


def test_log_y_applies_to_the_metrics_it_suits_only(tracking):
    series = {
        "train_loss": lambda s: 2.0 / (s + 1),
        "val_accuracy": lambda s: 0.1 + 0.08 * s,
        "margin": lambda s: s - 2.0,  # crosses zero
    }
    run_id = make_run(tracking, "r", steps=10, series=series)
    curves = MetricCurves([run_id], ["train_loss", "val_accuracy", "margin"], log_y=True)
    scales = {p["title"]: p["layer"][-1]["encoding"]["y"]["scale"] for p in curves.spec["concat"]}
    assert scales == {
        "train_loss (log y)": {"type": "log", "nice": False},
        "val_accuracy": {"zero": False},
        "margin": {"zero": False},
    }
    assert curves.log_skipped == {
        "val_accuracy": "a score bounded to [0, 1]",
        "margin": "has values <= 0",
    }
    curves.log_y = False
    assert curves.log_skipped == {} and all(
        "(log y)" not in p["title"] for p in curves.spec["concat"]
    )


def test_smoothing_keeps_the_raw_line_faint_and_the_legend_at_full_strength(tracking):
    a = make_run(tracking, "a", steps=30)
    b = make_run(tracking, "b", steps=30)
    curves = MetricCurves([a, b], ["loss"], smoothing=0.8)
    raw, smoothed = curves.spec["layer"]
    assert raw["encoding"]["y"]["field"] == "value" and raw["mark"]["opacity"] <= 0.4
    assert smoothed["encoding"]["y"]["field"] == "smooth" and "opacity" not in smoothed["mark"]
    assert smoothed["encoding"]["color"]["legend"]["symbolOpacity"] == 1


# -- parallel coordinates ----------------------------------------------------------------------


def _parallel_rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec["data"]["values"]


def test_parallel_coordinates_name_runs_and_show_missing_values_apart(tracking):
    a = make_run(tracking, "a", {"lr": "0.0506415346", "alpha": "0.01"}, {"acc": 0.9})
    b = make_run(tracking, "b", {"lr": "0.01"}, {"acc": 0.7})  # no alpha
    spec = CompareRuns([a, b]).pc_spec
    rows = _parallel_rows(spec)
    missing = [r for r in rows if r["run"] == "b" and r["axis"] == "alpha"]
    assert missing == [
        {
            "run": "b",
            "axis": "alpha",
            "position": charts.MISSING,
            "value": "not set",
            "label": "not set",
            "score": 0.7,
        }
    ]
    [lr] = [r for r in rows if r["run"] == "a" and r["axis"] == "lr"]
    assert (lr["label"], lr["value"]) == ("0.05064", "0.0506415346")  # short beside the point
    lines = spec["layer"][0]
    assert lines["encoding"]["color"]["scale"] == {
        "domain": ["a", "b"],
        "range": [run_color(a), run_color(b)],
    }
    assert {"field": "run", "type": "nominal"} in lines["encoding"]["tooltip"]
    assert any(p.get("select", {}).get("on") == "pointerover" for p in spec["params"])
    assert spec["layer"][0]["encoding"]["opacity"]["condition"]["value"] == 1.0


def test_parallel_coordinates_of_many_runs_colour_the_whole_metric_range(tracking):
    ids = [make_run(tracking, f"r{i}", {"lr": str(i)}, {"acc": 0.5 + i / 100}) for i in range(12)]
    spec = CompareRuns(ids).pc_spec
    color = spec["layer"][0]["encoding"]["color"]
    scale, legend = color["scale"], color["legend"]
    assert scale["domain"] == [0.5, 0.61] and scale["nice"] is False
    assert legend["values"][0] == 0.5 and legend["values"][-1] == 0.61  # the highest shown
    import vl_convert

    svg = vl_convert.vegalite_to_svg(spec)
    assert "role-legend-gradient" in svg and "role-legend-symbol" not in svg
