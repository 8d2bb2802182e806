"""The request handlers of the REST API (the table of routes is in routes.py).

Every handler is a Jupyter ``APIHandler``: ``@authenticated`` refuses a request without
the server's token or login cookie, and the server checks the XSRF token of every
request that is not a GET. Answers are JSON; nbtrack's own errors map to statuses
(:func:`status_of`) with their message.
"""

from __future__ import annotations

import math
import mimetypes
import socket
from dataclasses import dataclass
from typing import Any

import orjson
from jupyter_server.base.handlers import APIHandler
from tornado import web

from nbtrack.entities import ViewType
from nbtrack.errors import InvalidFilterError, InvalidParameterError, NbtrackError, NotFoundError
from nbtrack.server.feed import ChangeFeed, run_counts
from nbtrack.server.panels import PanelHub
from nbtrack.server.settings import StoreHandle
from nbtrack.store import Store

DEFAULT_PAGE = 100
MAX_PAGE = 50_000  # as MLflow's search_runs
MAX_WAIT = 60.0  # seconds a long-poll may hold a request
CHUNK = 1 << 20
VIEWS = {
    "active": ViewType.ACTIVE_ONLY,
    "active_only": ViewType.ACTIVE_ONLY,
    "deleted": ViewType.DELETED_ONLY,
    "deleted_only": ViewType.DELETED_ONLY,
    "all": ViewType.ALL,
}
# An artifact is served as what it is, but never runs as a page of this server: a
# sandboxed document has no scripts and an origin of its own.
ARTIFACT_POLICY = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


@dataclass
class Context:
    """What every handler shares: the store, the change feed, the panels, the kernels."""

    handle: StoreHandle
    feed: ChangeFeed
    hub: PanelHub
    kernels: Any


def status_of(error: NbtrackError) -> int:
    from nbtrack.registry.gates import TransitionRefused

    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, TransitionRefused):
        return 409
    if isinstance(error, InvalidParameterError):
        return 400
    return 500


class Handler(APIHandler):
    """JSON in and out; nbtrack's errors as statuses with their message."""

    @property
    def ctx(self) -> Context:
        return self.settings["nbtrack"]

    @property
    def store(self) -> Store:
        return self.ctx.handle.get()

    def reply(self, body: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))

    def body(self) -> dict[str, Any]:
        try:
            found = orjson.loads(self.request.body or b"{}")
        except orjson.JSONDecodeError as error:
            raise InvalidParameterError(f"The request body is not JSON: {error}.") from error
        if not isinstance(found, dict):
            raise InvalidParameterError("The request body must be a JSON object.")
        return found

    def number(self, name: str, default: float, low: float, high: float) -> float:
        text = self.get_argument(name, None)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            raise InvalidParameterError(f"{name}={text!r} is not a number.") from None
        if not low <= value <= high:
            raise InvalidParameterError(f"{name}={text!r} must be between {low:g} and {high:g}.")
        return value

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        if not isinstance(error, NbtrackError):
            return super().write_error(status_code, **kwargs)
        self.set_status(status_of(error))
        body: dict[str, Any] = {"message": str(error), "error_code": error.error_code}
        if isinstance(error, InvalidFilterError) and error.span is not None:
            body.update(text=error.text, span=list(error.span))
        checks = getattr(error, "checks", None)
        if checks is not None:
            body["checks"] = [c._asdict() for c in checks]
        self.reply(body)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, NbtrackError):  # the caller's mistake, answered in the reply
            self.log.info("nbtrack: %s %s: %s", self.request.method, self.request.path, value)
        else:
            super().log_exception(typ, value, tb)


# -- the store ---------------------------------------------------------------------------------


class StoreInfo(Handler):
    @web.authenticated
    def get(self) -> None:
        handle = self.ctx.handle
        self.reply({"path": str(handle.path), "exists": handle.existing() is not None})


class Experiments(Handler):
    @web.authenticated
    def get(self) -> None:
        from nbtrack.tracking.runs import visible

        view = _view(self.get_argument("view", "active"))
        store = self.ctx.handle.existing()
        if store is None:
            return self.reply({"experiments": []})
        counts = run_counts(store.runs())
        found = []
        for experiment in store.experiments():
            if visible(experiment["lifecycle_stage"], view):
                runs, running = counts.get(experiment["experiment_id"], (0, 0))
                found.append({**experiment, "runs": runs, "running": running})
        self.reply({"experiments": found})


class Runs(Handler):
    @web.authenticated
    def get(self) -> None:
        from nbtrack.entities import run_from_row
        from nbtrack.tracking.paging import page
        from nbtrack.tracking.runs import search_hits

        ids = [i for part in self.get_arguments("experiment_ids") for i in part.split(",") if i]
        size = int(self.number("max_results", DEFAULT_PAGE, 1, MAX_PAGE))
        hits = search_hits(
            self.store,
            set(ids) if ids else None,
            self.get_argument("filter", ""),
            _view(self.get_argument("view", "active")),
            None,
            self.get_arguments("order_by"),
        )
        found = page(hits, size, self.get_argument("page_token", None))
        runs = [run_from_row(row).to_dictionary() for row in found]
        self.reply({"runs": runs, "next_page_token": found.token, "total": len(hits)})


class OneRun(Handler):
    @web.authenticated
    def get(self, run_id: str) -> None:
        from nbtrack.render import run_sections
        from nbtrack.tracking.runs import get_run

        store = self.store
        run = get_run(store, run_id)
        row = store.get_run(run_id)
        records = store.records(run_id)
        latest = {r["path"]: r for r in records if r["op"] == "artifact"}
        cell = next((r for r in reversed(records) if r["op"] == "cell"), None)
        self.reply(
            {
                "run": run.to_dictionary(),
                "stale": row.get("stale") or "",
                "error": row.get("error") or "",
                "artifacts": [
                    {"path": p, "size": r.get("size", 0), "sha256": r.get("sha256", "")}
                    for p, r in sorted(latest.items())
                ],
                "sections": [list(s) for s in run_sections(row, records)],
                "cell": _cell_fields(self.ctx.handle, cell),
            }
        )


class MetricHistory(Handler):
    @web.authenticated
    def get(self, run_id: str, key: str) -> None:
        from nbtrack.widgets.series import MAX_POINTS, downsample, in_step_order

        limit = int(self.number("max_points", MAX_POINTS, 2, 1_000_000))
        store = self.store
        if key not in store.get_run(run_id).get("metrics", {}):
            raise NotFoundError(f"Run {run_id} logged no metric {key!r}.")
        steps, values, times = in_step_order(store.metric_history(run_id, key))
        keep = downsample(values, limit)
        self.reply(
            {
                "key": key,
                "points": len(values),
                "steps": steps[keep].tolist(),
                "values": [v if math.isfinite(v) else None for v in values[keep].tolist()],
                "timestamps": times[keep].tolist(),
            }
        )


class Artifact(Handler):
    """One artifact's bytes. The path is checked as logging checks it (relative, no '..')
    and must still be inside the run's artifact folder once symlinks are resolved."""

    @web.authenticated
    async def get(self, run_id: str, path: str) -> None:
        from nbtrack.store.artifacts import destination, relative_path

        store = self.store
        store.get_run(run_id)
        folder = store.artifact_dir(run_id)
        target = destination(folder, relative_path(path, "artifact path"))
        if not target.is_file():
            raise NotFoundError(f"Run {run_id} has no artifact file {path!r}.")
        kind, encoding = mimetypes.guess_type(target.name)
        if kind is None or encoding is not None:
            kind = "application/octet-stream"
        elif kind.startswith("text/") or kind in ("application/json", "image/svg+xml"):
            kind += "; charset=utf-8"
        self.set_header("Content-Type", kind)
        self.set_header("Content-Security-Policy", ARTIFACT_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Length", str(target.stat().st_size))
        with open(target, "rb") as handle:
            while chunk := handle.read(CHUNK):
                self.write(chunk)
                await self.flush()
        self.finish()


class CellMatch(Handler):
    """Whether a cell's text (as the notebook has it now) is still the recorded one."""

    @web.authenticated
    def post(self, run_id: str) -> None:
        from nbtrack.capture.redact import redact_source

        source = self.body().get("source")
        if not isinstance(source, str):
            raise InvalidParameterError("Send the cell's text as {'source': '...'}.")
        cell = next(iter(reversed(self.store.records(run_id, "cell"))), None)
        if cell is None:
            return self.reply({"recorded": False, "matches": False})
        recorded = cell["source"].rstrip()
        candidates = [source, _without_track_line(source)]
        matches = any(redact_source(text).rstrip() == recorded for text in candidates)
        self.reply({"recorded": True, "matches": matches})


class KernelRun(Handler):
    """The run a kernel is logging to now: the newest RUNNING run its process writes."""

    @web.authenticated
    def get(self, kernel_id: str) -> None:
        try:
            kernel = self.ctx.kernels.get_kernel(kernel_id)
        except KeyError:
            raise NotFoundError(f"No kernel {kernel_id!r} on this server.") from None
        pid = getattr(getattr(kernel, "provisioner", None), "pid", None)
        store = self.ctx.handle.existing()
        if pid is None or store is None:
            return self.reply({"run": None})
        host = socket.gethostname()
        running = [
            r
            for r in store.runs()
            if r.get("status") == "RUNNING"
            and (r.get("process") or {}).get("pid") == pid
            and (r.get("process") or {}).get("host") == host
        ]
        if not running:
            return self.reply({"run": None})
        row = max(running, key=lambda r: r.get("start_time") or 0)
        fields = ("run_id", "run_name", "status", "start_time", "experiment_id")
        self.reply({"run": {f: row.get(f) for f in fields}})


# -- the registry --------------------------------------------------------------------------------


class Models(Handler):
    @web.authenticated
    def get(self) -> None:
        from nbtrack.registry import queries

        store = self.ctx.handle.existing()
        if store is None:
            return self.reply({"models": []})
        with queries.using_store(store):
            models = [_plain(m) for m in queries.search_registered_models()]
        self.reply({"models": models})


class Model(Handler):
    @web.authenticated
    def get(self, name: str) -> None:
        from nbtrack.registry import queries
        from nbtrack.registry.history import event_rows

        store = self.store
        with queries.using_store(store):
            model = _plain(queries.get_registered_model(name))
            versions = [
                _plain(v) for v in queries.search_model_versions(f"name = '{_quoted(name)}'")
            ]
        with store.registry.reading() as state:
            events = event_rows(state, name)
        self.reply({"model": model, "versions": versions, "events": events})


class CheckMove(Handler):
    """A move's dry run: each of the policy's checks with its actual value; nothing moves."""

    @web.authenticated
    def post(self, name: str, version: str) -> None:
        from nbtrack.registry import queries

        body = self.body()
        with queries.using_store(self.store):
            if body.get("alias"):
                checks = queries.check_alias_move(name, version, str(body["alias"]))
            else:
                checks = queries.check_transition(name, version, str(body.get("stage", "")))
        self.reply({"checks": [c._asdict() for c in checks]})


class MoveStage(Handler):
    @web.authenticated
    def post(self, name: str, version: str) -> None:
        from nbtrack.registry import queries, stages

        body = self.body()
        with queries.using_store(self.store):
            moved = stages.promote(
                name,
                version,
                str(body.get("stage", "")),
                reason=body.get("reason") or None,
                force=bool(body.get("force")),
            )
        self.reply({"version": _plain(moved)})


class MoveAlias(Handler):
    @web.authenticated
    def post(self, name: str, version: str) -> None:
        from nbtrack.registry import aliases, queries

        body = self.body()
        with queries.using_store(self.store):
            moved = aliases.set_alias(
                name,
                str(body.get("alias", "")),
                version,
                reason=body.get("reason") or None,
                force=bool(body.get("force")),
            )
        self.reply({"version": _plain(moved)})


# -- changes and panels -------------------------------------------------------------------------


class Changes(Handler):
    """The change feed, as a long-poll: the events after ``after`` (waiting for one up to
    ``timeout`` seconds). ``after=-1`` (the default) answers at once with the current
    number; ``reset`` says events were dropped and the page should reload everything."""

    @web.authenticated
    async def get(self) -> None:
        after = int(self.number("after", -1, -1, 2**53))
        timeout = self.number("timeout", 25, 0, MAX_WAIT)
        self.reply(await self.ctx.feed.wait(after, timeout))


class Panels(Handler):
    @web.authenticated
    async def get(self) -> None:
        """The page's panel messages after ``after``, waiting up to ``timeout`` s."""
        client = self.get_argument("client", "")
        after = int(self.number("after", 0, 0, 2**53))
        timeout = self.number("timeout", 25, 0, MAX_WAIT)
        self.reply(await self.ctx.hub.messages(client, after, timeout))

    @web.authenticated
    def post(self) -> None:
        """Make a panel: ``{client, kind, args}``; its state follows as messages."""
        body = self.body()
        args = body.get("args") or {}
        if not isinstance(args, dict):
            raise InvalidParameterError("A panel's args must be a JSON object.")
        model_id = self.ctx.hub.create(str(body.get("client", "")), str(body.get("kind")), args)
        self.reply({"model_id": model_id})


class OnePanel(Handler):
    @web.authenticated
    def post(self, model_id: str) -> None:
        """A message for the panel: ``{client, data: {method: update|custom, ...}}``."""
        body = self.body()
        data = body.get("data")
        if not isinstance(data, dict):
            raise InvalidParameterError("Send {'client': ..., 'data': {'method': ...}}.")
        self.ctx.hub.deliver(str(body.get("client", "")), model_id, data)
        self.reply({})

    @web.authenticated
    def delete(self, model_id: str) -> None:
        self.ctx.hub.close(self.get_argument("client", ""), model_id)
        self.reply({})


# -- helpers -------------------------------------------------------------------------------------


def _view(text: str) -> int:
    view = VIEWS.get(text.lower())
    if view is None:
        raise InvalidParameterError(f"view={text!r}: use active, deleted or all.")
    return view


def _cell_fields(handle: StoreHandle, cell: dict[str, Any] | None) -> dict[str, Any] | None:
    """The cell that made the run: where it is (relative to the server's root, as the
    page opens notebooks) and what it was."""
    if cell is None:
        return None
    notebook = cell.get("notebook")
    return {
        "notebook": handle.notebook_path(notebook),
        "recorded_notebook": notebook,
        "cell_id": cell.get("cell_id"),
        "execution_count": cell.get("execution_count"),
        "source": cell.get("source", ""),
    }


def _without_track_line(source: str) -> str:
    """A ``%%track`` cell's body: the magic records the cell without its first line."""
    first, _, rest = source.partition("\n")
    return rest if first.lstrip().startswith("%%track") else source


def _plain(entity: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dict(entity).items()}


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")
