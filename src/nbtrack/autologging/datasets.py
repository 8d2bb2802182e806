"""pandas autologging: DataFrames that ``pandas.read_*`` returns in a tracked cell, as run inputs.

Each reader is wrapped: it runs unchanged, and when a run is active (or ``%track on`` makes
the cell a run) the DataFrame it returned is logged with :func:`nbtrack.log_input`
semantics: the file's name, MLflow's digest, the column schema, the row and element
counts, and the file's absolute path (or URL) as its source.
"""

from __future__ import annotations

import os
from typing import Any

from nbtrack.autologging import AutologConfig
from nbtrack.autologging.patches import Patches, guarded
from nbtrack.tracking import fluent

READERS = (
    "read_csv",
    "read_excel",
    "read_feather",
    "read_fwf",
    "read_json",
    "read_orc",
    "read_parquet",
    "read_pickle",
    "read_sas",
    "read_spss",
    "read_stata",
    "read_table",
    "read_xml",
)
# Where each reader takes its path when it is passed by keyword.
_PATH_KEYWORDS = ("filepath_or_buffer", "path", "path_or_buf", "io", "path_or_buffer")

_patches = Patches()
_config: AutologConfig | None = None


def enable(config: AutologConfig) -> None:
    global _config
    _config = config
    if len(_patches):
        return
    import pandas

    for name in READERS:
        reader = getattr(pandas, name, None)
        if reader is not None:
            _patches.replace(pandas, name, _logged_reader(reader))


def disable() -> None:
    global _config
    _patches.restore()
    _config = None


def _logged_reader(reader: Any) -> Any:
    def read_and_log(*args: Any, **kwargs: Any) -> Any:
        frame = reader(*args, **kwargs)
        config = _config
        if config is not None and config.log_datasets:
            guarded("log the dataset read", log_read, frame, args, kwargs, silent=config.silent)
        return frame

    read_and_log.__name__ = reader.__name__
    read_and_log.__qualname__ = reader.__qualname__
    read_and_log.__doc__ = reader.__doc__
    read_and_log.__wrapped__ = reader  # type: ignore[attr-defined]
    return read_and_log


def log_read(frame: Any, args: tuple, kwargs: dict) -> bool:
    """Log a DataFrame a reader returned into the tracked run; False when untracked."""
    import pandas as pd

    from nbtrack.data import from_pandas
    from nbtrack.tracking import inputs

    if not isinstance(frame, pd.DataFrame):
        return False
    session = fluent.default_session()
    if session.active_run() is None and session.run_factory is None:
        return False  # an untracked cell: reading data starts no run
    source = _source(args, kwargs)
    name = os.path.basename(source.rstrip("/")) if source else None
    dataset = from_pandas(frame, source=source or None, name=name or None)
    run = session.run_to_log()
    session.add_input(run.store, run.run_id, *inputs.describe(dataset, None, None))
    return True


def _source(args: tuple, kwargs: dict) -> str:
    """The path or URL a reader was given: absolute for local files, '' for buffers."""
    given = args[0] if args else next((kwargs[k] for k in _PATH_KEYWORDS if k in kwargs), None)
    if isinstance(given, os.PathLike):
        given = os.fspath(given)
    if not isinstance(given, str):
        return ""
    if "://" in given and not given.startswith("file://"):
        return given
    return os.path.abspath(given.removeprefix("file://"))
