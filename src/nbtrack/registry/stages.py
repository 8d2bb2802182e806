"""Moving versions between stages through their policy's gates, and rolling back.

Gates are evaluated inside the store transaction that records the move, so a check against
the incumbent cannot be outdated by another process before the move is written.
"""

from __future__ import annotations

import warnings
from typing import Any

from nbtrack.errors import InvalidParameterError
from nbtrack.registry import gates, review
from nbtrack.registry.entities import REVIEWED_STAGES, ModelVersion, canonical_stage
from nbtrack.registry.names import check_reason, check_version, identity, required_reason
from nbtrack.registry.queries import (
    find_model,
    find_version,
    in_stage,
    incumbent,
    registry_store,
    version_entity,
)
from nbtrack.registry.review import MLFLOW, NBTRACK
from nbtrack.store.registry import RegistryState, Transaction

# -- stages and rollback ---------------------------------------------------------------------------


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
        asker = _asker(caller, name, number, stage)
        if stage in REVIEWED_STAGES:
            moving = f"Moving {name!r} version {number} to {stage}"
            reason = review.reason(reason, moving, model, asker)
        if row["current_stage"] == stage:
            if caller == MLFLOW:
                return version_entity(tx.state, row)
            raise InvalidParameterError(f"Model {name!r} version {number} is already in {stage}.")
        checks = gates.evaluate(
            model["policy"], stage, row, incumbent(tx.state, model, row, stage), who
        )
        action = f"move {name!r} version {number} to {stage}"
        event = tx.append(
            "version.stage",
            model["model_id"],
            name,
            version=number,
            reason=reason,
            evidence=review.evidence(row),
            **review.enforce(checks, action, force, reason, asker),
            **{"from": row["current_stage"], "to": stage},
        )
        if archive_existing and stage in ("Staging", "Production"):
            _archive_others(tx, model, number, stage, event["seq"])
        return version_entity(tx.state, row)


def _asker(caller: str, name: str, version: int, stage: str) -> review.Asker:
    if caller == MLFLOW:
        call = (
            f"client.transition_model_version_stage({name!r}, {version}, {stage!r}, reason='why')"
        )
    else:
        call = f"nbtrack.registry.promote({name!r}, {version}, {stage!r}, reason='why')"
    return review.Asker(
        caller, call, f'%track promote {name} {version} --to {stage} --reason "why"'
    )


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
    (and not deleted). Gates are not re-checked: that version passed them before. Aliases
    of the archived version follow the policy's ``on_rollback``: moved to the restored
    version (the default), removed, or kept with a warning; each move is recorded with
    the rollback's reason.

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
            evidence=review.evidence(previous),
            **{"from": now},
        )
        _archive_others(tx, model, previous["version"], "Production", event["seq"])
        if now is not None:
            _rollback_aliases(tx, model, now, previous["version"], reason)
        return version_entity(tx.state, previous)


def _rollback_aliases(
    tx: Transaction, model: dict[str, Any], archived: int, restored: int, why: str
) -> None:
    """Apply the policy's on_rollback to the aliases that named the archived version."""
    held = sorted(a for a, v in model["aliases"].items() if v == archived)
    rule = (model["policy"] or {}).get("on_rollback", gates.ROLLBACK_MOVE)
    name, reason = model["name"], f"rollback: {why}"
    for alias in held:
        if rule == gates.ROLLBACK_MOVE:
            tx.append(
                "alias.set",
                model["model_id"],
                name,
                alias=alias,
                version=restored,
                reason=reason,
                **{"from": archived},
            )
        elif rule == gates.ROLLBACK_DROP:
            tx.append(
                "alias.delete",
                model["model_id"],
                name,
                alias=alias,
                version=archived,
                reason=reason,
            )
    if held and rule == gates.ROLLBACK_KEEP:
        names = ", ".join(f"@{a}" for a in held)
        warnings.warn(
            f"{name}: {names} still name version {archived}, which the rollback archived "
            "(the policy keeps aliases on rollback); move them with registry.set_alias.",
            stacklevel=3,
        )


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
