"""Pull: a tracking server's runs into the local store, beside the local runs.

A teammate's run keeps its id and lands in the local experiment of the same name, marked
``remote`` (the server, its artifact URI) and read-only: params, tags, status, times,
dataset inputs and every metric point come at once; artifacts on first open
(:mod:`nbtrack.sync.fetch`). A run pushed from this store comes back as changes merged
into the local run (runs.py's rule). Each remote run's fingerprint (status, times, name,
tags, params, latest metrics: what a search returns) is kept, so pulling again fetches
histories only for runs that changed.
"""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from nbtrack.entities import ViewType
from nbtrack.errors import SyncError
from nbtrack.store import Store
from nbtrack.store.records import (
    fields_record,
    input_record,
    metric_records,
    params_record,
    tags_record,
    untag_record,
)
from nbtrack.sync import runs as run_rules
from nbtrack.sync.report import SyncReport
from nbtrack.sync.server import Server
from nbtrack.sync.state import SyncState

PAGE = 1000  # runs a search request returns
WORKERS = 4  # runs whose histories are fetched at once
# MLflow's SQL stores keep an infinite value as the largest float: read it back as one.
_FLOAT_MAX = 1.7976931348623157e308


class Puller:
    """One pull: the store, the server, the state, and what it did so far."""

    def __init__(self, store: Store, server: Server, state: SyncState, report: SyncReport):
        self.store = store
        self.server = server
        self.state = state
        self.report = report

    def remote_experiments(self, names: list[str] | None) -> list[Any]:
        if not names:
            return self.server.call("search_experiments", view_type=ViewType.ACTIVE_ONLY)
        found = []
        for name in names:
            experiment = self.server.call("get_experiment_by_name", name)
            if experiment is None:
                raise SyncError(
                    f"No experiment named {name!r} on {self.server.name}: check the name "
                    "(nbtrack sync pull SERVER without -e pulls every experiment)."
                )
            found.append(experiment)
        return found

    def remote_runs(self, experiment_id: str, filter_string: str) -> list[Any]:
        runs, token = [], None
        while True:
            page = self.server.call(
                "search_runs",
                [experiment_id],
                filter_string=filter_string,
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=PAGE,
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def pull(self, experiments: list[str] | None, filter_string: str, progress: bool) -> None:
        from tqdm.auto import tqdm

        work = []
        for experiment in self.remote_experiments(experiments):
            local = self.store.get_or_create_experiment(experiment.name)
            for run in self.remote_runs(experiment.experiment_id, filter_string):
                if self.state.data["pulled"].get(run.info.run_id) == fingerprint(run):
                    self.report.add(unchanged=1)
                else:
                    work.append((run, local["experiment_id"]))
        with (
            tqdm(
                total=len(work), desc=f"pull {self.server.name}", unit="run", disable=not progress
            ) as bar,
            ThreadPoolExecutor(max_workers=WORKERS) as pool,
        ):
            for _ in pool.map(lambda item: self.pull_run(*item), work):
                bar.update()

    def pull_run(self, run: Any, experiment_id: str) -> None:
        remote_id = run.info.run_id
        own = self.state.local_id(remote_id)
        if own is not None:
            self._merge_own(own, run)
        elif self._exists(remote_id):
            self._update(remote_id, run)
        else:
            self._import(run, experiment_id)
        mark = fingerprint(run)
        self.state.update(lambda data: data["pulled"].__setitem__(remote_id, mark))

    def _exists(self, run_id: str) -> bool:
        try:
            self.store.get_run(run_id)
        except LookupError:
            return False
        return True

    # -- a teammate's run ----------------------------------------------------------------

    def _import(self, run: Any, experiment_id: str) -> None:
        info = run.info
        row = {
            "run_id": info.run_id,
            "experiment_id": experiment_id,
            "run_name": info.run_name,
            "status": info.status,
            "start_time": info.start_time,
            "end_time": info.end_time,
            "lifecycle_stage": "active",
            "user_id": info.user_id,
            "tags": dict(run.data.tags),
            "remote": {
                "server": self.server.name,
                "run_id": info.run_id,
                "experiment_id": info.experiment_id,
                "artifact_uri": info.artifact_uri,
                "fetched": False,
            },
        }
        records: list[dict[str, Any]] = []
        if run.data.params:
            records.append(params_record(dict(run.data.params)))
        records += self._histories(info.run_id, list(run.data.metrics), {})
        records += _inputs(run)
        self.store.import_run(row, records)
        self.report.add(created=1, values=_values(records))

    def _update(self, run_id: str, run: Any) -> None:
        row = self.store.get_run(run_id)
        if not row.get("remote"):
            raise SyncError(
                f"Run {run_id} on {self.server.name} has the id of a local run that was not "
                "pushed from this store; pull it into another store."
            )
        records = self._changes(row, run, dict(run.data.tags))
        changed = list(run.data.metrics)
        if row["status"] != "RUNNING" and row["status"] == run.info.status:
            # A finished run that changed on the server (a point logged to it later) shows
            # it in its latest values; a run that was running may have any key extended.
            changed = [k for k in changed if _changed_metric(row, k, run.data.metrics[k])]
        records += self._histories(run_id, changed, self._local_points(run_id, changed))
        if records:
            self.store.append(run_id, records, remote=True)
        self.report.add(updated=1, values=_values(records))

    def _changes(self, row: dict[str, Any], run: Any, tags: dict[str, str]) -> list[dict]:
        records: list[dict[str, Any]] = []
        params = {k: v for k, v in run.data.params.items() if k not in row.get("params", {})}
        if params:
            records.append(params_record(params))
        local_tags = row.get("tags", {})
        changed = {k: v for k, v in tags.items() if local_tags.get(k) != v}
        if changed:
            records.append(tags_record(changed))
        records += [untag_record(k) for k in local_tags if k not in tags]
        attrs = {k: v for k, v in run_rules.remote_attrs(run).items() if k != "lifecycle_stage"}
        moved = {k: v for k, v in attrs.items() if row.get(k) != v}
        if moved:
            records.append(fields_record(**moved))
        return records

    # -- a run pushed from here, changed on the server -----------------------------------

    def _merge_own(self, run_id: str, run: Any) -> None:
        """Bring what the server alone changed into the local run (runs.py's rule: a tag
        both sides changed is left for the next push, where this store wins)."""
        entry = self.state.runs[run_id]
        row = self.store.get_run(run_id)
        local_tags = run_rules.remote_tags(row, self._remote_ids())
        remote_tags = dict(run.data.tags)
        _, to_local, _ = run_rules.merge_tags(
            local_tags, remote_tags, (entry["tags"], entry["rtags"]), local_wins=True
        )
        to_local = {k: v for k, v in to_local.items() if k not in run_rules.SYNC_TAGS}
        params = {k: v for k, v in run.data.params.items() if k not in row.get("params", {})}
        records = []
        if params:
            records.append({**params_record(params), "sync": True})
        local_ids = {e["remote"]: r for r, e in self.state.runs.items()}
        kept = {
            k: local_ids.get(v, v) if k == run_rules.PARENT_TAG else v
            for k, v in to_local.items()
            if v is not None
        }
        if kept:
            records.append({**tags_record(kept), "sync": True})
        records += [{**untag_record(k), "sync": True} for k, v in to_local.items() if v is None]
        changed = [k for k, p in run.data.metrics.items() if _changed_metric(row, k, p)]
        points = self._histories(run.info.run_id, changed, self._local_points(run_id, changed))
        records += [{**r, "sync": True} for r in points]
        if records and row.get("lifecycle_stage") == "active":
            self.store.append(run_id, records)

        def merged(data: dict[str, Any]) -> None:
            base = dict(data["runs"][run_id]["tags"])
            base.update({k: v for k, v in to_local.items() if v is not None})
            for key in (k for k, v in to_local.items() if v is None):
                base.pop(key, None)
            data["runs"][run_id]["tags"] = base
            data["runs"][run_id]["rtags"] = remote_tags

        self.state.update(merged)
        self.report.add(updated=1, values=_values(records))

    def _remote_ids(self) -> dict[str, str]:
        return {run_id: entry["remote"] for run_id, entry in self.state.runs.items()}

    # -- metric histories ----------------------------------------------------------------

    def _local_points(self, run_id: str, keys: list[str]) -> dict[str, set[tuple]]:
        points = {}
        for key in keys:
            steps, values, times = self.store.metric_history(run_id, key)
            points[key] = {
                (s, _same_nan(v), t)
                for s, v, t in zip(steps.tolist(), values.tolist(), times.tolist(), strict=True)
            }
        return points

    def _histories(self, remote_id: str, keys: list[str], have: dict[str, set[tuple]]) -> list:
        """Metric records of the points of ``keys`` the local run lacks."""
        buffer: list[Any] = []  # key, value, step, timestamp: records.POINT_WIDTH a point
        for key in keys:
            known = have.get(key, set())
            for metric in self.server.call("get_metric_history", remote_id, key):
                value = _from_server(metric.value)
                if (metric.step, _same_nan(value), metric.timestamp) in known:
                    continue
                buffer += [key, value, metric.step, metric.timestamp]
        return metric_records(buffer) if buffer else []


def fingerprint(run: Any) -> str:
    """What a search tells of a run, digested: equal means nothing to pull."""
    data = run.data
    summary = [
        run_rules.remote_attrs(run),
        sorted(data.tags.items()),
        sorted(data.params.items()),
        sorted((k, repr(v)) for k, v in data.metrics.items()),
    ]
    return hashlib.sha256(orjson.dumps(summary, default=str)).hexdigest()[:32]


def _changed_metric(row: dict[str, Any], key: str, value: float) -> bool:
    latest = row.get("metrics", {}).get(key)
    return latest is None or _same_nan(_from_server(value)) != _same_nan(latest[0])


def _same_nan(value: float) -> Any:
    return "nan" if value != value else value


def _from_server(value: float) -> float:
    if abs(value) == _FLOAT_MAX:
        return math.copysign(math.inf, value)
    return value


def _inputs(run: Any) -> list[dict[str, Any]]:
    inputs = getattr(run, "inputs", None)
    records = []
    for n, found in enumerate(getattr(inputs, "dataset_inputs", None) or [], start=1):
        dataset = found.dataset
        fields = {
            name: getattr(dataset, name)
            for name in ("name", "digest", "source_type", "source", "schema", "profile")
        }
        records.append(input_record(fields, {t.key: t.value for t in found.tags}, n))
    return records


def _values(records: list[dict[str, Any]]) -> int:
    count = 0
    for record in records:
        op = record["op"]
        if op == "metrics":
            count += record["n"]
        elif op in ("params", "tags"):
            count += len(record[op])
        elif op in ("untag", "set"):
            count += 1
    return count
