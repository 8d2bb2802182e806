"""A pulled run's artifacts, fetched from its server the first time anything opens them."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from nbtrack.store import Store
from nbtrack.store.records import fields_record
from nbtrack.sync.server import Server

_lock = threading.Lock()


def fetch_artifacts(store: Store, run_id: str) -> int:
    """Download every artifact of a pulled run into its folder (once); return how many.

    Raises
    ------
    SyncError
        When the run's server cannot be reached or refuses: the run stays unfetched, and
        the next open tries again.
    """
    with _lock:
        remote = store.get_run(run_id).get("remote")
        if not remote or remote.get("fetched"):
            return 0
        server = Server(remote["server"])
        repo = server.artifact_repo(remote["artifact_uri"])
        with server.errors("artifact download"):
            files = _files(server, repo, "")
        with tempfile.TemporaryDirectory(prefix="nbtrack-fetch-") as scratch:
            for path in files:
                server.counted()
                with server.errors("artifact download"):
                    local = repo.download_artifacts(path, dst_path=scratch)
                store.add_artifact(run_id, path, Path(local), remote=True)
        done = {**remote, "fetched": True}
        store.append(run_id, [fields_record(remote=done)], remote=True)
        return len(files)


def _files(server: Server, repo: Any, path: str) -> list[str]:
    server.counted()
    found = []
    for info in repo.list_artifacts(path or None):
        if info.is_dir:
            found += _files(server, repo, info.path)
        else:
            found.append(info.path)
    return found
