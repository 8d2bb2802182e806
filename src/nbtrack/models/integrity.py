"""Checking a package's files against the SHA-256 sums recorded when it was logged.

A pickle runs code when it is loaded, so a changed file must be caught *before* it is
unpickled: :class:`VerifiedPackage` checks every recorded file on open, refuses files
that are missing, changed, or were never recorded, and re-checks the bytes it hands out
(the bytes that get unpickled are the bytes that were hashed).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from nbtrack.errors import NbtrackError, NotFoundError
from nbtrack.store.artifacts import sha256_file

INVALID_STATE = "INVALID_STATE"


class ModelIntegrityError(NbtrackError):
    """A model package whose files differ from what was recorded when it was logged."""

    error_code = INVALID_STATE


class VerifiedPackage:
    """A package folder whose files match ``files`` (path -> sha256), or None to skip checks.

    Raises
    ------
    ModelIntegrityError
        On open, naming each file that is missing, changed or unrecorded.
    """

    def __init__(self, path: Path, files: dict[str, str] | None, uri: str) -> None:
        self.path = path
        self.files = files
        self.uri = uri
        if not path.is_dir():
            raise NotFoundError(f"Model {uri} has no folder at {path}.")
        if files is not None:
            self._verify()

    def _verify(self) -> None:
        assert self.files is not None
        problems = []
        for relative, recorded in sorted(self.files.items()):
            file = self.path / relative
            if not file.is_file():
                problems.append(f"{relative}: missing")
            elif (actual := sha256_file(file)) != recorded:
                problems.append(
                    f"{relative}: sha256 {actual[:12]}… but {recorded[:12]}… was recorded"
                )
        problems += [
            f"{relative}: not recorded when the model was logged" for relative in self._extra()
        ]
        if problems:
            raise ModelIntegrityError(
                f"Refusing to load {self.uri}: its files changed since it was logged "
                "(unpickling a changed file could run arbitrary code).\n  "
                + "\n  ".join(problems)
                + "\nLog the model again if the change is intended."
            )

    def _extra(self) -> list[str]:
        found = []
        for dirpath, _dirs, names in os.walk(self.path):
            for name in names:
                if name.startswith(".") and name.endswith(".part"):
                    continue  # an artifact being written right now (store/artifacts.py)
                relative = (Path(dirpath) / name).relative_to(self.path).as_posix()
                if relative not in self.files:  # type: ignore[operator]
                    found.append(relative)
        return sorted(found)

    def read(self, relative: str) -> bytes:
        """The bytes of one file, checked again against its recorded sum."""
        data = (self.path / relative).read_bytes()
        if self.files is not None:
            recorded = self.files.get(relative)
            if recorded is None or hashlib.sha256(data).hexdigest() != recorded:
                raise ModelIntegrityError(
                    f"Refusing to load {self.uri}: {relative} changed while it was being read "
                    "or was never recorded. Log the model again if the change is intended."
                )
        return data
