"""RunTable: the runs of an experiment, searchable (MLflow's filter grammar), sortable by
any column, a page at a time, with actions on the selected runs.

The kernel holds the matching runs as row numbers into the store's columns (see
store/query.py) and builds rows only for the page shown; the page gets them as display
strings, so 100,000 runs cost the browser as much as 25. The watcher thread looks
at the catalog's files about once a second and re-runs the search when another cell or
another kernel changed the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets
import traitlets
from ipywidgets import widget_serialization

from nbtrack import search
from nbtrack.colors import run_color
from nbtrack.errors import InvalidFilterError, NbtrackError
from nbtrack.render import (
    format_duration,
    format_time,
    format_value,
    runs_table_html,
    runs_table_text,
)
from nbtrack.store.catalog import CHANGELOG_NAME, SNAPSHOT_NAME, file_signature
from nbtrack.tracking import fluent
from nbtrack.widgets import live
from nbtrack.widgets.panel import Action, Panel

if TYPE_CHECKING:
    import numpy as np

    from nbtrack.store import Store
    from nbtrack.store.query import RunHits

FIXED_COLUMNS = ["name", "status", "start", "duration"]  # "name" always first and shown
KINDS = ("metrics", "params")  # which comes first is the user's choice (``first_kind``)
DEFAULT_VISIBLE_PER_KIND = 6
STATIC_ROWS = 200  # rows in the static fallback; the widget pages through all of them
REFRESH_SECONDS = 1.0
VIEWS = ("active", "deleted", "all")  # which lifecycle stages the table shows
# Columns that read best largest-first when first clicked.
_DESCENDING_FIRST = ("start", "duration", "metrics.")

# What the table's buttons do with the selected runs; other features add theirs.
TABLE_ACTIONS: dict[str, Action] = {
    "compare": Action("Compare", "nbtrack.widgets.table:compare_selected", 2),
    "curves": Action("Show curves", "nbtrack.widgets.table:curves_of_selected", 1),
    "source": Action("Cell source", "nbtrack.widgets.table:source_of_selected", 1, 1),
    "register": Action(
        "Register", "nbtrack.widgets.register:register_run", 1, 1, ("active", "all")
    ),
    "delete": Action("Delete", "nbtrack.widgets.table:delete_selected", 1, None, ("active", "all")),
    "restore": Action(
        "Restore", "nbtrack.widgets.table:restore_selected", 1, None, ("deleted", "all")
    ),
}


class RunTable(Panel):
    """Runs matching ``filter_string`` in the active experiment (or ``experiment_ids``)."""

    module_name = "table.js"
    filter = traitlets.Unicode("").tag(sync=True)  # the filter box's text
    applied = traitlets.Unicode("").tag(sync=True)  # the filter the rows match
    view = traitlets.Enum(VIEWS, "active").tag(sync=True)
    sort_by = traitlets.Unicode("start").tag(sync=True)
    descending = traitlets.Bool(True).tag(sync=True)
    # Every column the experiment's runs have (whatever the filter or view), in a stable
    # order: name, status, start, duration, metrics and params (``first_kind`` first),
    # tags, run_id. ``visible`` are the chosen ones, always in that order.
    columns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    visible = traitlets.List(traitlets.Unicode()).tag(sync=True)
    first_kind = traitlets.Enum(KINDS, "metrics").tag(sync=True)
    page = traitlets.Int(0).tag(sync=True)
    page_size = traitlets.Int(25).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    # The current page: {id, color, cells, status, deleted, stale}
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    # The last bad filter as {message, text, start, end}: the page marks the token itself.
    filter_error = traitlets.Dict().tag(sync=True)
    selected = traitlets.List(traitlets.Unicode()).tag(sync=True)
    actions = traitlets.List(traitlets.Dict()).tag(sync=True)
    experiment = traitlets.Unicode("").tag(sync=True)
    detail = traitlets.Instance(ipywidgets.Widget, allow_none=True).tag(
        sync=True, **widget_serialization
    )
    detail_title = traitlets.Unicode("").tag(sync=True)
    detail_text = traitlets.Unicode("").tag(sync=True)

    action_table = TABLE_ACTIONS

    def __init__(
        self,
        filter_string: str = "",
        order_by: Sequence[str] | None = None,
        *,
        experiment_ids: Sequence[str] | None = None,
        search_all_experiments: bool = False,
        page_size: int = 25,
        store: Store | None = None,
    ) -> None:
        if experiment_ids is None and not search_all_experiments:
            # Pin the experiment: a later set_experiment must not change what this shows.
            experiment_ids = [fluent.default_session().experiment_id]
        self._experiment_ids = set(experiment_ids) if experiment_ids else None
        # The table stays on its store, whatever comes later.
        self.store = store or fluent.current_store()
        self._matched = self._search(filter_string, "active")  # a bad filter raises here
        self._fingerprint = _catalog_fingerprint(self.store.root)
        sort_by, descending = _sort_from(order_by)
        _check_column(sort_by)  # an unknown column fails here, before anything is shown
        columns = _columns(self._everything, "metrics")
        visible = _default_visible(columns)
        # The first page goes out with the widget itself: one message, drawn once.
        self._matched = _sorted(self._matched, sort_by, descending)
        super().__init__(
            filter=filter_string,
            applied=filter_string,
            sort_by=sort_by,
            descending=descending,
            columns=columns,
            visible=visible,
            page_size=page_size,
            total=len(self._matched),
            rows=[_display_row(r, visible) for r in self._matched.rows(0, page_size)],
            actions=[a.describe(n) for n, a in self.action_table.items() if "active" in a.views],
            experiment=self._experiment_label(),
        )
        self.observe(self._on_view, names=["view"])
        self.observe(self._on_first_kind, names=["first_kind"])
        self.observe(self._on_visible, names=["visible"])
        self.observe(self._on_paging, names=["page", "page_size"])
        self.observe(self._on_selection, names=["selected"])
        live.schedule(self, min_interval=REFRESH_SECONDS)

    # -- searching and sorting ------------------------------------------------------------

    def _search(self, filter_string: str, view: str) -> RunHits:
        """What ``search_rows`` does, on this table's store; keeps every run of the table's
        experiments (any view) for its columns."""
        matched = self.store.search(self._experiment_ids, filter_string, view)
        self._everything = self.store.runs_of(self._experiment_ids)
        return matched

    def apply_filter(self, text: str) -> None:
        """Search with ``text``; an invalid filter is shown inline and the rows stay."""
        with self._lock:
            self.filter = text
            try:
                matched = self._search(text, self.view)
            except NbtrackError as exc:
                self.error = str(exc)
                self.filter_error = _filter_error(exc)
                return
            self.error = ""
            self.filter_error = {}
            self.applied = text
            self._matched = matched
            self._after_search()

    def sort(self, column: str) -> None:
        """Sort by ``column``; the same column again reverses the order."""
        with self._lock:
            if column not in (*self.columns, "run_id"):
                raise ValueError(f"no column {column!r}")
            if column == self.sort_by:
                self.descending = not self.descending
            else:
                self.sort_by = column
                self.descending = column.startswith(_DESCENDING_FIRST)
            self._sort()

    def _after_search(self) -> None:
        columns = _columns(self._everything, self.first_kind)
        if columns != self.columns:
            added = [c for c in columns if c not in self.columns]
            self.columns = columns
            # _on_visible puts them in order
            self.visible = [*self.visible, *_default_visible(added)]
        self._sort()

    def _sort(self) -> None:
        self._matched = _sorted(self._matched, self.sort_by, self.descending)
        self.total = len(self._matched)
        self._page()

    def _page(self) -> None:
        last = max(0, (self.total - 1) // max(1, self.page_size))
        if self.page > last:
            self.page = last  # re-enters through the observer
            return
        start = self.page * self.page_size
        shown = self._matched.rows(start, start + self.page_size)
        rows = [_display_row(row, self.visible) for row in shown]
        if rows != self.rows:
            self.rows = rows
        ids = set(self._matched.run_ids()) if self.selected else set()
        if any(run_id not in ids for run_id in self.selected):
            self.selected = [run_id for run_id in self.selected if run_id in ids]

    def _on_view(self, _change: Any) -> None:
        self.selected = []
        self.actions = self.describe_actions()
        self.apply_filter(self.applied)

    def _on_paging(self, _change: Any) -> None:
        with self._lock:
            self._page()

    def _on_visible(self, change: Any) -> None:
        """Whatever the page or code chose, the columns keep their stable order, name first."""
        chosen = {"name", *change["new"]}
        ordered = [c for c in self.columns if c in chosen]
        if ordered != change["new"]:
            self.visible = ordered  # re-enters once, in order
            return
        with self._lock:
            self._page()

    def _on_first_kind(self, _change: Any) -> None:
        with self._lock:
            chosen = set(self.visible)
            self.columns = _columns(self._everything, self.first_kind)
            self.visible = [c for c in self.columns if c in chosen]

    def _on_selection(self, change: Any) -> None:
        ids = set(self._matched.run_ids())
        kept = [run_id for run_id in change["new"] if run_id in ids]
        if kept != change["new"]:
            self.selected = kept

    def describe_actions(self) -> list[dict[str, Any]]:
        return [a for a in super().describe_actions() if self.view in a["views"]]

    # -- keeping current ---------------------------------------------------------------------

    def tick(self) -> bool:
        """The watcher's call: re-search when the catalog changed on disk."""
        if self.comm is None:  # closed
            return False
        fingerprint = _catalog_fingerprint(self.store.root)
        if fingerprint != self._fingerprint:
            self._fingerprint = fingerprint
            self.refresh()
        return True

    def refresh(self) -> None:
        """Search again with the applied filter (new runs, changed statuses and metrics)."""
        with self._lock:
            try:
                self._matched = self._search(self.applied, self.view)
            except NbtrackError as exc:
                self.error = str(exc)
                return
            self._after_search()

    # -- intents and actions -------------------------------------------------------------------

    def handle_intent(self, kind: str, content: dict[str, Any]) -> None:
        if kind == "filter":
            self.apply_filter(str(content.get("text", "")))
        elif kind == "sort":
            self.sort(str(content.get("column", "")))
        elif kind == "page":
            self.page = max(0, int(content.get("page", 0)))
        elif kind == "open":  # a click on a run's name: the run in full, below the table
            self.open_run(str(content.get("run_id", "")))
        elif kind == "close_detail":
            self.detail = None
            self.detail_title = self.detail_text = ""
        elif kind == "action":  # on the selection, as the page saw it
            run_ids = list(content.get("run_ids") or self.selected)
            self.run_action(str(content.get("name", "")), run_ids)
        else:
            super().handle_intent(kind, content)

    def open_run(self, run_id: str) -> None:
        """Show one run in full (its details card) in the table's detail area."""
        from nbtrack.widgets.details import details_card

        self.error = ""
        self.show_result(details_card(self.store, self.store.get_run(run_id)["run_id"]))

    def show_result(self, result: Any) -> None:
        if isinstance(result, ipywidgets.Widget):
            self.detail_title = self.detail_text = ""
            self.detail = result
        elif isinstance(result, tuple):  # (title, text): shown as a block of text
            self.detail = None
            self.detail_title, self.detail_text = result
        else:
            super().show_result(result)

    def _experiment_label(self) -> str:
        if self._experiment_ids is None:
            return "all experiments"
        store = self.store
        names = []
        for experiment_id in sorted(self._experiment_ids):
            try:
                names.append(store.get_experiment(experiment_id)["name"])
            except NbtrackError:
                names.append(experiment_id)
        return ", ".join(names)

    # -- static forms ----------------------------------------------------------------------

    def static_bundle(self, charts: bool = True) -> dict[str, Any]:
        shown = self._matched.rows(0, STATIC_ROWS)
        markup, text = runs_table_html(shown), runs_table_text(shown)
        if len(shown) < len(self._matched):
            note = f"showing the first {len(shown):,} of {len(self._matched):,} runs"
            markup += f"<div style='font-size:11px'>{note}</div>"
            text += f"\n{note}"
        title = f"runs in {self.experiment}" + (f" matching {self.applied}" if self.applied else "")
        return {
            "text/html": f"<div class='nbtrack-table'>{_escape(title)}{markup}</div>",
            "text/plain": f"[nbtrack] {title}\n{text}",
        }


def _escape(text: str) -> str:
    import html

    return f"<div style='font-size:12px;font-weight:600'>{html.escape(text)}</div>"


def _filter_error(exc: NbtrackError) -> dict[str, Any]:
    """The parts of a bad filter's error the page needs to mark the token."""
    if not isinstance(exc, InvalidFilterError) or exc.span is None or exc.text is None:
        return {}
    return {
        "message": str(exc).split("\n", 1)[0],
        "text": exc.text,
        "start": exc.span[0],
        "end": exc.span[1],
    }


def _catalog_fingerprint(root: Path) -> tuple[Any, ...]:
    """Changes whenever any process commits to the catalog (its two files change)."""
    return tuple(file_signature(root / name) for name in (SNAPSHOT_NAME, CHANGELOG_NAME))


def _sort_from(order_by: Sequence[str] | None) -> tuple[str, bool]:
    """The table's sort column from the first MLflow ``order_by`` clause."""
    if not order_by:
        return "start", True
    kind, key, ascending = search.order_clause(order_by[0])
    if kind == "attributes":
        return {"start_time": "start", "run_name": "name"}.get(key, key), not ascending
    return f"{kind}.{key}", not ascending


def _columns(runs: RunHits, first_kind: str) -> list[str]:
    """The table's columns in their stable order, from every run of its experiments."""
    keys = {kind: runs.keys(kind) for kind in (*KINDS, "tags")}
    keys["tags"] = [k for k in keys["tags"] if not k.startswith(("mlflow.", "nbtrack."))]
    kinds = [first_kind, *(k for k in KINDS if k != first_kind), "tags"]
    return [
        *FIXED_COLUMNS,
        *(f"{kind}.{key}" for kind in kinds for key in sorted(keys[kind])),
        "run_id",
    ]


def _default_visible(columns: Sequence[str]) -> list[str]:
    chosen, counts = [], {"params.": 0, "metrics.": 0, "tags.": 0}
    for column in columns:
        kind = next((k for k in counts if column.startswith(k)), None)
        if kind is None:
            chosen.append(column)
        elif counts[kind] < DEFAULT_VISIBLE_PER_KIND:
            counts[kind] += 1
            chosen.append(column)
    return chosen


def _sorted(hits: RunHits, column: str, descending: bool) -> RunHits:
    """The hits by ``column`` (stable), those without a value last either way."""
    return hits.sorted(_sort_keys(hits, column), descending)


def _check_column(column: str) -> None:
    kind, _, key = column.partition(".")
    if column not in _FIXED_SORTS and not (key and kind in ("metrics", "params", "tags")):
        raise ValueError(f"no column {column!r}")


def _sort_keys(hits: RunHits, column: str) -> np.ndarray:
    """Per hit, a float that orders ``column`` (NaN: no value, sorted last)."""
    _check_column(column)
    if column == "start":
        return hits.numbers("start_time")
    if column == "duration":
        import numpy as np

        start, end = hits.numbers("start_time"), hits.numbers("end_time")
        valid = (start != 0) & (end != 0)  # as the cell shows: no duration without both
        return np.where(valid, end - start, np.nan)
    if column in _FIXED_SORTS:
        return hits.ranks("attributes", *_FIXED_SORTS[column])
    kind, _, key = column.partition(".")
    if kind == "metrics":
        return hits.metric(key)  # NaN sorts with the runs without the metric
    return hits.ranks(kind, key, _text_key)


def _text_key(value: Any) -> tuple[int, Any] | None:
    if value is None:
        return None
    try:  # numbers by value, before any text
        return (0, float(value))
    except ValueError:
        return (1, value)


# Table columns sorted by a field's rank: (field, its sort key from the value).
_FIXED_SORTS = {
    "name": ("run_name", lambda v: (v or "").lower()),
    "status": ("status", lambda v: v),
    "run_id": ("run_id", lambda v: v),
    "start": ("start_time", None),
    "duration": ("end_time", None),
}


def _cell(row: dict[str, Any], column: str) -> str:
    if column == "name":
        return row.get("run_name", "")
    if column == "status":
        return row.get("status", "")
    if column == "start":
        return format_time(row.get("start_time"))
    if column == "duration":
        return format_duration(row)
    if column == "run_id":
        return row["run_id"][:8]
    kind, _, key = column.partition(".")
    if kind == "metrics":
        point = row.get("metrics", {}).get(key)
        return format_value(point[0]) if point else ""
    return str(row.get(kind, {}).get(key, ""))


def _display_row(row: dict[str, Any], visible: Sequence[str]) -> dict[str, Any]:
    return {
        "id": row["run_id"],
        "color": run_color(row["run_id"]),
        "cells": [_cell(row, c) for c in visible],
        "status": row.get("status", ""),
        "deleted": row.get("lifecycle_stage", "active") != "active",
        "stale": row.get("stale") or "",
    }


# -- actions ----------------------------------------------------------------------------------


def compare_selected(table: RunTable, run_ids: list[str]) -> Any:
    from nbtrack.widgets.compare import CompareRuns

    return CompareRuns(_oldest_first(table, run_ids), store=table.store)


def curves_of_selected(table: RunTable, run_ids: list[str]) -> Any:
    from nbtrack.widgets.curves import MetricCurves

    return MetricCurves(_oldest_first(table, run_ids), store=table.store)


def source_of_selected(table: RunTable, run_ids: list[str]) -> tuple[str, str]:
    from nbtrack.widgets.compare import cell_source

    store = table.store
    row = store.get_run(run_ids[0])
    source = cell_source(store, row["run_id"])
    cell = row.get("cell") or {}
    where = f"In[{cell['execution_count']}]" if cell.get("execution_count") else "cell"
    title = f"{row.get('run_name', '')}: {where}" + (
        f" of {cell['notebook']}" if cell.get("notebook") else ""
    )
    return title, source if source is not None else "(no cell recorded: logged from code)"


def delete_selected(table: RunTable, run_ids: list[str]) -> str:
    for run_id in run_ids:
        table.store.set_lifecycle(run_id, "deleted")
    table.selected = []
    table.refresh()
    return f"Deleted {len(run_ids)} run{'s' * (len(run_ids) != 1)} (restore them from 'deleted')."


def restore_selected(table: RunTable, run_ids: list[str]) -> str:
    for run_id in run_ids:
        table.store.set_lifecycle(run_id, "active")
    table.selected = []
    table.refresh()
    return f"Restored {len(run_ids)} run{'s' * (len(run_ids) != 1)}."


def _oldest_first(table: RunTable, run_ids: list[str]) -> list[str]:
    store = table.store
    return sorted(run_ids, key=lambda run_id: store.get_run(run_id).get("start_time", 0))
