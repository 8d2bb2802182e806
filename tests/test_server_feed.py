"""The change feed's looks at the store, in this process (no server): what it reports."""

from __future__ import annotations

from pathlib import Path

from nbtrack.server.feed import ChangeFeed
from nbtrack.server.settings import StoreHandle
from nbtrack.store import DEFAULT_EXPERIMENT_ID, Store
from nbtrack.store.records import params_record


def _finished_run(store: Store, name: str) -> str:
    writer = store.create_run(DEFAULT_EXPERIMENT_ID, run_name=name, user_id="u", tags={})
    store.finish_run(writer.run_id, "FINISHED")
    store.flush()
    return writer.run_id


def test_a_run_another_process_commits_is_added_even_if_another_reader_saw_it_first(
    tmp_path: Path,
) -> None:
    root = tmp_path / ".nbtrack"
    Store(root).close()
    handle = StoreHandle(root, tmp_path)
    feed = ChangeFeed(handle, poll_seconds=1.0)
    assert feed.scan() is None  # the first look learns what is there
    with Store(root) as elsewhere:  # another process's store: its own catalog
        run_id = _finished_run(elsewhere, "elsewhere")
    assert any(r["run_id"] == run_id for r in handle.existing().runs())  # a panel reads first
    event = feed.scan()
    assert event is not None and run_id in event["added"]
    assert feed.scan() is None  # nothing new since


def test_experiments_change_when_their_counts_do_not_when_a_run_only_logs(tmp_path: Path) -> None:
    """The sidebar's experiment picker shows each experiment's runs and running runs, and
    reloads them when an event says ``experiments``: a run finishing says so."""
    root = tmp_path / ".nbtrack"
    Store(root).close()
    feed = ChangeFeed(StoreHandle(root, tmp_path), poll_seconds=1.0)
    assert feed.scan() is None
    with Store(root) as elsewhere:
        writer = elsewhere.create_run(DEFAULT_EXPERIMENT_ID, run_name="r", user_id="u", tags={})
        elsewhere.flush()
        started = feed.scan()
        writer.write(params_record({"lr": "0.1"}))
        elsewhere.flush()
        logged = feed.scan()
        elsewhere.finish_run(writer.run_id, "FINISHED")
        elsewhere.flush()
        finished = feed.scan()
    assert started["added"] == [writer.run_id] and started["experiments"]
    assert logged["changed"] == [writer.run_id] and not logged["experiments"]
    assert finished["changed"] == [writer.run_id] and finished["experiments"]
