"""Artifact files: safe paths inside a run's folder, copied in with a SHA-256 checksum."""

from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path

from nbtrack.errors import InvalidParameterError

_BLOCK = 1 << 20


def relative_path(path: str, what: str = "artifact_path") -> str:
    """Normalize a user-given artifact path, refusing anything that could leave the run.

    Raises
    ------
    InvalidParameterError
        For absolute paths, ``..`` components, drive letters or backslashes.
    """
    if not isinstance(path, str) or not path.strip():
        raise InvalidParameterError(f"{what} must be a non-empty relative path, got {path!r}.")
    if "\\" in path or "\x00" in path or (len(path) > 1 and path[1] == ":"):
        raise InvalidParameterError(
            f"{what}={path!r} is not allowed: use forward slashes and no drive letter."
        )
    normalized = posixpath.normpath(path)
    if posixpath.isabs(path) or normalized == ".." or normalized.startswith("../"):
        raise InvalidParameterError(
            f"{what}={path!r} is not allowed: artifact paths are relative to the run's "
            "artifact folder and may not leave it (no leading '/' and no '..')."
        )
    return "" if normalized == "." else normalized


def destination(root: Path, relative: str) -> Path:
    """``root / relative``, checked to still be inside ``root`` after resolving symlinks."""
    target = (root / relative).resolve()
    if target != root.resolve() and root.resolve() not in target.parents:
        raise InvalidParameterError(
            f"artifact path {relative!r} resolves outside the run's artifact folder."
        )
    return target


def copy_in(source: str | os.PathLike[str], target: Path) -> tuple[int, str]:
    """Copy a file to ``target`` atomically; return its size and SHA-256."""
    with open(source, "rb") as handle:
        return _write_atomically(target, iter(lambda: handle.read(_BLOCK), b""))


def write_bytes(target: Path, data: bytes) -> tuple[int, str]:
    """Write ``data`` to ``target`` atomically; return its size and SHA-256."""
    return _write_atomically(target, [data])


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(target: Path, blocks) -> tuple[int, str]:
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest, size = hashlib.sha256(), 0
    try:
        with open(temp, "wb") as out:
            for block in blocks:
                digest.update(block)
                out.write(block)
                size += len(block)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def copy_tree_entries(source_dir: Path) -> list[tuple[Path, str]]:
    """Every file under ``source_dir`` with its path relative to it (posix), sorted."""
    if not source_dir.is_dir():
        raise InvalidParameterError(f"log_artifacts needs a directory; {source_dir} is not one.")
    entries = []
    for dirpath, _dirs, files in os.walk(source_dir):
        for name in files:
            path = Path(dirpath) / name
            entries.append((path, path.relative_to(source_dir).as_posix()))
    return sorted(entries, key=lambda e: e[1])
