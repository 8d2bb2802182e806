"""``mlflow.artifacts``' place: download, list and read artifacts by URI or run id.

An artifact URI is ``runs:/RUN/PATH`` (``runs:/RUN/`` for the run's whole artifact
folder), ``models:/NAME/VERSION`` (and the other model URIs), a ``file:`` URI or a local
path (what ``get_artifact_uri()`` returns). Paths inside a run are checked never to
leave its artifact folder.

::

    import nbtrack as mlflow

    mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json")
    mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model", dst_path="out")
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urlparse

from nbtrack.entities import FileInfo
from nbtrack.errors import BAD_REQUEST, InvalidParameterError, NbtrackError, NotFoundError
from nbtrack.models.source import resolve
from nbtrack.store.artifacts import relative_path
from nbtrack.tracking import artifacts as run_artifacts
from nbtrack.tracking.fluent import default_session
from nbtrack.tracking.session import open_store, path_from_uri

if TYPE_CHECKING:
    from PIL.Image import Image

    from nbtrack.store import Store

__all__ = ["download_artifacts", "list_artifacts", "load_dict", "load_image", "load_text"]


class _InRun(NamedTuple):
    """An artifact path inside a run ('' for its whole artifact folder)."""

    store: Store
    run_id: str
    path: str


def download_artifacts(
    artifact_uri: str | None = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
    dst_path: str | os.PathLike[str] | None = None,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
) -> str:
    """Copy an artifact file or folder to ``dst_path`` (a new temporary folder by default).

    Give either ``artifact_uri`` or ``run_id`` (with ``artifact_path``, the run's whole
    artifact folder by default). Returns the local path of the copy: ``dst_path/NAME``
    for a file or folder, ``dst_path`` itself for a run's whole artifact folder.

    Raises
    ------
    InvalidParameterError
        For a bad combination of arguments or a path that would leave the run's folder.
    NotFoundError
        For an unknown run or an artifact the run does not have.
    """
    where = _locate(artifact_uri, run_id, artifact_path, tracking_uri)
    if dst_path is not None:
        Path(dst_path).mkdir(parents=True, exist_ok=True)
    if isinstance(where, _InRun):
        return run_artifacts.download_artifacts(where.store, where.run_id, where.path, dst_path)
    return _copy_local(where, dst_path)


def list_artifacts(
    artifact_uri: str | None = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
    tracking_uri: str | None = None,
) -> list[FileInfo]:
    """The files and folders directly under an artifact folder, as MLflow's ``FileInfo``.

    Paths are as MLflow gives them: relative to the run's artifact root for a run id or a
    ``runs:/`` URI, to the folder above the listed one for other URIs. A path that does
    not exist lists nothing.
    """
    where = _locate(artifact_uri, run_id, artifact_path, tracking_uri)
    if isinstance(where, _InRun):
        found = run_artifacts.list_artifacts(where.store, where.run_id, where.path or None)
        parent = posixpath.dirname(where.path)
        if artifact_uri is None or not parent:
            return found
        return [info._replace(path=info.path[len(parent) + 1 :]) for info in found]
    if not where.is_dir():
        return []
    return [
        FileInfo(f"{where.name}/{child.name}", child.is_dir(), _size(child))
        for child in sorted(where.iterdir())
    ]


def load_text(artifact_uri: str) -> str:
    """The content of a text artifact (UTF-8)."""
    data = _read(artifact_uri)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _not_utf8(artifact_uri) from None


def load_dict(artifact_uri: str) -> dict[str, Any]:
    """A JSON artifact (as ``log_dict`` writes one) as a dict."""
    text = load_text(artifact_uri)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise NbtrackError(
            f"Artifact {artifact_uri!r} is not JSON ({error}); read YAML or other text with "
            "load_text().",
            BAD_REQUEST,
        ) from None


def load_image(artifact_uri: str) -> Image:
    """An image artifact as a PIL image (needs Pillow)."""
    import io

    from PIL import Image, UnidentifiedImageError

    data = _read(artifact_uri)
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as error:
        raise NbtrackError(
            f"Artifact {artifact_uri!r} is not an image Pillow can read ({error}).", BAD_REQUEST
        ) from None
    return image


# -- where a URI points ----------------------------------------------------------------------


def _locate(
    artifact_uri: str | None,
    run_id: str | None,
    artifact_path: str | None,
    tracking_uri: str | None,
) -> _InRun | Path:
    if (artifact_uri is None) == (run_id is None):
        raise InvalidParameterError("Give exactly one of artifact_uri or run_id.")
    if artifact_uri is not None and artifact_path is not None:
        raise InvalidParameterError(
            "artifact_path cannot be given with artifact_uri: put the path in the URI "
            "(runs:/RUN/PATH) or pass run_id instead."
        )
    store = open_store(path_from_uri(tracking_uri)) if tracking_uri else default_session().store
    if run_id is not None:
        return _in_run(store, run_id, artifact_path or "")
    assert artifact_uri is not None
    if not isinstance(artifact_uri, str) or not artifact_uri:
        raise InvalidParameterError(f"artifact_uri must be a non-empty string: {artifact_uri!r}.")
    if artifact_uri.startswith("runs:"):
        run, _, path = artifact_uri[len("runs:") :].lstrip("/").partition("/")
        if not run:
            raise InvalidParameterError(
                f"Invalid artifact URI {artifact_uri!r}: use runs:/<run_id>/<path>."
            )
        return _in_run(store, run, path.strip("/"))
    if artifact_uri.startswith("models:"):
        return resolve(artifact_uri).path
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.netloc + parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise InvalidParameterError(
            f"Artifact URI {artifact_uri!r} is not supported: use runs:/, models:/, a file: "
            "URI or a local path."
        )
    return Path(artifact_uri)


def _in_run(store: Store, run_id: str, path: str) -> _InRun:
    store.get_run(run_id)  # NotFoundError for an unknown run
    relative = relative_path(path, "artifact_path") if path not in ("", ".") else ""
    return _InRun(store, run_id, relative)


def _read(artifact_uri: str) -> bytes:
    where = _locate(artifact_uri, None, None, None)
    if isinstance(where, _InRun):
        if where.path not in run_artifacts.recorded_artifacts(where.store, where.run_id):
            raise NotFoundError(f"Run {where.run_id} has no artifact file {where.path!r}.")
        where = where.store.artifact_dir(where.run_id) / where.path
    if not where.is_file():
        raise NotFoundError(f"No artifact file at {artifact_uri!r}.")
    return where.read_bytes()


def _copy_local(source: Path, dst_path: str | os.PathLike[str] | None) -> str:
    if not source.exists():
        raise NotFoundError(f"No artifact at {source}.")
    target_dir = Path(dst_path) if dst_path is not None else Path(tempfile.mkdtemp())
    target = target_dir / source.name
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)
    return str(target)


def _size(path: Path) -> int | None:
    return None if path.is_dir() else path.stat().st_size


def _not_utf8(artifact_uri: str) -> NbtrackError:
    return NbtrackError(
        f"Artifact {artifact_uri!r} is not valid UTF-8. To read a file in another encoding, "
        "download it with download_artifacts() and open it with that encoding.",
        BAD_REQUEST,
    )
