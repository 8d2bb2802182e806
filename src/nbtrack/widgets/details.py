"""A run in full (``%track show``): the run card's richer form, with every param, each
metric's last value, range and sparkline, tags, artifacts, the cell that made it, its
provenance and its error. Its static forms are render.run_details' text and HTML, for
saved notebooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from nbtrack.render import format_time, format_value, run_details, run_sections, user_tags
from nbtrack.widgets.card import RunCard
from nbtrack.widgets.series import SeriesReader, downsample, in_step_order

if TYPE_CHECKING:
    from nbtrack.store import Store

SPARK_POINTS = 80  # points per sparkline (min/max buckets keep its spikes)
BLOCKS = ("provenance", "cell", "error")  # render.run_sections shown as blocks of text


def details_card(store: Store, run_id: str) -> RunCard:
    """The run's card with its details, and render.run_details as its static form."""
    row = store.get_run(run_id)
    records = store.records(run_id)
    details = detail_fields(store, row, records)
    return RunCard(row, details=details, static=run_details(row, records), store=store)


def detail_fields(store: Store, row: dict[str, Any], records: list[dict[str, Any]]) -> dict:
    """What the details show, as display strings and sparkline numbers."""
    tags = row.get("tags", {})
    own = user_tags(row)
    return {
        "info": _info(store, row),
        "params": [[k, v] for k, v in sorted(row.get("params", {}).items())],
        "metrics": _metrics(store, row),
        "tags": [[k, v] for k, v in own.items()],
        "system_tags": [[k, v] for k, v in sorted(tags.items()) if k not in own],
        "artifacts": _artifacts(records),
        "blocks": [
            {"title": title, "text": text}
            for title, text in run_sections(row, records)
            if title.startswith(BLOCKS)
        ],
    }


def _info(store: Store, row: dict[str, Any]) -> list[list[str]]:
    try:
        experiment = store.get_experiment(row["experiment_id"])["name"]
    except Exception:  # a run whose experiment is gone still shows
        experiment = row["experiment_id"]
    info = [
        ["run_id", row["run_id"]],
        ["experiment", experiment],
        ["start", format_time(row.get("start_time"))],
        ["end", format_time(row.get("end_time")) if row.get("end_time") else "-"],
        ["lifecycle", row.get("lifecycle_stage", "active")],
    ]
    parent = row.get("tags", {}).get("mlflow.parentRunId")
    if parent:
        info.append(["parent run", parent])
    return info


def _metrics(store: Store, row: dict[str, Any]) -> list[dict[str, Any]]:
    keys = sorted(row.get("metrics", {}))
    if not keys:
        return []
    reader = SeriesReader(store, row["run_id"])
    reader.update()
    return [_metric(key, *in_step_order(reader.columns(key))) for key in keys]


def _metric(key: str, steps: np.ndarray, values: np.ndarray, _times: np.ndarray) -> dict:
    finite = values[np.isfinite(values)]
    spark = values[downsample(values, SPARK_POINTS)] if len(values) > 1 else values[:0]
    return {
        "key": key,
        "last": format_value(float(values[-1])) if len(values) else "",
        "last_step": int(steps[-1]) if len(steps) else 0,
        "points": len(values),
        "min": format_value(float(finite.min())) if len(finite) else "",
        "max": format_value(float(finite.max())) if len(finite) else "",
        "spark": [v if np.isfinite(v) else None for v in spark.tolist()],
    }


def _artifacts(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    latest = {r["path"]: r for r in records if r["op"] == "artifact"}
    return [
        {"path": path, "size": _size(r.get("size", 0)), "sha256": (r.get("sha256") or "")[:12]}
        for path, r in sorted(latest.items())
    ]


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
