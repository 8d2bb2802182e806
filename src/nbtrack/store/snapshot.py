"""The catalog's snapshot file: every table but runs as JSON, then the runs as columns.

::

    magic (16 bytes) | head length, head CRC-32 (<QI) | head (JSON)
    | runs description (JSON) | runs arrays (little-endian, each 8-byte aligned)

The head holds the small tables (experiments, registry), the schema and generation, and
where the two runs parts lie with their lengths and CRC-32s. Opening a snapshot reads
only the head; the runs parts are read, checked and decoded when first needed, from the
same open file, so a snapshot renamed over this one meanwhile does not mix versions.
Anything that does not check out raises :class:`SnapshotDamaged`.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import numpy as np

    from nbtrack.store.columns import RunColumns

MAGIC = b"nbtrack-catalog\n"
_HEAD = struct.Struct("<QI")
_ALIGN = 8


class SnapshotDamaged(Exception):
    """The snapshot (or the change log) cannot be read back as written."""


class Snapshot:
    """An open snapshot file: its head at once, its runs on :meth:`runs`."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        try:
            stat = os.fstat(self._fd)
            self.signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            self.head = self._read_head(path, stat.st_size)
        except BaseException:
            self.close()
            raise

    def _read_head(self, path: Path, size: int) -> dict[str, Any]:
        start = _pread(self._fd, len(MAGIC) + _HEAD.size, 0)
        if len(start) < len(MAGIC) + _HEAD.size or not start.startswith(MAGIC):
            raise SnapshotDamaged(f"{path.name} is not an nbtrack catalog snapshot")
        length, crc = _HEAD.unpack_from(start, len(MAGIC))
        raw = _read(self._fd, len(start), length, crc, f"{path.name} head")
        try:
            head = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise SnapshotDamaged(f"{path.name} head: {exc}") from None
        if not isinstance(head, dict) or "end" not in head:
            raise SnapshotDamaged(f"{path.name} head is not a snapshot's head")
        if head["end"] != size:
            raise SnapshotDamaged(
                f"{path.name} is {size} bytes, not the {head['end']} it was written with"
            )
        return head

    @property
    def schema(self) -> int:
        return int(self.head.get("schema", 0))

    @property
    def generation(self) -> int:
        return int(self.head["generation"])

    @property
    def tables(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self.head["tables"]

    def runs(self) -> RunColumns:
        """The runs table, read and checked now."""
        import numpy as np

        from nbtrack.store.columns import ColumnsError, decode

        part = self.head["runs"]
        raw = _read(self._fd, *part["description"], "runs description")
        arrays = _read(self._fd, *part["arrays"], "runs arrays")
        refs = part["refs"]

        def array(number: int, dtype: str) -> np.ndarray:
            offset, count = refs[number]
            return np.frombuffer(arrays, dtype=dtype, count=count, offset=offset)

        try:
            return decode(orjson.loads(raw), array)
        except (orjson.JSONDecodeError, ColumnsError, KeyError, TypeError, ValueError) as exc:
            raise SnapshotDamaged(f"runs: {exc}") from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def _read(fd: int, offset: int, length: int, crc: int, what: str) -> bytes:
    data = _pread(fd, length, offset)
    if len(data) != length or zlib.crc32(data) != crc:
        raise SnapshotDamaged(f"{what} does not match its checksum")
    return data


def _pread(fd: int, length: int, offset: int) -> bytes:
    """Up to ``length`` bytes at ``offset`` (fewer only at the end of the file)."""
    parts, done = [], 0
    while done < length:
        if hasattr(os, "pread"):
            part = os.pread(fd, length - done, offset + done)
        else:  # Windows: callers hold the catalog's mutex, so seeking is safe
            os.lseek(fd, offset + done, os.SEEK_SET)
            part = os.read(fd, length - done)
        if not part:
            break
        parts.append(part)
        done += len(part)
    return b"".join(parts)


def encode(
    schema: int, generation: int, tables: dict[str, Any], runs: RunColumns
) -> list[bytes | memoryview]:
    """The pieces of a snapshot holding ``tables`` (all but runs) and ``runs``, in order
    (write them one after the other; joining them would copy the arrays once more)."""
    arrays: list[np.ndarray] = []  # filled by encode
    description = orjson.dumps(runs.encode(arrays))
    pieces, refs, size, crc = _layout(arrays)
    head = {"schema": schema, "generation": generation, "tables": tables}
    # The head's length depends on the offsets it holds: lay out with a guess, then fix.
    guess = 0
    while True:
        first = _aligned(len(MAGIC) + _HEAD.size + guess)
        second = _aligned(first + len(description))
        head["runs"] = {
            "description": [first, len(description), zlib.crc32(description)],
            "arrays": [second, size, crc],
            "refs": refs,
        }
        head["end"] = second + size
        raw = orjson.dumps(head)
        if len(raw) == guess:
            break
        guess = len(raw)
    start = MAGIC + _HEAD.pack(len(raw), zlib.crc32(raw)) + raw
    gap = first - len(start)
    return [start, bytes(gap), description, bytes(second - first - len(description)), *pieces]


def _layout(arrays: list[np.ndarray]) -> tuple[list, list[list[int]], int, int]:
    """The arrays as aligned little-endian pieces, their [offset, length], the total size
    and the CRC-32 of it all."""
    pieces: list[bytes | memoryview] = []
    refs, offset, crc = [], 0, 0
    for array in arrays:
        data = memoryview(array.astype(array.dtype.newbyteorder("<"), copy=False)).cast("B")
        padding = bytes(_aligned(offset) - offset)
        offset += len(padding)
        refs.append([offset, len(array)])
        for piece in (padding, data):
            pieces.append(piece)
            crc = zlib.crc32(piece, crc)
        offset += len(data)
    return pieces, refs, offset, crc


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def atomic_write(path: Path, payload: bytes | list[bytes | memoryview]) -> None:
    """Write ``payload`` (bytes, or pieces in order) to ``path`` so that readers see the
    old or the new file, never half."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.writelines([payload] if isinstance(payload, bytes) else payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)  # a full disk: give back what the half-written copy took
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
