"""Where the server extension finds its store, and the setting that moves it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from traitlets import Float, Unicode
from traitlets.config import Configurable

from nbtrack.errors import NotFoundError
from nbtrack.store import Store
from nbtrack.tracking.session import DEFAULT_STORE_DIR, open_store, path_from_uri


class NbtrackServer(Configurable):
    """Settings of nbtrack's server extension (``c.NbtrackServer.store = "runs"``)."""

    store = Unicode(
        "",
        config=True,
        help="The nbtrack store the sidebar shows: a folder or file: URI, relative to the "
        "server's root directory. Default: $NBTRACK_TRACKING_URI, $NBTRACK_DIR, else "
        ".nbtrack in the root directory, as the API finds it from there.",
    )
    poll_seconds = Float(
        0.25, config=True, help="How often the change feed looks for changes in the store."
    )


def store_path(root_dir: str | os.PathLike[str], setting: str = "") -> Path:
    """The store folder for a server rooted at ``root_dir``: the setting, else the
    environment, else ``.nbtrack`` there; relative paths are relative to the root."""
    chosen = setting or next(
        (os.environ[v] for v in ("NBTRACK_TRACKING_URI", "NBTRACK_DIR") if os.environ.get(v)),
        DEFAULT_STORE_DIR,
    )
    path = path_from_uri(chosen) if "://" in chosen or chosen.startswith("file:") else None
    if path is None:
        path = Path(chosen).expanduser()
        if not path.is_absolute():
            path = Path(root_dir).expanduser() / path
    return path.resolve()


class StoreHandle:
    """The server's store, opened on first use once its folder exists: starting Jupyter
    in a folder creates no ``.nbtrack`` there; the first tracked run does."""

    def __init__(self, path: Path, root_dir: str | os.PathLike[str]) -> None:
        self.path = path
        self.root_dir = Path(root_dir).expanduser().resolve()
        self._store: Store | None = None
        self._lock = threading.Lock()

    def get(self) -> Store:
        """The store; NotFoundError while there is none yet."""
        store = self.existing()
        if store is None:
            raise NotFoundError(
                f"No nbtrack store at {self.path} yet: run %load_ext nbtrack and a %%track "
                "cell in a notebook here, or point c.NbtrackServer.store at a store."
            )
        return store

    def existing(self) -> Store | None:
        if self._store is None:
            with self._lock:
                if self._store is None and (self.path / "runs").is_dir():
                    self._store = open_store(self.path)
        return self._store

    def notebook_path(self, path: str | None) -> str | None:
        """A notebook's path relative to the server's root (as the page opens it), or
        None when it lies outside the root (or is not known)."""
        if not path:
            return None
        absolute = Path(path).expanduser()
        if not absolute.is_absolute():
            absolute = self.root_dir / absolute
        try:
            return absolute.resolve().relative_to(self.root_dir).as_posix()
        except ValueError:
            return None
