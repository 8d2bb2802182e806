"""Static renderings of runs: escaped HTML (no scripts) and readable plain text.

These are what a saved notebook shows without a kernel, what the registry prints and what
the command line prints, so every user-controlled string goes through
:func:`html.escape`. They work on catalog rows and journal records alone.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from nbtrack.colors import run_color

_STATUS_COLORS = {
    "RUNNING": "#1f6feb",
    "FINISHED": "#1a7f37",
    "FAILED": "#cf222e",
    "KILLED": "#9a6700",
    "SCHEDULED": "#6e7781",
}
_MAX_ITEMS = 8


def format_value(value: Any) -> str:
    """Metric values to 4 significant digits; everything else as text."""
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def format_duration(row: dict[str, Any], now_ms: int | None = None) -> str:
    """How long the run took, or for a RUNNING run how long it has run ("12.3s so far")."""
    start, end = row.get("start_time"), row.get("end_time")
    if start is not None and end is None and row.get("status") == "RUNNING":
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return f"{format_seconds(max(0, now - start) / 1000)} so far"
    if start is None or end is None:
        return "-"
    return format_seconds((end - start) / 1000)


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def format_time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return (
        datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
        .astimezone()
        .strftime("%Y-%m-%d %H:%M:%S")
    )


def latest_metrics(row: dict[str, Any]) -> dict[str, float]:
    return {k: p[0] for k, p in sorted(row.get("metrics", {}).items())}


def user_tags(row: dict[str, Any]) -> dict[str, str]:
    """Tags a person set, without MLflow's and nbtrack's system tags."""
    return {
        k: v
        for k, v in sorted(row.get("tags", {}).items())
        if not k.startswith(("mlflow.", "nbtrack."))
    }


def _pairs(mapping: dict[str, Any], limit: int = _MAX_ITEMS) -> str:
    items = [f"{k}={format_value(v)}" for k, v in list(mapping.items())[:limit]]
    if len(mapping) > limit:
        items.append(f"+{len(mapping) - limit} more")
    return ", ".join(items)


def _badge(status: str) -> str:
    color = _STATUS_COLORS.get(status, "#6e7781")
    return (
        f'<span style="background:{color};color:#fff;border-radius:3px;padding:0 5px;'
        f'font-size:11px">{html.escape(status)}</span>'
    )


def run_card_html(row: dict[str, Any]) -> str:
    """A one-line summary of a run for under a ``%%track`` cell."""
    e = html.escape
    parts = [
        _swatch(run_color(row["run_id"])) + f"<b>{e(row.get('run_name', ''))}</b>",
        _badge(row.get("status", "")),
        f"<span>{e(format_duration(row))}</span>",
    ]
    params, metrics = row.get("params", {}), latest_metrics(row)
    if params:
        parts.append(f"<span><i>params</i> {e(_pairs(params))}</span>")
    if metrics:
        parts.append(f"<span><i>metrics</i> {e(_pairs(metrics))}</span>")
    if row.get("error"):
        parts.append(f'<span style="color:#cf222e">{e(row["error"][:200])}</span>')
    if row.get("stale"):  # provenance: the cells it depends on ran out of order or changed
        parts.append(
            f'<span class="nbtrack-stale" style="color:#9a6700" title="{e(row["stale"])}">'
            f"&#9888; stale: {e(row['stale'][:200])}</span>"
        )
    parts.append(f'<code style="color:#6e7781">{e(row["run_id"][:8])}</code>')
    return (
        '<div class="nbtrack-run-card" style="font-family:sans-serif;font-size:12px;'
        f"border-left:3px solid {run_color(row['run_id'])};padding:2px 8px;display:flex;"
        'gap:10px;flex-wrap:wrap;align-items:center">' + "".join(parts) + "</div>"
    )


def _swatch(color: str) -> str:
    """A run's colour as a small square (``color`` is one of the palette's, never user text)."""
    return (
        f'<span style="display:inline-block;width:9px;height:9px;border-radius:2px;'
        f'background:{color};margin-right:4px"></span>'
    )


def run_card_text(row: dict[str, Any]) -> str:
    parts = [
        f"[nbtrack] {row.get('run_name', '')}",
        row.get("status", ""),
        format_duration(row),
    ]
    if row.get("params"):
        parts.append("params: " + _pairs(row["params"]))
    metrics = latest_metrics(row)
    if metrics:
        parts.append("metrics: " + _pairs(metrics))
    if row.get("error"):
        parts.append(row["error"][:200])
    if row.get("stale"):
        parts.append(f"STALE: {row['stale'][:200]}")
    parts.append(row["run_id"][:8])
    return " | ".join(parts)


def _table_columns(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    metrics = sorted({k for r in rows for k in r.get("metrics", {})})
    params = sorted({k for r in rows for k in r.get("params", {})})
    return metrics, params


def runs_table_text(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table of runs: what a terminal, or JupyterLab without a kernel, shows.

    Metrics come before params: they are what runs are compared by.
    """
    metrics, params = _table_columns(rows)
    stale = any(r.get("stale") for r in rows)  # the column appears when a run is stale
    header = ["run_id", "name", "status"] + [f"metrics.{k}" for k in metrics]
    header += ["start", "duration"] + [f"params.{k}" for k in params]
    header += ["stale"] * stale
    body = [
        [
            r["run_id"][:8],
            r.get("run_name", ""),
            r.get("status", ""),
            *(format_value(p[0]) if (p := r.get("metrics", {}).get(k)) else "" for k in metrics),
            format_time(r.get("start_time")),
            format_duration(r),
            *(r.get("params", {}).get(k, "") for k in params),
            *[r.get("stale") or ""] * stale,
        ]
        for r in rows
    ]
    lines = text_table([header, *body], max_width=30)
    lines.append(f"({len(rows)} run{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def text_table(table: Sequence[Sequence[Any]], max_width: int | None = None) -> list[str]:
    """Fixed-width lines of ``table`` (its first row the header, ruled off below); a cell
    wider than ``max_width`` is cut with "…"."""
    widths = [max(len(str(line[i])) for line in table) for i in range(len(table[0]))]
    if max_width is not None:
        widths = [min(max_width, w) for w in widths]
    lines = [
        "  ".join(_clip(str(c), w).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_NAME_WIDTH = 40  # characters of a run name in the static table; the rest in its title
# Cells stay on one line (white-space is inherited), so names and times never wrap.
_TABLE_STYLE = "font-size:12px;border-collapse:collapse;white-space:nowrap"
_GROUP_STYLE = "text-align:left;border-bottom:1px solid #d0d7de;color:#57606a;font-weight:600"


def runs_table_html(rows: Sequence[dict[str, Any]]) -> str:
    """The runs as a plain HTML table (no scripts, so sanitizers keep it).

    Name and short run id first, each row edged in its run's colour; then the metrics
    (what runs are compared by, so they are on screen first), start and duration, the
    params, the tags. Metric and param columns are headed by their key under a group row.
    """
    e = html.escape
    metrics, params = _table_columns(rows)
    stale = any(r.get("stale") for r in rows)  # the column appears when a run is stale
    lead, middle = ["name", "run_id", "status"], ["start", "duration"]
    tail = ["tags"] + ["stale"] * stale
    groups = [("", len(lead)), ("metrics", len(metrics)), ("", len(middle))]
    groups += [("params", len(params)), ("", len(tail))]
    group_row = "".join(
        f"<th colspan='{n}' style='{_GROUP_STYLE}'>{label}</th>" for label, n in groups if n
    )
    head = [*lead, *metrics, *middle, *params, *tail]
    out = [
        f'<table class="nbtrack-runs" style="{_TABLE_STYLE}">',
        f"<thead><tr>{group_row}</tr><tr>"
        + "".join(f"<th>{e(h)}</th>" for h in head)
        + "</tr></thead><tbody>",
    ]
    for r in rows:
        cells = [
            f"<code>{e(r['run_id'][:8])}</code>",
            _badge(r.get("status", "")),
            *(e(format_value(p[0])) if (p := r.get("metrics", {}).get(k)) else "" for k in metrics),
            e(format_time(r.get("start_time"))),
            e(format_duration(r)),
            *(e(r.get("params", {}).get(k, "")) for k in params),
            e(_clip(_pairs(user_tags(r)), 60)),
            *[_stale_cell(r.get("stale"))] * stale,
        ]
        edge = f"border-left:4px solid {run_color(r['run_id'])}"
        out.append(
            f'<tr style="{edge}">{_name_cell(r.get("run_name", ""))}'
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
        )
    out.append(f"</tbody></table><div style='font-size:11px'>{len(rows)} runs</div>")
    return "".join(out)


def _name_cell(name: str) -> str:
    if len(name) <= _NAME_WIDTH:
        return f"<td>{html.escape(name)}</td>"
    return f'<td title="{html.escape(name)}">{html.escape(_clip(name, _NAME_WIDTH))}</td>'


def _stale_cell(reason: str | None) -> str:
    if not reason:
        return ""
    e = html.escape
    return f'<span style="color:#9a6700" title="{e(reason)}">&#9888; {e(reason[:80])}</span>'


class StaticView:
    """Something with both an HTML and a plain-text rendering, for IPython's display()."""

    def __init__(self, html_text: str, plain_text: str) -> None:
        self.html = html_text
        self.text = plain_text

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        return {"text/html": self.html, "text/plain": self.text}

    def __repr__(self) -> str:
        return self.text


def run_details(row: dict[str, Any], records: list[dict[str, Any]]) -> StaticView:
    """One run in full from its row and journal records: info, params, metrics, tags,
    artifacts, provenance, the cell that made it, its error."""
    sections = run_sections(row, records)
    text = "\n\n".join(f"{title}\n{body}" for title, body in sections)
    pre = "<pre style='font-family:monospace;white-space:pre-wrap;margin:0'>"
    markup = "".join(
        f"<h4 style='margin:6px 0 2px'>{html.escape(title)}</h4>{pre}{html.escape(body)}</pre>"
        for title, body in sections
    )
    return StaticView(f"<div class='nbtrack-run'>{markup}</div>", text)


def run_sections(row: dict[str, Any], records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What :func:`run_details` shows, as (title, text) sections."""
    cell = next((r for r in reversed(records) if r["op"] == "cell"), None)
    trace = next((r for r in reversed(records) if r["op"] == "trace"), None)
    error = next((r["text"] for r in reversed(records) if r["op"] == "traceback"), None)
    artifacts = {r["path"]: r for r in records if r["op"] == "artifact"}
    info = {
        "run_id": row["run_id"],
        "name": row.get("run_name", ""),
        "experiment_id": row["experiment_id"],
        "status": row["status"],
        "start": format_time(row.get("start_time")),
        "duration": format_duration(row),
        "lifecycle": row.get("lifecycle_stage", "active"),
        "stale": row.get("stale") or "no",
    }
    sections = [
        (f"run {row.get('run_name', '')}", _lines(info)),
        ("params", _lines(row.get("params", {}))),
        ("metrics (latest)", _lines(latest_metrics(row))),
        ("tags", _lines(row.get("tags", {}))),
    ]
    if artifacts:
        listing = "\n".join(
            f"  {p}  {a['size']} B  sha256:{a['sha256'][:12]}" for p, a in sorted(artifacts.items())
        )
        sections.append(("artifacts", listing))
    if trace is not None:
        sections.append(("provenance", _provenance(trace)))
    if cell is not None:
        where = {k: cell.get(k) for k in ("notebook", "cell_id", "execution_count")}
        header = ", ".join(f"{k}={v}" for k, v in where.items() if v is not None)
        sections.append((f"cell ({header})", cell.get("source", "")))
    if error:
        sections.append(("error", error))
    return sections


def _lines(mapping: dict[str, Any]) -> str:
    return "\n".join(f"  {k} = {v}" for k, v in sorted(mapping.items())) or "  -"


def _provenance(trace: dict[str, Any]) -> str:
    """The trace record: the cells the run depends on and the stale verdict's reasons."""
    cells = [
        f"In[{c['execution_count']}]" if c.get("execution_count") is not None else "a cell"
        for c in trace.get("slice", [])
    ]
    lines = [
        f"  stale = {trace.get('stale') or 'no'}",
        f"  slice = {', '.join(cells) or '-'} ({trace.get('cells', 0)} cells run in the session)",
    ]
    lines += [f"  reason: {reason}" for reason in trace.get("reasons", [])]
    return "\n".join(lines)
