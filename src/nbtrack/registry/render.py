"""Static views of the registry for ``%track registry``: escaped HTML and plain text.

Models with their versions (stage, aliases, source run, who registered them) and the
audit log. Every user-controlled string (names, aliases, reasons, tags) goes through
:func:`html.escape`; the HTML has no scripts, so a saved notebook shows it safely.
"""

from __future__ import annotations

import html
from typing import Any

from nbtrack.registry.history import event_rows, policy_text
from nbtrack.render import StaticView, format_time, format_value, text_table
from nbtrack.store.registry import RegistryState

_STAGE_COLORS = {
    "Production": "#1a7f37",
    "Staging": "#9a6700",
    "Archived": "#6e7781",
    "None": "#8c959f",
}
_VERSION_HEAD = ("version", "stage", "aliases", "source run", "registered by", "created", "metrics")
_LOG_HEAD = ("time", "who", "event", "version", "from", "to", "reason", "checks")


def registry_view(state: RegistryState, name: str | None = None) -> StaticView:
    """Every model (or one) with its versions, then the audit log."""
    models = [state.model(name)] if name is not None else _live_models(state)
    sections = [_model_section(state, m) for m in models if m is not None]
    rows = event_rows(state, name)
    markup = "".join(s[0] for s in sections) + _log_html(rows)
    text = "\n\n".join([*(s[1] for s in sections), _log_text(rows)])
    if not sections:
        empty = "No registered models yet." if name is None else f"{name!r} is not registered now."
        markup = f"<p>{html.escape(empty)}</p>" + markup
        text = f"{empty}\n\n" + text
    return StaticView(f'<div class="nbtrack-registry" style="font-size:12px">{markup}</div>', text)


def _live_models(state: RegistryState) -> list[dict[str, Any]]:
    return sorted((state.models[i] for i in state.names.values()), key=lambda m: m["name"])


def _version_cells(version: dict[str, Any], aliases: dict[str, int]) -> list[str]:
    run = version.get("run", {})
    return [
        str(version["version"]),
        version["current_stage"],
        ", ".join(sorted(a for a, v in aliases.items() if v == version["version"])),
        f"{run.get('run_name') or ''} ({(version.get('run_id') or '')[:8]})",
        version.get("created_by", ""),
        format_time(version["creation_timestamp"]),
        ", ".join(f"{k}={format_value(p[0])}" for k, p in sorted(version["metrics"].items())[:4]),
    ]


def _model_section(state: RegistryState, model: dict[str, Any]) -> tuple[str, str]:
    e = html.escape
    versions = state.versions_of(model["model_id"])[::-1]
    aliases = model["aliases"]
    title = f"{model['name']} ({len(versions)} version{'s' * (len(versions) != 1)})"
    policy = policy_text(model.get("policy"))
    head = "".join(f"<th>{e(h)}</th>" for h in _VERSION_HEAD)
    body = "".join(
        "<tr>" + "".join(_version_html(i, cell, aliases) for i, cell in enumerate(cells)) + "</tr>"
        for cells in (_version_cells(v, aliases) for v in versions)
    )
    markup = (
        f"<h4 style='margin:6px 0 2px'>{e(title)}</h4>"
        f"<div style='color:#57606a'>policy: {e(policy)}</div>"
        f"<table class='nbtrack-versions' style='border-collapse:collapse'><thead><tr>{head}"
        f"</tr></thead><tbody>{body}</tbody></table>"
    )
    table = [list(_VERSION_HEAD), *(_version_cells(v, aliases) for v in versions)]
    lines = [title, f"policy: {policy}", *text_table(table, max_width=40)]
    text = "\n".join(lines)
    return markup, text


def _version_html(index: int, cell: str, aliases: dict[str, int]) -> str:
    e = html.escape
    if index == 1:
        return f"<td>{_badge(cell, _STAGE_COLORS.get(cell, '#6e7781'))}</td>"
    if index == 2 and cell:
        return "<td>" + " ".join(_badge("@" + a, "#8250df") for a in cell.split(", ")) + "</td>"
    return f"<td>{e(cell)}</td>"


def _badge(text: str, color: str) -> str:
    return (
        f'<span style="background:{color};color:#fff;border-radius:3px;padding:0 5px;'
        f'font-size:11px">{html.escape(text)}</span>'
    )


def _log_cells(row: dict[str, Any]) -> list[str]:
    failed = [c["check"] for c in row["checks"] if not c["passed"]]
    checks = (
        f"{len(row['checks']) - len(failed)}/{len(row['checks'])} passed" if row["checks"] else ""
    )
    if row["forced"]:
        checks += " (forced)"
    return [
        format_time(row["time"]),
        row["who"],
        row["event"],
        "" if row["version"] is None else str(row["version"]),
        "" if row["from"] is None else str(row["from"]),
        "" if row["to"] is None else str(row["to"]),
        row["reason"] or row["detail"] or "",
        checks,
    ]


def _log_html(rows: list[dict[str, Any]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in _LOG_HEAD)
    body = "".join(
        "<tr>" + "".join(f"<td>{e(c)}</td>" for c in _log_cells(row)) + "</tr>" for row in rows
    )
    return (
        "<h4 style='margin:10px 0 2px'>audit log</h4>"
        f"<table class='nbtrack-audit' style='border-collapse:collapse'><thead><tr>{head}</tr>"
        f"</thead><tbody>{body}</tbody></table>"
    )


def _log_text(rows: list[dict[str, Any]]) -> str:
    return "audit log\n" + "\n".join(
        text_table([list(_LOG_HEAD), *(_log_cells(r) for r in rows)], max_width=40)
    )
