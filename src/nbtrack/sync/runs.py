"""How one local run looks on a tracking server: the tags sync adds, the attributes it
keeps in step, and the rule that merges a run changed on both sides.

The merge rule (README, "Working with a team"):

* params, metric points, artifacts and inputs only ever grow, on both sides: each side
  gets what the other has (a param is never changed once logged, anywhere);
* a tag changed on one side only takes that side's value, on both sides;
* a tag changed on both sides to different values, and a run's status, end time and
  name, keep this store's value for a run logged here (it is yours) and the server's for
  a run pulled from it; the losing value is recorded in the sync state with the run,
  the key and the side, and ``nbtrack sync status`` lists it.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from nbtrack.store.rows import RunRow

LOCAL_ID_TAG = "nbtrack.local_run_id"  # on the server: the run's id in the store it came from
PARENT_TAG = "mlflow.parentRunId"
# Provenance the local row holds outside its tags, sent as tags so teammates see it.
SYNC_TAGS = (LOCAL_ID_TAG, "nbtrack.cell", "nbtrack.environment", "nbtrack.error")
MAX_TAG_VALUE = 8000  # MLflow 3's limit (5000 before)
ATTRS = ("status", "end_time", "run_name", "lifecycle_stage")


def remote_tags(row: RunRow, remote_ids: dict[str, str]) -> dict[str, str]:
    """The tags a local run has on the server: its own (the parent's id translated to the
    server's) and its provenance, under :data:`SYNC_TAGS`."""
    tags = dict(row.get("tags", {}))
    parent = tags.get(PARENT_TAG)
    if parent is not None and parent in remote_ids:
        tags[PARENT_TAG] = remote_ids[parent]
    tags[LOCAL_ID_TAG] = row["run_id"]
    if row.get("cell"):
        tags["nbtrack.cell"] = orjson.dumps(row["cell"], option=orjson.OPT_SORT_KEYS).decode()
    if row.get("environment"):
        tags["nbtrack.environment"] = row["environment"]
    if row.get("error"):
        tags["nbtrack.error"] = str(row["error"])[:MAX_TAG_VALUE]
    return tags


def attrs(row: RunRow) -> dict[str, Any]:
    return {name: row.get(name) for name in ATTRS}


def remote_attrs(run: Any) -> dict[str, Any]:
    """The same attributes of an ``mlflow.entities.Run``."""
    info = run.info
    return {
        "status": info.status,
        "end_time": info.end_time,
        "run_name": info.run_name,
        "lifecycle_stage": info.lifecycle_stage,
    }


def merge_tags(
    local: dict[str, str],
    remote: dict[str, str],
    base: tuple[dict[str, str], dict[str, str]],
    local_wins: bool,
) -> tuple[dict[str, str | None], dict[str, str | None], list[tuple[str, Any, Any]]]:
    """Merge tags by the rule above; ``base`` is (local, remote) as at the last sync.

    Returns what to change on the server and here ({key: value, or None to delete}), and
    the conflicts as (key, kept, lost).
    """
    local_base, remote_base = base
    to_server: dict[str, str | None] = {}
    to_local: dict[str, str | None] = {}
    conflicts = []
    for key in set(local) | set(remote) | set(local_base) | set(remote_base):
        mine, theirs = local.get(key), remote.get(key)
        mine_changed, theirs_changed = mine != local_base.get(key), theirs != remote_base.get(key)
        if mine == theirs or not (mine_changed or theirs_changed):
            continue
        if mine_changed and not theirs_changed:
            to_server[key] = mine
        elif theirs_changed and not mine_changed:
            to_local[key] = theirs
        elif local_wins:
            to_server[key] = mine
            conflicts.append((key, mine, theirs))
        else:
            to_local[key] = theirs
            conflicts.append((key, theirs, mine))
    return to_server, to_local, conflicts


def conflict(run_id: str, field: str, kept: Any, lost: Any, lost_side: str) -> dict[str, Any]:
    """A recorded conflict: which value won, which was lost and where it was."""
    return {
        "run": run_id,
        "field": field,
        "kept": kept,
        "lost": lost,
        "lost_side": lost_side,
        "time": int(time.time() * 1000),
    }
