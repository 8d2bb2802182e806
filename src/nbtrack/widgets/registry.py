"""RegistryPanel: registered models, their versions (stage, aliases, source run), stage
transitions and protected alias moves through the model's policy, and the audit log.

A transition takes two steps, as a review does. *Prepare* (a click on a version's target
stage, or on a protected alias to point at it) runs the policy's checks as a dry run
(:func:`nbtrack.registry.check_transition`, :func:`~nbtrack.registry.check_alias_move`)
and shows each result with its actual value, and what the move would archive; nothing is
written. *Confirm* sends the reason typed and moves the version through
:func:`nbtrack.registry.promote` (or :func:`~nbtrack.registry.set_alias`), which checks
again inside its transaction: a move that fails is refused with the failed checks listed,
unless it is forced with a reason (and then recorded as forced). The watcher thread re-reads
the registry's journal when any kernel appends to it, so versions registered from a run
table or another notebook appear.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import traitlets

from nbtrack.errors import InvalidParameterError
from nbtrack.registry import aliases, gates, queries, stages
from nbtrack.registry.entities import REVIEWED_STAGES, STAGES, canonical_stage
from nbtrack.registry.history import event_rows, policy_text
from nbtrack.registry.names import check_alias, check_version, identity
from nbtrack.registry.queries import using_store
from nbtrack.registry.render import registry_view
from nbtrack.render import format_time, format_value
from nbtrack.store import Store
from nbtrack.store.catalog import file_signature
from nbtrack.store.registry import RegistryState
from nbtrack.tracking import fluent
from nbtrack.widgets import live
from nbtrack.widgets.panel import Panel

REFRESH_SECONDS = 1.0
EVENTS_SHOWN = 200  # the newest events the panel lists; the static form has them all
METRICS_SHOWN = 4


class RegistryPanel(Panel):
    """Every registered model (or only ``model_name``), with transitions and the audit log."""

    module_name = "registry.js"
    model_name = traitlets.Unicode("").tag(sync=True)  # "" for every model
    models = traitlets.List(traitlets.Dict()).tag(sync=True)  # see _model_fields
    events = traitlets.List(traitlets.Dict()).tag(sync=True)  # newest first, see _event_fields
    total_events = traitlets.Int(0).tag(sync=True)
    pending = traitlets.Dict().tag(sync=True)  # the prepared transition, {} when none
    detail = traitlets.Dict().tag(sync=True)  # an opened run: {run_id, title, sections}

    def __init__(self, name: str | None = None, store: Store | None = None) -> None:
        # The panel stays on its store, whatever comes later.
        self._store = store or fluent.current_store()
        self._ids = itertools.count(1)
        self._fingerprint = file_signature(self._registry_path())
        with self._store.registry.reading() as state:
            fields = _fields(state, name)  # a name never registered raises here
        super().__init__(model_name=name or "", **fields)
        live.schedule(self, min_interval=REFRESH_SECONDS)

    # -- reading -----------------------------------------------------------------------------

    def _registry_path(self) -> Path:
        return self._store.registry.path

    def reload(self) -> None:
        """Read the registry again (new versions, moves, events from any process)."""
        with self._lock, self._store.registry.reading() as state:
            fields = _fields(state, self.model_name or None)
            for key, value in fields.items():
                if getattr(self, key) != value:
                    setattr(self, key, value)

    def tick(self) -> bool:
        """The watcher's call: reload when the registry's journal grew."""
        if self.comm is None:  # closed
            return False
        fingerprint = file_signature(self._registry_path())
        if fingerprint != self._fingerprint:
            self._fingerprint = fingerprint
            with self.hold_sync():
                self.reload()
        return True

    # -- transitions -------------------------------------------------------------------------

    def prepare(
        self, model: str, version: int | str, stage: str | None = None, alias: str | None = None
    ) -> dict[str, Any]:
        """Show what moving ``version`` to ``stage`` (or pointing ``alias`` at it) would check
        and archive; move nothing."""
        with self._lock, using_store(self._store):
            number = check_version(version)
            if alias is not None:
                move = self._alias_move(model, number, check_alias(alias))
            else:
                move = self._stage_move(model, number, canonical_stage(stage))
            checks = move.pop("checks")
            self.error = self.message = ""
            self.pending = {
                "id": next(self._ids),
                "model": model,
                "version": number,
                "who": identity(),
                "policy": policy_text(queries.get_policy(model)),
                "checks": _check_fields(checks),
                "failed": sum(not c.passed for c in checks),
                **move,
            }
            return self.pending

    def _stage_move(self, model: str, number: int, stage: str) -> dict[str, Any]:
        current = queries.get_model_version(model, number)
        if current.current_stage == stage:
            raise InvalidParameterError(f"{model!r} version {number} is already in {stage}.")
        return {
            "kind": "stage",
            "from": current.current_stage,
            "to": stage,
            "checks": queries.check_transition(model, number, stage),
            "reason_required": stage in REVIEWED_STAGES,
            "archives": self._archived_by(model, number, stage),
        }

    def _alias_move(self, model: str, number: int, alias: str) -> dict[str, Any]:
        holder = queries.get_registered_model(model).aliases.get(alias)
        if holder == number:
            raise InvalidParameterError(f"@{alias} of {model!r} is already on version {number}.")
        checks = queries.check_alias_move(model, number, alias)
        return {
            "kind": "alias",
            "alias": alias,
            "from": "unset" if holder is None else f"version {holder}",
            "to": f"@{alias}",
            "checks": checks,
            "reason_required": gates.protects(queries.get_policy(model), alias),
            "archives": [],
        }

    def _archived_by(self, model: str, number: int, stage: str) -> list[int]:
        """The versions a move to ``stage`` archives (promote's default: Production's)."""
        if stage != "Production":
            return []
        with self._store.registry.reading() as state:
            row = queries.find_model(state, model)
            return [
                v["version"] for v in queries.in_stage(state, row, stage) if v["version"] != number
            ]

    def confirm(self, reason: str = "", force: bool = False) -> Any:
        """Make the prepared move with ``reason``; a refusal lists the failed checks."""
        with self._lock:
            pending = dict(self.pending)
            if not pending:
                raise InvalidParameterError(
                    "Nothing to confirm: choose a version's new stage first."
                )
            reason = reason.strip()
            self.error = self.message = ""
            try:
                with using_store(self._store):
                    moved = self._move(pending, reason, force)
            except gates.TransitionRefused as refused:
                self.pending = {
                    **pending,
                    "id": next(self._ids),
                    "checks": _check_fields(refused.checks),
                    "failed": sum(not c.passed for c in refused.checks),
                }
                failed = [c for c in refused.checks if not c.passed]
                self.error = (
                    f"Refused: {len(failed)} of {len(refused.checks)} check(s) failed:\n"
                    + "\n".join(f"  {c.line()}" for c in failed)
                    + "\nImprove the model, or give a reason and press 'Force with reason' "
                    "(the move is then recorded as forced)."
                )
                return None
            except Exception:
                self.pending = {**pending, "id": next(self._ids)}  # the page may ask again
                raise
            self.pending = {}
            self.reload()
            self.message = _moved_text(pending, moved, force and pending["failed"] > 0)
            return moved

    def _move(self, pending: dict[str, Any], reason: str, force: bool) -> Any:
        name, number = pending["model"], pending["version"]
        if pending["reason_required"] and not reason:
            raise InvalidParameterError(
                f"{_moving(pending)} needs a reason: type why in the reason box."
            )
        if force and not reason:
            raise InvalidParameterError("Forcing a move past failed checks needs a reason.")
        if pending["kind"] == "alias":
            return aliases.set_alias(
                name, pending["alias"], number, reason=reason or None, force=force
            )
        return stages.promote(name, number, pending["to"], reason=reason or None, force=force)

    def cancel(self) -> None:
        with self._lock:
            self.pending = {}

    # -- runs --------------------------------------------------------------------------------

    def open_run(self, run_id: str) -> None:
        """Show a version's source run in the detail area."""
        from nbtrack.render import run_sections

        with self._lock:
            row = self._store.get_run(run_id)
            sections = run_sections(row, self._store.records(run_id))
            self.detail = {
                "run_id": row["run_id"],
                "title": f"source run {row['run_id'][:8]}",
                "sections": [list(s) for s in sections],
            }

    # -- intents -----------------------------------------------------------------------------

    def handle_intent(self, kind: str, content: dict[str, Any]) -> None:
        if kind == "prepare":  # a stage, or an alias to point at the version
            alias = content.get("alias")
            self.prepare(
                str(content.get("model", "")),
                content.get("version"),
                str(content.get("stage")),
                None if alias is None else str(alias),
            )
        elif kind == "confirm":
            self.confirm(str(content.get("reason") or ""), bool(content.get("force")))
        elif kind == "cancel":
            self.cancel()
        elif kind == "open_run":
            self.open_run(str(content.get("run_id", "")))
        elif kind == "close_detail":
            self.detail = {}
        elif kind == "refresh":
            self.error = ""
            self.reload()
        else:
            super().handle_intent(kind, content)

    # -- static forms ------------------------------------------------------------------------

    def static_bundle(self, charts: bool = True) -> dict[str, Any]:
        with self._store.registry.reading() as state:
            view = registry_view(state, self.model_name or None)
        return {"text/html": view.html, "text/plain": f"[nbtrack] model registry\n{view.text}"}


# -- what the page gets: display strings ------------------------------------------------------


def _fields(state: RegistryState, name: str | None) -> dict[str, Any]:
    rows = event_rows(state, name)  # raises for a name never registered
    if name is not None:
        model = state.model(name)
        models = [model] if model is not None else []
    else:
        models = sorted((state.models[i] for i in state.names.values()), key=lambda m: m["name"])
    newest = rows[::-1][:EVENTS_SHOWN]
    return {
        "models": [_model_fields(state, m) for m in models],
        "events": [_event_fields(r) for r in newest],
        "total_events": len(rows),
    }


def _model_fields(state: RegistryState, model: dict[str, Any]) -> dict[str, Any]:
    aliases = model.get("aliases", {})
    protected = sorted((model.get("policy") or {}).get("aliases", {}))
    versions = state.versions_of(model["model_id"])[::-1]  # newest first
    return {
        "name": model["name"],
        "description": model.get("description") or "",
        "policy": policy_text(model.get("policy")),
        "versions": [_version_fields(v, aliases, protected) for v in versions],
    }


def _version_fields(
    version: dict[str, Any], aliases: dict[str, int], protected: list[str]
) -> dict[str, Any]:
    run = version.get("run") or {}
    metrics = sorted(version.get("metrics", {}).items())
    number = version["version"]
    return {
        "version": number,
        "stage": version["current_stage"],
        "moves": [s for s in STAGES if s != version["current_stage"]],
        # The protected aliases this version could take (moved, like stages, by review).
        "alias_moves": [a for a in protected if aliases.get(a) != number],
        "aliases": sorted(a for a, v in aliases.items() if v == number),
        "run_id": version.get("run_id") or "",
        "run_name": run.get("run_name") or "",
        "source": version.get("source", ""),
        "created_by": version.get("created_by", ""),
        "created": format_time(version.get("creation_timestamp")),
        "metrics": ", ".join(f"{k}={format_value(p[0])}" for k, p in metrics[:METRICS_SHOWN])
        + (f", +{len(metrics) - METRICS_SHOWN} more" if len(metrics) > METRICS_SHOWN else ""),
        "digest": (version.get("digest") or "")[:12],
    }


def _event_fields(row: dict[str, Any]) -> dict[str, Any]:
    checks = row["checks"]
    passed = sum(bool(c["passed"]) for c in checks)
    return {
        "seq": row["seq"],
        "time": format_time(row["time"]),
        "model": row["model"],
        "who": row["who"],
        "event": row["event"],
        "version": "" if row["version"] is None else str(row["version"]),
        "from": "" if row["from"] is None else str(row["from"]),
        "to": "" if row["to"] is None else str(row["to"]),
        "reason": row["reason"] or "",
        "detail": row["detail"] or "",
        "forced": row["forced"],
        "checks": f"{passed}/{len(checks)} passed" if checks else "",
        "check_lines": [gates.CheckResult(**c).line() for c in checks],
    }


def _check_fields(checks: list[gates.CheckResult]) -> list[dict[str, Any]]:
    return [{"check": c.check, "passed": c.passed, "actual": c.actual} for c in checks]


def _moving(pending: dict[str, Any]) -> str:
    if pending["kind"] == "alias":
        return f"Pointing {pending['model']!r}@{pending['alias']} at version {pending['version']}"
    return f"Moving {pending['model']!r} version {pending['version']} to {pending['to']}"


def _moved_text(pending: dict[str, Any], moved: Any, forced: bool) -> str:
    if pending["kind"] == "alias":
        text = (
            f"Pointed {pending['model']}@{pending['alias']} at version {pending['version']} "
            f"(was {pending['from']})"
        )
    else:
        text = (
            f"Moved {pending['model']} version {pending['version']} from {pending['from']} to "
            f"{moved.current_stage}"
        )
    if forced:
        text += f", forced past {pending['failed']} failed check(s)"
    if pending["archives"]:
        archived = ", ".join(str(v) for v in pending["archives"])
        text += f"; archived version {archived}"
    return text + "."
