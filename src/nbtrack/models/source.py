"""Where a model URI points: the package folder and the file sums recorded for it.

=================================  ==================================================
``runs:/RUN/PATH``                 the package logged at PATH in RUN's artifacts
``models:/NAME/VERSION``           a registered version by number
``models:/NAME/STAGE``             the newest version in a stage (any case)
``models:/NAME/latest``            the newest version
``models:/NAME@ALIAS``             the version an alias points to (``@latest`` too)
a folder or ``file:`` URI          a package on disk, not recorded (loaded unverified)
=================================  ==================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urlparse

from nbtrack.errors import InvalidParameterError, NotFoundError
from nbtrack.store.artifacts import relative_path

if TYPE_CHECKING:
    from nbtrack.store import Store


class ModelSource(NamedTuple):
    uri: str
    path: Path
    files: dict[str, str] | None  # recorded sha256 per package file; None for a bare folder
    run_id: str | None
    artifact_path: str | None
    version: dict[str, Any] | None  # the registry's version row for models:/ URIs


def resolve(uri: str, store: Store | None = None) -> ModelSource:
    """Find what ``uri`` names in ``store`` (None: the fluent API's current store).

    Raises
    ------
    InvalidParameterError
        For a URI of no known form.
    NotFoundError
        For an unknown run, path, model, version, stage or alias (each says which).
    """
    if not isinstance(uri, str) or not uri:
        raise InvalidParameterError(f"Invalid model URI {uri!r}: expected a non-empty string.")
    if uri.startswith("runs:"):
        return _from_run(uri, store)
    if uri.startswith("models:"):
        return _from_registry(uri, store)
    parsed = urlparse(uri)
    if parsed.scheme and parsed.scheme != "file" and len(parsed.scheme) > 1:
        raise InvalidParameterError(
            f"Model URI {uri!r} is not supported: use runs:/RUN/PATH, models:/NAME/VERSION, "
            "models:/NAME/STAGE, models:/NAME@ALIAS, models:/NAME/latest, or a folder."
        )
    path = Path(unquote(parsed.path) if parsed.scheme == "file" else uri).expanduser().resolve()
    return ModelSource(uri, path, None, None, None, None)


def split_runs_uri(uri: str) -> tuple[str, str]:
    """``runs:/RUN/PATH`` -> (RUN, PATH), with PATH checked to stay inside the run."""
    rest = uri[len("runs:") :].lstrip("/")
    run, _, path = rest.partition("/")
    if not run or not path.strip("/"):
        raise InvalidParameterError(
            f"Invalid model URI {uri!r}: runs:/ URIs name a run and the model's artifact "
            "path, e.g. runs:/<run_id>/model."
        )
    return run, relative_path(path.strip("/"), "artifact path")


def _from_run(uri: str, store: Store | None) -> ModelSource:
    from nbtrack.tracking.artifacts import files_under
    from nbtrack.tracking.fluent import current_store

    store = store or current_store()
    ref, path = split_runs_uri(uri)
    run_id = store.resolve_run(ref)["run_id"]
    files = files_under(store, run_id, path)
    if not files:
        raise NotFoundError(f"Run {run_id} has no model at {path!r} ({uri}).")
    return ModelSource(uri, store.artifact_dir(run_id) / path, files, run_id, path, None)


def split_models_uri(uri: str) -> tuple[str, str]:
    """``models:/NAME/REF`` -> (NAME, REF); ``models:/NAME@ALIAS`` -> (NAME, '@ALIAS')."""
    rest = uri[len("models:") :].lstrip("/")
    name, slash, ref = rest.partition("/")
    if not slash:
        name, at, alias = rest.rpartition("@")
        ref = f"@{alias}" if at else ""
    if not name or not ref.strip("/@") or "/" in ref.strip("/"):
        raise InvalidParameterError(
            f"Invalid model URI {uri!r}: use models:/NAME/VERSION, models:/NAME/STAGE, "
            "models:/NAME/latest or models:/NAME@ALIAS."
        )
    return name, ref.strip("/")


def _from_registry(uri: str, store: Store | None) -> ModelSource:
    from nbtrack.models import registry_link
    from nbtrack.tracking.fluent import current_store

    name, ref = split_models_uri(uri)
    row = registry_link.lookup(name, ref)
    store = store or current_store()
    path = store.artifact_dir(row["run_id"]) / row["artifact_path"]
    return ModelSource(uri, path, dict(row["files"]), row["run_id"], row["artifact_path"], row)


def model_packages(store: Store, run_id: str) -> list[str]:
    """The artifact paths of the model packages logged to a run ('.' for one at its root)."""
    from nbtrack.tracking.artifacts import recorded_artifacts

    return sorted(
        path.rpartition("/")[0] or "."
        for path in recorded_artifacts(store, run_id)
        if path == "MLmodel" or path.endswith("/MLmodel")
    )
