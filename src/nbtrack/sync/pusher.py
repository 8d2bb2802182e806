"""Push: a store's runs (params, metric histories, tags, status, parents, inputs,
artifacts) to a tracking server, each run from its watermark on.

A run's watermark is the length of its journal already pushed: a push reads only what
was appended since, so an unchanged run costs no request. A run being created is noted
before ``create_run`` is sent; a push that died before it recorded the answer finds that
run on the server by its ``nbtrack.local_run_id`` tag instead of creating a second one.
Points sent again after a kill are the server's own to drop (its SQL stores keep one row
per key, step, timestamp and value), and params, tags and artifact files are written
again with the same values, so a resumed push leaves no duplicate and no gap.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from nbtrack.entities import ViewType
from nbtrack.errors import SyncError
from nbtrack.store import Store
from nbtrack.store.records import (
    fields_record,
    metric_columns,
    params_record,
    tags_record,
    untag_record,
)
from nbtrack.store.rows import RunRow
from nbtrack.sync import runs as run_rules
from nbtrack.sync.batches import Series, batches, series
from nbtrack.sync.report import SyncReport
from nbtrack.sync.server import Server
from nbtrack.sync.state import SyncState
from nbtrack.tracking import runs as tracking_runs

WORKERS = 4  # runs pushed at once: the server works on one while the next is prepared


def select_runs(
    store: Store, experiments: list[str] | None, filter_string: str, run_ids: list[str] | None
) -> list[RunRow]:
    """The local runs (not pulled ones) a push covers, deleted ones included (a deletion
    is pushed too)."""
    if run_ids is not None:
        rows = [store.get_run(run_id) for run_id in run_ids]
    else:
        ids = tracking_runs.experiment_ids(store, None, experiments) if experiments else None
        rows = tracking_runs.search_rows(store, ids, filter_string, ViewType.ALL)
    return [row for row in rows if not row.get("remote")]


class Pusher:
    """One push: the store, the server, the state, and what it did so far."""

    def __init__(self, store: Store, server: Server, state: SyncState, report: SyncReport):
        self.store = store
        self.server = server
        self.state = state
        self.report = report

    # -- which runs, in which order ------------------------------------------------------

    def plan(self, rows: list[RunRow]) -> list[list[RunRow]]:
        """The runs with something to push, in waves: parents before their children."""
        by_id = {row["run_id"]: row for row in rows}
        for row in list(by_id.values()):  # a pushed child needs its parent on the server
            parent = row.get("tags", {}).get(run_rules.PARENT_TAG)
            while parent and parent not in by_id and self.state.remote_id(parent) is None:
                try:
                    parent_row = self.store.get_run(parent)
                except LookupError:
                    break
                if parent_row.get("remote"):
                    break
                by_id[parent] = parent_row
                parent = parent_row.get("tags", {}).get(run_rules.PARENT_TAG)
        todo = [row for row in by_id.values() if self._changed(row)]
        self.report.add(unchanged=len(by_id) - len(todo))
        depth: dict[str, int] = {}
        planned = {row["run_id"] for row in todo}

        def depth_of(row: RunRow) -> int:
            run_id = row["run_id"]
            if run_id not in depth:
                parent = row.get("tags", {}).get(run_rules.PARENT_TAG)
                depth[run_id] = 0
                if parent in planned and parent != run_id:
                    depth[run_id] = depth_of(by_id[parent]) + 1
            return depth[run_id]

        waves: dict[int, list[RunRow]] = {}
        for row in todo:
            waves.setdefault(depth_of(row), []).append(row)
        return [waves[d] for d in sorted(waves)]

    def _changed(self, row: RunRow) -> bool:
        entry = self.state.runs.get(row["run_id"])
        if entry is None:
            return row.get("lifecycle_stage") == "active"  # a deleted, never pushed run stays
        try:
            size = os.stat(self.store.journal_path(row["run_id"])).st_size
        except FileNotFoundError:
            return False
        return size > entry["offset"]

    def push_all(self, waves: list[list[RunRow]], progress: bool, workers: int = WORKERS) -> None:
        from tqdm.auto import tqdm

        total = sum(len(wave) for wave in waves)
        with tqdm(
            total=total, desc=f"push {self.server.name}", unit="run", disable=not progress
        ) as bar:
            for wave in waves:
                self._experiments(wave)
                with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                    futures = [pool.submit(self.push_run, row["run_id"]) for row in wave]
                    for future in futures:
                        future.add_done_callback(lambda _: bar.update())
                    _, pending = wait(futures, return_when=FIRST_EXCEPTION)
                    for future in pending:
                        future.cancel()
                    for future in futures:
                        if future.done() and not future.cancelled() and future.exception():
                            raise future.exception()

    # -- experiments ---------------------------------------------------------------------

    def _experiments(self, rows: list[RunRow]) -> None:
        for experiment_id in {row["experiment_id"] for row in rows}:
            self.remote_experiment(experiment_id)

    def remote_experiment(self, experiment_id: str) -> str:
        """The server's id of the local experiment's name, created there if missing."""
        experiment = self.store.get_experiment(experiment_id)
        name = experiment["name"]
        known = self.state.data["experiments"].get(name)
        if known is not None:
            return known
        remote = self.server.call("get_experiment_by_name", name)
        if remote is None:
            tags = experiment.get("tags") or None
            remote_id = self.server.call("create_experiment", name, tags=tags)
        elif remote.lifecycle_stage != "active":
            raise SyncError(
                f"Experiment '{name}' is deleted on {self.server.name}: restore it there "
                "(MlflowClient().restore_experiment) or rename yours, then push again."
            )
        else:
            remote_id = remote.experiment_id
        self.state.update(lambda data: data["experiments"].__setitem__(name, remote_id))
        return remote_id

    # -- one run -------------------------------------------------------------------------

    def push_run(self, run_id: str) -> None:
        entry = self.state.runs.get(run_id)
        offset = entry["offset"] if entry else 0
        records, end = self.store.records_after(run_id, offset, None)
        records = [r for r in records if not r.get("sync")]  # sync's own marks
        if entry is not None and not records:
            self.state.update(lambda data: data["runs"][run_id].__setitem__("offset", end))
            self.report.add(unchanged=1)
            return
        row = self.store.get_run(run_id)
        local_tags = run_rules.remote_tags(row, self._remote_ids())
        if entry is None:
            entry, to_server = self._create(row, local_tags), {}
            remote_now = entry["attrs"]
        else:
            found = self._remote_run(entry["remote"])
            if found is None:  # deleted for good on the server: push the run afresh
                self.state.update(lambda data: data["runs"].pop(run_id, None))
                return self.push_run(run_id)
            to_server, local_tags = self._merge(row, local_tags, found, entry)
            remote_now = run_rules.remote_attrs(found)
            self.report.add(updated=1)
            entry = {**entry, "rtags": dict(found.data.tags), "uri": found.info.artifact_uri}
        self._send(run_id, entry, records, to_server)
        self._send_attrs(row, entry, remote_now)
        rtags = dict(entry["rtags"])
        for key, value in to_server.items():
            if value is None:
                rtags.pop(key, None)
            else:
                rtags[key] = value
        done = {
            **entry,
            "offset": end,
            "tags": local_tags,
            "rtags": rtags,
            "attrs": run_rules.attrs(row),
        }
        self.state.update(lambda data: data["runs"].__setitem__(run_id, done))

    def _remote_ids(self) -> dict[str, str]:
        return {run_id: entry["remote"] for run_id, entry in self.state.runs.items()}

    def _create(self, row: RunRow, tags: dict[str, str]) -> dict[str, Any]:
        """Create the run on the server (or find the one a killed push created)."""
        run_id = row["run_id"]
        experiment_id = self.remote_experiment(row["experiment_id"])
        remote = None
        if run_id in self.state.data["creating"]:
            remote = self._find_created(experiment_id, run_id)
        if remote is None:
            self.state.update(lambda data: data["creating"].append(run_id))
            remote = self.server.create_run(
                experiment_id, row.get("start_time"), tags, row.get("run_name")
            )
        entry = {
            "remote": remote.info.run_id,
            "offset": 0,
            "tags": tags,
            "rtags": dict(remote.data.tags),
            "attrs": run_rules.remote_attrs(remote),
            "uri": remote.info.artifact_uri,
        }

        def created(data: dict[str, Any]) -> None:
            data["runs"][run_id] = entry
            data["creating"] = [r for r in data["creating"] if r != run_id]

        self.state.update(created)
        synced = {**row.get("synced", {}), self.server.name: remote.info.run_id}
        self.store.append(run_id, [{**fields_record(synced=synced), "sync": True}])
        self.report.add(created=1, values=len(tags))
        return entry

    def _find_created(self, experiment_id: str, run_id: str) -> Any:
        found = self.server.call(
            "search_runs",
            [experiment_id],
            filter_string=f"tags.`{run_rules.LOCAL_ID_TAG}` = '{run_id}'",
            run_view_type=ViewType.ALL,
            max_results=1,
        )
        return found[0] if found else None

    def _remote_run(self, remote_id: str) -> Any:
        try:
            return self.server.call("get_run", remote_id)
        except Exception as error:
            if getattr(error, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def _merge(
        self, row: RunRow, local_tags: dict[str, str], remote: Any, entry: dict[str, Any]
    ) -> tuple[dict[str, str | None], dict[str, str]]:
        """Merge a run changed since the last push with the server's copy (runs.py's
        rule: this store wins a conflict); bring the server's own changes here. Returns
        what to send and the run's tags (server form) after the merge."""
        to_server, to_local, conflicts = run_rules.merge_tags(
            local_tags, dict(remote.data.tags), (entry["tags"], entry["rtags"]), local_wins=True
        )
        for key, kept, lost in conflicts:
            self._conflict(row["run_id"], f"tags.{key}", kept, lost, "server")
        to_local = {k: v for k, v in to_local.items() if k not in run_rules.SYNC_TAGS}
        params = {k: v for k, v in remote.data.params.items() if k not in row.get("params", {})}
        self.apply_here(row, to_local, params)
        merged = dict(local_tags)
        for key, value in to_local.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return to_server, merged

    def apply_here(self, row: RunRow, tags: dict[str, str | None], params: dict[str, str]) -> None:
        """Write changes made on the server into the local run, marked as sync's own so
        the next push does not send them back."""
        if row.get("lifecycle_stage") != "active" or not (tags or params):
            return
        local_ids = {e["remote"]: run_id for run_id, e in self.state.runs.items()}
        records = []
        if params:
            records.append({**params_record(params), "sync": True})
        kept = {}
        for key, value in tags.items():
            if value is None:
                records.append({**untag_record(key), "sync": True})
            else:
                kept[key] = local_ids.get(value, value) if key == run_rules.PARENT_TAG else value
        if kept:
            records.append({**tags_record(kept), "sync": True})
        self.store.append(row["run_id"], records)

    def _conflict(self, run_id: str, field: str, kept: Any, lost: Any, side: str) -> None:
        conflict = run_rules.conflict(run_id, field, kept, lost, side)
        self.state.record_conflict(conflict)
        self.report.add_conflict(conflict)

    # -- sending -------------------------------------------------------------------------

    def _send(
        self, run_id: str, entry: dict, records: list[dict], tags: dict[str, str | None]
    ) -> None:
        remote_id = entry["remote"]
        params: dict[str, str] = {}
        for record in records:
            if record["op"] == "params":
                params.update(record["params"])
        metric_records = [r for r in records if r["op"] == "metrics"]
        set_tags = {k: v for k, v in tags.items() if v is not None}
        sent = 0
        for batch in batches(params, set_tags, map(_series, metric_records)):
            self.server.log_batch(remote_id, batch)
            sent += batch.size
        for key in (k for k, v in tags.items() if v is None):
            self.server.call("delete_tag", remote_id, key)
        self.report.add(values=sent + len(tags) - len(set_tags))
        self._send_inputs(remote_id, [r for r in records if r["op"] == "input"])
        self._send_artifacts(run_id, entry["uri"], records)

    def _send_inputs(self, remote_id: str, records: list[dict]) -> None:
        if not records:
            return
        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = [
            DatasetInput(
                Dataset(**{k: r["dataset"].get(k) for k in _DATASET_FIELDS}),
                [InputTag(k, v) for k, v in r["tags"].items()],
            )
            for r in records
        ]
        self.server.call("log_inputs", remote_id, datasets=inputs)

    def _send_artifacts(self, run_id: str, artifact_uri: str, records: list[dict]) -> None:
        latest = {r["path"]: r for r in records if r["op"] == "artifact"}
        if not latest:
            return
        repo = self.server.artifact_repo(artifact_uri)
        for path in latest:
            local = self.store.artifact_dir(run_id) / path
            if not local.is_file():
                warnings.warn(f"nbtrack sync: artifact {path} is missing locally", stacklevel=2)
                continue
            folder = os.path.dirname(path) or None
            self.server.counted()
            with self.server.errors("artifact upload"):
                repo.log_artifact(str(local), folder)
            self.report.add(artifacts=1)

    def _send_attrs(self, row: RunRow, entry: dict[str, Any], remote_now: dict[str, Any]) -> None:
        """Status, end time, name and deletion: this store's value wins (runs.py)."""
        mine, before = run_rules.attrs(row), entry["attrs"]
        changed = {k for k in run_rules.ATTRS if mine[k] != remote_now.get(k)}
        for key in changed:
            if remote_now.get(key) != before.get(key):  # the server changed it too
                self._conflict(row["run_id"], key, mine[key], remote_now.get(key), "server")
        remote_id = entry["remote"]
        if {"status", "end_time", "run_name"} & changed:
            name = mine["run_name"] if "run_name" in changed else None
            self.server.update_run(remote_id, mine["status"], mine["end_time"], name)
        if "lifecycle_stage" in changed:
            verb = "delete_run" if mine["lifecycle_stage"] == "deleted" else "restore_run"
            self.server.call(verb, remote_id)
        self.report.add(values=len(changed))


_DATASET_FIELDS = ("name", "digest", "source_type", "source", "schema", "profile")


def _series(record: dict) -> Series:
    steps, values, times = metric_columns(record)
    return series(record["key"], steps.tolist(), values.tolist(), times.tolist())
