"""The fluent tracking API: MLflow's module-level functions over a default run session.

``log_metric`` is the hot path: it extends the active run's flat buffer by one point after
checks that cost a set lookup and a type test, and the store writes buffers in batches.
Everything that keeps state (the store, the active runs, the hooks) is the
:class:`~nbtrack.tracking.session.Session`'s; these functions only translate.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from time import time as _time
from typing import TYPE_CHECKING, Any, NamedTuple

from nbtrack.entities import Experiment, MetricHistory, Run, RunStatus, ViewType, run_from_row
from nbtrack.errors import InvalidParameterError
from nbtrack.store import Store
from nbtrack.tracking import artifacts, experiments, inputs, media, runs, tables
from nbtrack.tracking.context import status_notes
from nbtrack.tracking.session import ActiveRun, Session, close_stores, open_stores
from nbtrack.validation import (
    check_key,
    check_param_value,
    check_tags,
    metric_step,
    metric_timestamp,
    metric_value,
)

if TYPE_CHECKING:
    import pandas as pd

    from nbtrack.store.query import RunHits

_session = Session()
_metric_keys: set[str] = set()  # keys already validated, so the hot path skips the regex


def default_session() -> Session:
    """The session the fluent functions use (and the magics and autologging with them)."""
    return _session


@contextlib.contextmanager
def use_session(session: Session) -> Iterator[Session]:
    """Make ``session`` the default inside the block (tests; embedding nbtrack)."""
    global _session
    previous, _session = _session, session
    try:
        yield session
    finally:
        _session = previous


# -- where runs are stored ---------------------------------------------------------------


def set_tracking_uri(uri: str | os.PathLike[str]) -> None:
    """Use the store in a folder (a path, a ``file:`` URI, or an ``nbtrack:`` URI as MLflow
    code names it: ``nbtrack:///absolute/path``, ``nbtrack:relative/path``, ``nbtrack:`` for
    the default store); it is created on first use."""
    _session.set_tracking_uri(uri)


def get_tracking_uri() -> str:
    """The current store as a ``file:`` URI."""
    return _session.tracking_uri


def current_store() -> Store:
    """The store at the tracking URI, opened once per process."""
    return _session.store


# -- experiments -------------------------------------------------------------------------


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Make an experiment active, creating it by name if it does not exist."""
    row = _session.set_experiment(experiment_name, experiment_id)
    return experiments.entity(_session.store, row)


def create_experiment(
    name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
) -> str:
    """Create an experiment and return its id (``artifact_location`` is ignored: nbtrack
    keeps artifacts inside the store)."""
    return experiments.create(_session, name, artifact_location, tags)


def get_experiment(experiment_id: str) -> Experiment:
    return experiments.get(_session, experiment_id)


def get_experiment_by_name(name: str) -> Experiment | None:
    return experiments.get_by_name(_session, name)


def search_experiments(
    view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int | None = None,
    filter_string: str | None = None,
    order_by: list[str] | None = None,
) -> list[Experiment]:
    """Experiments matching an MLflow filter, in ``order_by`` order (newest first)."""
    found = experiments.search(_session, view_type, filter_string, order_by)
    return found if max_results is None else found[:max_results]


def delete_experiment(experiment_id: str) -> None:
    experiments.set_lifecycle(_session, experiment_id, "deleted")


def restore_experiment(experiment_id: str) -> None:
    experiments.set_lifecycle(_session, experiment_id, "active")


def set_experiment_tag(key: str, value: Any) -> None:
    experiments.set_tag(_session, None, key, value)


def set_experiment_tags(tags: dict[str, Any]) -> None:
    """Tag the current experiment; every tag is checked before any is set."""
    experiments.set_tags(_session, None, tags)


# -- starting and ending runs --------------------------------------------------------------


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    log_system_metrics: bool | None = None,
) -> ActiveRun:
    """Start a new run (or resume ``run_id``) and make it active.

    ``log_system_metrics`` records the run's wall and CPU time, peak memory and
    ``system/*`` samples (None: as :func:`enable_system_metrics_logging` set it).

    Raises
    ------
    RunStateError
        If a run is already active and ``nested`` is False.
    """
    return _session.start_run(
        run_id,
        str(experiment_id) if experiment_id is not None else None,
        run_name,
        nested,
        parent_run_id,
        check_tags(tags),
        description,
        log_system_metrics,
    )


def end_run(status: str = RunStatus.FINISHED) -> None:
    """End the innermost active run with ``status`` (FINISHED by default)."""
    _session.end_run(status)


def active_run() -> ActiveRun | None:
    """The innermost active run, or None."""
    return _session.active_run()


def last_active_run() -> Run | None:
    """The run started most recently in this process, active or ended."""
    if _session.active:
        return _session.active[-1].snapshot()
    run_id = _session.last_run_id
    return get_run(run_id) if run_id is not None else None


def enable_system_metrics_logging() -> None:
    """Record system metrics for every run started from now on (as MLflow's)."""
    _session.log_system_metrics = True


def disable_system_metrics_logging() -> None:
    _session.log_system_metrics = False


# -- logging -------------------------------------------------------------------------------


def log_metric(
    key: str,
    value: float,
    step: int | None = None,
    synchronous: bool | None = None,
    timestamp: int | None = None,
    run_id: str | None = None,
    model_id: str | None = None,
    dataset: Any = None,
) -> None:
    """Log one metric point; costs about a list append (written in batches).

    ``synchronous``, ``model_id`` and ``dataset`` are MLflow's and have no effect here.
    """
    if key not in _metric_keys:
        _metric_keys.add(check_key(key, "metric"))
    if type(value) is not float:
        value = metric_value(key, value)
    point = (
        key,
        value,
        0 if step is None else (step if type(step) is int else metric_step(key, step)),
        _time() * 1000 if timestamp is None else metric_timestamp(key, timestamp),
    )
    if run_id is None:
        session = _session
        (session.active[-1] if session.active else session.run_to_log()).writer.points.extend(point)
    else:
        _session.store.log_points(run_id, point)


def log_metrics(
    metrics: dict[str, float],
    step: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
    timestamp: int | None = None,
    model_id: str | None = None,
    dataset: Any = None,
) -> None:
    """Log several metrics at one step; all are checked before any is logged."""
    step = 0 if step is None else metric_step("step", step)
    when = _time() * 1000 if timestamp is None else metric_timestamp("timestamp", timestamp)
    points = [
        item
        for k, v in metrics.items()
        for item in (check_key(k, "metric"), metric_value(k, v), step, when)
    ]
    if run_id is None:
        _session.run_to_log().writer.points.extend(points)
    else:
        _session.store.log_points(run_id, points)


def log_param(key: str, value: Any, synchronous: bool | None = None) -> Any:
    """Log a param (stored as ``str(value)``); returns ``value`` as MLflow does."""
    log_params({key: value})
    return value


def log_params(
    params: dict[str, Any], synchronous: bool | None = None, run_id: str | None = None
) -> None:
    """Log several params; all are checked before any is written."""
    clean = {check_key(k, "param"): check_param_value(k, v) for k, v in params.items()}
    store, target = _session.target(run_id)
    store.log_params(target, clean)


def set_tag(key: str, value: Any, synchronous: bool | None = None) -> None:
    set_tags({key: value})


def set_tags(
    tags: dict[str, Any], synchronous: bool | None = None, run_id: str | None = None
) -> None:
    """Set tags on the active run (starting one if needed) or on ``run_id``; later values
    replace earlier."""
    clean = check_tags(tags)
    store, target = _session.target(run_id)
    store.set_tags(target, clean)


def delete_tag(key: str, run_id: str | None = None) -> None:
    """Remove a tag from the active run (or ``run_id``); an error if it has no such tag."""
    store, target = _session.target(run_id)
    store.delete_tag(target, key)


def log_artifact(
    local_path: str | os.PathLike[str], artifact_path: str | None = None, run_id=None
) -> None:
    """Copy a file into the run's artifacts (under ``artifact_path`` if given)."""
    entries = artifacts.file_entries(local_path, artifact_path)
    artifacts.add(*_session.target(run_id), entries)


def log_artifacts(
    local_dir: str | os.PathLike[str], artifact_path: str | None = None, run_id=None
) -> None:
    """Copy every file under a directory into the run's artifacts."""
    entries = artifacts.folder_entries(local_dir, artifact_path)
    artifacts.add(*_session.target(run_id), entries)


def log_text(text: str, artifact_file: str, run_id: str | None = None) -> None:
    """Save ``text`` as a UTF-8 file artifact."""
    entries = artifacts.text_entries(text, artifact_file)
    artifacts.add(*_session.target(run_id), entries)


def log_dict(dictionary: dict[str, Any], artifact_file: str, run_id: str | None = None) -> None:
    """Save a dict as JSON, or YAML when ``artifact_file`` ends in .yaml/.yml."""
    entries = artifacts.dict_entries(dictionary, artifact_file)
    artifacts.add(*_session.target(run_id), entries)


def log_figure(
    figure: Any, artifact_file: str, *, save_kwargs: dict[str, Any] | None = None
) -> None:
    """Save a matplotlib, Plotly or Altair figure as an artifact, in the format its
    extension names (``save_kwargs`` go to ``savefig`` / ``write_html`` / ``save``)."""
    entries = media.figure_entries(figure, artifact_file, save_kwargs)
    artifacts.add(*_session.target(None), entries)


def log_image(
    image: Any,
    artifact_file: str | None = None,
    key: str | None = None,
    step: int | None = None,
    timestamp: int | None = None,
    synchronous: bool | None = False,
) -> None:
    """Save a numpy array or PIL image, as MLflow's ``log_image``.

    ``log_image(image, "dir/img.png")`` saves one file; ``log_image(image, key="pred",
    step=3)`` adds to an image series under ``images/`` (with a small WebP preview), as
    MLflow 3 stores it. ``synchronous`` has no effect: nbtrack always writes at once.
    """
    entries = media.image_entries(image, artifact_file, key, step, timestamp)
    media.add_images(*_session.target(None), entries, series=key is not None)


def log_table(data: Any, artifact_file: str, run_id: str | None = None) -> None:
    """Save a dict or DataFrame as a JSON (or Parquet) table, MLflow's table format; rows
    are appended if the run already has a table at ``artifact_file``."""
    table = tables.prepare(data, artifact_file)
    tables.log(*_session.target(run_id), table)


def load_table(
    artifact_file: str,
    run_ids: list[str] | None = None,
    extra_columns: list[str] | None = None,
) -> pd.DataFrame:
    """The table ``artifact_file`` of the current experiment's runs (or of ``run_ids``),
    concatenated; ``extra_columns`` adds ``search_runs`` columns such as ``run_id``."""
    return tables.load(
        _session.store, _session.experiment_id, artifact_file, run_ids, extra_columns
    )


def get_artifact_uri(artifact_path: str | None = None) -> str:
    return artifacts.artifact_uri(*_session.target(None), artifact_path)


def log_input(
    dataset: Any = None,
    context: str | None = None,
    tags: dict[str, Any] | None = None,
    model: Any = None,
) -> None:
    """Record a dataset the active run used, as MLflow's ``log_input``.

    Parameters
    ----------
    dataset
        From :func:`nbtrack.data.from_pandas` / :func:`~nbtrack.data.from_numpy`, or an
        ``mlflow.data`` dataset: its name, digest, source, schema and profile are kept.
    context
        How the data was used ("training", "eval", ...): the ``mlflow.data.context`` tag.
    tags
        More input tags. Logging the same dataset with the same tags again is a no-op.
    model
        Accepted for MLflow compatibility and ignored (model inputs are not tracked).
    """
    if dataset is None:
        return
    described = inputs.describe(dataset, context, tags)  # refused before a run starts
    _session.add_input(*_session.target(None), *described)


def log_inputs(
    datasets: list[Any] | None = None,
    contexts: list[str | None] | None = None,
    tags_list: list[dict[str, Any] | None] | None = None,
    models: list[Any] | None = None,
) -> None:
    """Record several datasets at once (MLflow 3's plural ``log_input``): the three lists
    run in parallel, and every entry is checked before any is logged."""
    datasets, contexts, tags_list = datasets or [], contexts or [], tags_list or []
    if not len(datasets) == len(contexts) == len(tags_list):
        raise InvalidParameterError(
            f"log_inputs: datasets, contexts and tags_list must have the same length; got "
            f"{len(datasets)}, {len(contexts)} and {len(tags_list)}."
        )
    if models:
        raise InvalidParameterError(
            "log_inputs(models=...) is not supported (in MLflow only Databricks supports it)."
        )
    described = [
        inputs.describe(dataset, context, tags)
        for dataset, context, tags in zip(datasets, contexts, tags_list, strict=True)
        if dataset is not None
    ]
    if not described:
        return
    store, target = _session.target(None)
    for fields, input_tags in described:
        _session.add_input(store, target, fields, input_tags)


# -- reading -----------------------------------------------------------------------------------


def get_run(run_id: str) -> Run:
    return runs.get_run(_session.store, run_id)


def get_parent_run(run_id: str) -> Run | None:
    """The parent of a nested run, or None for a run without one."""
    return runs.parent_run(_session.store, run_id)


def get_metric_history(run_id: str, key: str) -> MetricHistory:
    """Every point logged for ``key`` in the run, oldest first."""
    return runs.metric_history(_session.store, run_id, key)


def delete_run(run_id: str) -> None:
    """Soft-delete a run: hidden from searches, kept on disk, restorable."""
    _session.store.set_lifecycle(run_id, "deleted")


def restore_run(run_id: str) -> None:
    _session.store.set_lifecycle(run_id, "active")


def search_runs(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str = "",
    run_view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int = 100_000,
    order_by: Sequence[str] | None = None,
    output_format: str = "pandas",
    search_all_experiments: bool = False,
    experiment_names: Sequence[str] | None = None,
) -> pd.DataFrame | list[Run]:
    """Search runs with MLflow's filter grammar; a DataFrame like MLflow's by default."""
    if output_format not in ("pandas", "list"):
        raise InvalidParameterError(f"output_format={output_format!r}: use 'pandas' or 'list'.")
    hits = _search(
        experiment_ids,
        filter_string,
        run_view_type,
        max_results,
        order_by,
        search_all_experiments,
        experiment_names,
    )
    if output_format == "list":
        return [run_from_row(r) for r in hits.rows()]
    from nbtrack.tracking.frames import hits_dataframe

    return hits_dataframe(hits)


def search_rows(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str = "",
    run_view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int | None = None,
    order_by: Sequence[str] | None = None,
    search_all_experiments: bool = False,
    experiment_names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """:func:`search_runs` returning catalog rows, for the panels and the CLI."""
    return _search(
        experiment_ids,
        filter_string,
        run_view_type,
        max_results,
        order_by,
        search_all_experiments,
        experiment_names,
    ).rows()


def _search(
    experiment_ids: Sequence[str] | None,
    filter_string: str,
    run_view_type: int,
    max_results: int | None,
    order_by: Sequence[str] | None,
    search_all_experiments: bool,
    experiment_names: Sequence[str] | None,
) -> RunHits:
    store = _session.store
    ids = runs.experiment_ids(store, experiment_ids, experiment_names)
    if ids is None and not search_all_experiments:
        ids = {_session.experiment_id}
    return runs.search_hits(store, ids, filter_string, run_view_type, max_results, order_by)


def flush() -> None:
    """Return once every point logged so far is durable on disk."""
    for store in open_stores():
        store.flush(durable=True)


class TrackingStatus(NamedTuple):
    """What ``%track`` prints: where runs go and what is active."""

    store: str
    experiment: str
    active_run: str | None
    cells_tracked: bool
    notes: tuple[str, ...] = ()  # e.g. background sync's queue

    def __repr__(self) -> str:
        return "\n".join(
            [
                f"store:      {self.store}",
                f"experiment: {self.experiment}",
                f"active run: {self.active_run or '-'}",
                f"track every cell: {'on' if self.cells_tracked else 'off'}",
                *self.notes,
            ]
        )


def status() -> TrackingStatus:
    """The store, active experiment and active run (``%track`` with no arguments)."""
    experiment = get_experiment(_session.experiment_id)
    run = active_run()
    return TrackingStatus(
        store=get_tracking_uri(),
        experiment=f"{experiment.name} (id {experiment.experiment_id})",
        active_run=f"{run.info.run_name} ({run.run_id})" if run else None,
        cells_tracked=_session.run_factory is not None,
        notes=tuple(status_notes()),
    )


# -- process exit ----------------------------------------------------------------------------


@atexit.register
def _at_exit() -> None:
    """End runs left open as FINISHED (as MLflow does) and make everything durable."""
    _session.close(RunStatus.FINISHED)
    for error in close_stores():  # one line each, no traceback: nothing can be done now
        print(f"nbtrack: exiting without writing everything: {error}", file=sys.stderr)
