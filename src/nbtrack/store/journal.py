"""Append-only JSON-lines files: the journals that hold the truth of every run.

A record is one ``orjson`` line ending in ``\\n``, written by a single ``os.write`` on a
file opened with ``O_APPEND``, so earlier bytes are never rewritten and a crash can only
leave the *last* line incomplete. Readers skip such a torn tail with a warning.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class TornRecordWarning(UserWarning):
    """A journal ended in, or contained, a record that was not completely written."""


def encode_float(value: float) -> float | str:
    """JSON has no NaN or infinities (orjson would write ``null``), so spell them as strings."""
    if math.isfinite(value):
        return value
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


def decode_float(value: float | str | None) -> float:
    """Undo :func:`encode_float`."""
    return _NONFINITE[value] if type(value) is str else value


def dumps(record: dict[str, Any]) -> bytes:
    """Serialize one record as a journal line."""
    return orjson.dumps(record) + b"\n"


class Journal:
    """An append-only record file, opened for writing.

    Parameters
    ----------
    path
        The file; created if missing. Call :func:`repair_tail` first when an earlier
        writer may have crashed mid-record, so new records never follow a broken line.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict[str, Any]) -> None:
        self._write(dumps(record))

    def append_many(self, records: list[dict[str, Any]]) -> None:
        if records:
            self._write(b"".join(dumps(r) for r in records))

    def _write(self, data: bytes) -> None:
        view, done = memoryview(data), 0
        try:
            while done < len(data):  # os.write may write less than asked for large buffers
                done += os.write(self._fd, view[done:])
        except OSError:
            if done:  # a full disk took part of the records: take it back (all or nothing)
                self._cut_partial_write(data[:done])
            raise

    def _cut_partial_write(self, written: bytes) -> None:
        """Truncate the part of a failed append at the end of the file, so that the next
        append starts a line instead of gluing onto half a record. If another process
        appended after it, those bytes are not ours to cut: leave the file as it is (its
        reader skips the one broken line)."""
        end = os.fstat(self._fd).st_size
        start = end - len(written)
        with open(self.path, "rb") as handle:
            handle.seek(max(start, 0))
            tail = handle.read()
        if start >= 0 and tail == written:
            os.ftruncate(self._fd, start)

    def sync(self) -> None:
        """Make every appended record durable (survives power loss, not only a crash)."""
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(path: str | os.PathLike[str], prefix: bytes | None = None) -> Iterator[dict]:
    """Yield the complete records of a journal, warning about and skipping broken ones.

    ``prefix``, when given, skips lines that do not start with it before parsing them,
    which lets a reader pick one kind of record out of a large journal cheaply.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; generator keeps it open
    except FileNotFoundError:
        return
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                _warn_torn(path, number, "an incomplete last record (crash mid-write)")
                return
            if prefix is not None and not line.startswith(prefix):
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                _warn_torn(path, number, "a record that is not valid JSON")
                continue
            if type(record) is dict:
                yield record
            else:  # damage that happens to parse, such as a lone number
                _warn_torn(path, number, "a line that is JSON but not a record (an object)")


def read_lines_after(
    path: str | os.PathLike[str], offset: int, end: int | None = None
) -> tuple[list[bytes], int]:
    """The complete lines of an append-only file between byte ``offset`` and ``end`` (the
    end of the file by default), and the offset just after them: a line another process is
    still writing is left for the next read. A missing file has no lines."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read() if end is None else handle.read(end - offset)
    except FileNotFoundError:
        return [], offset
    complete = data[: data.rfind(b"\n") + 1]
    return complete.splitlines(), offset + len(complete)


def repair_tail(path: str | os.PathLike[str]) -> None:
    """Cut an incomplete last record off a journal nobody is writing to right now."""
    try:
        with open(path, "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            # Find the last newline by reading backwards in blocks; records are small.
            end = size
            while end > 0:
                start = max(0, end - 65536)
                handle.seek(start)
                block = handle.read(end - start)
                cut = block.rfind(b"\n")
                if cut >= 0:
                    handle.truncate(start + cut + 1)
                    break
                end = start
            else:
                handle.truncate(0)
            _warn_torn(path, None, "an incomplete last record, which was removed")
    except FileNotFoundError:
        return


def _warn_torn(path: object, line: int | None, what: str) -> None:
    where = f" at line {line}" if line is not None else ""
    warnings.warn(
        f"journal {path}{where} has {what}; it was skipped. Earlier records are intact.",
        TornRecordWarning,
        stacklevel=3,
    )
