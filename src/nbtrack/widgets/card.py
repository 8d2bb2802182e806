"""The run card under each ``%%track`` cell: status, duration, params, metrics, actions,
and the run's live curves when it logs metrics at steps.

The magics call :func:`watch_run` when a tracked cell starts and :func:`show_run_card`
when it ends. In between, the watcher thread looks (a few times a second, O(1) each) for
a point logged at a step past 0; on the first one it displays the card, RUNNING, with a
live :class:`~nbtrack.widgets.curves.MetricCurves`. At the cell's end that same output is
updated to the final card, so a cell has exactly one card either way.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import ipywidgets
import traitlets
from IPython.display import display, update_display
from ipywidgets import widget_serialization

from nbtrack.colors import run_color
from nbtrack.errors import NotFoundError
from nbtrack.render import (
    StaticView,
    format_duration,
    format_value,
    latest_metrics,
    run_card_html,
    run_card_text,
)
from nbtrack.store.records import POINT_WIDTH
from nbtrack.tracking import fluent
from nbtrack.tracking.session import open_stores
from nbtrack.widgets import frontend, live
from nbtrack.widgets.curves import MetricCurves, stepped
from nbtrack.widgets.panel import Action, Panel

if TYPE_CHECKING:
    from nbtrack.store import Store

MAX_ITEMS = 12

# What the card's buttons do; other features add theirs (e.g. a Register action).
CARD_ACTIONS: dict[str, Action] = {
    "compare_previous": Action(
        "Compare with previous", "nbtrack.widgets.card:compare_with_previous", 1, 1
    ),
    "curves": Action("Show curves", "nbtrack.widgets.card:toggle_curves", 1, 1),
    "register": Action("Register", "nbtrack.widgets.register:register_run", 1, 1),
}


class RunCard(Panel):
    """One run at a glance, with buttons; ``curves`` holds its metric curves, if any.

    With ``details`` (see :mod:`nbtrack.widgets.details`) it is the run in full, as
    ``%track show`` displays it, and ``static`` (render.run_details) its static forms.
    """

    module_name = "card.js"
    run = traitlets.Dict().tag(sync=True)  # display strings, see card_fields()
    details = traitlets.Dict().tag(sync=True)  # empty for the one-line card
    actions = traitlets.List(traitlets.Dict()).tag(sync=True)
    curves = traitlets.Instance(MetricCurves, allow_none=True).tag(
        sync=True, **widget_serialization
    )
    show_curves = traitlets.Bool(True).tag(sync=True)
    detail = traitlets.Instance(ipywidgets.Widget, allow_none=True).tag(
        sync=True, **widget_serialization
    )

    action_table = CARD_ACTIONS

    def __init__(
        self,
        row: dict[str, Any],
        curves: MetricCurves | None = None,
        details: dict[str, Any] | None = None,
        static: StaticView | None = None,
        store: Store | None = None,
    ) -> None:
        self._row = row
        self._static = static  # the static forms of the details
        self.store = store or fluent.current_store()  # its actions act on the run's store
        actions = _describe(self.action_table, curves is not None)
        super().__init__(
            run=card_fields(row), curves=curves, actions=actions, details=details or {}
        )

    @property
    def run_id(self) -> str:
        return self._row["run_id"]

    def set_row(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._row = row
            self.run = card_fields(row)

    def describe_actions(self) -> list[dict[str, Any]]:
        return _describe(self.action_table, self.curves is not None and self.show_curves)

    @traitlets.observe("curves", "show_curves")
    def _relabel(self, _change: Any) -> None:
        self.actions = self.describe_actions()

    def show_result(self, result: Any) -> None:
        if isinstance(result, ipywidgets.Widget):
            self.detail = result
        else:
            super().show_result(result)

    def handle_intent(self, kind: str, content: dict[str, Any]) -> None:
        if kind == "close_detail":
            self.detail = None
        else:
            super().handle_intent(kind, content)

    def static_bundle(self, charts: bool = True) -> dict[str, Any]:
        if self._static is not None:
            return {"text/html": self._static.html, "text/plain": self._static.text}
        markup, text = run_card_html(self._row), run_card_text(self._row)
        bundle: dict[str, Any] = {"text/html": markup, "text/plain": text}
        if self.curves is not None:
            curves = self.curves.static_bundle(charts=charts)
            bundle["text/html"] = markup + curves["text/html"]
            bundle["text/plain"] = text + "\n" + curves["text/plain"]
            if "image/png" in curves:
                bundle["image/png"] = curves["image/png"]
        return bundle


def _describe(actions: dict[str, Action], curves_shown: bool) -> list[dict[str, Any]]:
    described = [action.describe(name) for name, action in actions.items()]
    for action in described:  # Python owns the toggle's state, so it names the button
        if action["name"] == "curves" and curves_shown:
            action["label"] = "Hide curves"
    return described


# -- drawn by the page ------------------------------------------------------------------------

CARD_MIME = "application/vnd.nbtrack.run-card+json"
CARD_TARGET = "nbtrack.card"  # the page asks here for a plain card's widget


def plain_card(row: dict[str, Any], store: Store) -> dict[str, Any]:
    """A one-line card as a plain output: the card's state, for the page to draw with
    card.js (see :mod:`.frontend`), beside the static forms every other reader shows."""
    card = {"run_id": row["run_id"], "store": _store_key(store), "state": card_state(row)}
    return {CARD_MIME: card, "text/html": run_card_html(row), "text/plain": run_card_text(row)}


def serve_cards() -> None:
    """Answer the page's requests for a plain card's widget (a button was pressed)."""
    from comm import get_comm_manager

    get_comm_manager().register_target(CARD_TARGET, _open_card)


def _open_card(opened: Any, message: dict[str, Any]) -> None:
    """Make the widget of the plain card the page names, do what was pressed on it, and
    answer with the widget's model id, or with why there is none."""
    data = message["content"]["data"]
    try:
        store = _store_keyed(str(data["store"]))
        card = RunCard(store.get_run(str(data["run_id"])), store=store)
    except Exception as error:  # shown on the plain card; nothing changed
        opened.send({"error": f"{type(error).__name__}: {error}"})
    else:
        if isinstance(data.get("intent"), dict):
            card.apply_intent(data["intent"])  # its errors show on the widget
        opened.send({"model_id": card.model_id})
    opened.close()


def _store_key(store: Store) -> str:
    """Names a store in a notebook's output without its path, which is no one's business
    once the notebook is shared."""
    return hashlib.sha256(str(store.root).encode()).hexdigest()[:16]


def _store_keyed(key: str) -> Store:
    for store in (fluent.current_store(), *open_stores()):
        if _store_key(store) == key:
            return store
    raise NotFoundError(
        "This card's run is in a store this kernel has not opened: run the cell that "
        "chose it (%track store ...), then press again."
    )


def card_state(row: dict[str, Any]) -> dict[str, Any]:
    """The synced state of a one-line card without curves, as :class:`RunCard` holds it."""
    return {
        "run": card_fields(row),
        "details": {},
        "actions": _describe(CARD_ACTIONS, curves_shown=False),
        "curves": None,
        "show_curves": True,
        "detail": None,
        "message": "",
        "error": "",
    }


def card_fields(row: dict[str, Any]) -> dict[str, Any]:
    """What the card shows, as display strings (the page formats nothing itself, but the
    time a RUNNING run has taken, as it ticks)."""
    params = list(row.get("params", {}).items())
    metrics = [(k, format_value(v)) for k, v in latest_metrics(row).items()]
    now = int(time.time() * 1000)
    return {
        "run_id": row["run_id"],
        "name": row.get("run_name", ""),
        "color": run_color(row["run_id"]),
        "status": row.get("status", ""),
        "duration": format_duration(row, now),
        # A RUNNING card ticks: the page adds its own clock's progress since ``now``.
        "start_time": row.get("start_time"),
        "now": now,
        "params": [list(p) for p in params[:MAX_ITEMS]],
        "more_params": max(0, len(params) - MAX_ITEMS),
        "metrics": [list(m) for m in metrics[:MAX_ITEMS]],
        "more_metrics": max(0, len(metrics) - MAX_ITEMS),
        "error": (row.get("error") or "")[:300],
        "stale": row.get("stale") or "",
    }


# -- actions --------------------------------------------------------------------------------


def compare_with_previous(card: RunCard, run_ids: list[str]) -> Any:
    """Compare the run with the one before it from the same cell (else in the experiment)."""
    from nbtrack.widgets.compare import CompareRuns

    row = card.store.get_run(run_ids[0])
    previous = previous_run(card.store, row)
    if previous is None:
        return "No earlier run in this experiment to compare with."
    return CompareRuns([previous["run_id"], row["run_id"]], store=card.store)


def previous_run(store: Store, row: dict[str, Any]) -> dict[str, Any] | None:
    rows = [
        r
        for r in store.runs()
        if r["experiment_id"] == row["experiment_id"]
        and r.get("lifecycle_stage", "active") == "active"
        and r.get("start_time", 0) < row.get("start_time", 0)
        and r["run_id"] != row["run_id"]
    ]
    cell_id = (row.get("cell") or {}).get("cell_id")
    same_cell = [r for r in rows if cell_id and (r.get("cell") or {}).get("cell_id") == cell_id]
    candidates = same_cell or rows
    return max(candidates, key=lambda r: r.get("start_time", 0)) if candidates else None


def toggle_curves(card: RunCard, run_ids: list[str]) -> None:
    if card.curves is None:
        card.curves = MetricCurves(run_ids, store=card.store)
        card.show_curves = True
    else:
        card.show_curves = not card.show_curves


# -- under a %%track cell ---------------------------------------------------------------------


class _CellWatch:
    """Waits, in the watcher thread, for the cell's run to log a metric at a step > 0."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.store = fluent.current_store()
        self.lock = threading.Lock()
        self.card: RunCard | None = None
        self.display_id: str | None = None
        self.done = False

    def tick(self) -> bool:
        with self.lock:
            if self.done:
                return False
            writer = self.store.writer(self.run_id)
            if not _logs_steps(self.store, self.run_id, writer):
                return writer is not None  # the cell's end takes over once the run closes
            row = self.store.get_run(self.run_id)
            curves = MetricCurves([self.run_id], store=self.store)
            self.card = RunCard(row, curves, store=self.store)
            self.display_id = uuid.uuid4().hex
            # No PNG yet: rendering one holds the GIL for ~0.1 s. The cell's end adds it.
            display(self.card.bundle(charts=False), raw=True, display_id=self.display_id)
            return False  # the curves keep themselves current from here on


def _logs_steps(store: Any, run_id: str, writer: Any) -> bool:
    if writer is not None:
        try:  # O(1): the step of the last buffered point
            if writer.points[-POINT_WIDTH + 2] > 0:
                return True
        except (IndexError, TypeError):
            pass
    return stepped({"metrics": store.catalog.value("runs", run_id, "metrics") or {}})


_watches: dict[str, _CellWatch] = {}


def watch_run(run_id: str) -> None:
    """Called as a ``%%track`` cell starts: show its card early if it logs steps."""
    watch = _watches[run_id] = _CellWatch(run_id)
    live.schedule(watch, min_interval=live.MIN_INTERVAL)


def show_run_card(row: dict[str, Any]) -> RunCard | None:
    """Called as a ``%%track`` cell ends: display its final card (or update the live one).
    None when the page draws the card without a widget (see :mod:`.frontend`)."""
    watch = _watches.pop(row["run_id"], None)
    card = display_id = None
    if watch is not None:
        live.cancel(watch)
        with watch.lock:
            watch.done = True
            card, display_id = watch.card, watch.display_id
    if card is not None:
        card.set_row(row)
        if card.curves is not None:
            card.curves.finish()
        update_display(card.bundle(), raw=True, display_id=display_id)
        return card
    curves = MetricCurves([row["run_id"]]) if stepped(row) else None
    if curves is None and frontend.page_draws(CARD_MIME):
        display(plain_card(row, fluent.current_store()), raw=True)
        return None
    card = RunCard(row, curves)
    display(card.bundle(), raw=True)
    return card
