"""The registry's audit trail: its events as rows, for a DataFrame and for the static views."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbtrack.errors import NotFoundError

if TYPE_CHECKING:
    import pandas as pd

    from nbtrack.store.registry import RegistryState

COLUMNS = (
    "seq",
    "time",
    "model",
    "event",
    "version",
    "from",
    "to",
    "who",
    "reason",
    "forced",
    "checks",
    "metrics",
    "detail",
)
TEXT_COLUMNS = ("model", "event", "from", "to", "who", "reason", "detail")


def history(name: str | None = None) -> pd.DataFrame:
    """Every registry event of model ``name`` (of all models if None), oldest first.

    Columns: ``seq``, ``time`` (UTC), ``model``, ``event``, ``version``, ``from``, ``to``,
    ``who``, ``reason``, ``forced``, ``checks`` (each gate's result), ``metrics`` (the
    evidence recorded) and ``detail``; a missing value is ``pd.NA`` in every column (the
    lists and dicts are empty). Renamed models keep their earlier events.

    Raises
    ------
    NotFoundError
        If no model of that name was ever registered.
    """
    import pandas as pd

    from nbtrack.registry.queries import acting_store

    with acting_store().registry.reading() as state:
        rows = event_rows(state, name)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
    # pandas' nullable types, so every missing value (a model event's version, a move's
    # absent reason) is the one <NA>, never NaN here and None there.
    frame = frame.astype({"seq": "Int64", "version": "Int64", "forced": "boolean"})
    return frame.astype({c: "string" for c in TEXT_COLUMNS})


def event_rows(state: RegistryState, name: str | None) -> list[dict[str, Any]]:
    """The events of one model (all if ``name`` is None) as flat rows."""
    events = state.events
    if name is not None:
        model_id = _model_id(state, name)
        events = [e for e in events if e["model_id"] == model_id]
    return [_row(event) for event in events]


def _model_id(state: RegistryState, name: str) -> str:
    current = state.model_id(name)
    if current is not None:
        return current
    for event in reversed(state.events):  # a deleted (or renamed-away) model keeps its history
        renamed_to = event["op"] == "model.rename" and event["to"] == name
        if event["model"] == name or renamed_to:
            return event["model_id"]
    raise NotFoundError(f"No registered model {name!r} was ever recorded in this store.")


def _row(event: dict[str, Any]) -> dict[str, Any]:
    op = event["op"]
    start, end = _from_to(event)
    return {
        "seq": event["seq"],
        "time": event["time"],
        "model": event["model"],
        "event": op,
        "version": event.get("version"),
        "from": start,
        "to": end,
        "who": event["who"],
        "reason": event.get("reason"),
        "forced": bool(event.get("forced", False)),
        "checks": list(event.get("checks") or []),
        "metrics": dict((event.get("evidence") or {}).get("metrics") or {}),
        "detail": _detail(event),
    }


def _from_to(event: dict[str, Any]) -> tuple[Any, Any]:
    op = event["op"]
    if op == "version.stage":
        return event["from"], event["to"]
    if op in ("version.rollback", "alias.set"):
        start = event["from"]
        return (None if start is None else f"version {start}"), f"version {event['version']}"
    if op == "model.rename":
        return event["from"], event["to"]
    if op == "alias.delete":
        return f"version {event['version']}", None
    return None, None


def _detail(event: dict[str, Any]) -> str:
    op = event["op"]
    if op == "version.create":
        copied = event.get("copied_from")
        return f"from {event['source']}" + (f" (copy of {copied})" if copied else "")
    if op in ("alias.set", "alias.delete"):
        return f"alias {event['alias']!r}"
    if op in ("version.tag", "model.tag"):
        return f"{event['key']}={event['value']}"
    if op in ("version.untag", "model.untag"):
        return f"removed tag {event['key']}"
    if op == "model.policy":
        return policy_text(event["policy"])
    if op == "version.rollback":
        return "previous Production version restored"
    if event.get("cause") is not None:
        return f"because of event {event['cause']}"
    return ""


def policy_text(policy: dict[str, Any] | None) -> str:
    """A policy in one line, e.g. ``Production: metrics.auc >= 0.9; @champion: protected``."""
    if not policy:
        return "no policy"
    parts = [f"{stage}: {', '.join(checks)}" for stage, checks in policy.get("gates", {}).items()]
    parts += [
        f"@{alias}: {', '.join(checks) or 'protected'}"
        for alias, checks in policy.get("aliases", {}).items()
    ]
    if policy.get("distinct_approver"):
        parts.append("distinct approver")
    if policy.get("require_reason"):
        parts.append("reason required")
    if policy.get("on_rollback", "move") != "move":
        parts.append(f"aliases {policy['on_rollback']} on rollback")
    return "; ".join(parts) or "no checks"
