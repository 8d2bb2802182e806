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

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
PALETTE = [
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#e45756",
    "#72b7b2",
    "#b279a2",
    "#eeca3b",
    "#9d755d",
    "#ff9da6",
    "#bab0ac",
]
CONFIG = {
    "view": {"stroke": "#ddd"},
    "axis": {"labelFontSize": 10, "titleFontSize": 11},
    "legend": {"labelFontSize": 11, "labelLimit": 220},
    "header": {"labelFontSize": 11, "labelFontWeight": "bold"},
}
X_AXES = {
    "step": {"field": "step", "type": "quantitative", "title": "step"},
    "relative": {"field": "relative", "type": "quantitative", "title": "seconds since start"},
    "wall": {"field": "wall", "type": "temporal", "title": "wall time"},
}


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def curves_spec(
    metrics: list[str],
    runs: list[str],
    *,
    x_axis: str = "step",
    log_y: bool = False,
    smoothing: float = 0.0,
    markers: bool = False,
    width: int = 320,
    height: int = 170,
) -> dict[str, Any]:
    """Lines of ``value`` against the x axis, one colour per run, a panel per metric.

    The data is the named dataset ``points`` with rows ``run, metric, step, value, smooth,
    relative, wall``; the browser swaps it in place as a live run logs more points.
    """
    x = X_AXES[x_axis]
    y_scale: dict[str, Any] = {"type": "log"} if log_y else {"zero": False}
    colors = {
        "field": "run",
        "type": "nominal",
        "scale": {"domain": runs, "range": [color(i) for i in range(len(runs))]},
        "legend": {"orient": "bottom", "title": None} if len(runs) > 1 else None,
    }
    y_title = metrics[0] if len(metrics) == 1 else "value"
    tooltip = [
        {"field": "run", "type": "nominal"},
        {"field": "metric", "type": "nominal"},
        {"field": "step", "type": "quantitative"},
        {"field": "value", "type": "quantitative", "format": ".5g"},
    ]
    layers = []
    if smoothing > 0:  # the raw series stays visible, faded, under its smoothed line
        tooltip.append({"field": "smooth", "type": "quantitative", "format": ".5g"})
        layers.append(
            {
                "mark": {"type": "line", "opacity": 0.25, "strokeWidth": 1},
                "encoding": {
                    "x": x,
                    "y": {"field": "value", "type": "quantitative", "scale": y_scale},
                    "color": colors,
                    "detail": {"field": "run"},
                },
            }
        )
    layers.append(
        {
            # Short series get a dot per point: a metric logged once is a dot, not nothing.
            "mark": {"type": "line", "strokeWidth": 1.6, "tooltip": True, "point": markers},
            "encoding": {
                "x": x,
                "y": {
                    "field": "smooth" if smoothing > 0 else "value",
                    "type": "quantitative",
                    "scale": y_scale,
                    "title": y_title,
                },
                "color": colors,
                "tooltip": tooltip,
            },
        }
    )
    spec: dict[str, Any] = {"$schema": SCHEMA, "data": {"name": "points"}, "config": CONFIG}
    if log_y:  # a log scale has no place for zero or negative values
        spec["transform"] = [{"filter": "datum.value > 0 && datum.smooth > 0"}]
    inner = {"layer": layers, "width": width, "height": height}
    if len(metrics) > 1:
        spec["facet"] = {"field": "metric", "type": "nominal", "title": None, "sort": metrics}
        spec["columns"] = 2
        spec["spec"] = inner
        # Metrics logged per batch and per epoch share no step range, nor a value range.
        spec["resolve"] = {"scale": {"x": "independent", "y": "independent"}}
    else:
        spec.update(inner)
    return spec


def scatter_spec(
    points: list[dict[str, Any]], x_title: str, y_title: str, numeric_x: bool, runs: list[str]
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
                scale=alt.Scale(domain=runs, range=[color(i) for i in range(len(runs))]),
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


def parallel_spec(rows: list[dict[str, Any]], axes: list[str], metric: str) -> dict[str, Any]:
    """Parallel coordinates: a line per run across its params, coloured by ``metric``.

    ``rows`` hold ``run, axis, position`` (0..1 within the axis) and ``label`` (the
    value as text), one per run and axis; the metric is the last axis.
    """
    import altair as alt

    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("axis:N", sort=axes, title=None, axis=alt.Axis(labelAngle=0, grid=True)),
        y=alt.Y("position:Q", axis=None, scale=alt.Scale(domain=[0, 1])),
    )
    lines = base.mark_line(point=True, strokeWidth=2).encode(
        detail="run:N",
        color=alt.Color("score:Q", title=metric, scale=alt.Scale(scheme="viridis")),
        tooltip=[alt.Tooltip("run:N"), alt.Tooltip("axis:N"), alt.Tooltip("label:N")],
    )
    # Each point's value beside it, so the static PNG reads without tooltips.
    labels = base.mark_text(align="left", dx=6, fontSize=9, color="#57606a").encode(text="label:N")
    chart = (
        (lines + labels).properties(width=max(200, 110 * len(axes)), height=200).configure(**CONFIG)
    )
    return chart.to_dict()


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
