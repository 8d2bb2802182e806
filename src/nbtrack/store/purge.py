"""Removing soft-deleted runs for good (``nbtrack gc``): which may go, and taking them away.

A purged run loses its catalog row, its journal and its artifacts; a rebuild cannot bring
it back. Under the store lock the rows leave the catalog (a new snapshot) and the run
folders move to ``trash/``; the folders are deleted once the lock is released, so large
artifacts do not hold up other processes. A gc interrupted after the move leaves folders
in ``trash/``, which the next gc deletes; one interrupted before it leaves a folder that
the next open of the store indexes again, still deleted, for the next gc.

A run stays when it is the source of a registered model version that is not deleted
(loading that version reads the run's artifacts; MLflow's gc does not check this and
breaks such versions), or while a live process may still be logging to it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtrack.errors import InvalidParameterError
from nbtrack.store.procs import is_alive

if TYPE_CHECKING:
    from nbtrack.store.store import Store

TRASH = "trash"
DELETED = "deleted"
DAY_MS = 86_400_000


@dataclass
class Purge:
    """A deleted run that gc looked at, and whether it goes."""

    run_id: str
    run_name: str
    experiment_id: str
    deleted_time: int  # ms: when it was deleted, at the latest (see deleted_before)
    deleted_time_recorded: bool  # False: inferred from the journal's last change
    size: int  # bytes under the run's folder
    kept: str | None = None  # why it stays; None when it goes


def deleted_before(store: Store, row: dict[str, Any]) -> tuple[int, bool]:
    """When a deleted run was deleted at the latest (ms), and whether that was recorded.

    Runs deleted before nbtrack recorded the time have the journal's last change instead:
    the deletion was appended at or before it, so "deleted at least N days ago" holds.
    """
    if row.get("deleted_time") is not None:
        return row["deleted_time"], True
    try:
        return int(os.stat(store.journal_path(row["run_id"])).st_mtime * 1000), False
    except FileNotFoundError:
        return int(time.time() * 1000), False


def plan(
    store: Store, older_than_days: float | None = None, run_ids: Collection[str] | None = None
) -> list[Purge]:
    """The deleted runs gc would look at, oldest deletion first, each with why it stays.

    With ``run_ids``, exactly those: each must exist, be deleted (and deleted
    ``older_than_days`` ago), and be free to go, or nothing is planned.

    Raises
    ------
    InvalidParameterError
        When a run of ``run_ids`` may not be purged; the message lists each and why.
    """
    if older_than_days is not None and not older_than_days >= 0:
        raise InvalidParameterError(f"older_than_days={older_than_days!r} must be >= 0.")
    cutoff = None if older_than_days is None else time.time() * 1000 - older_than_days * DAY_MS
    references = model_versions_by_run(store)
    items, problems = [], []
    for run_id, row in _rows(store, run_ids).items():
        item, problem = _look_at(store, row, cutoff, references)
        if item is not None:
            items.append(item)
        if run_ids is not None and (problem or (item and item.kept)):
            problems.append(f"{run_id}: {problem or item.kept}")
    if problems:
        raise InvalidParameterError(
            "Cannot purge these runs, so nothing was removed:\n  " + "\n  ".join(problems)
        )
    return sorted(items, key=lambda item: (item.deleted_time, item.run_id))


def gc(
    store: Store,
    older_than_days: float | None = None,
    run_ids: Collection[str] | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> list[Purge]:
    """Purge the deleted runs :func:`plan` chooses (none with ``dry_run``); return the plan.

    The same as ``nbtrack gc``: see :func:`plan` for the arguments and errors.
    """
    items = plan(store, older_than_days, run_ids)
    if not dry_run:
        store.purge_runs([item.run_id for item in items if item.kept is None], progress=progress)
    return items


def purge_runs(store: Store, run_ids: Collection[str], progress: bool = False) -> list[str]:
    """Remove deleted runs for good (see the module docstring); return their ids.

    Everything is checked again under the store lock, where nobody can restore a run or
    register a model from it; if any run may not go, nothing is removed.
    """
    from tqdm.auto import tqdm

    trash = store.root / TRASH
    with store.lock:
        references = model_versions_by_run(store)
        rows = _rows(store, run_ids)
        problems = [
            f"{run_id}: {problem}"
            for run_id, row in rows.items()
            if (problem := _not_deleted(row) or kept_because(row, references))
        ]
        if problems:
            raise InvalidParameterError(
                "Cannot purge these runs, so nothing was removed:\n  " + "\n  ".join(problems)
            )
        if rows:
            store.catalog.remove("runs", list(rows))  # first: see the module docstring
            trash.mkdir(exist_ok=True)
        for run_id in rows:
            if store.run_dir(run_id).exists():
                os.replace(store.run_dir(run_id), trash / run_id)
    leftovers = sorted(trash.iterdir()) if trash.exists() else []  # this gc's and earlier ones'
    bar = tqdm(leftovers, desc="removing runs", unit="run", disable=not (progress and leftovers))
    for folder in bar:
        _remove_tree(folder)
    return list(rows)


def model_versions_by_run(store: Store) -> dict[str, list[str]]:
    """For each run that is the source of registered model versions not deleted: them."""
    versions: dict[str, list[str]] = {}
    with store.registry.reading() as state:
        for row in state.versions.values():
            if not row.get("deleted") and row.get("run_id"):
                versions.setdefault(row["run_id"], []).append(f"{row['name']} v{row['version']}")
    return versions


def kept_because(row: dict[str, Any], references: dict[str, list[str]]) -> str | None:
    """Why a deleted run may not be purged, or None."""
    versions = references.get(row["run_id"])
    if versions:
        return (
            f"source of registered model version {', '.join(versions)}: delete the version "
            "(or model) first, or restore the run"
        )
    if row.get("status") == "RUNNING" and is_alive(row.get("process")) is not False:
        where = row.get("process") or {}
        return (
            f"still RUNNING in process {where.get('pid')} on {where.get('host')}: end the run first"
        )
    return None


def _rows(store: Store, run_ids: Collection[str] | None) -> dict[str, dict[str, Any]]:
    if run_ids is None:
        return {r["run_id"]: r for r in store.runs() if r.get("lifecycle_stage") == DELETED}
    rows = {}
    for run_id in dict.fromkeys(run_ids):
        row = store.catalog.get("runs", run_id)
        rows[run_id] = row if row is not None else {}
    return rows


def _look_at(
    store: Store, row: dict[str, Any], cutoff: float | None, references: dict[str, list[str]]
) -> tuple[Purge | None, str | None]:
    """The plan's entry for a run (None if it is not a candidate), and why not if so."""
    problem = _not_deleted(row)
    if problem is not None:
        return None, problem
    item = _item(store, row)
    if cutoff is not None and item.deleted_time > cutoff:
        return None, "deleted more recently than the age asked for (--older-than)"
    item.kept = kept_because(row, references)
    return item, None


def _not_deleted(row: dict[str, Any]) -> str | None:
    if not row:
        return "no such run in this store"
    if row.get("lifecycle_stage") != DELETED:
        return "not deleted (only deleted runs can be purged: delete_run first)"
    return None


def _item(store: Store, row: dict[str, Any]) -> Purge:
    deleted_time, recorded = deleted_before(store, row)
    return Purge(
        run_id=row["run_id"],
        run_name=row.get("run_name", ""),
        experiment_id=row.get("experiment_id", ""),
        deleted_time=deleted_time,
        deleted_time_recorded=recorded,
        size=_size(store.run_dir(row["run_id"])),
    )


def _size(folder: Path) -> int:
    total = 0
    for path, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(path, name)).st_size
            except FileNotFoundError:
                continue
    return total


def _remove_tree(folder: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # another gc is removing it too
        shutil.rmtree(folder)
