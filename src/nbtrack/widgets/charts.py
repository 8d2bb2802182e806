"""Vega-Lite specs for the panels' charts, and their PNGs (kernel-side, by vl-convert).

The comparison charts (scatter, parallel coordinates) are built with Altair. The metric
curves spec is written out as the Vega-Lite dict Altair would produce: it is built in the
background thread that keeps live charts current while a training cell runs, and a first
``import altair`` there (1-3 s of Python holding the GIL) would stall the training loop.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from nbtrack.colors import dashes

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
CONFIG = {
    "view": {"stroke": "#ddd"},
    "axis": {"labelFontSize": 10, "titleFontSize": 11, "labelOverlap": True},
    "legend": {"labelFontSize": 11, "labelLimit": 220},
    "header": {"labelFontSize": 11, "labelFontWeight": "bold"},
    "title": {"fontSize": 11, "anchor": "start", "offset": 4},
}
# Seconds since the start, read in the unit that suits the span: (up to seconds, unit, divisor).
DURATION_UNITS = (
    (120, "seconds", 1),
    (2 * 3600, "minutes", 60),
    (2 * 86400, "hours", 3600),
    (float("inf"), "days", 86400),
)
# Wall-clock labels for a time axis by its span in seconds: (up to seconds, format).
CLOCK_FORMATS = (
    (600, "%H:%M:%S"),
    (12 * 3600, "%H:%M"),
    (7 * 86400, "%b %d %H:%M"),
    (float("inf"), "%Y-%m-%d"),
)
FULL_TIME = "%Y-%m-%d %H:%M:%S"
# Steps are whole numbers. Vega's ticks over a span of 1 or 2 steps fall on halves even
# with tickMinStep, so those ticks are drawn without label, tick or grid line.
_HALF = {"test": "datum.value % 1 != 0", "value": 0}
STEP_AXIS = {
    "tickMinStep": 1,
    "format": "~s",
    "labelExpr": "datum.value % 1 != 0 ? '' : datum.label",
    "tickOpacity": {"condition": _HALF, "value": 1},
    "gridOpacity": {"condition": _HALF, "value": 1},
}


def x_encoding(x_axis: str, span_seconds: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The x encoding for ``x_axis`` over data spanning ``span_seconds``, and its transforms.

    Steps get integer ticks only; seconds since the start are shown in seconds, minutes,
    hours or days by the span; wall time as clock time (or dates) by the span, never the
    ``.200 .400`` of Vega's default format for a few seconds.
    """
    if x_axis == "step":
        field = {"field": "step", "type": "quantitative", "title": "step"}
        return {**field, "axis": STEP_AXIS}, []
    if x_axis == "relative":
        _, unit, divisor = next(u for u in DURATION_UNITS if span_seconds <= u[0])
        transform = [{"calculate": f"datum.relative / {divisor}", "as": "elapsed"}]
        axis = {"format": "~r"}
        return {
            "field": "elapsed",
            "type": "quantitative",
            "title": f"{unit} since start",
            "axis": axis,
        }, transform
    label = next(f for limit, f in CLOCK_FORMATS if span_seconds <= limit)
    axis: dict[str, Any] = {"format": label, "formatType": "time"}
    if span_seconds <= 600:
        axis["tickMinStep"] = 1000  # ms: no ticks between whole seconds
    return {"field": "wall", "type": "temporal", "title": "wall time", "axis": axis}, []


def x_tooltip(x_axis: str) -> list[dict[str, Any]]:
    if x_axis == "relative":
        return [{"field": "elapsed", "type": "quantitative", "title": "elapsed", "format": ".4~f"}]
    if x_axis == "wall":
        return [{"field": "wall", "type": "temporal", "title": "time", "format": FULL_TIME}]
    return []


def curves_spec(
    metrics: list[str],
    runs: list[tuple[str, str]],
    *,
    x_axis: str = "step",
    span_seconds: float = 0.0,
    log_metrics: frozenset[str] = frozenset(),
    smoothing: float = 0.0,
    markers: bool = False,
    width: int = 320,
    height: int = 170,
) -> dict[str, Any]:
    """Lines of ``value`` against the x axis, one panel per metric, each run in its colour.

    ``runs`` are (label, colour) pairs; ``log_metrics`` the metrics drawn on a log y
    scale. The data is the named dataset ``points`` with rows ``run, metric, step, value,
    smooth, relative, wall``; the browser swaps it in place as a live run logs more points.
    """
    names = [name for name, _ in runs]
    colors = [color for _, color in runs]
    color: dict[str, Any] = {
        "field": "run",
        "type": "nominal",
        "scale": {"domain": names, "range": colors},
        # Full-strength swatches, whatever the opacity of the faded raw line under a smoothed one.
        "legend": {"orient": "bottom", "title": None, "symbolOpacity": 1, "symbolType": "stroke"}
        if len(runs) > 1
        else None,
    }
    line_style: dict[str, Any] = {"color": color}
    if len(set(colors)) < len(colors):  # two runs share a colour: dashes tell them apart
        line_style["strokeDash"] = {
            "field": "run",
            "type": "nominal",
            "scale": {"domain": names, "range": dashes(colors)},
            "legend": color["legend"],
        }
    x, transform = x_encoding(x_axis, span_seconds)
    panels = [
        _curve_panel(key, x, line_style, x_tooltip(x_axis), key in log_metrics, smoothing, markers)
        | {"width": width, "height": height}
        for key in metrics
    ]
    spec: dict[str, Any] = {"$schema": SCHEMA, "data": {"name": "points"}, "config": CONFIG}
    if len(panels) == 1:
        spec.update(panels[0])
        spec["transform"] = transform + spec["transform"]
        return spec
    if transform:
        spec["transform"] = transform
    spec["concat"] = panels
    spec["columns"] = 2
    # Metrics logged per batch and per epoch share no step range, nor a value range.
    spec["resolve"] = {"scale": {"x": "independent", "y": "independent"}}
    return spec


def _curve_panel(
    key: str,
    x: dict[str, Any],
    line_style: dict[str, Any],
    x_tip: list[dict[str, Any]],
    log: bool,
    smoothing: float,
    markers: bool,
) -> dict[str, Any]:
    """One metric's panel: its title, its own y scale (log or not), the raw line faded
    under the smoothed one when smoothing."""
    # A log scale hugs the data: rounded out to whole decades, a curve fills a sliver of it.
    y_scale: dict[str, Any] = {"type": "log", "nice": False} if log else {"zero": False}
    tooltip = [
        {"field": "run", "type": "nominal"},
        {"field": "step", "type": "quantitative"},
        *x_tip,
        {"field": "value", "type": "quantitative", "format": ".5g", "title": key},
    ]
    layers = []
    if smoothing > 0:  # the raw series stays visible, faint, under its smoothed line
        tooltip.append({"field": "smooth", "type": "quantitative", "format": ".5g"})
        layers.append(
            {
                "mark": {"type": "line", "opacity": 0.3, "strokeWidth": 1},
                "encoding": {
                    "x": x,
                    "y": {"field": "value", "type": "quantitative", "scale": y_scale},
                    **line_style,
                },
            }
        )
    layers.append(
        {
            # Short series get a dot per point: a metric logged once is a dot, not nothing.
            "mark": {"type": "line", "strokeWidth": 1.8, "tooltip": True, "point": markers},
            "encoding": {
                "x": x,
                "y": {
                    "field": "smooth" if smoothing > 0 else "value",
                    "type": "quantitative",
                    "scale": y_scale,
                    "title": None,
                },
                **line_style,
                "tooltip": tooltip,
            },
        }
    )
    keep = [{"filter": {"field": "metric", "equal": key}}]
    if log:  # a log scale has no place for zero or negative values
        keep.append({"filter": "datum.value > 0 && datum.smooth > 0"})
    title = f"{key} (log y)" if log else key
    return {"title": title, "transform": keep, "layer": layers}


def scatter_spec(
    points: list[dict[str, Any]],
    x_title: str,
    y_title: str,
    numeric_x: bool,
    runs: list[tuple[str, str]],
) -> dict[str, Any]:
    """One point per run: a param (x) against a metric (y)."""
    import altair as alt

    x_type = "quantitative" if numeric_x else "nominal"
    xs = [p["x"] for p in points]
    if numeric_x and spans_decades(xs):  # learning rates and the like: 0.001, 0.01, 0.1
        x_scale = alt.Scale(type="log", padding=14)
    elif numeric_x:
        x_scale = alt.Scale(zero=False, padding=14)
    else:
        x_scale = alt.Scale()
    chart = (
        alt.Chart(alt.Data(values=points))
        .mark_point(filled=True, size=90, opacity=0.9)
        .encode(
            x=alt.X("x", type=x_type, title=x_title, scale=x_scale),
            y=alt.Y("y:Q", title=y_title, scale=alt.Scale(zero=False, padding=14)),
            color=alt.Color(
                "run:N",
                scale=alt.Scale(domain=[n for n, _ in runs], range=[c for _, c in runs]),
                legend=alt.Legend(orient="bottom", title=None),
            ),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip("x", type=x_type, title=x_title),
                alt.Tooltip("y:Q", title=y_title, format=".5g"),
            ],
        )
        .properties(width=300, height=200)
        .configure(**CONFIG)
    )
    return chart.to_dict()


def spans_decades(values: list[Any]) -> bool:
    """Whether positive numbers spread over two orders of magnitude (best seen on a log scale)."""
    numbers = [v for v in values if isinstance(v, int | float) and v > 0]
    return len(numbers) == len(values) > 1 and max(numbers) >= 100 * min(numbers)


MISSING = -0.14  # where a run without a value sits on a parallel axis, below its range
RUN_COLORS_UP_TO = 10  # parallel coordinates: past this many runs, colour by the metric


def parallel_spec(
    rows: list[dict[str, Any]], axes: list[str], metric: str, runs: list[tuple[str, str]]
) -> dict[str, Any]:
    """Parallel coordinates: a line per run across its params, ending on ``metric``.

    ``rows`` hold ``run, axis, position`` (0..1 within the axis, :data:`MISSING` for a run
    without that value), ``value`` (as text), ``label`` (shortened) and ``score`` (the
    run's metric), one per run and axis. Up to :data:`RUN_COLORS_UP_TO` runs each line has
    its run's colour (legend: the runs); past that, a gradient of the metric over its full
    range. Hovering a line brings it forward and names its run.
    """
    import altair as alt

    names, colors = [name for name, _ in runs], [color for _, color in runs]
    hover = alt.selection_point(fields=["run"], on="pointerover", clear="pointerout", empty=False)
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("axis:N", sort=axes, title=None, axis=alt.Axis(labelAngle=0, grid=True)),
        y=alt.Y("position:Q", axis=None, scale=alt.Scale(domain=[MISSING - 0.04, 1])),
        opacity=alt.condition(hover, alt.value(1.0), alt.value(0.75)),
    )
    lines = base.mark_line(strokeWidth=2).encode(
        detail="run:N",
        strokeWidth=alt.condition(hover, alt.value(3.5), alt.value(2)),
        tooltip=[alt.Tooltip("run:N")],
        **_parallel_style(rows, metric, names, colors),
    )
    # Points in a layer of their own, on a scale of their own (the same colours) without a
    # legend: the lines' legend then stays a gradient, where one of fill and stroke would
    # be drawn as symbols.
    points = base.mark_circle(size=30).encode(
        color=_parallel_color(rows, metric, names, colors, legend=False),
        tooltip=[alt.Tooltip("run:N"), alt.Tooltip("axis:N"), alt.Tooltip("value:N")],
    )
    chart = (
        (lines.add_params(hover) + points + _parallel_labels(base, len(names)) + _slots(axes))
        .resolve_scale(color="independent", strokeDash="independent")
        .properties(width=max(200, 110 * len(axes)), height=220)
        .configure(**CONFIG)
    )
    return chart.to_dict()


def _parallel_style(
    rows: list[dict[str, Any]], metric: str, names: list[str], colors: list[str]
) -> dict[str, Any]:
    import altair as alt

    style: dict[str, Any] = {"color": _parallel_color(rows, metric, names, colors)}
    if len(names) <= RUN_COLORS_UP_TO and len(set(colors)) < len(colors):
        # Two runs share a colour: dashes tell them apart.
        style["strokeDash"] = alt.StrokeDash(
            "run:N",
            scale=alt.Scale(domain=names, range=dashes(colors)),
            legend=alt.Legend(orient="bottom", title=None, symbolType="stroke"),
        )
    return style


def _parallel_labels(base: Any, runs: int) -> Any:
    """Each point's value beside it, so the static PNG reads without tooltips; past a few
    runs the labels would cover each other, so only each axis' ends are labelled."""
    shown = f"datum.position > {MISSING}"
    if runs > RUN_COLORS_UP_TO:
        shown = "datum.position == 0 || datum.position == 1"
    return (
        base.mark_text(align="left", dx=6, fontSize=9, color="#57606a", opacity=1)
        .encode(text="label:N")
        .transform_filter(shown)
    )


def _slots(axes: list[str]) -> Any:
    """The "not set" slot under each axis, where runs without that value go."""
    import altair as alt

    return (
        alt.Chart(alt.Data(values=[{"axis": a, "position": MISSING} for a in axes]))
        .mark_text(align="right", dx=-6, fontSize=9, fontStyle="italic", color="#8c959f")
        .encode(x=alt.X("axis:N", sort=axes), y="position:Q", text=alt.value("not set"))
    )


def _parallel_color(
    rows: list[dict[str, Any]],
    metric: str,
    names: list[str],
    colors: list[str],
    legend: bool = True,
) -> Any:
    import altair as alt

    if len(names) <= RUN_COLORS_UP_TO:
        return alt.Color(
            "run:N",
            scale=alt.Scale(domain=names, range=colors),
            legend=alt.Legend(orient="bottom", title=None, symbolType="stroke") if legend else None,
        )
    scores = [r["score"] for r in rows if r.get("score") is not None]
    low, high = (min(scores), max(scores)) if scores else (0.0, 1.0)
    # The legend spans the whole range, its ends labelled with the lowest and highest value.
    return alt.condition(
        "datum.score === null",
        alt.value("#bbb"),
        alt.Color(
            "score:Q",
            title=metric,
            scale=alt.Scale(scheme="viridis", domain=[low, high], nice=False),
            legend=alt.Legend(type="gradient", values=[low, high], format=".4~g")
            if legend
            else None,
        ),
    )


def png(spec: dict[str, Any], datasets: dict[str, list[dict[str, Any]]] | None = None) -> bytes:
    """The chart as PNG bytes (vl-convert renders it in-process, offline)."""
    import vl_convert

    if datasets:
        spec = {**spec, "datasets": {**spec.get("datasets", {}), **datasets}}
    return recompress_png(vl_convert.vegalite_to_png(spec, scale=1))


def recompress_png(data: bytes) -> bytes:
    """The same PNG, its pixel data deflated at level 9 (lossless).

    vl-convert favours speed and deflates lightly: a chart shrinks about 5x this way,
    which is what keeps saved notebooks with many charts small.
    """
    import struct
    import zlib

    chunks, position = [], 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        chunks.append(
            (data[position + 4 : position + 8], data[position + 8 : position + 8 + length])
        )
        position += 12 + length
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    out, wrote_pixels = [data[:8]], False
    for kind, body in chunks:
        if kind == b"IDAT":
            if wrote_pixels:  # the first IDAT chunk now carries all the pixel data
                continue
            body, wrote_pixels = zlib.compress(pixels, 9), True
        out.append(
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )
    return b"".join(out)


def img_tag(png_bytes: bytes, alt_text: str) -> str:
    """An ``<img>`` holding the PNG inline, so the static HTML needs no other file."""
    data = base64.b64encode(png_bytes).decode("ascii")
    return f'<img alt="{html.escape(alt_text)}" src="data:image/png;base64,{data}"/>'
