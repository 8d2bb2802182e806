"""Inline views of runs: the run table and a run's details, each with a static fallback."""

from __future__ import annotations

import html

from nbtrack.store.records import to_patch
from nbtrack.tracking import fluent
from nbtrack.widgets.static import (
    StaticView,
    format_duration,
    format_time,
    runs_table_html,
    runs_table_text,
)

__all__ = ["run_details", "runs_table"]


def runs_table(
    filter_string: str = "",
    order_by: list[str] | None = None,
    max_results: int = 1000,
    search_all_experiments: bool = False,
) -> StaticView:
    """The runs of the active experiment matching an MLflow filter, newest first."""
    rows = fluent.search_rows(
        filter_string=filter_string,
        order_by=order_by,
        max_results=max_results,
        search_all_experiments=search_all_experiments,
    )
    return StaticView(runs_table_html(rows), runs_table_text(rows))


def run_details(ref: str) -> StaticView:
    """One run in full: info, params, metrics, tags, the cell that made it, its error."""
    store = fluent._store()
    row = store.resolve_run(ref)
    records = store.read_journal(row["run_id"])
    cell = next((r for r in reversed(records) if r["op"] == "cell"), None)
    error = next((r["text"] for r in reversed(records) if r["op"] == "traceback"), None)
    artifacts = {r["path"]: r for r in records if r["op"] == "artifact"}
    sections = _detail_sections(row, cell, error, artifacts)
    text = "\n\n".join(f"{title}\n{body}" for title, body in sections)
    pre = "<pre style='font-family:monospace;white-space:pre-wrap;margin:0'>"
    markup = "".join(
        f"<h4 style='margin:6px 0 2px'>{html.escape(title)}</h4>{pre}{html.escape(body)}</pre>"
        for title, body in sections
    )
    return StaticView(f"<div class='nbtrack-run'>{markup}</div>", text)


def _detail_sections(row, cell, error, artifacts) -> list[tuple[str, str]]:
    def lines(mapping) -> str:
        return "\n".join(f"  {k} = {v}" for k, v in sorted(mapping.items())) or "  -"

    info = {
        "run_id": row["run_id"],
        "name": row.get("run_name", ""),
        "experiment_id": row["experiment_id"],
        "status": row["status"],
        "start": format_time(row.get("start_time")),
        "duration": format_duration(row),
        "lifecycle": row.get("lifecycle_stage", "active"),
    }
    sections = [
        (f"run {row.get('run_name', '')}", lines(info)),
        ("params", lines(row.get("params", {}))),
        ("metrics (latest)", lines({k: p[0] for k, p in row.get("metrics", {}).items()})),
        ("tags", lines(row.get("tags", {}))),
    ]
    if artifacts:
        sections.append(
            (
                "artifacts",
                "\n".join(
                    f"  {p}  {a['size']} B  sha256:{a['sha256'][:12]}"
                    for p, a in sorted(artifacts.items())
                ),
            )
        )
    if cell is not None:
        where = to_patch(cell)["set"]["cell"]
        header = ", ".join(f"{k}={v}" for k, v in where.items() if v is not None)
        sections.append((f"cell ({header})", cell.get("source", "")))
    if error:
        sections.append(("error", error))
    return sections
