"""MLflow's artifact repository for ``nbtrack-artifacts:`` URIs: a run's files in its folder.

Every file MLflow writes (``log_artifact``, ``log_figure``, ``log_model``'s package) goes
through the store, which copies it under the run's artifacts and records its SHA-256 in
the run's journal. Every file MLflow reads (``download_artifacts``, ``pyfunc.load_model``)
is listed from the journal and checked against its recorded SHA-256 as it is copied out: a
changed file is refused before any code can unpickle it, a file nobody logged is never
handed out, and no path leaves the run's folder.

``runs:/`` URIs get a repository too: MLflow's own, except that for a run in an nbtrack
store it reads the run's artifacts directly. Its logged models are among them (MLflow's
would list them twice), and a refused download keeps its reason (MLflow's swallows it
and says the path does not exist).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path
from typing import Any

from mlflow.entities import FileInfo
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

from nbtrack.errors import InvalidParameterError, NotFoundError
from nbtrack.mlflow_plugin import uris
from nbtrack.mlflow_plugin.errors import mlflow_errors, not_supported, translated
from nbtrack.models.integrity import ModelIntegrityError
from nbtrack.store import Store
from nbtrack.store.artifacts import copy_tree_entries, destination, relative_path
from nbtrack.tracking import artifacts
from nbtrack.tracking.session import open_store

_BLOCK = 1 << 20


class NbtrackArtifactRepository(ArtifactRepository):
    """A run's artifacts (or a folder under them) in an nbtrack store."""

    def __init__(
        self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
    ) -> None:
        super().__init__(artifact_uri, tracking_uri, registry_uri)
        with translated():
            self.location = uris.parse_artifact_uri(artifact_uri)
        self._recorded: dict[str, str] | None = None  # path -> sha256, during a download

    @property
    def store(self) -> Store:
        return open_store(self.location.root)

    def _full(self, *parts: str | None) -> str:
        """A path under the run's artifacts: this repository's folder, then ``parts``."""
        joined = posixpath.join(self.location.path, *(p for p in parts if p))
        return relative_path(joined, "artifact path") if joined else ""

    # -- writing -----------------------------------------------------------------------------

    @mlflow_errors
    def log_artifact(self, local_file, artifact_path=None):
        relative = self._full(artifact_path, os.path.basename(local_file))
        self.store.add_artifact(self.location.run_id, relative, local_file)

    @mlflow_errors
    def log_artifacts(self, local_dir, artifact_path=None):
        folder = self._full(artifact_path)
        store, run_id = self.store, self.location.run_id
        for source, relative in copy_tree_entries(Path(local_dir)):
            store.add_artifact(run_id, posixpath.join(folder, relative), source)

    def delete_artifacts(self, artifact_path=None):
        raise not_supported("Deleting single artifacts (nbtrack gc removes deleted runs whole)")

    # -- reading -----------------------------------------------------------------------------

    @mlflow_errors
    def list_artifacts(self, path=None):
        """Files and folders directly under ``path``, as the run's journal records them."""
        base = self.location.path
        full = self._full(path)
        listed = artifacts.list_artifacts(self.store, self.location.run_id, full or None)
        cut = len(base) + 1 if base else 0
        return [FileInfo(info.path[cut:], info.is_dir, info.file_size) for info in listed]

    def download_artifacts(self, artifact_path, dst_path=None):
        """MLflow's download, with the run's recorded sums read once for all its files."""
        with translated():
            self._recorded = {
                path: record["sha256"]
                for path, record in artifacts.recorded_artifacts(
                    self.store, self.location.run_id
                ).items()
            }
        try:
            return super().download_artifacts(artifact_path, dst_path)
        finally:
            self._recorded = None

    @mlflow_errors
    def _download_file(self, remote_file_path, local_path):
        relative = self._full(remote_file_path)
        recorded = self._recorded
        if recorded is None:
            recorded = {
                p: r["sha256"]
                for p, r in artifacts.recorded_artifacts(self.store, self.location.run_id).items()
            }
        expected = recorded.get(relative)
        run_id = self.location.run_id
        if expected is None:
            raise NotFoundError(f"Run {run_id} has no artifact {relative!r}.")
        source = destination(self.store.artifact_dir(run_id), relative)
        if _copy_hashed(source, Path(local_path)) != expected:
            Path(local_path).unlink(missing_ok=True)
            raise ModelIntegrityError(
                f"Refusing to hand out artifact {relative!r} of run {run_id}: the file "
                "changed since it was logged (its SHA-256 differs from the one recorded in "
                "the run's journal), and loading a changed model file could run arbitrary "
                "code. Log it again if the change is intended."
            )


def _copy_hashed(source: Path, target: Path) -> str:
    """Copy a file, returning the SHA-256 of the bytes written (those a loader will read)."""
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as src, open(target, "wb") as out:
            for block in iter(lambda: src.read(_BLOCK), b""):
                digest.update(block)
                out.write(block)
    except FileNotFoundError as error:
        raise InvalidParameterError(
            f"Artifact file {source} is recorded in its run's journal but missing on disk; "
            "run `nbtrack doctor` to see what else is."
        ) from error
    return digest.hexdigest()


class NbtrackRunsArtifactRepository(RunsArtifactRepository):
    """MLflow's ``runs:/`` repository, reading an nbtrack run's artifacts directly."""

    def list_artifacts(self, path: str | None = None) -> list[Any]:
        if isinstance(self.repo, NbtrackArtifactRepository):
            return self.repo.list_artifacts(path)
        return super().list_artifacts(path)

    def download_artifacts(self, artifact_path: str, dst_path: str | None = None) -> str:
        if isinstance(self.repo, NbtrackArtifactRepository):
            return self.repo.download_artifacts(artifact_path, dst_path)
        return super().download_artifacts(artifact_path, dst_path)
