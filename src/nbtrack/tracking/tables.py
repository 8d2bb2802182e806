"""Tables as MLflow's ``log_table`` stores them, and ``load_table`` reading them back.

A table is a JSON artifact in pandas' ``split`` orientation (or Parquet); logging to a
file the run already has appends the rows. Columns of images are stored as image files
under ``table_images/`` and referenced from the cells. The run's ``mlflow.loggedArtifacts``
tag lists its tables, which is how ``load_table`` finds them (MLflow's UI reads it too).
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import uuid
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from nbtrack.entities import ViewType
from nbtrack.errors import InvalidParameterError, NotFoundError
from nbtrack.store import Store
from nbtrack.store.artifacts import relative_path
from nbtrack.tracking import artifacts, media, runs

if TYPE_CHECKING:
    import pandas as pd

LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"
TABLE_EXTENSIONS = (".json", ".parquet")
# MLflow refuses these in a table's path: they would break the tag's JSON when it is
# searched with LIKE.
FORBIDDEN_CHARACTERS = "\"',:[]{}"


class Table(NamedTuple):
    """New rows checked and ready to store: their path, frame and image files."""

    path: str
    frame: pd.DataFrame
    images: artifacts.Entries


def check_path(artifact_file: Any) -> str:
    """``artifact_file`` as a run-relative path, if MLflow would accept it for a table."""
    relative = relative_path(artifact_file, "artifact_file")
    bad = sorted({c for c in artifact_file if c in FORBIDDEN_CHARACTERS})
    if bad:
        raise InvalidParameterError(
            f"artifact_file={artifact_file!r} contains {' '.join(bad)}; table paths may not "
            f"contain any of {FORBIDDEN_CHARACTERS}."
        )
    if not relative.endswith(TABLE_EXTENSIONS):
        raise InvalidParameterError(
            f"artifact_file={artifact_file!r}: a table is saved as .json or .parquet; end "
            "the name with one of them."
        )
    return relative


def prepare(data: Any, artifact_file: str) -> Table:
    """Check the new rows and render any image columns; nothing is stored yet.

    Raises
    ------
    InvalidParameterError
        For a bad path, data that is not a dict or DataFrame, a column mixing images and
        other values, or values the file format cannot hold.
    """
    import pandas as pd

    path = check_path(artifact_file)
    if isinstance(data, dict):
        try:
            frame = pd.DataFrame(data)
        except ValueError:  # all scalars: one row, as MLflow does
            frame = pd.DataFrame([data])
    elif isinstance(data, pd.DataFrame):
        frame = data.copy()
    else:
        raise InvalidParameterError(
            f"log_table(data=...) got a {type(data).__name__}; pass a dict or a pandas DataFrame."
        )
    images = _store_image_columns(frame, path)
    _serialized(frame, path)  # refuse what cannot be written before anything is stored
    return Table(path, frame, images)


def log(store: Store, run_id: str, table: Table) -> None:
    """Store a prepared table in the run, after the rows it already has at that path."""
    frame = table.frame
    if table.path in artifacts.recorded_artifacts(store, run_id):
        import pandas as pd

        existing = read(store, run_id, table.path)
        frame = pd.concat([existing, frame], ignore_index=True)
    data = _serialized(frame, table.path)
    logged = json.loads(store.get_run(run_id).get("tags", {}).get(LOGGED_ARTIFACTS_TAG, "[]"))
    entry = {"path": table.path, "type": "table"}
    artifacts.add(store, run_id, [*table.images, (table.path, data)])
    if entry not in logged:
        store.set_tags(run_id, {LOGGED_ARTIFACTS_TAG: json.dumps([*logged, entry])})


def read(store: Store, run_id: str, path: str) -> pd.DataFrame:
    """A table file of the run as a DataFrame."""
    import pandas as pd

    file = store.artifact_dir(run_id) / path
    if path.endswith(".parquet"):
        return pd.read_parquet(file)
    return pd.read_json(file, orient="split")


def load(
    store: Store,
    experiment_id: str,
    artifact_file: str,
    run_ids: Sequence[str] | None = None,
    extra_columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The table ``artifact_file`` of every active run of the experiment that logged one
    (or of ``run_ids``), newest run first, rows concatenated.

    ``extra_columns`` adds columns of ``search_runs``' DataFrame (``run_id``,
    ``tags.mlflow.runName``, ...) to each run's rows; a name the table already has gets
    a trailing ``_``.

    Raises
    ------
    NotFoundError
        If no run has the table.
    """
    import pandas as pd

    from nbtrack.tracking.frames import runs_dataframe

    path = check_path(artifact_file)
    rows = [
        row
        for row in runs.search_rows(store, {str(experiment_id)}, "", ViewType.ACTIVE_ONLY)
        if _has_table(row, path) and (not run_ids or row["run_id"] in run_ids)
    ]
    if run_ids and len(rows) != len(run_ids):
        warnings.warn(
            "Not all runs have the specified table artifact; some runs will be skipped.",
            stacklevel=3,
        )
    if not rows:
        raise NotFoundError(f"No runs found with the table {artifact_file!r}.")
    described = runs_dataframe(rows)
    unknown = [c for c in extra_columns or () if c not in described.columns]
    if unknown:
        raise InvalidParameterError(
            f"load_table(extra_columns=...): {', '.join(map(repr, unknown))} not among the "
            "runs' columns; use search_runs() column names such as 'run_id' or "
            "'tags.mlflow.runName'."
        )
    frames = []
    for (_, run), row in zip(described.iterrows(), rows, strict=True):
        frame = read(store, row["run_id"], path)
        for column in extra_columns or ():
            frame[f"{column}_" if column in frame else column] = run[column]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _has_table(row: dict[str, Any], path: str) -> bool:
    try:
        logged = json.loads(row.get("tags", {}).get(LOGGED_ARTIFACTS_TAG, "[]"))
    except ValueError:
        return False
    return {"path": path, "type": "table"} in logged


def _serialized(frame: pd.DataFrame, path: str) -> bytes:
    try:
        if path.endswith(".parquet"):
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            return buffer.getvalue()
        text = frame.to_json(orient="split", index=False, date_format="iso")
    except Exception as error:  # pandas and pyarrow raise many kinds for unwritable values
        raise InvalidParameterError(
            f"log_table: the data cannot be written as {posixpath.basename(path)} "
            f"({type(error).__name__}: {error})."
        ) from None
    return text.encode("utf-8")


def _store_image_columns(frame: pd.DataFrame, path: str) -> artifacts.Entries:
    """Replace each column of images by references to image files (MLflow's layout:
    ``table_images/<table>/<uuid>.png`` and a ``.webp`` preview); the files' entries."""
    entries: artifacts.Entries = []
    for column in [c for c in frame.columns if frame[c].dtype == object]:
        is_image = frame[column].map(_is_image)
        if not is_image.any():
            continue
        if not is_image.all():
            raise InvalidParameterError(
                f"log_table: column {column!r} mixes images and other values; put images in "
                "columns of their own."
            )
        references = []
        for image in frame[column]:
            name = posixpath.join("table_images", os.path.splitext(path)[0], str(uuid.uuid4()))
            picture = media.to_pil(image)
            entries += media.image_entries(picture, f"{name}.png")
            entries += media.image_entries(media.compressed(picture), f"{name}.webp")
            references.append(
                {"type": "image", "filepath": f"{name}.png", "compressed_filepath": f"{name}.webp"}
            )
        frame[column] = references
    return entries


def _is_image(value: Any) -> bool:
    """MLflow's test: a PIL-like image (``mlflow.Image`` passes too)."""
    return all(callable(getattr(value, name, None)) for name in ("save", "resize")) and hasattr(
        value, "size"
    )
