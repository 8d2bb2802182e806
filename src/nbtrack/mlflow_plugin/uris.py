"""The URIs the plugin answers: ``nbtrack:`` tracking URIs and its artifact URIs.

==================================================  =========================================
``nbtrack:///absolute/path``                         the store in that folder
``nbtrack:relative/path``                            relative to the working directory
``nbtrack:``                                         the default store (``$NBTRACK_DIR``, else
                                                     ``.nbtrack``), as nbtrack's own API
``nbtrack-artifacts:///<store>/runs/<id>/artifacts``  a run's artifacts (and paths under it)
==================================================  =========================================

Artifact URIs have a scheme of their own so that MLflow hands every artifact read and write
to the plugin's repository (artifact_repo.py), which records each file's SHA-256 in the run's
journal and checks it on the way out; a ``file:`` URI would let MLflow write past it.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlparse

from nbtrack.errors import InvalidParameterError
from nbtrack.store import Store
from nbtrack.store.artifacts import relative_path
from nbtrack.tracking.session import Session, path_from_uri

TRACKING_SCHEME = "nbtrack"
ARTIFACT_SCHEME = "nbtrack-artifacts"

# The leftmost match: a store folder never sits inside a run's artifacts.
_RUN_ARTIFACTS = re.compile(
    r"^(?P<root>/.*?)/runs/(?P<run_id>[0-9a-f]{32})/artifacts(?P<rest>/.*)?$"
)


def store_path(tracking_uri: str) -> Path:
    """The store folder an ``nbtrack:`` tracking URI names."""
    return path_from_uri(tracking_uri) or Session().store_path


def artifact_uri(store: Store, run_id: str, path: str = "") -> str:
    """The URI of a run's artifacts (or of ``path`` under them)."""
    uri = f"{experiment_location(store)}/{run_id}/artifacts"
    return f"{uri}/{path}" if path else uri


def experiment_location(store: Store) -> str:
    """What an experiment reports as its artifact location: runs keep theirs under it, as
    MLflow's ``<location>/<run_id>/artifacts``."""
    return _runs_uri(store.root)


@functools.lru_cache(maxsize=64)
def _runs_uri(root: Path) -> str:
    return ARTIFACT_SCHEME + (root / "runs").as_uri()[len("file") :]


class ArtifactLocation(NamedTuple):
    root: Path  # the store's folder
    run_id: str
    path: str  # under the run's artifacts; "" for all of them


def parse_artifact_uri(uri: str) -> ArtifactLocation:
    """Where an ``nbtrack-artifacts:`` URI points.

    Raises
    ------
    InvalidParameterError
        For another scheme, a host, a URI outside a run's artifacts, or a path that
        would leave them.
    """
    parsed = urlparse(uri)
    found = _RUN_ARTIFACTS.match(unquote(parsed.path)) if parsed.scheme == ARTIFACT_SCHEME else None
    if found is None or parsed.netloc:
        raise InvalidParameterError(
            f"{uri!r} is not an nbtrack artifact URI: they read "
            f"{ARTIFACT_SCHEME}:///<store>/runs/<run id>/artifacts[/<path>]."
        )
    rest = (found["rest"] or "").strip("/")
    return ArtifactLocation(
        Path(found["root"]), found["run_id"], relative_path(rest, "artifact path") if rest else ""
    )
