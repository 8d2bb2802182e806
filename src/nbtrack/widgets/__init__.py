"""Inline panels over runs: the run table, metric curves, run comparison and a run's
details. Each panel is a widget whose display also carries a static fallback.

Importing this package is light: the widget classes (anywidget, numpy) load on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nbtrack.tracking import fluent

if TYPE_CHECKING:
    from nbtrack.widgets.card import RunCard
    from nbtrack.widgets.compare import CompareRuns
    from nbtrack.widgets.curves import MetricCurves
    from nbtrack.widgets.registry import RegistryPanel
    from nbtrack.widgets.table import RunTable

__all__ = ["compare_runs", "metric_curves", "registry_panel", "run_details", "runs_table"]


def runs_table(
    filter_string: str = "",
    order_by: list[str] | None = None,
    search_all_experiments: bool = False,
    experiment_ids: Sequence[str] | None = None,
    page_size: int = 25,
) -> RunTable:
    """The runs of the active experiment matching an MLflow filter, newest first.

    Raises
    ------
    InvalidFilterError
        If ``filter_string`` does not parse (in the table's filter box, the error is
        shown inline instead).
    """
    from nbtrack.widgets.table import RunTable

    return RunTable(
        filter_string,
        order_by,
        experiment_ids=experiment_ids,
        search_all_experiments=search_all_experiments,
        page_size=page_size,
    )


def metric_curves(
    runs: str | Sequence[str] = "last",
    metrics: Sequence[str] | None = None,
    *,
    smoothing: float = 0.0,
    x_axis: str = "step",
    log_y: bool = False,
) -> MetricCurves:
    """Curves of the runs' metrics (runs by id, id prefix, name or ``'last'``).

    ``metrics`` defaults to the metrics logged at more than one step; ``x_axis`` is
    ``"step"``, ``"relative"`` (seconds since the run started) or ``"wall"``.
    """
    from nbtrack.widgets.curves import MetricCurves

    return MetricCurves(_resolve(runs), metrics, smoothing=smoothing, x_axis=x_axis, log_y=log_y)


def compare_runs(
    runs: Sequence[str] = (),
    *,
    last: int | None = None,
    directions: dict[str, str] | None = None,
) -> CompareRuns:
    """Two or more runs side by side, or the ``last`` N runs of the active experiment.

    ``directions`` says per metric whether ``"min"`` or ``"max"`` is best; by default
    names like loss or error are better lower, the others higher.
    """
    from nbtrack.widgets.compare import CompareRuns

    if last is not None:
        if last < 2:
            raise ValueError(f"compare_runs(last={last}): compare at least 2 runs.")
        found = fluent.search_rows(max_results=last, order_by=["attributes.start_time DESC"])
        run_ids = [r["run_id"] for r in reversed(found)]  # oldest first: diffs read forward
    else:
        run_ids = _resolve(runs)
    return CompareRuns(run_ids, directions=directions)


def _resolve(runs: str | Sequence[str]) -> list[str]:
    refs = [runs] if isinstance(runs, str) else list(runs)
    store = fluent.current_store()
    return [store.resolve_run(ref)["run_id"] for ref in refs]


def registry_panel(name: str | None = None) -> RegistryPanel:
    """Registered models (or only ``name``): versions, stage transitions, the audit log.

    Raises
    ------
    NotFoundError
        If ``name`` was never registered in this store.
    """
    from nbtrack.widgets.registry import RegistryPanel

    return RegistryPanel(name)


def run_details(ref: str) -> RunCard:
    """One run in full: info, params, metrics (with sparklines), tags, artifacts,
    provenance, the cell that made it, its error; the run card's richer form. ``ref`` is a
    run id, an id prefix, a run name or 'last'. Saved notebooks show its text form
    (:func:`nbtrack.render.run_details`)."""
    from nbtrack.widgets.details import details_card

    store = fluent.current_store()
    return details_card(store, store.resolve_run(ref)["run_id"])
