"""Pointing aliases at versions; a protected alias moves through its policy's review.

A model's policy can protect an alias (``set_policy(name, aliases={"champion": [...]})``).
Pointing it at a version then runs its checks (refused unless they pass, or forced with a
reason), needs a reason, and is recorded with the checks and evidence, as a stage move
is; removing it needs a reason. Other aliases move freely. The checks run inside the
transaction that records the move, as for stages.
"""

from __future__ import annotations

from typing import Any

from nbtrack.errors import NotFoundError
from nbtrack.registry import gates, review
from nbtrack.registry.entities import ModelVersion
from nbtrack.registry.names import check_alias, check_reason, check_version, identity
from nbtrack.registry.queries import find_model, find_version, registry_store, version_entity
from nbtrack.registry.review import MLFLOW, NBTRACK


def set_alias(
    name: str,
    alias: str,
    version: int | str,
    *,
    reason: str | None = None,
    force: bool = False,
) -> ModelVersion:
    """Point ``alias`` at ``version`` (moving it from another version if needed).

    Parameters
    ----------
    name, alias, version
        The registered model, the alias (case-insensitive) and the version it will name.
    reason
        Why; required when the model's policy protects the alias.
    force
        Move a protected alias even though checks failed; needs a reason, and the event
        is marked forced.

    Raises
    ------
    TransitionRefused
        Listing every check with its actual value, when any failed and ``force`` is False.
    InvalidParameterError
        For a bad alias or version, a protected alias without a reason, or ``force``
        without a reason.
    NotFoundError
        For an unknown model or version.
    """
    return _point(name, alias, version, reason, force, NBTRACK)


def set_alias_mlflow_style(
    name: str, alias: str, version: int | str, reason: str | None, force: bool
) -> ModelVersion:
    """``MlflowClient.set_registered_model_alias``: as :func:`set_alias`, except that a
    protected alias moved without a reason warns (unless the policy requires one)."""
    return _point(name, alias, version, reason, force, MLFLOW)


def _point(
    name: str, alias: str, version: int | str, reason: str | None, force: bool, caller: str
) -> ModelVersion:
    alias, number, reason = check_alias(alias), check_version(version), check_reason(reason)
    who = identity()
    with registry_store().transaction(who) as tx:
        model = find_model(tx.state, name)
        row = find_version(tx.state, model, number)
        previous = model["aliases"].get(alias)
        if previous == number:
            return version_entity(tx.state, row)
        reviewed: dict[str, Any] = {}
        if gates.protects(model["policy"], alias):
            asker = _asker(caller, f"{name!r}, {alias!r}, {number}", f"{name} {number} {alias}")
            reason = review.reason(
                reason, f"Pointing {name!r}@{alias} at version {number}", model, asker
            )
            current = None if previous is None else find_version(tx.state, model, previous)
            checks = gates.evaluate_alias(model["policy"], alias, row, current, who)
            action = f"point {name!r}@{alias} at version {number}"
            reviewed = review.enforce(checks, action, force, reason, asker)
            reviewed["evidence"] = review.evidence(row)
        tx.append(
            "alias.set",
            model["model_id"],
            name,
            alias=alias,
            version=number,
            reason=reason,
            **reviewed,
            **{"from": previous},
        )
        return version_entity(tx.state, row)


def delete_alias(name: str, alias: str, *, reason: str | None = None) -> None:
    """Remove ``alias``; a protected alias needs a reason.

    Raises
    ------
    NotFoundError
        If the model has no such alias.
    InvalidParameterError
        For a protected alias without a reason.
    """
    _unset(name, alias, reason, NBTRACK)


def delete_alias_mlflow_style(name: str, alias: str, reason: str | None) -> None:
    """``MlflowClient.delete_registered_model_alias``: as :func:`delete_alias`, except that
    a protected alias removed without a reason warns (unless the policy requires one)."""
    _unset(name, alias, reason, MLFLOW)


def _unset(name: str, alias: str, reason: str | None, caller: str) -> None:
    reason = check_reason(reason)
    with registry_store().transaction(identity()) as tx:
        model = find_model(tx.state, name)
        key = alias.lower() if isinstance(alias, str) else alias
        if key not in model["aliases"]:
            raise NotFoundError(f"Model {name!r} has no alias {alias!r}.")
        if gates.protects(model["policy"], key):
            asker = _asker(caller, f"{name!r}, {key!r}", None)
            reason = review.reason(reason, f"Removing {name!r}@{key}", model, asker)
        version = model["aliases"][key]
        tx.append(
            "alias.delete", model["model_id"], name, alias=key, version=version, reason=reason
        )


def _asker(caller: str, arguments: str, magic: str | None) -> review.Asker:
    """How to give a reason for an alias move: ``arguments`` of the call, ``magic``'s of
    %track alias (None for a removal, which has no magic)."""
    if caller == MLFLOW:
        verb = "set" if magic else "delete"
        call = f"client.{verb}_registered_model_alias({arguments}, reason='why')"
    else:
        call = f"nbtrack.registry.{'set' if magic else 'delete'}_alias({arguments}, reason='why')"
    command = f'%track alias {magic} --reason "why"' if magic else ""
    return review.Asker(caller, call, command)
