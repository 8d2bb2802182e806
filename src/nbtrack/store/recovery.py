"""Checking and mending a store: dead runs, a lagging catalog, torn journals, a full rebuild.

The journals are the truth and the catalog is derived from them, so every repair here
re-derives catalog rows from journals; nothing rewrites a journal except cutting off a
torn last record of a run whose writer is gone.

What opening a store checks costs what changed since the catalog's last snapshot, not
the store's size: the snapshot's meta document names the runs that were RUNNING then
(with their processes) and how far into created.log every run id was known, and the
catalog's patches since then say the rest.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbtrack.store.artifacts import sha256_file
from nbtrack.store.catalog import META_ID, META_TABLE, file_signature
from nbtrack.store.journal import (
    TornRecordWarning,
    encode_float,
    read_lines_after,
    read_records,
    repair_tail,
)
from nbtrack.store.procs import is_alive
from nbtrack.store.records import line_prefix, to_patch
from nbtrack.store.rows import apply_patch

if TYPE_CHECKING:
    from nbtrack.store.columns import RunColumns
    from nbtrack.store.store import Store

CREATED_OFFSET = "created_offset"  # meta: bytes of created.log whose runs are all indexed
CREATED_HELD = "created_held"  # meta: ids after that offset which the snapshot holds
RUNNING = "running"  # meta: {run_id: process} of the runs RUNNING at the snapshot
# A run id in created.log whose folder never appeared is abandoned after this long (its
# process died between the two); younger ones may be being created right now.
CREATED_GRACE_MS = 60_000


@dataclass
class DoctorReport:
    """What :func:`doctor` found and did."""

    runs_checked: int = 0
    indexed: list[str] = field(default_factory=list)  # journals the catalog lacked
    orphan_rows: list[str] = field(default_factory=list)  # catalog rows without a journal
    drifted: list[str] = field(default_factory=list)  # rows that differ from their journal
    torn: list[str] = field(default_factory=list)  # journals with a torn last record
    killed: list[str] = field(default_factory=list)  # RUNNING runs whose process died
    unverifiable: list[str] = field(default_factory=list)  # RUNNING on another host
    artifact_problems: list[str] = field(default_factory=list)
    rebuilt: bool = False

    @property
    def healthy(self) -> bool:
        """True when nothing is left that needs a human or ``--rebuild``."""
        return not (self.orphan_rows or self.drifted or self.artifact_problems)

    def __str__(self) -> str:
        lines = [f"checked {self.runs_checked} runs"]
        for label, items in [
            ("indexed runs the catalog was missing", self.indexed),
            ("marked KILLED (their process is gone)", self.killed),
            ("mended torn last journal records", self.torn),
            ("still RUNNING on another host (cannot verify)", self.unverifiable),
            ("catalog rows without a journal", self.orphan_rows),
            ("catalog rows that differ from their journal", self.drifted),
            ("artifact problems", self.artifact_problems),
        ]:
            if items:
                lines.append(f"{label}: {len(items)}")
                lines.extend(f"  {item}" for item in items[:20])
                if len(items) > 20:
                    lines.append(f"  ... and {len(items) - 20} more")
        if self.rebuilt:
            lines.append("catalog rebuilt from the journals")
        if not self.healthy:
            lines.append("run `nbtrack doctor --rebuild` to re-derive the catalog")
        else:
            lines.append("store is healthy")
        return "\n".join(lines)


def fold_run(store: Store, run_id: str) -> dict[str, Any] | None:
    """A run's catalog row, derived from its journal alone (None if it has no create)."""
    row: dict[str, Any] = {}
    for record in read_records(store.journal_path(run_id)):
        patch = to_patch(record)
        if patch is not None:
            apply_patch(row, patch)
    if "run_id" not in row:
        return None
    row["artifact_uri"] = store.artifact_uri(run_id)
    return row


def fold_experiments(store: Store) -> dict[str, dict[str, Any]]:
    experiments: dict[str, dict[str, Any]] = {}
    for record in read_records(store.experiments_journal):
        apply_patch(experiments.setdefault(record["id"], {}), record["patch"])
    return experiments


def index_run(store: Store, run_id: str, new: bool = False) -> bool:
    """Put a run the catalog does not know (its process has not committed it yet, or died
    first) in it; return whether it did. ``new``: the catalog's snapshot cannot hold it.

    All under the store lock: a commit by the run's own process cannot then land between
    reading the journal and committing what was read, which, older, would overwrite it.
    A run the catalog knows by then is left to that process.
    """
    with _write_lock(store):
        # A new run is known only through a patch: asking that reads no snapshot runs.
        if store.catalog.patched(run_id) if new else store.catalog.get("runs", run_id):
            return False
        row = fold_run(store, run_id)
        if row is None:
            return False
        store.catalog.stage("runs", run_id, {"set": row}, new=new)
        store.catalog.commit()
    return True


def index_unknown_runs(store: Store) -> list[str]:
    """Index runs whose journal exists but whose catalog row was never committed.

    Every run's id goes to created.log before its folder is made, and the catalog
    remembers how far into that file every run was known, and which later ids its
    snapshot holds; only the ids after that point are read. Those the snapshot does not
    hold are marked as such, so reading them reads none of its runs, and those no patch
    names either are indexed from their journals. A store without that mark (an older
    one) is listed folder by folder once.
    """
    meta, written = store.catalog.meta(), store.catalog.snapshot_meta()
    offset, size = meta.get(CREATED_OFFSET), _size(store.created_log)
    if offset is None or offset > size:
        indexed, known_to = _index_listed(store), size
    else:
        since = written.get(CREATED_OFFSET)
        start = min(since, offset) if since is not None and since <= size else offset
        entries = _created_entries(store, start)
        held = set(written.get(CREATED_HELD) or ())
        if since is not None and since <= size:  # created after the snapshot, not in it
            store.catalog.mark_new([e[2] for e in entries if e[2] not in held])
        later = [entry for entry in entries if entry[0] >= offset]
        indexed, known_to = _index_created(store, later, offset, held)
    if known_to != offset:
        store.catalog.stage(META_TABLE, META_ID, {"set": {CREATED_OFFSET: known_to}})
        store.catalog.commit()
    return indexed


def mark_all_runs_indexed(store: Store) -> None:
    """Record that every run created so far is in the catalog (a new or rebuilt one)."""
    offset = _size(store.created_log)
    store.catalog.stage(META_TABLE, META_ID, {"set": {CREATED_OFFSET: offset}})


def _index_listed(store: Store) -> list[str]:
    known = store.catalog.run_ids()
    with os.scandir(store.root / "runs") as entries:
        names = [e.name for e in entries if e.is_dir() and e.name not in known]
    return [run_id for run_id in names if index_run(store, run_id)]


Entry = tuple[int, int, str, int]  # a line of created.log: start, end, run id, when


def _created_entries(store: Store, offset: int) -> list[Entry]:
    """Each line of created.log from ``offset``."""
    lines, _ = read_lines_after(store.created_log, offset)
    entries = []
    for line in lines:
        run_id, stamp = _created_entry(line)
        entries.append((offset, offset + len(line) + 1, run_id, stamp))
        offset += len(line) + 1
    return entries


def _index_created(
    store: Store, entries: list[Entry], offset: int, held: set[str]
) -> tuple[list[str], int]:
    indexed, known_to, settled = [], offset, True
    now = _now_ms()
    for _, end, run_id, stamp in entries:
        if run_id not in held and not store.catalog.patched(run_id):
            # Never committed: its process died (or is about to commit).
            if index_run(store, run_id, new=True):
                indexed.append(run_id)
            elif now - stamp < CREATED_GRACE_MS:
                settled = False  # being created right now: look again next time
        if settled:
            known_to = end
    return indexed, known_to


def _created_summary(store: Store, offset: int, runs: RunColumns) -> tuple[int, list[str]]:
    """How far into created.log, from ``offset``, every id is in ``runs`` (or abandoned),
    and which ids after that ``runs`` holds."""
    lines, _ = read_lines_after(store.created_log, offset)
    now, held, settled = _now_ms(), [], True
    for line in lines:
        run_id, stamp = _created_entry(line)
        if run_id in runs.index:
            if not settled:
                held.append(run_id)
        elif now - stamp < CREATED_GRACE_MS or store.run_dir(run_id).exists():
            settled = False
        if settled:
            offset += len(line) + 1
    return offset, held


def _created_entry(line: bytes) -> tuple[str, int]:
    run_id, _, stamp = line.decode("utf-8", "replace").partition(" ")
    try:
        return run_id, int(stamp)
    except ValueError:
        return run_id, 0


def summarize(store: Store, runs: RunColumns, meta: dict[str, Any]) -> dict[str, Any]:
    """The catalog's meta document for a new snapshot of ``runs`` (see the module's
    docstring)."""
    meta = dict(meta)
    meta[RUNNING] = running_processes(runs)
    if meta.get(CREATED_OFFSET) is not None:
        meta[CREATED_OFFSET], meta[CREATED_HELD] = _created_summary(
            store, meta[CREATED_OFFSET], runs
        )
    return meta


def running_processes(runs: RunColumns) -> dict[str, Any]:
    """{run_id: process} of the RUNNING runs among ``runs``."""
    import numpy as np

    status = runs.field("status")
    if status is None:
        return {}
    codes = [code for code, value in enumerate(status.values.items) if value == "RUNNING"]
    rows = np.flatnonzero(np.isin(status.codes, codes)).tolist()
    return {runs.ids[r]: runs.row(r).get("process") for r in rows}


def running_runs(store: Store) -> dict[str, Any]:
    """{run_id: process} of the store's RUNNING runs, from the snapshot's meta and the
    changes since (every row only for a catalog without that meta)."""
    meta = store.catalog.meta()
    if RUNNING not in meta:
        return running_processes(store.run_columns())
    running = dict(meta[RUNNING])
    for run_id, patch in store.catalog.changes().items():
        fields = patch.get("set", {})
        if "status" in fields:
            if fields["status"] == "RUNNING":
                running[run_id] = fields.get("process", running.get(run_id))
            else:
                running.pop(run_id, None)
        elif "process" in fields and run_id in running:
            running[run_id] = fields["process"]
    return running


def reap_dead_runs(store: Store) -> list[str]:
    """Mark KILLED every RUNNING run whose process is verifiably gone; return their ids.

    A read-only store is left as it is.
    """
    if not store.writable:
        return []
    killed = []
    for run_id, process in running_runs(store).items():
        if store.writer(run_id) is not None:
            continue
        if is_alive(process) is False:
            repair_tail(store.journal_path(run_id))
            truth = fold_run(store, run_id)
            if truth is not None:
                # What the dead process wrote may be ahead of the catalog (it died between
                # commits); the journal is the truth.
                store.catalog.stage("runs", run_id, {"set": truth})
                store.catalog.commit()
                if truth.get("status") != "RUNNING":
                    continue  # it ended; only its catalog commit was lost
            try:  # the last moment the dead process wrote anything
                end_time = int(os.stat(store.journal_path(run_id)).st_mtime * 1000)
            except FileNotFoundError:
                end_time = None
            store.finish_run(run_id, "KILLED", end_time=end_time)
            killed.append(run_id)
    return killed


def rebuild(store: Store, progress: bool = True) -> int:
    """Re-derive the whole catalog from the journals; return the number of runs indexed.

    A read-only store's catalog is rebuilt in this process's memory only.

    Journals are folded first without the store lock, which other processes need to
    commit (on a large store the fold takes seconds, and their flush() would wait or
    time out). Under the lock, only journals that changed since are folded again, and the
    new catalog is written before anyone can commit a change it lacks.
    """
    from tqdm.auto import tqdm

    run_ids = store.run_ids_on_disk()
    early = {}
    for run_id in tqdm(run_ids, desc="rebuilding catalog", unit="run", disable=not progress):
        signature = file_signature(store.journal_path(run_id))
        early[run_id] = (signature, fold_run(store, run_id))
    with _write_lock(store):
        for writer in store.open_writers():
            writer.flush()  # their journals must hold what they staged
        created = _size(store.created_log)  # every run created before is listed below
        runs = {}
        for run_id in store.run_ids_on_disk():
            signature, row = early.get(run_id, (None, None))
            if signature is None or signature != file_signature(store.journal_path(run_id)):
                row = fold_run(store, run_id)
            if row is not None:
                runs[run_id] = row
        from nbtrack.store.registry import fold_registry  # deferred: most opens never rebuild

        tables = {"experiments": fold_experiments(store), "runs": runs, **fold_registry(store)}
        tables[META_TABLE] = {META_ID: {CREATED_OFFSET: created}}
        if store.writable:
            store.catalog.write(tables)
        else:
            store.catalog.adopt(tables)
    return len(runs)


def doctor(store: Store, rebuild_catalog: bool = False, progress: bool = True) -> DoctorReport:
    """Check a store, mend what is safe to mend, and report the rest."""
    from tqdm.auto import tqdm

    report = DoctorReport()
    report.killed = reap_dead_runs(store)  # first, so dead runs are re-derived, not drifted
    on_disk = set(store.run_ids_on_disk())
    indexed = {row["run_id"]: row for row in store.runs()}
    # A run another process created after the listing has a row and a journal.
    report.orphan_rows = sorted(
        r for r in set(indexed) - on_disk if not store.journal_path(r).exists()
    )
    for run_id in tqdm(sorted(on_disk), desc="checking runs", unit="run", disable=not progress):
        report.runs_checked += 1
        _check_run(store, run_id, indexed.get(run_id), report)
    report.killed += reap_dead_runs(store)  # runs the catalog lacked until just now
    report.unverifiable = [
        r["run_id"]
        for r in store.runs()
        if r.get("status") == "RUNNING"
        and store.writer(r["run_id"]) is None
        and is_alive(r.get("process")) is None
    ]
    if rebuild_catalog:
        rebuild(store, progress=progress)
        report.rebuilt, report.orphan_rows, report.drifted = True, [], []
    return report


def _check_run(store: Store, run_id: str, row: dict | None, report: DoctorReport) -> None:
    journal = store.journal_path(run_id)
    with warnings.catch_warnings():  # a torn tail is mended and reported below
        warnings.simplefilter("ignore", TornRecordWarning)
        folded = fold_run(store, run_id)
    # A run another process is logging to may end mid-record for a moment, and its row
    # lags its journal by up to a second: neither is damage, and cutting the journal
    # under that process's feet would glue its next record onto half of this one.
    live = _may_be_logging(store, run_id, [r for r in (row, folded) if r is not None])
    if not live and store.writable and _has_torn_tail(journal):
        with store.lock:  # appends to a run without a writer hold it (Store.append)
            repair_tail(journal)
        report.torn.append(run_id)
    if folded is None:
        return
    with warnings.catch_warnings():
        if live:  # its torn tail is an append in progress, not a crash
            warnings.simplefilter("ignore", TornRecordWarning)
        if row is None:
            if index_run(store, run_id):
                report.indexed.append(run_id)
        elif not live and _summary(folded) != _summary(row):
            report.drifted.append(run_id)
        report.artifact_problems.extend(_check_artifacts(store, run_id))


def _may_be_logging(store: Store, run_id: str, rows: list[dict[str, Any]]) -> bool:
    """Whether a process may be appending to the run now: this one, or one that the
    catalog or the journal say is RUNNING it and that is not verifiably dead. A journal
    with no complete first record is a run being created, as far as we can tell."""
    if store.writer(run_id) is not None or not rows:
        return True
    return any(
        r.get("status") == "RUNNING" and is_alive(r.get("process")) is not False for r in rows
    )


def _summary(row: dict[str, Any]) -> tuple:
    # Spelled as on disk, so that NaN equals NaN and a changed NaN point still differs.
    metrics = {k: (encode_float(v[0]), *v[1:]) for k, v in row.get("metrics", {}).items()}
    keys = ("status", "lifecycle_stage", "end_time", "run_name")
    return (
        tuple(row.get(k) for k in keys),
        row.get("params", {}),
        row.get("tags", {}),
        metrics,
    )


def _write_lock(store: Store) -> contextlib.AbstractContextManager[Any]:
    """The store lock, or nothing in a read-only store (which no one writes through us)."""
    return store.lock if store.writable else contextlib.nullcontext()


def _size(path: os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _now_ms() -> int:
    return int(time.time() * 1000)


def _has_torn_tail(path: os.PathLike[str]) -> bool:
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return False
            handle.seek(size - 1)
            return handle.read(1) != b"\n"
    except FileNotFoundError:
        return False


def _check_artifacts(store: Store, run_id: str) -> list[str]:
    problems = []
    entries = {}
    for record in read_records(store.journal_path(run_id), prefix=line_prefix("artifact")):
        entries[record["path"]] = record
    for path, entry in entries.items():
        file = store.artifact_dir(run_id) / path
        if not file.is_file():
            problems.append(f"{run_id}: artifact {path} is missing")
        elif sha256_file(file) != entry["sha256"]:
            problems.append(f"{run_id}: artifact {path} changed since it was logged")
    return problems
