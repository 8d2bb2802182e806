"""The change feed's looks at the store, in this process (no server): what it reports."""

from __future__ import annotations

from pathlib import Path

from nbtrack.server.feed import ChangeFeed
from nbtrack.server.settings import StoreHandle
from nbtrack.store import DEFAULT_EXPERIMENT_ID, Store


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
