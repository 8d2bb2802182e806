"""Changing registered models and versions: create, register, describe, tag, delete, policies.

Each change runs in one store transaction (see nbtrack.store.registry), so what is checked
is what is written, whatever other processes do at the same moment.
"""

from __future__ import annotations

import hashlib
from typing import Any

from nbtrack.errors import InvalidParameterError, NotFoundError
from nbtrack.registry import gates
from nbtrack.registry.entities import ModelVersion, RegisteredModel, model_from_row
from nbtrack.registry.names import check_model_name, check_reason, check_version, identity
from nbtrack.registry.queries import (
    acting_store,
    find_model,
    find_version,
    registry_store,
    version_entity,
)
from nbtrack.store.registry import Transaction
from nbtrack.validation import check_key, check_tag_value, check_tags

# -- registered models ------------------------------------------------------------------------


def create_registered_model(
    name: str,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    *,
    reason: str | None = None,
) -> RegisteredModel:
    """Create an empty registered model; an error if the name is taken."""
    check_model_name(name)
    clean_tags = check_tags(tags)
    with registry_store().transaction(identity()) as tx:
        if tx.state.model(name) is not None:
            raise InvalidParameterError(
                f"Registered model {name!r} already exists; pick another name, or register a "
                "new version of it with register_model."
            )
        _create_model(tx, name, clean_tags, description, reason)
        return model_from_row(tx.state.model(name), [])


def _create_model(
    tx: Transaction, name: str, tags: dict[str, str], description: str | None, reason: str | None
) -> str:
    import uuid

    model_id = uuid.uuid4().hex
    tx.append("model.create", model_id, name, tags=tags, description=description, reason=reason)
    return model_id


def update_registered_model(
    name: str, description: str | None = None, *, reason: str | None = None
) -> RegisteredModel:
    model = _model_event(name, "model.update", reason, description=description)
    with registry_store().reading() as state:
        return model_from_row(state.models[model], state.versions_of(model))


def rename_registered_model(
    name: str, new_name: str, *, reason: str | None = None
) -> RegisteredModel:
    """Rename a model; its versions and history move with it."""
    check_model_name(new_name)
    fields = {"from": name, "to": new_name}
    model = _model_event(name, "model.rename", reason, taken=new_name, **fields)
    with registry_store().reading() as state:
        return model_from_row(state.models[model], state.versions_of(model))


def delete_registered_model(name: str, *, reason: str | None = None) -> None:
    """Delete a model and its versions from the registry (its history stays)."""
    _model_event(name, "model.delete", reason)


def set_registered_model_tag(name: str, key: str, value: Any, *, reason: str | None = None) -> None:
    check_key(key, "tag")
    _model_event(name, "model.tag", reason, key=key, value=check_tag_value(key, value))


def delete_registered_model_tag(name: str, key: str, *, reason: str | None = None) -> None:
    _model_event(name, "model.untag", reason, tag=key, key=key)


def set_policy(
    name: str,
    *,
    staging: list[str] | None = None,
    production: list[str] | None = None,
    aliases: dict[str, list[str] | None] | None = None,
    distinct_approver: bool = False,
    require_reason: bool = False,
    on_rollback: str = "move",
    reason: str | None = None,
) -> dict[str, Any]:
    """Set the checks a version must pass to enter Staging or Production, and the aliases
    it protects with the checks a version must pass to take them (see gates.py).

    ``aliases={"champion": ["metrics.val_auc >= 0.85", "beats:metrics.val_auc"]}``:
    moving ``champion`` then needs a reason and passing checks, as a stage move does
    (``{"champion": []}`` protects it without checks). ``on_rollback`` says what a
    rollback does to the aliases of the version it archives: ``"move"`` them to the
    restored version (the default: an alias that serves Production keeps serving it),
    ``"drop"`` them, or ``"keep"`` them (with a warning). Creates the registered model if
    it does not exist yet. Every gate is parsed first; a gate that does not parse is an
    error and nothing is recorded.
    """
    check_model_name(name)
    policy = gates.make_policy(
        staging, production, distinct_approver, require_reason, aliases, on_rollback
    )
    reason = check_reason(reason)
    with registry_store().transaction(identity()) as tx:
        model = tx.state.model(name)
        model_id = model["model_id"] if model else _create_model(tx, name, {}, None, None)
        tx.append("model.policy", model_id, name, policy=policy, reason=reason)
    return policy


# -- versions ----------------------------------------------------------------------------------


def register_model(
    model_uri: str,
    name: str,
    await_registration_for: int | None = None,
    *,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    reason: str | None = None,
) -> ModelVersion:
    """Register a logged package as the next version of ``name`` (created if missing).

    ``model_uri`` is ``runs:/RUN/PATH`` or ``models:/...`` (which copies that version).
    The package's files are verified and their SHA-256 sums, its signature, and the
    source run's metrics and params are recorded with the version.
    """
    check_model_name(name)
    package = _package(model_uri)
    clean_tags = check_tags(tags)
    reason = check_reason(reason)
    with registry_store().transaction(identity()) as tx:
        model = tx.state.model(name)
        model_id = model["model_id"] if model else _create_model(tx, name, {}, None, None)
        return _add_version(tx, model_id, name, package, clean_tags, description, reason)


def create_model_version(
    name: str,
    source: str,
    run_id: str | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    *,
    reason: str | None = None,
) -> ModelVersion:
    """Add a version to an existing model from ``source`` (see :func:`source_uri`)."""
    package = _package(source_uri(source, run_id))
    clean_tags = check_tags(tags)
    reason = check_reason(reason)
    with registry_store().transaction(identity()) as tx:
        model = find_model(tx.state, name)
        return _add_version(tx, model["model_id"], name, package, clean_tags, description, reason)


def copy_model_version(
    src_model_uri: str, dst_name: str, *, reason: str | None = None
) -> ModelVersion:
    """Register the package behind ``src_model_uri`` as a new version of ``dst_name``."""
    return register_model(src_model_uri, dst_name, reason=reason)


def source_uri(source: str, run_id: str | None) -> str:
    """A ``runs:/`` or ``models:/`` URI for an MLflow ``source``.

    MLflow sources are URIs or artifact locations such as
    ``mlruns/0/<run_id>/artifacts/<path>``; with the run's id, the part after
    ``artifacts/`` is the package's path in that run.
    """
    if source.startswith(("runs:", "models:")):
        return source
    from pathlib import Path

    runs = (acting_store().root / "runs").resolve()
    try:
        inside = Path(source).expanduser().resolve().relative_to(runs).parts
    except ValueError:
        inside = ()
    if len(inside) >= 3 and inside[1] == "artifacts":
        return f"runs:/{inside[0]}/{'/'.join(inside[2:])}"
    marker = source.replace("\\", "/").rstrip("/")
    if run_id is not None and "artifacts/" in marker:
        return f"runs:/{run_id}/{marker.rsplit('artifacts/', 1)[1]}"
    raise InvalidParameterError(
        f"source={source!r} is not a model package nbtrack recorded: give runs:/<run_id>/<path>, "
        "a models:/ URI, or a path under a run's artifacts folder."
    )


def _package(model_uri: str) -> dict[str, Any]:
    """What a version records about its package and source run, read and verified now."""
    from nbtrack.models.integrity import VerifiedPackage
    from nbtrack.models.mlmodel import MLMODEL_FILE, Model
    from nbtrack.models.source import resolve

    source = resolve(model_uri, acting_store())
    if source.files is None or source.run_id is None:
        raise InvalidParameterError(
            f"Cannot register {model_uri!r}: register a model logged to a run "
            "(runs:/<run_id>/<path>) or an existing version (models:/NAME/VERSION)."
        )
    if MLMODEL_FILE not in source.files:
        raise InvalidParameterError(
            f"{model_uri} is not a model package: it has no MLmodel file. Log the model with "
            "nbtrack.log_model (or nbtrack.sklearn.log_model) first."
        )
    package = VerifiedPackage(source.path, source.files, model_uri)
    meta = Model.from_yaml(package.read(MLMODEL_FILE), model_uri)
    if source.version is not None:  # models:/ -> copy what that version recorded
        row = source.version
        return {k: row[k] for k in _COPIED} | {
            "copied_from": f"models:/{row['name']}/{row['version']}"
        }
    store = acting_store()
    writer = store.writer(source.run_id)
    if writer is not None:  # a run still logging: its buffered metrics belong in the snapshot
        writer.flush()
    run = store.get_run(source.run_id)
    return {
        "run_id": source.run_id,
        "source": f"runs:/{source.run_id}/{source.artifact_path}",
        "artifact_path": source.artifact_path,
        "files": source.files,
        "digest": digest(source.files),
        "signature": meta.signature.to_dict() if meta.signature is not None else None,
        "metrics": dict(run.get("metrics", {})),
        "params": dict(run.get("params", {})),
        "run": {k: run.get(k) for k in _RUN_ATTRIBUTES},
    }


_COPIED = (
    "run_id",
    "source",
    "artifact_path",
    "files",
    "digest",
    "signature",
    "metrics",
    "params",
    "run",
)
_RUN_ATTRIBUTES = ("run_name", "experiment_id", "status", "user_id", "start_time", "end_time")


def digest(files: dict[str, str]) -> str:
    """One SHA-256 for a package: over its files' paths and sums, in path order."""
    lines = "".join(f"{path}\0{files[path]}\n" for path in sorted(files))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _add_version(
    tx: Transaction,
    model_id: str,
    name: str,
    package: dict[str, Any],
    tags: dict[str, str],
    description: str | None,
    reason: str | None,
) -> ModelVersion:
    number = tx.state.models[model_id]["next_version"]
    tx.append(
        "version.create",
        model_id,
        name,
        version=number,
        tags=tags,
        description=description,
        reason=reason,
        **package,
    )
    return version_entity(tx.state, tx.state.version(model_id, number))


def update_model_version(
    name: str, version: int | str, description: str | None = None, *, reason: str | None = None
) -> ModelVersion:
    number = _version_event(name, version, "version.update", reason, description=description)
    return _entity_now(name, number)


def delete_model_version(name: str, version: int | str, *, reason: str | None = None) -> None:
    """Remove a version (its aliases go with it; its history stays)."""
    _version_event(name, version, "version.delete", reason)


def set_model_version_tag(
    name: str, version: int | str, key: str, value: Any, *, reason: str | None = None
) -> None:
    check_key(key, "tag")
    text = check_tag_value(key, value)
    _version_event(name, version, "version.tag", reason, key=key, value=text)


def delete_model_version_tag(
    name: str, version: int | str, key: str, *, reason: str | None = None
) -> None:
    _version_event(name, version, "version.untag", reason, tag=key, key=key)


def _model_event(
    name: str,
    op: str,
    reason: str | None,
    tag: str | None = None,
    taken: str | None = None,
    **fields: Any,
) -> str:
    """Record one event about model ``name``; return its model id.

    ``tag`` must exist on the model (to remove it); ``taken`` must not be a model name.
    """
    reason = check_reason(reason)
    with registry_store().transaction(identity()) as tx:
        model = find_model(tx.state, name)
        if tag is not None and tag not in model["tags"]:
            raise NotFoundError(f"Registered model {name!r} has no tag {tag!r}.")
        if taken is not None and tx.state.model(taken) is not None:
            raise InvalidParameterError(f"Registered model {taken!r} already exists.")
        tx.append(op, model["model_id"], name, reason=reason, **fields)
        return model["model_id"]


def _version_event(
    name: str,
    version: int | str,
    op: str,
    reason: str | None,
    tag: str | None = None,
    **fields: Any,
) -> int:
    """Record one event about a version of ``name``; return the version number."""
    number, reason = check_version(version), check_reason(reason)
    with registry_store().transaction(identity()) as tx:
        model = find_model(tx.state, name)
        row = find_version(tx.state, model, number)
        if tag is not None and tag not in row["tags"]:
            raise NotFoundError(f"Model {name!r} version {number} has no tag {tag!r}.")
        if op == "version.delete":
            _check_no_protected_alias(model, number)
        tx.append(op, model["model_id"], name, version=number, reason=reason, **fields)
    return number


def _check_no_protected_alias(model: dict[str, Any], number: int) -> None:
    """Deleting a version takes its aliases with it: not a protected one, which moves only
    through its review."""
    held = sorted(a for a, v in model["aliases"].items() if v == number)
    protected = [a for a in held if gates.protects(model["policy"], a)]
    if protected:
        names = ", ".join(f"@{a}" for a in protected)
        raise InvalidParameterError(
            f"Model {model['name']!r} version {number} holds the protected alias {names}: "
            "point it at another version, or remove it with a reason, before deleting it."
        )


def _entity_now(name: str, number: int) -> ModelVersion:
    with registry_store().reading() as state:
        return version_entity(state, find_version(state, find_model(state, name), number))
