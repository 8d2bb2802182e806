"""The catalog's TinyDB storage: staged and committed patches, merging, compaction, schema."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest
from tinydb import TinyDB, where
from tinydb.storages import MemoryStorage

from nbtrack.errors import StoreError
from nbtrack.store import catalog as catalog_module
from nbtrack.store import columns
from nbtrack.store.catalog import CHANGELOG_NAME, LEGACY_NAME, SNAPSHOT_NAME, CatalogStorage
from nbtrack.store.locking import StoreLock
from nbtrack.store.snapshot import Snapshot, encode


def _catalog(root: Path) -> CatalogStorage:
    """A catalog with its own lock object, as a second process would have."""
    root.mkdir(parents=True, exist_ok=True)
    return CatalogStorage(root, StoreLock(root / "store.lock"))


def _meta(root: Path) -> dict:
    return Snapshot(root / SNAPSHOT_NAME).tables["_meta"]["1"]


def test_stage_is_visible_at_once_and_commit_to_another_reader(tmp_path: Path) -> None:
    writer, reader = _catalog(tmp_path), _catalog(tmp_path)
    assert reader.get("runs", "r1") is None

    writer.stage("runs", "r1", {"set": {"status": "RUNNING"}, "params": {"lr": "0.1"}})
    assert writer.get("runs", "r1") == {"status": "RUNNING", "params": {"lr": "0.1"}}
    assert writer.has_staged
    assert reader.get("runs", "r1") is None  # not committed yet

    writer.commit()
    assert not writer.has_staged
    assert reader.get("runs", "r1") == {"status": "RUNNING", "params": {"lr": "0.1"}}
    assert (tmp_path / CHANGELOG_NAME).stat().st_size > 0

    # A third reader that starts from nothing sees the same.
    assert _catalog(tmp_path).documents("runs") == [{"status": "RUNNING", "params": {"lr": "0.1"}}]


def test_get_returns_a_copy(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    catalog.stage("runs", "r1", {"params": {"a": "1"}})
    copy = catalog.get("runs", "r1")
    copy["params"]["a"] = "changed"
    copy["status"] = "X"
    assert catalog.get("runs", "r1") == {"params": {"a": "1"}}


def test_two_writers_patching_one_document_merge_field_wise(tmp_path: Path) -> None:
    first, second = _catalog(tmp_path), _catalog(tmp_path)
    first.stage("runs", "r", {"set": {"status": "RUNNING", "run_name": "a"}})
    first.commit()
    assert second.get("runs", "r")["status"] == "RUNNING"  # both have read the row

    first.stage("runs", "r", {"params": {"lr": "0.1"}})
    second.stage("runs", "r", {"tags": {"team": "x"}, "set": {"status": "FINISHED"}})
    first.commit()
    second.commit()  # must fold in first's params before appending its own patch

    expected = {
        "status": "FINISHED",
        "run_name": "a",
        "params": {"lr": "0.1"},
        "tags": {"team": "x"},
    }
    assert first.get("runs", "r") == expected
    assert second.get("runs", "r") == expected
    assert _catalog(tmp_path).get("runs", "r") == expected


def test_staged_patch_survives_a_refresh_that_reads_others_commits(tmp_path: Path) -> None:
    first, second = _catalog(tmp_path), _catalog(tmp_path)
    second.stage("runs", "r", {"tags": {"mine": "1"}})  # staged, not committed
    first.stage("runs", "r", {"params": {"p": "1"}})
    first.commit()
    # second re-reads first's commit, and its own staged patch is still applied on top.
    assert second.get("runs", "r") == {"params": {"p": "1"}, "tags": {"mine": "1"}}
    second.commit()
    assert first.get("runs", "r") == {"params": {"p": "1"}, "tags": {"mine": "1"}}


@pytest.mark.parametrize(
    ("points", "latest"),
    [
        # step wins over time and value
        ([[9.0, 1, 500], [1.0, 2, 100]], [1.0, 2, 100]),
        # same step: later timestamp wins
        ([[9.0, 3, 200], [1.0, 3, 300]], [1.0, 3, 300]),
        # same step and time: larger value wins
        ([[1.0, 3, 300], [2.0, 3, 300]], [2.0, 3, 300]),
        # an older point arriving later does not replace the latest
        ([[5.0, 10, 10], [7.0, 4, 999]], [5.0, 10, 10]),
    ],
)
def test_latest_metric_rule(tmp_path: Path, points: list, latest: list) -> None:
    writer, other = _catalog(tmp_path), _catalog(tmp_path)
    for point in points:  # staged one by one: merged in memory before the commit
        writer.stage("runs", "r", {"metrics": {"m": point}})
    assert writer.get("runs", "r")["metrics"]["m"] == latest
    writer.commit()
    assert other.get("runs", "r")["metrics"]["m"] == latest

    # And across two writers' commits, in both orders.
    for order in (points, points[::-1]):
        root = tmp_path / f"two-{order is points}"
        a, b = _catalog(root), _catalog(root)
        a.stage("runs", "r", {"metrics": {"m": order[0]}})
        b.stage("runs", "r", {"metrics": {"m": order[1]}})
        a.commit()
        b.commit()
        assert _catalog(root).get("runs", "r")["metrics"]["m"] == latest


def test_untag_then_tag_and_tag_then_untag(tmp_path: Path) -> None:
    writer = _catalog(tmp_path)
    writer.stage("runs", "r", {"tags": {"a": "1", "b": "1"}})
    writer.commit()

    writer.stage("runs", "r", {"untag": ["a"]})
    writer.stage("runs", "r", {"tags": {"a": "2"}})  # re-set after removal: present
    writer.stage("runs", "r", {"tags": {"b": "2"}})
    writer.stage("runs", "r", {"untag": ["b"]})  # removed after setting: absent
    expected = {"a": "2"}
    assert writer.get("runs", "r")["tags"] == expected
    writer.commit()
    assert _catalog(tmp_path).get("runs", "r")["tags"] == expected


def test_nonfinite_latest_metrics_survive_the_log_and_a_snapshot(tmp_path: Path) -> None:
    writer = _catalog(tmp_path)
    writer.stage("runs", "r", {"metrics": {"n": [float("nan"), 0, 1], "i": [float("-inf"), 0, 1]}})
    writer.commit()
    got = _catalog(tmp_path).get("runs", "r")["metrics"]
    assert got["n"][0] != got["n"][0] and got["i"][0] == float("-inf")

    writer.write(writer.read())  # fold into the snapshot
    got = _catalog(tmp_path).get("runs", "r")["metrics"]
    assert got["n"][0] != got["n"][0] and got["i"][0] == float("-inf")


def test_nonfinite_metrics_of_a_whole_row_set_by_a_patch_survive_the_log(tmp_path: Path) -> None:
    """Indexing a run from its journal stages {"set": row}: its metrics are spelled too."""
    writer = _catalog(tmp_path)
    row = {"run_id": "r", "metrics": {"n": [float("nan"), 1, 2], "p": [float("inf"), 0, 1]}}
    writer.stage("runs", "r", {"set": row})
    writer.commit()
    assert b"null" not in (tmp_path / CHANGELOG_NAME).read_bytes()
    got = _catalog(tmp_path).get("runs", "r")["metrics"]
    assert got["n"][0] != got["n"][0] and got["n"][1:] == [1, 2]
    assert got["p"] == [float("inf"), 0, 1]
    assert row["metrics"]["n"][0] != row["metrics"]["n"][0]  # the caller's row is untouched


def test_compaction_keeps_documents_bumps_generation_and_truncates_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_module, "COMPACT_MIN_BYTES", 2000)
    writer, reader = _catalog(tmp_path), _catalog(tmp_path)
    writer.stage("runs", "seed", {"set": {"n": -1}})
    writer.commit()
    assert reader.get("runs", "seed") == {"n": -1}  # reader is on the old generation
    assert not (tmp_path / SNAPSHOT_NAME).exists()

    generation_seen = []
    for i in range(200):
        writer.stage("runs", f"run-{i:03d}", {"set": {"n": i}, "params": {"p": "x" * 20}})
        writer.commit()
        if (tmp_path / SNAPSHOT_NAME).exists():
            generation_seen.append(_meta(tmp_path)["generation"])
    assert generation_seen, "the log never outgrew the snapshot: no compaction happened"
    assert max(generation_seen) >= 2  # compacted more than once as the snapshot grew
    assert generation_seen == sorted(generation_seen)

    # Right after a compaction the log is empty; it is never larger than the threshold.
    log_size = (tmp_path / CHANGELOG_NAME).stat().st_size
    assert log_size <= max(2000, (tmp_path / SNAPSHOT_NAME).stat().st_size)
    writer.stage("runs", "seed", {"set": {"n": -2}})
    writer.write(writer.read())
    assert (tmp_path / CHANGELOG_NAME).stat().st_size == 0

    expected = {f"run-{i:03d}": {"n": i, "params": {"p": "x" * 20}} for i in range(200)}
    expected["seed"] = {"n": -2}
    # The reader had read the old generation; it reloads and misses nothing.
    for catalog in (reader, writer, _catalog(tmp_path)):
        docs = {doc_id: catalog.get("runs", doc_id) for doc_id in expected}
        assert docs == expected
        assert len(catalog.documents("runs")) == 201


def test_a_writer_closing_with_a_long_log_folds_it_and_a_short_one_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_module, "COMPACT_MIN_BYTES", 80_000)
    short, long = tmp_path / "short", tmp_path / "long"
    for root, runs in ((short, 3), (long, 200)):  # 200 runs: ~15 KB of log, over 80/8 KB
        writer = _catalog(root)
        for i in range(runs):
            writer.stage("runs", f"run-{i:03d}", {"set": {"n": i}, "params": {"p": "x" * 20}})
            writer.commit()
        reader = _catalog(root)
        assert len(reader.documents("runs")) == runs
        reader.close()  # a reader that added nothing folds nothing
        assert (root / CHANGELOG_NAME).stat().st_size > 0
        writer.close()
    assert (short / CHANGELOG_NAME).stat().st_size > 0
    assert not (short / SNAPSHOT_NAME).exists()
    assert (long / CHANGELOG_NAME).stat().st_size == 0
    assert _meta(long)["generation"] == 1
    assert {d["n"] for d in _catalog(long).documents("runs")} == set(range(200))


def test_reader_ignores_log_records_of_an_older_generation(tmp_path: Path) -> None:
    writer = _catalog(tmp_path)
    writer.stage("runs", "r", {"set": {"v": 1}})
    writer.write(writer.read())  # generation 1
    generation = _meta(tmp_path)["generation"]
    # A record left behind with the previous generation must not be applied.
    stale = {"gen": generation - 1, "table": "runs", "id": "r", "patch": {"set": {"v": 99}}}
    with open(tmp_path / CHANGELOG_NAME, "ab") as log:
        log.write(orjson.dumps(stale) + b"\n")
    assert _catalog(tmp_path).get("runs", "r") == {"v": 1}


def test_torn_log_record_is_ignored_and_cut_by_the_next_commit(tmp_path: Path) -> None:
    writer = _catalog(tmp_path)
    writer.stage("runs", "r", {"set": {"v": 1}})
    writer.commit()
    with open(tmp_path / CHANGELOG_NAME, "ab") as log:
        log.write(b'{"gen":0,"table":"runs","id":"r","patch":{"set":{"v":')
    other = _catalog(tmp_path)
    assert other.get("runs", "r") == {"v": 1}
    other.stage("runs", "r", {"set": {"w": 2}})
    other.commit()
    assert _catalog(tmp_path).get("runs", "r") == {"v": 1, "w": 2}
    assert (tmp_path / CHANGELOG_NAME).read_bytes().endswith(b"\n")


def test_snapshot_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    snapshot = b"".join(encode(99, 1, {"_meta": {"1": {"schema": 99}}}, columns.empty()))
    (tmp_path / SNAPSHOT_NAME).write_bytes(snapshot)
    with pytest.raises(StoreError, match=r"schema 99.*Upgrade nbtrack"):
        _catalog(tmp_path).documents("runs")


def test_legacy_catalog_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    legacy = {"_meta": {"1": {"schema": 99, "generation": 1}}, "runs": {}}
    (tmp_path / LEGACY_NAME).write_bytes(orjson.dumps(legacy))
    with pytest.raises(StoreError, match=r"schema 99.*Upgrade nbtrack"):
        _catalog(tmp_path).documents("runs")


def test_store_refuses_a_snapshot_from_a_newer_schema(store_dir: Path) -> None:
    from nbtrack.store import Store

    store_dir.mkdir(parents=True)
    newer = catalog_module.SCHEMA_VERSION + 1
    snapshot = b"".join(encode(newer, 1, {"experiments": {}}, columns.empty()))
    (store_dir / SNAPSHOT_NAME).write_bytes(snapshot)
    with pytest.raises(StoreError, match=f"schema {newer}"):
        Store(store_dir)


def test_snapshot_write_is_atomic(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    catalog.stage("runs", "r", {"set": {"v": 1}})
    catalog.write(catalog.read())
    first_inode = (tmp_path / SNAPSHOT_NAME).stat().st_ino
    catalog.stage("runs", "r", {"set": {"v": 2}})
    catalog.write(catalog.read())
    # Replaced by a rename (a new file), not rewritten in place.
    assert (tmp_path / SNAPSHOT_NAME).stat().st_ino != first_inode
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == sorted([SNAPSHOT_NAME, LEGACY_NAME, CHANGELOG_NAME, "store.lock"])
    assert Snapshot(tmp_path / SNAPSHOT_NAME).runs().get("r") == {"v": 2}
    assert _meta(tmp_path)["schema"] == catalog_module.SCHEMA_VERSION


def test_store_db_works_as_tinydb(store) -> None:
    finished = store.create_run("0", run_name="done", user_id="u", tags={"team": "a"})
    store.finish_run(finished.run_id, "FINISHED")
    running = store.create_run("0", run_name="going", user_id="u", tags={})

    runs = store.db.table("runs")
    found = runs.search(where("status") == "FINISHED")
    assert [doc["run_id"] for doc in found] == [finished.run_id]
    assert found[0].doc_id == finished.run_id
    assert runs.get(doc_id=running.run_id)["run_name"] == "going"
    assert runs.count(where("tags")["team"] == "a") == 1
    default = store.db.table("experiments").get(where("name") == "Default")
    assert default["experiment_id"] == "0"
    store.finish_run(running.run_id, "KILLED")


def test_store_db_sees_changes_made_after_a_query(store) -> None:
    first = store.create_run("0", run_name="a", user_id="u", tags={})
    store.finish_run(first.run_id, "FINISHED")
    query = where("status") == "FINISHED"
    assert len(store.db.table("runs").search(query)) == 1

    second = store.create_run("0", run_name="b", user_id="u", tags={})
    store.finish_run(second.run_id, "FINISHED")
    # The catalog changed under TinyDB: the same query must not answer from a stale cache.
    assert len(store.db.table("runs").search(query)) == 2


def test_store_db_does_not_change_other_tinydb_databases(store) -> None:
    assert store.db.table("runs") is not None
    other = TinyDB(storage=MemoryStorage)
    other.insert({"a": 1})
    other.insert({"a": 2})
    assert [doc.doc_id for doc in other.all()] == [1, 2]  # TinyDB's int ids, untouched


def test_a_schema_1_catalog_is_migrated_when_the_store_opens(store_dir: Path) -> None:
    from nbtrack.store import Store
    from nbtrack.store.rows import to_disk

    with Store(store_dir) as store:
        experiment = store.create_experiment("old")
        writer = store.create_run(experiment, run_name="before", user_id="u", tags={"t": "1"})
        store.log_params(writer.run_id, {"p": "1"})
        store.log_points(writer.run_id, ["m", float("nan"), 0, 1.0])
        store.finish_run(writer.run_id, "FINISHED")
        store.flush()
        tables = store.catalog.read()
        expected = {row["run_id"]: row for row in store.runs()}
    # The catalog as nbtrack wrote it before schema 2: one JSON file, plus its change log.
    legacy = {
        name: {doc_id: to_disk(doc) for doc_id, doc in table.items()}
        for name, table in tables.items()
        if name != "_meta"
    }
    legacy["_meta"] = {"1": {"schema": 1, "generation": 3}}
    (store_dir / LEGACY_NAME).write_bytes(orjson.dumps(legacy))
    (store_dir / SNAPSHOT_NAME).unlink()
    later = {"gen": 3, "table": "runs", "id": writer.run_id, "patch": {"tags": {"late": "2"}}}
    (store_dir / CHANGELOG_NAME).write_bytes(orjson.dumps(later) + b"\n")

    with Store(store_dir) as store:
        rows = {row["run_id"]: row for row in store.runs()}
        assert rows.keys() == expected.keys()
        assert rows[writer.run_id]["tags"] == {**expected[writer.run_id]["tags"], "late": "2"}
        assert rows[writer.run_id]["metrics"]["m"][0] != rows[writer.run_id]["metrics"]["m"][0]
        assert [e["name"] for e in store.experiments()] == ["Default", "old"]
    assert (store_dir / LEGACY_NAME).read_bytes() == catalog_module.LEGACY_STUB
    assert _meta(store_dir)["schema"] == catalog_module.SCHEMA_VERSION
    with Store(store_dir) as store:  # and again, from the new snapshot alone
        assert store.get_run(writer.run_id)["tags"]["late"] == "2"


def test_remove_drops_rows_from_the_snapshot_and_from_the_log_for_every_reader(
    tmp_path: Path,
) -> None:
    writer, reader = _catalog(tmp_path), _catalog(tmp_path)
    for run_id in ("old", "kept"):
        writer.stage("runs", run_id, {"set": {"status": "FINISHED"}})
    writer.commit()
    writer.compact()  # "old" and "kept" are in the snapshot...
    writer.stage("runs", "new", {"set": {"status": "FINISHED"}}, new=True)
    writer.stage("runs", "kept", {"params": {"lr": "0.1"}})
    writer.commit()  # ... "new" and kept's param only in the log
    assert sorted(reader.run_ids()) == ["kept", "new", "old"]

    writer.remove("runs", ["old", "new"])

    for catalog in (writer, reader, _catalog(tmp_path)):
        assert sorted(catalog.run_ids()) == ["kept"]
        assert catalog.get("runs", "old") is None and catalog.get("runs", "new") is None
        assert catalog.get("runs", "kept") == {"status": "FINISHED", "params": {"lr": "0.1"}}
        assert len(catalog.run_columns()) == 1
    assert (tmp_path / CHANGELOG_NAME).stat().st_size == 0  # folded into the new snapshot


def test_a_commit_from_another_thread_waits_for_the_store_lock_without_a_deadlock(
    tmp_path: Path,
) -> None:
    """The background flusher commits each second what run writers staged. If it takes its
    turn while the user's thread holds the store lock, and that thread then commits too
    (every store write does, still holding the lock), neither may wait on the other.
    They did: a process logging metrics while it set experiment tags hung within seconds."""
    lock = StoreLock(tmp_path / "store.lock")
    catalog = CatalogStorage(tmp_path, lock)
    catalog.stage("runs", "r1", {"params": {"lr": "0.1"}})  # a run writer's flush
    done = []

    def user_write() -> None:
        with lock:  # as Store.create_run and a registry transaction hold it
            background = threading.Thread(target=catalog.commit, daemon=True)
            background.start()
            background.join(0.3)  # the flusher's commit is now waiting for its turn
            catalog.stage("experiments", "1", {"set": {"name": "e"}})
            catalog.commit()
        background.join(10)
        done.append(not background.is_alive())

    user = threading.Thread(target=user_write, daemon=True)
    user.start()
    user.join(10)
    assert done == [True], "the two commits wait on each other"
    reader = _catalog(tmp_path)
    assert reader.get("runs", "r1") == {"params": {"lr": "0.1"}}
    assert reader.get("experiments", "1") == {"name": "e"}
