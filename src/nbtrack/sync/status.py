"""``nbtrack sync status``: what is pushed, what waits, what was pulled, the conflicts
merged (with the value each lost), and what changed on the server since."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any

from nbtrack.errors import SyncError
from nbtrack.store import Store
from nbtrack.sync import runs as run_rules
from nbtrack.sync.server import Server
from nbtrack.sync.state import SyncState


@dataclass
class SyncStatus:
    server: str
    pushed: int = 0  # local runs on the server
    to_push: list[str] = field(default_factory=list)  # local runs new or changed since
    registry_to_push: int = 0  # registry events not yet sent
    pulled: int = 0  # remote runs in this store
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    changed_on_server: list[str] = field(default_factory=list)  # pushed runs edited there
    server_state: str = "not checked"  # "MLflow 3.1.0", or why it cannot be reached
    background: list[str] = field(default_factory=list)  # runs auto-sync has queued

    def __str__(self) -> str:
        lines = [
            f"server:   {self.server} ({self.server_state})",
            f"pushed:   {self.pushed} runs; waiting to push: {len(self.to_push)} runs, "
            f"{self.registry_to_push} registry events",
            f"pulled:   {self.pulled} runs",
        ]
        if self.background:
            lines.append(f"auto-sync queue: {len(self.background)} runs")
        if self.changed_on_server:
            lines.append(
                f"changed on the server since the last sync: {len(self.changed_on_server)} "
                "runs (pull or push merges them)"
            )
            lines += [f"  {run_id}" for run_id in self.changed_on_server[:20]]
        if self.conflicts:
            lines.append(f"conflicts merged: {len(self.conflicts)} (kept / lost, and where)")
            lines += [f"  {_conflict_text(c)}" for c in self.conflicts[-50:]]
        else:
            lines.append("conflicts merged: none")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def sync_status(store: Store, server: Server | None, state: SyncState) -> SyncStatus:
    """The status from the state file; with ``server``, also what changed there."""
    status = SyncStatus(server=state.server, pushed=len(state.runs))
    status.pulled = len(state.data["pulled"]) - len(
        [r for r in state.data["pulled"] if state.local_id(r) is not None]
    )
    status.conflicts = list(state.data["conflicts"])
    for row in store.runs():
        if row.get("remote"):
            continue
        entry = state.runs.get(row["run_id"])
        if entry is None:
            if row.get("lifecycle_stage") == "active":
                status.to_push.append(row["run_id"])
        elif _changed_since(store, row["run_id"], entry["offset"]):
            status.to_push.append(row["run_id"])
    with store.registry.reading() as folded:
        status.registry_to_push = sum(e["seq"] > state.registry["seq"] for e in folded.events)
    if server is not None:
        try:
            status.server_state = f"MLflow {server.check()}"
            status.changed_on_server = changed_on_server(server, state)
        except SyncError as error:
            status.server_state = f"unreachable: {error}"
    return status


def changed_on_server(server: Server, state: SyncState) -> list[str]:
    """Local runs whose server copy changed (tags, status, name) since the last sync."""
    from nbtrack.entities import ViewType

    changed = []
    by_remote = {entry["remote"]: (run_id, entry) for run_id, entry in state.runs.items()}
    for experiment_id in set(state.data["experiments"].values()):
        token = None
        while True:
            page = server.call(
                "search_runs",
                [experiment_id],
                filter_string=f"tags.`{run_rules.LOCAL_ID_TAG}` LIKE '%'",
                run_view_type=ViewType.ALL,
                max_results=1000,
                page_token=token,
            )
            for run in page:
                found = by_remote.get(run.info.run_id)
                if found is None:
                    continue
                run_id, entry = found
                attrs = run_rules.remote_attrs(run)
                if dict(run.data.tags) != entry["rtags"] or attrs != entry["attrs"]:
                    changed.append(run_id)
            token = page.token
            if not token:
                break
    return changed


def _changed_since(store: Store, run_id: str, offset: int) -> bool:
    """Whether the run's journal grew past ``offset`` by more than sync's own marks."""
    try:
        if os.stat(store.journal_path(run_id)).st_size <= offset:
            return False
    except FileNotFoundError:
        return False
    return any(not r.get("sync") for r in store.records_after(run_id, offset, None)[0])


def _conflict_text(conflict: dict[str, Any]) -> str:
    when = datetime.datetime.fromtimestamp(conflict["time"] / 1000)
    return (
        f"{when:%Y-%m-%d %H:%M} run {conflict['run'][:8]} {conflict['field']}: kept "
        f"{conflict['kept']!r}, lost {conflict['lost']!r} (the {conflict['lost_side']}'s)"
    )
