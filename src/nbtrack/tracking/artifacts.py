"""A run's artifacts as its journal records them (path, size, SHA-256): listing and copying."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from nbtrack.errors import NotFoundError
from nbtrack.store import Store
from nbtrack.store.artifacts import relative_path


class FileInfo(NamedTuple):
    """An artifact file or folder, as MLflow's ``FileInfo``."""

    path: str
    is_dir: bool
    file_size: int | None


def recorded_artifacts(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    """Every artifact the run's journal records, the latest record per path."""
    records = store.read_journal(run_id, prefix=b'{"op":"artifact"')
    return {record["path"]: record for record in records}


def files_under(store: Store, run_id: str, folder: str) -> dict[str, str]:
    """The recorded files under ``folder``: path relative to it -> sha256."""
    prefix = f"{folder}/" if folder else ""
    return {
        path[len(prefix) :]: record["sha256"]
        for path, record in recorded_artifacts(store, run_id).items()
        if path.startswith(prefix)
    }


def list_artifacts(store: Store, run_id: str, path: str | None = None) -> list[FileInfo]:
    """The files and folders directly under ``path`` (the artifact root by default)."""
    folder = relative_path(path, "path") if path else ""
    prefix = f"{folder}/" if folder else ""
    children: dict[str, FileInfo] = {}
    for name, record in recorded_artifacts(store, run_id).items():
        if not name.startswith(prefix):
            continue
        head, sep, _ = name[len(prefix) :].partition("/")
        child = prefix + head
        children[child] = (
            FileInfo(child, True, None) if sep else FileInfo(child, False, record["size"])
        )
    return [children[key] for key in sorted(children)]


def download_artifacts(
    store: Store, run_id: str, path: str, dst_path: str | os.PathLike[str] | None = None
) -> str:
    """Copy an artifact file or folder to ``dst_path`` (a new temp folder by default)."""
    relative = relative_path(path, "path") if path not in ("", ".", None) else ""
    source = store.artifact_dir(run_id) / relative
    recorded = recorded_artifacts(store, run_id)
    under = f"{relative}/" if relative else ""
    if relative not in recorded and not any(p.startswith(under) for p in recorded):
        raise NotFoundError(f"Run {run_id} has no artifact {path!r}.")
    target_dir = (
        Path(dst_path) if dst_path is not None else Path(tempfile.mkdtemp(prefix="nbtrack-"))
    )
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / (Path(relative).name or "artifacts")
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)
    return str(target)
