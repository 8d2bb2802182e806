// CompareRuns (nbtrack/widgets/compare.py): runs side by side.
//
// reads:  runtime, runs, params, metrics, code, param_keys, metric_keys, pc_metric,
//         pc_spec, scatter_x, scatter_y, scatter_spec, curves (child MetricCurves),
//         directions, error, message
// writes: directions (a click on a metric's arrow flips lower/higher is better),
//         pc_metric, scatter_x, scatter_y (the charts' choices); Python re-ranks and
//         re-draws and sends the results back.

import {
  h, fill, choose, childSlot, embed, select, swatch, button, ensureStyle
} from "./common.js";

function headerRow(model, first) {
  return h("tr", {}, h("th", {}, first), model.get("runs").map((r) =>
    h("th", {}, h("span", { className: "nbt-swatch", style: `background:${r.color}` }), r.name)));
}

function paramTable(model) {
  return h("table", { className: "nbt-compare-params" },
    h("thead", {}, headerRow(model, "param")),
    h("tbody", {}, model.get("params").map((p) =>
      h("tr", { className: p.differs ? "nbt-differs" : "" },
        h("td", {}, p.key),
        p.values.map((v) => h("td", {}, v === null ? "–" : v))))));
}

function metricTable(model) {
  const flip = (key, way) => {
    const next = { ...model.get("directions"), [key]: way === "min" ? "max" : "min" };
    choose(model, "directions", next);
  };
  return h("table", { className: "nbt-compare-metrics" },
    h("thead", {}, headerRow(model, "metric")),
    h("tbody", {}, model.get("metrics").map((m) =>
      h("tr", {},
        h("td", {}, m.key, " ",
          h("button", {
            type: "button", className: "nbt-button nbt-direction",
            title: m.direction === "min" ? "lower is better (click to flip)" : "higher is better (click to flip)",
            onClick: () => flip(m.key, m.direction),
          }, m.direction === "min" ? "↓" : "↑")),
        m.values.map((v, i) => h("td", { className: m.best[i] ? "nbt-best" : "" },
          v === "" ? "–" : v, m.best[i] ? " ★" : ""))))));
}

function codeDiffs(model) {
  return model.get("code").map((d) =>
    h("div", { className: "nbt-code-diff" },
      h("div", { className: "nbt-subtitle" }, `code: ${d.title}`, d.note ? h("span", { className: "nbt-muted" }, ` (${d.note})`) : null),
      d.lines.length
        ? h("pre", { className: "nbt-pre" }, d.lines.map(([kind, text]) =>
          h("div", { className: `nbt-diff-${kind}` }, text || " ")))
        : null));
}

function chartBox(model, title, specName, pickers) {
  const box = h("div", { className: "nbt-chart" });
  const wrap = h("div", { className: `nbt-compare-chart nbt-${specName}` },
    h("div", { className: "nbt-toolbar" }, h("span", { className: "nbt-subtitle" }, title), ...pickers), box);
  let result = null;
  let generation = 0;
  const draw = async () => {
    const mine = ++generation;
    const spec = model.get(specName);
    result?.finalize();
    result = null;
    fill(box);
    if (!spec || !Object.keys(spec).length) {
      box.append(h("span", { className: "nbt-muted" }, "nothing to draw"));
      return;
    }
    const made = await embed(model, box, spec);
    if (mine !== generation) made.finalize();
    else result = made;
  };
  model.on(`change:${specName}`, draw);
  draw();
  return { el: wrap, cleanup: () => { generation++; result?.finalize(); } };
}

function render({ model, el }) {
  ensureStyle();
  const tables = h("div", { className: "nbt-compare-tables" });
  const diffs = h("div");
  const error = h("div", { className: "nbt-error" });
  const curves = h("div", { className: "nbt-slot nbt-compare-curves" });
  const drawTables = () => {
    fill(tables,
      h("div", { className: "nbt-subtitle" }, "params (differences highlighted)"), paramTable(model),
      h("div", { className: "nbt-subtitle" }, "metrics (best ★; click an arrow to flip)"), metricTable(model));
    fill(diffs, ...codeDiffs(model));
    error.textContent = model.get("error");
  };
  for (const name of ["runs", "params", "metrics", "code", "error"]) model.on(`change:${name}`, drawTables);
  drawTables();

  const metricKeys = model.get("metric_keys");
  const parallel = chartBox(model, "params against", "pc_spec", [
    select(metricKeys, model.get("pc_metric"), (v) => choose(model, "pc_metric", v), { className: "nbt-pc-metric" }),
  ]);
  const scatter = chartBox(model, "scatter", "scatter_spec", [
    select(model.get("param_keys"), model.get("scatter_x"), (v) => choose(model, "scatter_x", v), { className: "nbt-scatter-x" }),
    "against",
    select(metricKeys, model.get("scatter_y"), (v) => choose(model, "scatter_y", v), { className: "nbt-scatter-y" }),
  ]);
  el.append(h("div", { className: "nbt nbt-compare" }, error, tables, diffs, curves,
    h("div", { className: "nbt-compare-charts" }, parallel.el, scatter.el)));
  const cleanups = [childSlot(model, "curves", curves), parallel.cleanup, scatter.cleanup];
  return () => cleanups.forEach((c) => c());
}

export default { render };
