"""The inline panels, served to JupyterLab: the same Python panels, driven over HTTP.

The sidebar's run table, the run view, compare and the registry view are the notebook's
panels (:mod:`nbtrack.widgets`), made here in the server with the store it serves, and
drawn in the page by the same ES modules. Only the transport differs: a panel is an
ipywidgets model whose comm, instead of a kernel's, is a :class:`PanelComm` that queues
what the panel sends (``comm_open`` with its state, ``update``\\ s, ``comm_close``) for the
page that made it; the page fetches them by long-poll and posts back what the user does
(trait changes and intents), which reach the panel as a kernel's comm messages would.

Each page is a *client* (a random id it makes). A panel made for a client, and every
panel made while handling its messages (a compare panel an action opens, a chart inside
it), belongs to it. A client that has not asked for messages for :data:`CLIENT_TTL`
seconds is gone, and its panels are closed.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

import comm
from comm.base_comm import BaseComm

from nbtrack.errors import InvalidParameterError, NotFoundError
from nbtrack.server.feed import wait_for_wake
from nbtrack.server.settings import StoreHandle

CLIENT_TTL = 120.0  # seconds without a poll after which a page's panels are closed
# Constant parts of a panel's state the page has already (its own copy of each module).
# A page draws panels with the extension's own copy of their modules: it needs neither a
# panel's module nor the SharedModule that carries it in a kernel (widgets/panel.py).
UNSENT = frozenset({"_esm", "_css", "_module"})

_client: contextvars.ContextVar[str | None] = contextvars.ContextVar("nbtrack_client", default=None)


class PanelComm(BaseComm):
    """A widget's comm whose messages go to the page (client) that made the widget."""

    def __init__(self, hub: PanelHub, **kwargs: Any) -> None:
        self.hub = hub
        self.client = _client.get()
        self.widget: Any = None  # the widget on this comm, once it listens to it
        super().__init__(**kwargs)

    def on_msg(self, callback: Callable[[dict[str, Any]], None] | None) -> None:
        super().on_msg(callback)
        self.widget = getattr(callback, "__self__", None)  # ipywidgets passes a bound method

    def publish_msg(
        self,
        msg_type: str,
        data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        buffers: list | None = None,
        **keys: Any,
    ) -> None:
        self.hub.publish(self, msg_type, data or {}, buffers or [])


class _Client:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.seq = 0
        self.seen = time.monotonic()
        self.comms: dict[str, PanelComm] = {}
        self.waiters: set[asyncio.Future] = set()


class PanelHub:
    """Every page's panels and the messages waiting for it."""

    def __init__(self, handle: StoreHandle) -> None:
        self.handle = handle
        self._clients: dict[str, _Client] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.kinds: dict[str, Callable[..., Any]] = {
            "table": self._table,
            "run": self._run,
            "curves": self._curves,
            "compare": self._compare,
            "registry": self._registry,
        }

    def install(self) -> None:
        """Make widgets created in this process talk through PanelComms (the ``comm``
        package's documented seam; a server process has no kernel comms of its own)."""
        comm.create_comm = lambda **kwargs: PanelComm(self, **kwargs)

    # -- the page's requests -----------------------------------------------------------------

    def create(self, client: str, kind: str, args: dict[str, Any]) -> str:
        """Make a panel of ``kind`` for ``client``; return its model id."""
        make = self.kinds.get(kind)
        if make is None:
            raise InvalidParameterError(f"No panel kind {kind!r}; use one of {sorted(self.kinds)}.")
        self._remember_loop()
        token = _client.set(self._touch(client))
        try:
            widget = make(self.handle.get(), **args)
        finally:
            _client.reset(token)
        return widget.model_id

    def deliver(self, client: str, model_id: str, data: dict[str, Any]) -> None:
        """A message from the page to one of its panels: ``{"method": "update", "state"}``
        (the user changed a trait) or ``{"method": "custom", "content"}`` (an intent)."""
        target = self._comm(client, model_id)
        if data.get("method") not in ("update", "custom"):
            raise InvalidParameterError("A panel message's method is 'update' or 'custom'.")
        self._remember_loop()
        token = _client.set(client)
        try:
            target.handle_msg({"content": {"data": data}, "buffers": []})
        finally:
            _client.reset(token)

    def close(self, client: str, model_id: str) -> None:
        _close(self._comm(client, model_id))

    async def messages(self, client: str, after: int, timeout: float) -> dict[str, Any]:
        """The client's messages numbered after ``after``, waiting up to ``timeout`` s."""
        self._remember_loop()
        state = self._clients[self._touch(client)]
        self._forget_idle()
        if not self._pending(state, after):
            await wait_for_wake(state.waiters, timeout)
        state.seen = time.monotonic()
        with self._lock:
            state.messages = [m for m in state.messages if m["seq"] > after]
            return {"seq": state.seq, "messages": list(state.messages)}

    # -- what panels send ----------------------------------------------------------------------

    def publish(self, sender: PanelComm, msg_type: str, data: dict, buffers: list) -> None:
        """Queue a message of ``sender``'s widget for its page (from any thread)."""
        state = self._clients.get(sender.client or "")
        if state is None:
            return
        if msg_type == "comm_open":
            from nbtrack.widgets.panel import is_shared_module

            if is_shared_module(data.get("state") or {}):
                return  # sent to a page only once a panel there names it: _share_runtime
            state.comms[sender.comm_id] = sender
            self._share_runtime(state, data.get("state") or {})
        elif msg_type == "comm_close":
            state.comms.pop(sender.comm_id, None)
        message = {
            "comm_id": sender.comm_id,
            "msg_type": msg_type,
            "data": _without_constants(data),
            "buffers": [base64.b64encode(bytes(b)).decode("ascii") for b in buffers],
        }
        with self._lock:
            state.seq += 1
            message["seq"] = state.seq
            state.messages.append(message)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(_wake, state)

    def _share_runtime(self, state: _Client, opened: dict[str, Any]) -> None:
        """Vega ships once per page (one SharedModule per server, see widgets/panel.py):
        send it to a page with its first chart."""
        ref = opened.get("runtime")
        if not isinstance(ref, str):
            return
        from nbtrack.widgets.panel import vega_runtime

        runtime = vega_runtime()
        if ref.removeprefix("IPY_MODEL_") != runtime.model_id or runtime.model_id in state.comms:
            return
        state.comms[runtime.model_id] = runtime.comm
        message = {
            "comm_id": runtime.model_id,
            "msg_type": "comm_open",
            "data": {"state": _without_constants({"state": runtime.get_state()})["state"]},
            "buffers": [],
        }
        with self._lock:
            state.seq += 1
            message["seq"] = state.seq
            state.messages.append(message)

    def tick_all(self, _event: dict[str, Any]) -> None:
        """A change in the store: every table and registry panel looks again at once (the
        feed, not the kernel-side watcher, drives them here; see :meth:`_fed`)."""
        with self._lock:
            comms = [c for state in self._clients.values() for c in state.comms.values()]
        for opened in comms:
            widget = opened.widget
            if _watched_by_feed(widget) and widget.comm is not None:
                widget.tick()

    @staticmethod
    def _fed(widget: Any) -> Any:
        """Stop the watcher's once-a-second ticks of ``widget``: the feed ticks it as soon
        as the store changes (and in a server, the watcher's budget would make a table
        over 10,000 runs wait seconds between looks)."""
        from nbtrack.widgets import live

        live.cancel(widget)
        return widget

    # -- the panels ----------------------------------------------------------------------------

    def _table(
        self,
        store: Any,
        experiment_ids: list[str] | None = None,
        newest: bool = False,
        metrics_shown: int | None = None,
        **options: Any,
    ) -> Any:
        """A run table; ``newest``: of the newest experiment with runs (a sidebar's first
        choice, made here to spare the page a round trip); ``metrics_shown``: only name,
        status, start and that many metrics are visible (a narrow sidebar)."""
        from nbtrack.widgets.table import RunTable

        if newest and not experiment_ids:
            experiment_ids = _newest_experiment(store)
        table = RunTable(
            str(options.get("filter", "")),
            experiment_ids=[str(i) for i in experiment_ids] if experiment_ids else None,
            search_all_experiments=not experiment_ids,
            page_size=int(options.get("page_size", 50)),
            store=store,
        )
        if metrics_shown is not None:
            metrics = [c for c in table.columns if c.startswith("metrics.")]
            table.visible = ["name", "status", "start", *metrics[: int(metrics_shown)]]
        return self._fed(table)

    def _run(self, store: Any, run_id: str = "") -> Any:
        from nbtrack.widgets.details import details_card

        return details_card(store, store.get_run(str(run_id))["run_id"])

    def _curves(self, store: Any, run_ids: list[str] | None = None) -> Any:
        from nbtrack.widgets.curves import MetricCurves

        return MetricCurves([str(r) for r in run_ids or []], store=store)

    def _compare(self, store: Any, run_ids: list[str] | None = None) -> Any:
        from nbtrack.widgets.compare import CompareRuns

        ids = sorted(
            (str(r) for r in run_ids or []),
            key=lambda r: store.get_run(r).get("start_time", 0),  # oldest first: diffs read forward
        )
        return CompareRuns(ids, store=store)

    def _registry(self, store: Any, name: str | None = None) -> Any:
        from nbtrack.widgets.registry import RegistryPanel

        return self._fed(RegistryPanel(name or None, store=store))

    # -- bookkeeping ---------------------------------------------------------------------------

    def _touch(self, client: str) -> str:
        if not client or len(client) > 64 or not client.replace("-", "").isalnum():
            raise InvalidParameterError("client must be the page's id: letters, digits, '-'.")
        with self._lock:
            state = self._clients.setdefault(client, _Client())
            state.seen = time.monotonic()
        return client

    def _comm(self, client: str, model_id: str) -> PanelComm:
        state = self._clients.get(client)
        found = state.comms.get(model_id) if state is not None else None
        if found is None:
            raise NotFoundError(f"No panel {model_id!r} open for this page; reopen the view.")
        return found

    def _pending(self, state: _Client, after: int) -> bool:
        with self._lock:
            return bool(state.messages) and state.messages[-1]["seq"] > after

    def _remember_loop(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()

    def _forget_idle(self) -> None:
        """Close the panels of pages that stopped polling (closed tabs)."""
        now = time.monotonic()
        with self._lock:
            gone = [c for c, s in self._clients.items() if now - s.seen > CLIENT_TTL]
            states = [self._clients.pop(c) for c in gone]
        for state in states:
            for opened in list(state.comms.values()):
                _close(opened)


def _newest_experiment(store: Any) -> list[str] | None:
    """The newest active experiment holding an active run, as a one-id list."""
    active = {e["experiment_id"] for e in store.experiments() if e["lifecycle_stage"] == "active"}
    with_runs = {
        r["experiment_id"] for r in store.runs() if r.get("lifecycle_stage", "active") == "active"
    }
    found = sorted(active & with_runs, key=int)
    return found[-1:] or None


def _close(opened: PanelComm) -> None:
    if opened.widget is not None:
        opened.widget.close()  # its comm too; its watcher ticks stop
    else:
        opened.close()


def _watched_by_feed(widget: Any) -> bool:
    from nbtrack.widgets.registry import RegistryPanel
    from nbtrack.widgets.table import RunTable

    return isinstance(widget, (RunTable, RegistryPanel))


def _without_constants(data: dict[str, Any]) -> dict[str, Any]:
    state = data.get("state")
    if not isinstance(state, dict) or not UNSENT.intersection(state):
        return data
    return {**data, "state": {k: v for k, v in state.items() if k not in UNSENT}}


def _wake(state: _Client) -> None:
    for waiter in list(state.waiters):
        if not waiter.done():
            waiter.set_result(None)
