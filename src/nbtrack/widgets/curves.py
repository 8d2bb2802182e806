"""MetricCurves: metric series of one or more runs against step, relative or wall time.

Python owns the state: which metrics are shown, the x axis, EMA smoothing, log y. The
page sends those choices; the kernel answers with a Vega-Lite spec and the data, each
series downsampled to at most :data:`~nbtrack.widgets.series.MAX_POINTS` points and
packed as float64 columns. While a run is RUNNING in this kernel, the watcher thread
(:mod:`nbtrack.widgets.live`) re-reads its journal and buffer and pushes new points,
throttled; ``log_metric`` does no extra work for it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import traitlets
from ipywidgets import widget_serialization

from nbtrack.colors import run_color
from nbtrack.render import format_value, text_table
from nbtrack.tracking import fluent
from nbtrack.widgets import charts, live
from nbtrack.widgets.metric_kinds import log_scale_unsuited
from nbtrack.widgets.panel import Panel, SharedModule, vega_runtime
from nbtrack.widgets.series import SeriesReader, downsample, in_step_order, smooth

if TYPE_CHECKING:
    from nbtrack.store import Store

MAX_DEFAULT_METRICS = 4
MARKERS_UP_TO = 40  # points per series below which each point gets a dot


class MetricCurves(Panel):
    """Curves of ``metrics`` (default: the stepped ones) for the runs ``run_ids``."""

    module_name = "curves.js"
    runtime = traitlets.Instance(SharedModule).tag(sync=True, **widget_serialization)
    runs = traitlets.List(traitlets.Dict()).tag(sync=True)  # {id, name, status, color}
    metrics = traitlets.List(traitlets.Unicode()).tag(sync=True)  # every key logged
    shown = traitlets.List(traitlets.Unicode()).tag(sync=True)  # keys drawn, a panel each
    x_axis = traitlets.Enum(["step", "relative", "wall"], "step").tag(sync=True)
    smoothing = traitlets.Float(0.0, min=0.0, max=0.99).tag(sync=True)
    log_y = traitlets.Bool(False).tag(sync=True)  # log y on the panels it suits
    log_skipped = traitlets.Dict(value_trait=traitlets.Unicode()).tag(sync=True)  # key -> why
    spec = traitlets.Dict().tag(sync=True)
    series = traitlets.List(traitlets.Dict()).tag(sync=True)  # {run, metric, n, offset}
    columns = traitlets.Bytes(b"").tag(sync=True)  # float64 columns of every series
    live = traitlets.Bool(False).tag(sync=True)
    summary = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        run_ids: Sequence[str],
        metrics: Sequence[str] | None = None,
        *,
        smoothing: float = 0.0,
        x_axis: str = "step",
        log_y: bool = False,
        store: Store | None = None,
        **kwargs: Any,
    ) -> None:
        if not run_ids:
            raise ValueError("MetricCurves needs at least one run.")
        store = store or fluent.current_store()  # the panel stays on it, whatever comes later
        self._store = store
        self._run_ids = list(dict.fromkeys(run_ids))
        self._rows = {run_id: store.get_run(run_id) for run_id in self._run_ids}
        self._readers = {run_id: SeriesReader(store, run_id) for run_id in self._run_ids}
        self._requested = list(metrics or [])
        self._drawn: dict[str, Any] = {}  # what the last payload drew, for the static forms
        self._png: tuple[Any, bytes] | None = None
        self._quiet = False  # set while refresh() changes options itself
        self._user_chose = bool(metrics)  # once set, refresh() leaves ``shown`` alone
        labels = run_labels(list(self._rows.values()))
        runs = [
            {"id": run_id, "name": labels[run_id], "color": run_color(run_id)}
            for run_id in self._run_ids
        ]
        super().__init__(
            runtime=vega_runtime(),
            runs=runs,
            smoothing=smoothing,
            x_axis=x_axis,
            log_y=log_y,
            **kwargs,
        )
        self.observe(self._options_changed, names=["shown", "x_axis", "smoothing", "log_y"])
        self.refresh(force=True)
        if self.live:
            live.schedule(self)

    # -- reading ----------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> bool:
        """Read new points (and statuses); redraw if anything changed. True if it did."""
        with self._lock:
            changed = [reader.update() for reader in self._readers.values()]
            statuses = self._statuses()
            if not (force or any(changed) or statuses != [r["status"] for r in self.runs]):
                return False
            keys = sorted({k for reader in self._readers.values() for k in reader.metric_keys()})
            with self.hold_sync():
                self.runs = [{**r, "status": s} for r, s in zip(self.runs, statuses, strict=True)]
                self.live = "RUNNING" in statuses
                if keys != self.metrics:
                    self.metrics = keys
                if force or not self._user_chose:  # the default follows what runs log
                    self._quiet = True
                    try:
                        self._choose_default_metrics(keys)
                    finally:
                        self._quiet = False
                self._draw()
            return True

    def tick(self) -> bool:
        """The watcher's call while a run is live; False once no run is RUNNING."""
        if self.comm is None:  # closed
            return False
        self.refresh()
        return self.live

    def finish(self) -> None:
        """Read everything a run wrote before it ended (its cell is done)."""
        live.cancel(self)
        self.refresh()

    def _statuses(self) -> list[str]:
        catalog = self._store.catalog
        return [catalog.value("runs", run_id, "status", "") for run_id in self._run_ids]

    def _choose_default_metrics(self, keys: list[str]) -> None:
        requested = [k for k in self._requested if k in keys] or self._requested
        if requested:
            shown = requested
        else:
            stepped = [k for k in keys if self._point_count(k) > 1]
            shown = (stepped or keys)[:MAX_DEFAULT_METRICS]
        if shown != self.shown:
            self.shown = shown

    def _point_count(self, key: str) -> int:
        return max(len(reader.columns(key)[0]) for reader in self._readers.values())

    # -- drawing ----------------------------------------------------------------------------

    def _options_changed(self, change: Any) -> None:
        if self._quiet:
            return
        if change["name"] == "shown":
            self._user_chose = True
        with self._lock:
            self._draw()

    def _draw(self) -> None:
        """Compute the spec and the packed series for the current options."""
        shown = [k for k in self.shown if k in self.metrics] or list(self.shown)
        drawing = _Drawing(self.smoothing, self.log_y)
        for run in self.runs:
            start = self._rows[run["id"]].get("start_time") or 0
            for key in shown:
                drawing.add(run["name"], key, self._readers[run["id"]].columns(key), start)
        self._drawn = drawing.drawn
        spec = charts.curves_spec(
            shown or ["value"],
            [(r["name"], r["color"]) for r in self.runs],
            x_axis=self.x_axis,
            span_seconds=drawing.span_seconds(self.x_axis),
            log_metrics=frozenset(k for k in shown if self.log_y and not drawing.unsuited.get(k)),
            smoothing=self.smoothing,
            markers=0 < max((s["n"] for s in drawing.series), default=0) <= MARKERS_UP_TO,
        )
        skipped = {k: why for k, why in drawing.unsuited.items() if why}
        with self.hold_sync():
            if spec != self.spec:
                self.spec = spec
            if skipped != self.log_skipped:
                self.log_skipped = skipped
            self.series = drawing.series
            self.columns = drawing.packed()
            self.summary = self._summary(len(shown))

    def _summary(self, metric_count: int) -> str:
        runs = len(self.runs)
        text = (
            f"{runs} run{'s' * (runs != 1)} · {metric_count} metric{'s' * (metric_count != 1)}"
            f" · {self._drawn['points']:,} points"
        )
        if self._drawn["sent"] < self._drawn["points"]:
            text += f" ({self._drawn['sent']:,} drawn)"
        return text

    def rows(self) -> list[dict[str, Any]]:
        """The drawn points as Vega-Lite rows (what the page builds from ``columns``)."""
        out = []
        for run, metric, (steps, values, smoothed, relative, wall), _ in self._drawn["series"]:
            for s, v, m, r, w in zip(
                steps.tolist(),
                values.tolist(),
                smoothed.tolist(),
                relative.tolist(),
                wall.tolist(),
                strict=True,
            ):
                out.append(
                    {
                        "run": run,
                        "metric": metric,
                        "step": s,
                        "value": v,
                        "smooth": m,
                        "relative": r,
                        "wall": w,
                    }
                )
        return out

    def png(self) -> bytes | None:
        """The chart as PNG (cached until the data or the options change)."""
        if not self._drawn.get("series"):
            return None
        key = (self.columns, repr(self.spec))
        if self._png is None or self._png[0] != key:
            self._png = (key, charts.png(self.spec, {"points": self.rows()}))
        return self._png[1]

    # -- static forms -----------------------------------------------------------------------

    def static_text(self) -> str:
        header = ["run", "metric", "points", "last step", "last", "min", "max"]
        body = [
            [
                run,
                metric,
                f"{n:,}",
                str(last_step),
                format_value(last),
                format_value(lo),
                format_value(hi),
            ]
            for run, metric, _, (n, last_step, last, lo, hi) in self._drawn.get("series", [])
        ]
        if not body:
            return "[nbtrack] metric curves: no metric points logged yet"
        lines = text_table([header, *body])
        return "[nbtrack] metric curves · " + self.summary + "\n" + "\n".join(lines)

    def static_html(self, png_bytes: bytes | None) -> str:
        e = html.escape
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{e(c)}</td>"
                for c in (
                    run,
                    metric,
                    f"{n:,}",
                    str(step),
                    format_value(last),
                    format_value(lo),
                    format_value(hi),
                )
            )
            + "</tr>"
            for run, metric, _, (n, step, last, lo, hi) in self._drawn.get("series", [])
        )
        image = charts.img_tag(png_bytes, "metric curves") if png_bytes else ""
        head = "".join(
            f"<th>{h}</th>" for h in ("run", "metric", "points", "last step", "last", "min", "max")
        )
        return (
            '<div class="nbtrack-curves" style="font-size:12px">'
            f"<div>{e(self.summary)}</div>{image}"
            f'<table style="border-collapse:collapse"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>"
        )

    def static_bundle(self, charts: bool = True) -> dict[str, Any]:
        png_bytes = self.png() if charts else None
        bundle: dict[str, Any] = {
            "text/plain": self.static_text(),
            "text/html": self.static_html(png_bytes),
        }
        if png_bytes:
            bundle["image/png"] = _b64(png_bytes)
        return bundle


class _Drawing:
    """One redraw: every series downsampled, smoothed and packed, and what the spec needs
    to know of them (the time they span, which metrics a log scale does not suit)."""

    def __init__(self, smoothing: float, log_y: bool) -> None:
        self.smoothing, self.log_y = smoothing, log_y
        self.parts: list[np.ndarray] = []
        self.series: list[dict[str, Any]] = []  # {run, metric, n, offset} for the page
        self.drawn: dict[str, Any] = {"points": 0, "sent": 0, "series": []}  # static forms
        self.unsuited: dict[str, str] = {}  # metric -> why log y does not suit it ("" if it does)
        self.first, self.last, self.longest = float("inf"), float("-inf"), 0.0

    def add(self, run: str, key: str, logged: Any, start: int) -> None:
        steps, values, times = in_step_order(logged)
        if not len(steps):
            return
        keep = downsample(values)
        kept = values[keep]
        columns = [
            steps[keep].astype("f8"),
            kept,
            smooth(kept, self.smoothing),
            (times[keep] - start) / 1000.0,
            times[keep].astype("f8"),
        ]
        offset = sum(len(part) for part in self.parts)
        self.parts.extend(columns)
        if self.log_y and not self.unsuited.get(key):  # unsuited for any run: for all
            self.unsuited[key] = log_scale_unsuited(key, values)
        self.first = min(self.first, int(times.min()))
        self.last = max(self.last, int(times.max()))
        self.longest = max(self.longest, float(columns[3].max()))
        self.series.append({"run": run, "metric": key, "n": len(keep), "offset": offset})
        self.drawn["points"] += len(values)
        self.drawn["sent"] += len(keep)
        self.drawn["series"].append((run, key, columns, _stats(steps, values)))

    def span_seconds(self, x_axis: str) -> float:
        """How much time the x axis covers: since the start, or on the wall clock."""
        if x_axis == "relative":
            return self.longest
        return max(0.0, self.last - self.first) / 1000 if self.parts else 0.0

    def packed(self) -> bytes:
        return np.concatenate(self.parts).astype("<f8").tobytes() if self.parts else b""


def _stats(steps: np.ndarray, values: np.ndarray) -> tuple[int, int, float, float, float]:
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if len(finite) else float("nan")
    hi = float(finite.max()) if len(finite) else float("nan")
    return len(values), int(steps[-1]), float(values[-1]), lo, hi


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def run_labels(rows: list[dict[str, Any]]) -> dict[str, str]:
    """A label per run: its name, with an id prefix where names repeat."""
    names = [r.get("run_name") or r["run_id"][:8] for r in rows]
    return {
        r["run_id"]: (name if names.count(name) == 1 else f"{name} ({r['run_id'][:6]})")
        for r, name in zip(rows, names, strict=True)
    }


def stepped(row: dict[str, Any]) -> bool:
    """Whether a run logged a metric at a step past 0 (so it has curves to draw)."""
    return any(point[1] > 0 for point in row.get("metrics", {}).values())
