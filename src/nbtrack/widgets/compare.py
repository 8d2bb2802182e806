"""CompareRuns: runs side by side — params (differences marked), metrics (best marked),
the diff of the cells that made them, overlaid curves, parallel coordinates of params
against a metric, and a scatter of any param against any metric."""

from __future__ import annotations

import difflib
import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import traitlets
from ipywidgets import widget_serialization

from nbtrack.colors import run_color
from nbtrack.render import format_value, text_table
from nbtrack.tracking import fluent
from nbtrack.widgets import charts
from nbtrack.widgets.curves import MetricCurves, run_labels, stepped
from nbtrack.widgets.metric_kinds import direction
from nbtrack.widgets.panel import Panel, SharedModule, vega_runtime

if TYPE_CHECKING:
    from nbtrack.store import Store

MAX_AXES = 6


class CompareRuns(Panel):
    """Two or more runs compared; ``directions`` overrides min/max per metric."""

    module_name = "compare.js"
    runtime = traitlets.Instance(SharedModule).tag(sync=True, **widget_serialization)
    runs = traitlets.List(traitlets.Dict()).tag(sync=True)  # {id, name, status, color}
    params = traitlets.List(traitlets.Dict()).tag(sync=True)  # {key, values, differs}
    metrics = traitlets.List(traitlets.Dict()).tag(sync=True)  # {key, values, best, direction}
    directions = traitlets.Dict(value_trait=traitlets.Unicode()).tag(sync=True)
    code = traitlets.List(traitlets.Dict()).tag(sync=True)  # {title, note, lines: [[kind, text]]}
    param_keys = traitlets.List(traitlets.Unicode()).tag(sync=True)
    metric_keys = traitlets.List(traitlets.Unicode()).tag(sync=True)
    pc_metric = traitlets.Unicode("").tag(sync=True)
    pc_spec = traitlets.Dict().tag(sync=True)
    scatter_x = traitlets.Unicode("").tag(sync=True)
    scatter_y = traitlets.Unicode("").tag(sync=True)
    scatter_spec = traitlets.Dict().tag(sync=True)
    curves = traitlets.Instance(MetricCurves, allow_none=True).tag(
        sync=True, **widget_serialization
    )

    def __init__(
        self,
        run_ids: Sequence[str],
        directions: dict[str, str] | None = None,
        store: Store | None = None,
        **kwargs: Any,
    ) -> None:
        run_ids = list(dict.fromkeys(run_ids))
        if len(run_ids) < 2:
            raise ValueError("CompareRuns needs at least two runs.")
        store = store or fluent.current_store()
        self._rows = [store.get_run(run_id) for run_id in run_ids]
        self._sources = [cell_source(store, run_id) for run_id in run_ids]
        labels = run_labels(self._rows)
        self._names = [labels[r["run_id"]] for r in self._rows]
        param_keys = sorted({k for r in self._rows for k in r.get("params", {})})
        metric_keys = sorted({k for r in self._rows for k in r.get("metrics", {})})
        differing = [k for k in param_keys if _differs(self._param_values(k))]
        # Most telling first: the params most runs have (a param one run set says little).
        differing.sort(key=lambda k: -sum(v is not None for v in self._param_values(k)))
        with_all = [k for k in metric_keys if all(k in r.get("metrics", {}) for r in self._rows)]
        pc_metric = (with_all or metric_keys or [""])[0]
        stepping = any(stepped(r) for r in self._rows)
        curves = MetricCurves(run_ids, store=store) if stepping else None
        super().__init__(
            runtime=vega_runtime(),
            runs=[
                {
                    "id": r["run_id"],
                    "name": n,
                    "status": r.get("status", ""),
                    "color": run_color(r["run_id"]),
                }
                for r, n in zip(self._rows, self._names, strict=True)
            ],
            directions=dict(directions or {}),
            param_keys=param_keys,
            metric_keys=metric_keys,
            params=[
                {"key": k, "values": self._param_values(k), "differs": k in differing}
                for k in param_keys
            ],
            code=self._code_diffs(),
            pc_metric=pc_metric,
            scatter_x=(differing or param_keys or [""])[0],
            scatter_y=pc_metric,
            curves=curves,
            **kwargs,
        )
        self._pngs: dict[str, tuple[str, bytes]] = {}
        self._rank()
        self._draw_parallel()
        self._draw_scatter()
        self.observe(lambda _: self._guarded(self._rank), names=["directions"])
        self.observe(lambda _: self._guarded(self._draw_parallel), names=["pc_metric"])
        self.observe(lambda _: self._guarded(self._draw_scatter), names=["scatter_x", "scatter_y"])

    def _guarded(self, step: Any) -> None:
        with self._lock:
            try:
                step()
            except Exception as exc:  # a chart that cannot be drawn says why, in the panel
                self.error = f"{type(exc).__name__}: {exc}"

    # -- tables -----------------------------------------------------------------------------

    def _param_values(self, key: str) -> list[str | None]:
        return [r.get("params", {}).get(key) for r in self._rows]

    def _metric_values(self, key: str) -> list[float | None]:
        return [(r.get("metrics", {}).get(key) or [None])[0] for r in self._rows]

    def _rank(self) -> None:
        """Mark the best value of each metric, per its direction."""
        ranked = []
        for key in self.metric_keys:
            values = self._metric_values(key)
            way = direction(key, self.directions)
            finite = [v for v in values if v is not None and not math.isnan(v)]
            best = (min(finite) if way == "min" else max(finite)) if finite else None
            ranked.append(
                {
                    "key": key,
                    "values": ["" if v is None else format_value(v) for v in values],
                    "best": [best is not None and v == best for v in values],
                    "direction": way,
                }
            )
        self.metrics = ranked

    def _code_diffs(self) -> list[dict[str, Any]]:
        base, base_name = self._sources[0], self._names[0]
        diffs = []
        for source, name in zip(self._sources[1:], self._names[1:], strict=True):
            title = f"{base_name} → {name}"
            if base is None or source is None:
                missing = base_name if base is None else name
                diffs.append(
                    {"title": title, "note": f"no cell recorded for {missing}", "lines": []}
                )
                continue
            lines = list(
                difflib.unified_diff(
                    base.splitlines(), source.splitlines(), base_name, name, lineterm="", n=3
                )
            )
            note = "" if lines else "same code"
            diffs.append({"title": title, "note": note, "lines": [[_kind(x), x] for x in lines]})
        return diffs

    # -- charts -----------------------------------------------------------------------------

    def _draw_parallel(self) -> None:
        metric = self.pc_metric
        if not metric or not self.param_keys:
            self.pc_spec = {}
            return
        differing = [p["key"] for p in self.params if p["differs"]]
        axes = [*(differing or self.param_keys)[: MAX_AXES - 1], metric]
        scores = [None if v is None or math.isnan(v) else v for v in self._metric_values(metric)]
        columns = [self._param_values(k) for k in axes[:-1]] + [scores]
        rows = [
            {
                "run": name,
                "axis": axis,
                # A run without this value sits in the "not set" slot under the axis.
                "position": charts.MISSING if position is None else position,
                "value": "not set" if value is None else str(value),
                "label": _label(value),
                "score": score,
            }
            for axis, values in zip(axes, columns, strict=True)
            for name, position, value, score in zip(
                self._names, _positions(values), values, scores, strict=True
            )
        ]
        self.pc_spec = charts.parallel_spec(rows, axes, metric, self._colors())

    def _colors(self) -> list[tuple[str, str]]:
        return [(r["name"], r["color"]) for r in self.runs]

    def _draw_scatter(self) -> None:
        x_key, y_key = self.scatter_x, self.scatter_y
        if not x_key or not y_key:
            self.scatter_spec = {}
            return
        xs, ys = self._param_values(x_key), self._metric_values(y_key)
        numeric = all(_number(x) is not None for x in xs if x is not None)
        points = [
            {"run": name, "x": _number(x) if numeric else x, "y": y}
            for name, x, y in zip(self._names, xs, ys, strict=True)
            if x is not None and y is not None and not math.isnan(y)
        ]
        self.scatter_spec = (
            charts.scatter_spec(points, x_key, y_key, numeric, self._colors()) if points else {}
        )

    def _png(self, name: str, spec: dict[str, Any]) -> bytes | None:
        if not spec:
            return None
        key = repr(spec)
        cached = self._pngs.get(name)
        if cached is None or cached[0] != key:
            cached = self._pngs[name] = (key, charts.png(spec))
        return cached[1]

    # -- static forms -----------------------------------------------------------------------

    def static_bundle(self, charts: bool = True) -> dict[str, Any]:
        images: list[tuple[str, bytes]] = []
        if charts:
            if self.curves is not None and (curve_png := self.curves.png()):
                images.append(("metric curves", curve_png))
            for title, name, spec in (
                (
                    f"parallel coordinates: params against {self.pc_metric}",
                    "parallel",
                    self.pc_spec,
                ),
                (f"{self.scatter_x} against {self.scatter_y}", "scatter", self.scatter_spec),
            ):
                if (image := self._png(name, spec)) is not None:
                    images.append((title, image))
        bundle: dict[str, Any] = {
            "text/plain": self.static_text(),
            "text/html": self.static_html(images),
        }
        if images:
            import base64

            bundle["image/png"] = base64.b64encode(images[0][1]).decode("ascii")
        return bundle

    def static_text(self) -> str:
        names = self._names
        out = [f"[nbtrack] compare {len(names)} runs: " + ", ".join(names)]
        table = [["param", *names]] + [
            [p["key"] + (" *" if p["differs"] else ""), *(v or "-" for v in p["values"])]
            for p in self.params
        ]
        out += ["", *text_table(table, max_width=40), "(* differs)"]
        table = [["metric", *names]] + [
            [
                f"{m['key']} ({'lower' if m['direction'] == 'min' else 'higher'} is better)",
                *(
                    (v or "-") + (" ★" if b else "")
                    for v, b in zip(m["values"], m["best"], strict=True)
                ),
            ]
            for m in self.metrics
        ]
        out += ["", *text_table(table, max_width=40), "(★ best)"]
        for diff in self.code:
            out += ["", f"code: {diff['title']}" + (f" ({diff['note']})" if diff["note"] else "")]
            out += [f"  {text}" for _, text in diff["lines"]]
        return "\n".join(out)

    def static_html(self, images: list[tuple[str, bytes]]) -> str:
        e = html.escape
        head = "".join(f"<th>{e(n)}</th>" for n in self._names)
        cell = "border:1px solid #ddd;padding:1px 6px"
        highlight = ' style="background:#fff8c5"'
        params = "".join(
            f"<tr{highlight if p['differs'] else ''}>"
            f"<td style='{cell}'>{e(p['key'])}</td>"
            + "".join(
                f"<td style='{cell}'>{e(v if v is not None else '-')}</td>" for v in p["values"]
            )
            + "</tr>"
            for p in self.params
        )
        metrics = "".join(
            f"<tr><td style='{cell}'>{e(m['key'])} {'↓' if m['direction'] == 'min' else '↑'}</td>"
            + "".join(
                f"<td style='{cell}'>" + (f"<b>{e(v)} ★</b>" if b else e(v or "-")) + "</td>"
                for v, b in zip(m["values"], m["best"], strict=True)
            )
            + "</tr>"
            for m in self.metrics
        )
        colors = {"add": "#1a7f37", "del": "#cf222e", "hunk": "#8250df", "file": "#57606a"}
        diffs = "".join(
            f"<h4 style='margin:6px 0 2px'>code: {e(d['title'])}</h4>"
            + (f"<div>{e(d['note'])}</div>" if d["note"] else "")
            + "<pre style='margin:0;background:#f6f8fa;padding:4px'>"
            + "\n".join(
                f"<span style='color:{colors[k]}'>{e(t)}</span>" if k in colors else e(t)
                for k, t in d["lines"]
            )
            + "</pre>"
            for d in self.code
        )
        pictures = "".join(f"<div>{charts.img_tag(png, title)}</div>" for title, png in images)
        table = "border-collapse:collapse;margin:4px 0"
        return (
            '<div class="nbtrack-compare" style="font-size:12px">'
            f"<h4 style='margin:6px 0 2px'>params (differences highlighted)</h4>"
            f"<table style='{table}'><thead><tr><th>param</th>{head}</tr></thead>"
            f"<tbody>{params}</tbody></table>"
            f"<h4 style='margin:6px 0 2px'>metrics (best ★)</h4>"
            f"<table style='{table}'><thead><tr><th>metric</th>{head}</tr></thead>"
            f"<tbody>{metrics}</tbody></table>{diffs}{pictures}</div>"
        )


def cell_source(store: Any, run_id: str) -> str | None:
    """The source of the cell that made the run (the last one recorded), if any."""
    records = store.records(run_id, "cell")
    return records[-1].get("source") if records else None


def _label(value: Any) -> str:
    """A value as a parallel axis labels it: numbers to 4 significant digits."""
    if value is None:
        return "not set"
    number = _number(value)
    return value if number is None else format_value(number)


def _kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    return "same"


def _differs(values: list[Any]) -> bool:
    return len(set(values)) > 1


def _number(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _positions(values: list[Any]) -> list[float | None]:
    """Each value's place on its axis, 0..1: by magnitude if all are numbers, else by rank."""
    present = [v for v in values if v is not None]
    numbers = [_number(v) for v in present]
    if present and all(n is not None for n in numbers):
        scale = math.log10 if charts.spans_decades(numbers) else float
        low, high = scale(min(numbers)), scale(max(numbers))  # type: ignore[type-var]
        span = high - low
        return [
            None if v is None else (0.5 if span == 0 else (scale(_number(v)) - low) / span)  # type: ignore[arg-type]
            for v in values
        ]
    ranks = sorted({str(v) for v in present})
    place = {v: (0.5 if len(ranks) == 1 else i / (len(ranks) - 1)) for i, v in enumerate(ranks)}
    return [None if v is None else place[str(v)] for v in values]
