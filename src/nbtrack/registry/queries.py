"""Finding and reading registered models and versions, as the registry journal says now."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from nbtrack import search
from nbtrack.errors import InvalidParameterError, NotFoundError
from nbtrack.registry import gates
from nbtrack.registry.entities import (
    STAGES,
    ModelVersion,
    RegisteredModel,
    canonical_stage,
    model_from_row,
    version_from_row,
)
from nbtrack.registry.names import LATEST, check_alias, check_version, identity
from nbtrack.store.registry import RegistryState, RegistryStore

if TYPE_CHECKING:
    from nbtrack.store import Store


# The store registry calls act on, when a caller bound one (an MlflowClient of another
# store, a panel showing another store): a context variable, so a binding in one thread
# never leaks into another.
_bound: ContextVar[Store | None] = ContextVar("nbtrack_registry_store", default=None)


def acting_store() -> Store:
    """The store registry calls act on: the one :func:`using_store` bound, else the
    fluent API's current store."""
    bound = _bound.get()
    if bound is not None:
        return bound
    from nbtrack.tracking.fluent import current_store

    return current_store()


@contextlib.contextmanager
def using_store(store: Store) -> Iterator[Store]:
    """Make registry calls inside the block act on ``store``."""
    token = _bound.set(store)
    try:
        yield store
    finally:
        _bound.reset(token)


def registry_store() -> RegistryStore:
    return acting_store().registry


# -- finding things ------------------------------------------------------------------------


def find_model(state: RegistryState, name: str) -> dict[str, Any]:
    row = state.model(name)
    if row is None:
        known = ", ".join(sorted(state.names)) or "none yet"
        raise NotFoundError(f"Registered model {name!r} not found (registered models: {known}).")
    return row


def find_version(state: RegistryState, model: dict[str, Any], version: int) -> dict[str, Any]:
    row = state.version(model["model_id"], version)
    if row is None:
        have = ", ".join(str(r["version"]) for r in state.versions_of(model["model_id"]))
        raise NotFoundError(
            f"Model {model['name']!r} has no version {version} (versions: {have or 'none'})."
        )
    return row


def in_stage(state: RegistryState, model: dict[str, Any], stage: str) -> list[dict[str, Any]]:
    """The model's versions now in ``stage``, newest first."""
    rows = [r for r in state.versions_of(model["model_id"]) if r["current_stage"] == stage]
    return rows[::-1]


def _find(state: RegistryState, name: str, ref: str) -> dict[str, Any]:
    model = find_model(state, name)
    versions = state.versions_of(model["model_id"])
    if ref.startswith("@"):
        alias = ref[1:].lower()
        if alias == LATEST:
            return _newest(model, versions)
        if alias not in model["aliases"]:
            have = ", ".join(sorted(model["aliases"])) or "none"
            raise NotFoundError(f"Model {name!r} has no alias {ref[1:]!r} (aliases: {have}).")
        return find_version(state, model, model["aliases"][alias])
    if ref.isdigit():
        return find_version(state, model, int(ref))
    if ref.lower() == LATEST:
        return _newest(model, versions)
    if ref.lower() not in {s.lower() for s in STAGES}:
        raise InvalidParameterError(
            f"{ref!r} in models:/{name}/{ref} is not a version number, a stage "
            f"({', '.join(STAGES)}) or 'latest'."
        )
    stage = canonical_stage(ref)
    found = in_stage(state, model, stage)
    if not found:
        raise NotFoundError(f"Model {name!r} has no version in stage {stage}.")
    return found[0]


def _newest(model: dict[str, Any], versions: list[dict[str, Any]]) -> dict[str, Any]:
    if not versions:
        raise NotFoundError(f"Model {model['name']!r} has no versions yet.")
    return versions[-1]


def lookup(name: str, ref: str) -> dict[str, Any]:
    """The version row ``models:/NAME/REF`` names (REF: number, stage, latest or @alias)."""
    with registry_store().reading() as state:
        return dict(_find(state, name, ref))


def version_entity(state: RegistryState, row: dict[str, Any]) -> ModelVersion:
    return version_from_row(row, state.models[row["model_id"]]["aliases"])


# -- reading ---------------------------------------------------------------------------------


def get_registered_model(name: str) -> RegisteredModel:
    with registry_store().reading() as state:
        model = find_model(state, name)
        return model_from_row(model, state.versions_of(model["model_id"]))


def search_registered_models(
    filter_string: str | None = None,
    max_results: int = 100,
    order_by: Sequence[str] | None = None,
) -> list[RegisteredModel]:
    """Registered models matching an MLflow filter (``name LIKE 'churn%'``, ``tags.k = 'v'``),
    by name unless ``order_by`` says otherwise."""
    with registry_store().reading() as state:
        rows = [state.models[i] for i in state.names.values()]
        found = search.search(rows, filter_string, order_by, max_results, search.REGISTERED_MODELS)
        return [model_from_row(r, state.versions_of(r["model_id"])) for r in found]


def get_model_version(name: str, version: int | str) -> ModelVersion:
    number = check_version(version)
    with registry_store().reading() as state:
        return version_entity(state, find_version(state, find_model(state, name), number))


def get_model_version_by_alias(name: str, alias: str) -> ModelVersion:
    with registry_store().reading() as state:
        return version_entity(state, _find(state, name, f"@{alias}"))


def get_latest_versions(name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]:
    """The newest version in each of ``stages`` (every stage by default)."""
    wanted = [canonical_stage(s) for s in stages] if stages else list(STAGES)
    with registry_store().reading() as state:
        model = find_model(state, name)
        found = [in_stage(state, model, stage) for stage in wanted]
        return [version_entity(state, rows[0]) for rows in found if rows]


def search_model_versions(
    filter_string: str | None = None,
    max_results: int = 10_000,
    order_by: Sequence[str] | None = None,
) -> list[ModelVersion]:
    """Versions matching an MLflow filter (``name = 'm'``, ``run_id IN (...)``, ``tags.k = 'v'``).

    Most recently updated first, then by name and newest version first (as MLflow's
    sqlite store orders them), unless ``order_by`` says otherwise.
    """
    with registry_store().reading() as state:
        rows = [r for r in state.versions.values() if not r.get("deleted")]
        found = search.search(rows, filter_string, order_by, max_results, search.MODEL_VERSIONS)
        return [version_entity(state, r) for r in found]


def get_policy(name: str) -> dict[str, Any] | None:
    with registry_store().reading() as state:
        return find_model(state, name)["policy"]


def check_transition(name: str, version: int | str, stage: str) -> list[gates.CheckResult]:
    """The policy's checks for a move, evaluated now without moving anything (a dry run)."""
    number, stage = check_version(version), canonical_stage(stage)
    with registry_store().reading() as state:
        model = find_model(state, name)
        row = find_version(state, model, number)
        return gates.evaluate(
            model["policy"], stage, row, incumbent(state, model, row, stage), identity()
        )


def check_alias_move(name: str, version: int | str, alias: str) -> list[gates.CheckResult]:
    """The policy's checks for pointing ``alias`` at a version, evaluated now without moving
    anything (a dry run); none when the policy does not protect the alias."""
    number, alias = check_version(version), check_alias(alias)
    with registry_store().reading() as state:
        model = find_model(state, name)
        row = find_version(state, model, number)
        current = model["aliases"].get(alias)
        holder = None if current is None else find_version(state, model, current)
        return gates.evaluate_alias(model["policy"], alias, row, holder, identity())


def incumbent(
    state: RegistryState, model: dict[str, Any], row: dict[str, Any], stage: str
) -> dict[str, Any] | None:
    others = [r for r in in_stage(state, model, stage) if r["version"] != row["version"]]
    return others[0] if others else None
