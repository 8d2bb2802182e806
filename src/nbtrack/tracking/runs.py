"""Reading runs from a store as MLflow's entities: one run, a metric's history, searches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nbtrack.entities import MetricHistory, Run, ViewType, inputs_from_records, run_from_row
from nbtrack.errors import InvalidParameterError
from nbtrack.store import Store

if TYPE_CHECKING:
    from nbtrack.store.query import RunHits

PARENT_TAG = "mlflow.parentRunId"


def get_run(store: Store, run_id: str) -> Run:
    """The run with its latest metrics, params, tags and dataset inputs."""
    row = store.get_run(run_id)
    run = run_from_row(row)
    if row.get("inputs"):  # the datasets live in the journal; the row only counts them
        run = run._replace(inputs=inputs_from_records(store.records(run_id, "input")))
    return run


def parent_run(store: Store, run_id: str) -> Run | None:
    """The run named by the ``mlflow.parentRunId`` tag, or None."""
    parent_id = store.get_run(run_id).get("tags", {}).get(PARENT_TAG)
    return get_run(store, parent_id) if parent_id is not None else None


def metric_history(store: Store, run_id: str, key: str) -> MetricHistory:
    """Every point logged for ``key`` in the run, oldest first."""
    steps, values, timestamps = store.metric_history(run_id, key)
    return MetricHistory(key, steps, values, timestamps)


def search_rows(
    store: Store,
    experiment_ids: set[str] | None,
    filter_string: str | None = "",
    run_view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int | None = None,
    order_by: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Catalog rows of the runs in ``experiment_ids`` (None: every experiment) that match
    an MLflow filter, in MLflow's order."""
    return search_hits(
        store, experiment_ids, filter_string, run_view_type, max_results, order_by
    ).rows()


def search_hits(
    store: Store,
    experiment_ids: set[str] | None,
    filter_string: str | None = "",
    run_view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int | None = None,
    order_by: Sequence[str] | None = None,
) -> RunHits:
    """:func:`search_rows` as hits over the store's columns: rows, or a DataFrame
    (frames.hits_dataframe), are built only for what is read."""
    view = {ViewType.ACTIVE_ONLY: "active", ViewType.ALL: "all"}.get(run_view_type, "deleted")
    return store.search(experiment_ids, filter_string, view, order_by, max_results)


def experiment_ids(
    store: Store, ids: Sequence[str] | None, names: Sequence[str] | None
) -> set[str] | None:
    """The experiments a search covers, by id or by name; None when neither is given."""
    if ids and names:
        raise InvalidParameterError("Pass experiment_ids or experiment_names, not both.")
    if ids:
        return {str(i) for i in ([ids] if isinstance(ids, str) else ids)}
    if names:
        found = [store.get_experiment_by_name(n) for n in names]
        return {e["experiment_id"] for e in found if e is not None}
    return None


def visible(stage: str, view_type: int) -> bool:
    """Whether a run or experiment in lifecycle ``stage`` shows in a ``view_type`` search."""
    if view_type == ViewType.ALL:
        return True
    return (stage == "active") == (view_type == ViewType.ACTIVE_ONLY)
