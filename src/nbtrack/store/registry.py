"""The model registry's persistence: an append-only event journal folded into catalog tables.

``<store>/registry.jsonl`` holds one event a line and is the truth; events are appended
under the store lock and never rewritten. Folding the events in order gives the
registered models and their versions, which are mirrored into two catalog tables
(``registered_models`` keyed by model id, ``model_versions`` keyed by ``id/version``)
for panels and other readers, and re-derived by ``nbtrack doctor --rebuild``.

Every event has ``seq`` (its 1-based line number), ``op``, ``time`` (ms), ``who``,
``model_id`` and ``model`` (the name at the time), and, by ``op``:

================  ======================================================================
model.create      ``description``, ``tags``
model.update      ``description``
model.rename      ``from``, ``to`` (names)
model.delete      (the model and its versions become tombstones; the name is free again)
model.tag         ``key``, ``value``
model.untag       ``key``
model.policy      ``policy``: gates per stage, ``distinct_approver``, ``require_reason``
version.create    ``version``, ``run_id``, ``source``, ``artifact_path``, ``files``,
                  ``digest``, ``signature``, ``metrics``, ``params``, ``run``,
                  ``description``, ``tags``, ``copied_from``
version.update    ``version``, ``description``
version.stage     ``version``, ``from``, ``to``, ``reason``, ``forced``, ``checks``,
                  ``evidence``; ``cause`` (seq of the move that archived it) if automatic
version.rollback  ``version`` (restored to Production), ``from`` (the version demoted),
                  ``reason``, ``evidence``
version.tag       ``version``, ``key``, ``value``
version.untag     ``version``, ``key``
version.delete    ``version``
alias.set         ``alias``, ``version``, ``from`` (the version it left, or None)
alias.delete      ``alias``, ``version``
================  ======================================================================

Validation lives in :mod:`nbtrack.registry`; this module only records and folds.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import orjson

from nbtrack.store.journal import (
    Journal,
    TornRecordWarning,
    decode_float,
    encode_float,
    read_lines_after,
    repair_tail,
)
from nbtrack.store.rows import from_disk, to_disk

if TYPE_CHECKING:
    from nbtrack.store.store import Store

REGISTRY_JOURNAL = "registry.jsonl"
MODELS = "registered_models"
VERSIONS = "model_versions"


class ModelRow(TypedDict, total=False):
    model_id: str
    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: str | None
    tags: dict[str, str]
    aliases: dict[str, int]  # alias -> version
    policy: dict[str, Any] | None
    next_version: int
    deleted: bool


class VersionRow(TypedDict, total=False):
    model_id: str
    name: str
    version: int
    creation_timestamp: int
    last_updated_timestamp: int
    current_stage: str
    description: str | None
    created_by: str
    run_id: str
    source: str  # runs:/<run_id>/<artifact_path>
    artifact_path: str
    files: dict[str, str]  # package-relative path -> sha256
    digest: str  # sha256 over the sorted (path, sha256) pairs
    signature: dict[str, Any] | None
    metrics: dict[str, list]  # the source run's latest points, [value, step, time]
    params: dict[str, str]
    run: dict[str, Any]  # the source run's attributes when registered
    tags: dict[str, str]
    deleted: bool


class RegistryState:
    """The registry as folded from the events: models, versions and the events themselves."""

    def __init__(self) -> None:
        self.models: dict[str, ModelRow] = {}
        self.versions: dict[str, VersionRow] = {}
        self.names: dict[str, str] = {}  # current name -> model id (deleted models excluded)
        self.events: list[dict[str, Any]] = []

    def model_id(self, name: str) -> str | None:
        return self.names.get(name)

    def model(self, name: str) -> ModelRow | None:
        model_id = self.names.get(name)
        return self.models[model_id] if model_id is not None else None

    def version(self, model_id: str, version: int) -> VersionRow | None:
        row = self.versions.get(version_key(model_id, version))
        return row if row is not None and not row.get("deleted") else None

    def versions_of(self, model_id: str) -> list[VersionRow]:
        """The model's live versions, oldest first."""
        rows = [
            row
            for row in self.versions.values()
            if row["model_id"] == model_id and not row.get("deleted")
        ]
        return sorted(rows, key=lambda row: row["version"])


def version_key(model_id: str, version: int) -> str:
    return f"{model_id}/{version}"


def apply_event(state: RegistryState, event: dict[str, Any]) -> list[tuple[str, str]]:
    """Fold one event into ``state``; return the (table, doc id) pairs it changed."""
    state.events.append(event)
    op, model_id, when = event["op"], event["model_id"], event["time"]
    if op == "model.create":
        state.models[model_id] = {
            "model_id": model_id,
            "name": event["model"],
            "creation_timestamp": when,
            "last_updated_timestamp": when,
            "description": event.get("description"),
            "tags": dict(event.get("tags") or {}),
            "aliases": {},
            "policy": None,
            "next_version": 1,
            "deleted": False,
        }
        state.names[event["model"]] = model_id
        return [(MODELS, model_id)]
    model = state.models[model_id]
    if op in _MODEL_UPDATES:
        model["last_updated_timestamp"] = when
    changed = [(MODELS, model_id)]
    if op.startswith("version."):
        changed.append((VERSIONS, version_key(model_id, event["version"])))
    _FOLDS[op](state, model, event)
    if op in ("model.delete", "model.rename"):
        changed += [(VERSIONS, version_key(model_id, v)) for v in _all_versions(state, model_id)]
    elif op == "version.rollback" and event["from"] is not None:
        changed.append((VERSIONS, version_key(model_id, event["from"])))
    return changed


# What counts as updating a model or a version, as in MLflow: not tags, aliases or policies.
_MODEL_UPDATES = frozenset(
    {
        "model.update",
        "model.rename",
        "version.create",
        "version.stage",
        "version.rollback",
        "version.delete",
    }
)


def _all_versions(state: RegistryState, model_id: str) -> list[int]:
    return [row["version"] for row in state.versions.values() if row["model_id"] == model_id]


def _fold_model_update(state: RegistryState, model: ModelRow, event: dict) -> None:
    model["description"] = event.get("description")


def _fold_rename(state: RegistryState, model: ModelRow, event: dict) -> None:
    state.names.pop(event["from"], None)
    state.names[event["to"]] = model["model_id"]
    model["name"] = event["to"]
    for row in state.versions.values():
        if row["model_id"] == model["model_id"]:
            row["name"] = event["to"]
            row["last_updated_timestamp"] = event["time"]


def _fold_model_delete(state: RegistryState, model: ModelRow, event: dict) -> None:
    model["deleted"] = True
    model["aliases"] = {}
    state.names.pop(model["name"], None)
    for row in state.versions.values():
        if row["model_id"] == model["model_id"]:
            row["deleted"] = True


def _fold_model_tag(state: RegistryState, model: ModelRow, event: dict) -> None:
    model["tags"] = {**model["tags"], event["key"]: event["value"]}


def _fold_model_untag(state: RegistryState, model: ModelRow, event: dict) -> None:
    model["tags"] = {k: v for k, v in model["tags"].items() if k != event["key"]}


def _fold_policy(state: RegistryState, model: ModelRow, event: dict) -> None:
    model["policy"] = event["policy"]


def _fold_version_create(state: RegistryState, model: ModelRow, event: dict) -> None:
    version, when = event["version"], event["time"]
    state.versions[version_key(model["model_id"], version)] = {
        "model_id": model["model_id"],
        "name": model["name"],
        "version": version,
        "creation_timestamp": when,
        "last_updated_timestamp": when,
        "current_stage": "None",
        "description": event.get("description"),
        "created_by": event["who"],
        "run_id": event.get("run_id"),
        "source": event["source"],
        "artifact_path": event.get("artifact_path"),
        "files": dict(event.get("files") or {}),
        "digest": event.get("digest"),
        "signature": event.get("signature"),
        "metrics": {k: [decode_float(p[0]), *p[1:]] for k, p in event["metrics"].items()},
        "params": dict(event.get("params") or {}),
        "run": dict(event.get("run") or {}),
        "tags": dict(event.get("tags") or {}),
        "deleted": False,
    }
    model["next_version"] = max(model["next_version"], version + 1)


def _version(state: RegistryState, model: ModelRow, event: dict) -> VersionRow:
    return state.versions[version_key(model["model_id"], event["version"])]


def _updated(state: RegistryState, model: ModelRow, event: dict) -> VersionRow:
    """The event's version, marked as updated by it (a tag or an alias is no update)."""
    row = _version(state, model, event)
    row["last_updated_timestamp"] = event["time"]
    return row


def _fold_version_update(state: RegistryState, model: ModelRow, event: dict) -> None:
    _updated(state, model, event)["description"] = event.get("description")


def _fold_stage(state: RegistryState, model: ModelRow, event: dict) -> None:
    _updated(state, model, event)["current_stage"] = event["to"]


def _fold_rollback(state: RegistryState, model: ModelRow, event: dict) -> None:
    _updated(state, model, event)["current_stage"] = "Production"
    demoted = state.versions.get(version_key(model["model_id"], event["from"]))
    if demoted is not None:
        demoted["current_stage"] = "Archived"
        demoted["last_updated_timestamp"] = event["time"]


def _fold_version_tag(state: RegistryState, model: ModelRow, event: dict) -> None:
    row = _version(state, model, event)
    row["tags"] = {**row["tags"], event["key"]: event["value"]}


def _fold_version_untag(state: RegistryState, model: ModelRow, event: dict) -> None:
    row = _version(state, model, event)
    row["tags"] = {k: v for k, v in row["tags"].items() if k != event["key"]}


def _fold_version_delete(state: RegistryState, model: ModelRow, event: dict) -> None:
    _updated(state, model, event)["deleted"] = True
    model["aliases"] = {a: v for a, v in model["aliases"].items() if v != event["version"]}


def _fold_alias_set(state: RegistryState, model: ModelRow, event: dict) -> None:
    model["aliases"] = {**model["aliases"], event["alias"]: event["version"]}


def _fold_alias_delete(state: RegistryState, model: ModelRow, event: dict) -> None:
    model["aliases"] = {a: v for a, v in model["aliases"].items() if a != event["alias"]}


_FOLDS = {
    "model.update": _fold_model_update,
    "model.rename": _fold_rename,
    "model.delete": _fold_model_delete,
    "model.tag": _fold_model_tag,
    "model.untag": _fold_model_untag,
    "model.policy": _fold_policy,
    "version.create": _fold_version_create,
    "version.update": _fold_version_update,
    "version.stage": _fold_stage,
    "version.rollback": _fold_rollback,
    "version.tag": _fold_version_tag,
    "version.untag": _fold_version_untag,
    "version.delete": _fold_version_delete,
    "alias.set": _fold_alias_set,
    "alias.delete": _fold_alias_delete,
}


def fold_registry(store: Store) -> dict[str, dict[str, dict[str, Any]]]:
    """The registry's catalog tables derived from its journal alone (for a rebuild)."""
    state = RegistryState()
    for event in _read_events(store.root / REGISTRY_JOURNAL, 0)[0]:
        apply_event(state, _decoded_event(event))
    return {
        MODELS: {key: _detached(row) for key, row in state.models.items()},
        VERSIONS: {key: _detached(row) for key, row in state.versions.items()},
    }


def _read_events(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete events after byte ``offset``, and the offset after them."""
    lines, end = read_lines_after(path, offset)
    events = []
    for line in lines:
        try:
            events.append(orjson.loads(line))
        except orjson.JSONDecodeError:  # only a damaged disk makes a whole line unreadable
            warnings.warn(
                f"{path} holds an unreadable registry event; it was skipped.",
                TornRecordWarning,
                stacklevel=3,
            )
    return events, end


def _detached(row: dict[str, Any]) -> dict[str, Any]:
    # The catalog keeps references to what it is given; never share our nested dicts.
    # (The round trip spells non-finite metrics as strings, which from_disk undoes.)
    return from_disk(orjson.loads(orjson.dumps(to_disk(row))))


class Transaction:
    """Events appended together, atomically, under the store lock (see ``RegistryStore``)."""

    def __init__(self, registry: RegistryStore, who: str) -> None:
        self.state = registry._state
        self.who = who
        self._registry = registry
        self.events: list[dict[str, Any]] = []
        self.changed: set[tuple[str, str]] = set()
        self.time: int | None = None  # ms, from the first event on

    def append(self, op: str, model_id: str, model: str, **fields: Any) -> dict[str, Any]:
        """Record an event; it is folded into :attr:`state` at once and written on commit."""
        if self.time is None:  # the transaction's events happen at one moment
            self.time = int(time.time() * 1000)
        event = {
            "seq": len(self.state.events) + 1,
            "op": op,
            "time": self.time,
            "who": self.who,
            "model_id": model_id,
            "model": model,
            **fields,
        }
        self.changed.update(apply_event(self.state, event))
        self.events.append(event)
        return event


class RegistryStore:
    """The registry of one store: reads fold the journal's new tail; writes are transactions."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.path = store.root / REGISTRY_JOURNAL
        self._state = RegistryState()
        self._offset = 0
        self._mutex = threading.RLock()

    @contextlib.contextmanager
    def reading(self) -> Iterator[RegistryState]:
        """The registry as of now, other processes' events included; read it inside the block."""
        with self._mutex:
            self._refresh()
            yield self._state

    @contextlib.contextmanager
    def transaction(self, who: str) -> Iterator[Transaction]:
        """Hold the store lock, fold every event so far, and append the new events on exit.

        Checks made inside the block see the latest state and nothing can change it
        before the events are written, so check-then-write is atomic across processes.
        If the block raises, nothing is written.
        """
        self._store.check_writable()
        with self._store.lock, self._mutex:
            repair_tail(self.path)  # a writer that crashed mid-append left a torn line
            self._mirror(self._refresh(), only_if_different=True)
            transaction = Transaction(self, who)
            try:
                yield transaction
            except BaseException:
                if transaction.events:  # the fold saw events that will never be written
                    self._reset()
                raise
            if transaction.events:
                self._write(transaction)

    def _write(self, transaction: Transaction) -> None:
        try:
            with Journal(self.path) as journal:
                journal.append_many([_encoded_event(e) for e in transaction.events])
        except BaseException:
            self._reset()
            raise
        self._offset = self.path.stat().st_size
        self._mirror(transaction.changed, only_if_different=False)

    def _mirror(self, changed: set[tuple[str, str]], only_if_different: bool) -> None:
        """Stage and commit the catalog rows of ``changed`` (held under the store lock).

        Other processes' events are normally mirrored by their writers already; a writer
        that died between its journal append and its catalog commit left rows that
        differ, and those are mended here.
        """
        catalog = self._store.catalog
        staged = False
        for table, key in sorted(changed):
            rows = self._state.models if table == MODELS else self._state.versions
            row = _detached(rows[key])
            if only_if_different and catalog.get(table, key) == row:
                continue
            catalog.stage(table, key, {"set": row})
            staged = True
        if staged:
            catalog.commit()

    def _refresh(self) -> set[tuple[str, str]]:
        """Fold events appended since the last read; return the rows they changed."""
        events, self._offset = _read_events(self.path, self._offset)
        changed: set[tuple[str, str]] = set()
        for event in events:
            changed.update(apply_event(self._state, _decoded_event(event)))
        return changed

    def _reset(self) -> None:
        self._state, self._offset = RegistryState(), 0


def _encoded_event(event: dict[str, Any]) -> dict[str, Any]:
    if "metrics" not in event and "evidence" not in event:
        return event
    event = to_disk(dict(event))
    if "evidence" in event:
        metrics = event["evidence"].get("metrics", {})
        event["evidence"] = {
            **event["evidence"],
            "metrics": {k: encode_float(v) for k, v in metrics.items()},
        }
    return event


def _decoded_event(event: dict[str, Any]) -> dict[str, Any]:
    evidence = event.get("evidence")
    if evidence and evidence.get("metrics"):
        evidence["metrics"] = {k: decode_float(v) for k, v in evidence["metrics"].items()}
    return event
