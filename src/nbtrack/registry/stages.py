"""Moving versions: stage transitions through their policy's gates, rollback, and aliases.

Gates are evaluated inside the store transaction that records the move, so a check against
the incumbent cannot be outdated by another process before the move is written.
"""

from __future__ import annotations

from typing import Any

from nbtrack.errors import InvalidParameterError, NotFoundError
from nbtrack.registry import gates
from nbtrack.registry.entities import REVIEWED_STAGES, ModelVersion, canonical_stage
from nbtrack.registry.names import (
    NO_REASON,
    check_alias,
    check_reason,
    check_version,
    identity,
    mlflow_style_reason,
    required_reason,
)
from nbtrack.registry.queries import (
    find_model,
    find_version,
    in_stage,
    incumbent,
    registry_store,
    version_entity,
)
from nbtrack.store.registry import RegistryState, Transaction

# Who asks decides how a missing reason is treated: nbtrack's own API and magics refuse,
# MLflow-style calls warn (see names.mlflow_style_reason).
NBTRACK, MLFLOW = "nbtrack", "mlflow"


# -- stages, rollback, aliases ---------------------------------------------------------------------


def promote(
    name: str,
    version: int | str,
    stage: str,
    *,
    reason: str | None = None,
    force: bool = False,
    archive_existing: bool | None = None,
) -> ModelVersion:
    """Move a version to ``stage`` after its policy's checks pass; record who, when and why.

    Parameters
    ----------
    name, version
        The registered model and the version to move.
    stage
        None, Staging, Production or Archived (any case).
    reason
        Why; required for Staging, Production and Archived.
    force
        Move even though checks failed; needs a reason, and the event is marked forced.
    archive_existing
        Archive the versions now in ``stage``; by default True for Production (one
        version serves) and False otherwise.

    Raises
    ------
    TransitionRefused
        Listing every check with its actual value, when any failed and ``force`` is False.
    InvalidParameterError
        For a missing reason, an unknown stage, a version already in ``stage``, or
        ``force`` without a reason.
    NotFoundError
        For an unknown model or version.
    """
    if archive_existing is None:
        archive_existing = canonical_stage(stage) == "Production"
    return _move(name, version, stage, reason, force, archive_existing, NBTRACK)


def transition_mlflow_style(
    name: str,
    version: int | str,
    stage: str,
    archive_existing: bool,
    reason: str | None,
    force: bool,
) -> ModelVersion:
    """``MlflowClient.transition_model_version_stage``: as :func:`promote`, except that a
    missing reason warns (unless the policy requires one) and a move to the current stage
    does nothing, as in MLflow."""
    return _move(name, version, stage, reason, force, archive_existing, MLFLOW)


def _move(
    name: str,
    version: int | str,
    stage: str,
    reason: str | None,
    force: bool,
    archive_existing: bool,
    caller: str,
) -> ModelVersion:
    number, stage, reason = check_version(version), canonical_stage(stage), check_reason(reason)
    who = identity()
    with registry_store().transaction(who) as tx:
        model = find_model(tx.state, name)
        row = find_version(tx.state, model, number)
        reason = _stage_reason(reason, model, name, number, stage, caller)
        if row["current_stage"] == stage:
            if caller == MLFLOW:
                return version_entity(tx.state, row)
            raise InvalidParameterError(f"Model {name!r} version {number} is already in {stage}.")
        checks = _checks(tx.state, model, row, stage, who, force, reason, caller)
        event = tx.append(
            "version.stage",
            model["model_id"],
            name,
            version=number,
            reason=reason,
            forced=not all(c.passed for c in checks),
            checks=[c._asdict() for c in checks],
            evidence=_evidence(row),
            **{"from": row["current_stage"], "to": stage},
        )
        if archive_existing and stage in ("Staging", "Production"):
            _archive_others(tx, model, number, stage, event["seq"])
        return version_entity(tx.state, row)


def _checks(
    state: RegistryState,
    model: dict[str, Any],
    row: dict[str, Any],
    stage: str,
    who: str,
    force: bool,
    reason: str | None,
    caller: str,
) -> list[gates.CheckResult]:
    """The policy's checks of this move; raises unless they pass or are forced with a reason."""
    checks = gates.evaluate(model["policy"], stage, row, incumbent(state, model, row, stage), who)
    failed = [c for c in checks if not c.passed]
    if failed and not force:
        raise gates.refusal(model["name"], row["version"], stage, checks, _force_hint(caller))
    if failed and reason in (None, NO_REASON):
        raise InvalidParameterError(
            f"force=True on {model['name']!r} version {row['version']} overrides {len(failed)} "
            "failed check(s) and needs a reason saying why: pass reason='...'."
        )
    return checks


def _stage_reason(
    reason: str | None, model: dict[str, Any], name: str, version: int, stage: str, caller: str
) -> str | None:
    if stage not in REVIEWED_STAGES:
        return reason
    action = f"Moving {name!r} version {version} to {stage}"
    if caller == MLFLOW:
        how = (
            f"Pass reason='...' to the call, e.g. client.transition_model_version_stage("
            f"{name!r}, {version}, {stage!r}, reason='why')"
        )
        required = bool((model["policy"] or {}).get("require_reason"))
        return mlflow_style_reason(reason, action, how, required)
    how = (
        f"nbtrack.registry.promote({name!r}, {version}, {stage!r}, reason='why'), or "
        f'%track promote {name} {version} --to {stage} --reason "why"'
    )
    return required_reason(reason, action, how)


def _force_hint(caller: str) -> str:
    if caller == MLFLOW:
        return "Improve the model, or pass force=True with a reason (recorded as forced)."
    return (
        "Improve the model, or pass force=True with a reason (--force in %track promote); "
        "the move is then recorded as forced."
    )


def _evidence(row: dict[str, Any]) -> dict[str, Any]:
    return {"metrics": {k: p[0] for k, p in row["metrics"].items()}, "digest": row.get("digest")}


def _archive_others(
    tx: Transaction, model: dict[str, Any], number: int, stage: str, cause: int
) -> None:
    for other in in_stage(tx.state, model, stage):
        if other["version"] != number:
            tx.append(
                "version.stage",
                model["model_id"],
                model["name"],
                version=other["version"],
                reason=f"archived: version {number} moved to {stage}",
                forced=False,
                checks=[],
                cause=cause,
                **{"from": stage, "to": "Archived"},
            )


def rollback(name: str, *, reason: str | None = None) -> ModelVersion:
    """Put the previous Production version back in Production and archive the current one.

    The previous version is the one most recently in Production before the current one
    (and not deleted). Gates are not re-checked: that version passed them before.

    Raises
    ------
    InvalidParameterError
        Without a reason, or when no earlier Production version exists.
    """
    reason = required_reason(
        check_reason(reason),
        f"Rolling back {name!r}",
        f"nbtrack.registry.rollback({name!r}, reason='why')",
    )
    with registry_store().transaction(identity()) as tx:
        model = find_model(tx.state, name)
        current = in_stage(tx.state, model, "Production")
        now = current[0]["version"] if current else None
        previous = _previous_production(tx.state, model, now)
        if previous is None:
            raise InvalidParameterError(
                f"Model {name!r} has no earlier Production version to roll back to."
            )
        event = tx.append(
            "version.rollback",
            model["model_id"],
            name,
            version=previous["version"],
            reason=reason,
            evidence=_evidence(previous),
            **{"from": now},
        )
        _archive_others(tx, model, previous["version"], "Production", event["seq"])
        return version_entity(tx.state, previous)


def _previous_production(
    state: RegistryState, model: dict[str, Any], current: int | None
) -> dict[str, Any] | None:
    for event in reversed(state.events):
        if event["model_id"] != model["model_id"]:
            continue
        entered = (event["op"] == "version.stage" and event["to"] == "Production") or event[
            "op"
        ] == "version.rollback"
        if entered and event["version"] != current:
            row = state.version(model["model_id"], event["version"])
            if row is not None:
                return row
    return None


def set_alias(
    name: str, alias: str, version: int | str, *, reason: str | None = None
) -> ModelVersion:
    """Point ``alias`` at ``version`` (moving it from another version if needed)."""
    alias, number, reason = check_alias(alias), check_version(version), check_reason(reason)
    with registry_store().transaction(identity()) as tx:
        model = find_model(tx.state, name)
        row = find_version(tx.state, model, number)
        previous = model["aliases"].get(alias)
        if previous != number:
            tx.append(
                "alias.set",
                model["model_id"],
                name,
                alias=alias,
                version=number,
                reason=reason,
                **{"from": previous},
            )
        return version_entity(tx.state, row)


def delete_alias(name: str, alias: str, *, reason: str | None = None) -> None:
    reason = check_reason(reason)
    with registry_store().transaction(identity()) as tx:
        model = find_model(tx.state, name)
        key = alias.lower() if isinstance(alias, str) else alias
        if key not in model["aliases"]:
            raise NotFoundError(f"Model {name!r} has no alias {alias!r}.")
        version = model["aliases"][key]
        tx.append(
            "alias.delete", model["model_id"], name, alias=key, version=version, reason=reason
        )
