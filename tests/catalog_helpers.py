"""Reading and tampering with a store's catalog files, for tests that play a damaged or
hand-edited catalog (the snapshot is binary, so edits go through its TinyDB storage)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbtrack.store.catalog import META_ID, META_TABLE, SNAPSHOT_NAME, CatalogStorage
from nbtrack.store.locking import StoreLock
from nbtrack.store.snapshot import Snapshot


def edit_catalog(store_dir: Path, edit: Callable[[dict[str, Any]], Any]) -> None:
    """Rewrite the catalog with ``edit`` applied to its tables, as a hand edit would: the
    catalog's own meta document is not kept, so nothing vouches for what was edited."""
    catalog = CatalogStorage(store_dir, StoreLock(store_dir / "store.lock"))
    data = catalog.read() or {}
    data.pop(META_TABLE, None)
    edit(data)
    catalog.write(data)


def snapshot_meta(store_dir: Path) -> dict[str, Any]:
    """The meta document (schema, generation, ...) of the catalog's snapshot file."""
    return Snapshot(store_dir / SNAPSHOT_NAME).tables[META_TABLE][META_ID]
