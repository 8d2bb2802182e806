"""A run's artifacts as its journal records them (path, size, SHA-256): logging, listing and
copying."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nbtrack.entities import FileInfo
from nbtrack.errors import InvalidParameterError, NotFoundError
from nbtrack.store import Store
from nbtrack.store.artifacts import copy_tree_entries, relative_path
from nbtrack.tracking import remote

Entries = list[tuple[str, "Path | bytes"]]  # (path in the run's artifacts, file or content)


def file_entries(local_path: str | os.PathLike[str], artifact_path: str | None) -> Entries:
    """A file to copy into the artifacts (under ``artifact_path`` if given)."""
    source = Path(local_path)
    if not source.is_file():
        raise InvalidParameterError(f"log_artifact: {source} is not a file.")
    return [(_join(_folder(artifact_path), source.name), source)]


def folder_entries(local_dir: str | os.PathLike[str], artifact_path: str | None) -> Entries:
    """Every file under a directory, to copy into the artifacts."""
    folder = _folder(artifact_path)
    return [(_join(folder, rel), source) for source, rel in copy_tree_entries(Path(local_dir))]


def text_entries(text: str, artifact_file: str) -> Entries:
    """``text`` as a UTF-8 file."""
    return [(relative_path(artifact_file, "artifact_file"), str(text).encode("utf-8"))]


def dict_entries(dictionary: dict[str, Any], artifact_file: str) -> Entries:
    """A dict as JSON, or YAML when ``artifact_file`` ends in .yaml/.yml."""
    if artifact_file.endswith((".yaml", ".yml")):
        import yaml

        text = yaml.safe_dump(dictionary, indent=2, default_flow_style=False, sort_keys=False)
    else:
        import json

        text = json.dumps(dictionary, indent=2)
    return text_entries(text, artifact_file)


def add(store: Store, run_id: str, entries: Entries) -> None:
    """Store checked entries (from the functions above) in the run's artifacts."""
    for relative, source in entries:
        store.add_artifact(run_id, relative, source)


def artifact_uri(store: Store, run_id: str, artifact_path: str | None = None) -> str:
    base = store.artifact_uri(run_id)
    return f"{base}/{relative_path(artifact_path)}" if artifact_path else base


def _folder(artifact_path: str | None) -> str:
    return relative_path(artifact_path) if artifact_path else ""


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def recorded_artifacts(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    """Every artifact the run's journal records, the latest record per path (a pulled
    run's are fetched from its server first)."""
    remote.ensure_artifacts(store, run_id)
    return {record["path"]: record for record in store.records(run_id, "artifact")}


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
    """Copy an artifact file or folder to ``dst_path`` (a new temp folder by default); the
    local path of the copy. As MLflow's, a file or folder keeps its name under ``dst_path``,
    and the whole artifact root (``path`` "") is copied into ``dst_path`` itself."""
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
    target = target_dir / Path(relative).name if relative else target_dir
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)
    return str(target)
