// MetricCurves (nbtrack/widgets/curves.py): metric series of one or more runs, drawn by
// vega-embed from the shared VegaRuntime.
//
// reads:  runtime, spec, series, columns, metrics, shown, x_axis, smoothing, log_y,
//         log_skipped (metrics log y leaves linear, and why), live, summary, error
// writes: shown, x_axis, smoothing, log_y (the user's choices; Python recomputes the
//         spec and the data and sends them back)
//
// `columns` holds every series packed as float64: for a series with n points at `offset`
// (in floats), steps, values, smoothed values, seconds since the run's start and wall
// time (ms) follow each other, n of each. Data changes update the drawn view in place
// (no re-embed), so a live chart keeps its hover state while points arrive.

import { h, fill, choose, embed, select, ensureStyle } from "./common.js";

function decodeRows(model) {
  const view = model.get("columns");
  if (!view || !view.byteLength) return [];
  // Copy: a DataView over a message buffer need not be 8-byte aligned.
  const floats = new Float64Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
  const rows = [];
  for (const s of model.get("series")) {
    const { n, offset } = s;
    for (let i = 0; i < n; i++) {
      rows.push({
        run: s.run,
        metric: s.metric,
        step: floats[offset + i],
        value: floats[offset + n + i],
        smooth: floats[offset + 2 * n + i],
        relative: floats[offset + 3 * n + i],
        wall: floats[offset + 4 * n + i],
      });
    }
  }
  return rows;
}

function controls(model) {
  const bar = h("div", { className: "nbt-toolbar" });
  const draw = () => {
    const shown = model.get("shown");
    const skipped = model.get("log_y") ? Object.entries(model.get("log_skipped")) : [];
    const chips = model.get("metrics").map((key) =>
      h("label", { className: "nbt-chip" },
        h("input", {
          type: "checkbox",
          checked: shown.includes(key),
          onChange: (e) => {
            const next = e.target.checked ? [...shown, key] : shown.filter((k) => k !== key);
            choose(model, "shown", next);
          },
        }),
        key),
    );
    const smoothing = h("input", {
      type: "range", min: 0, max: 0.99, step: 0.01, value: model.get("smoothing"),
      className: "nbt-smoothing", title: "EMA smoothing",
      onChange: (e) => choose(model, "smoothing", Number(e.target.value)),
    });
    fill(bar,
      ...chips,
      h("label", {}, "x ", select(["step", "relative", "wall"], model.get("x_axis"),
        (v) => choose(model, "x_axis", v), { className: "nbt-x-axis" })),
      h("label", {}, "smoothing ", smoothing, h("span", { className: "nbt-muted" }, model.get("smoothing").toFixed(2))),
      h("label", { title: "log y scale on the panels it suits" }, h("input", {
        type: "checkbox", className: "nbt-log-y", checked: model.get("log_y"),
        onChange: (e) => choose(model, "log_y", e.target.checked),
      }), "log y"),
      skipped.length ? h("span", { className: "nbt-muted nbt-log-skipped" },
        `(not ${skipped.map(([k, why]) => `${k}: ${why}`).join("; ")})`) : null,
      model.get("live") ? h("span", { className: "nbt-badge nbt-status-RUNNING nbt-live" }, "live") : null,
      h("span", { className: "nbt-muted nbt-summary" }, model.get("summary")),
    );
  };
  const names = ["metrics", "shown", "x_axis", "smoothing", "log_y", "log_skipped", "live", "summary"];
  for (const name of names) model.on(`change:${name}`, draw);
  draw();
  return bar;
}

function render({ model, el }) {
  ensureStyle();
  const chart = h("div", { className: "nbt-chart" });
  const error = h("div", { className: "nbt-error" });
  const root = h("div", { className: "nbt nbt-curves" }, controls(model), error, chart);
  el.append(root);

  let view = null;
  let generation = 0;
  let pending = false;
  const showError = () => { error.textContent = model.get("error"); };

  const setData = () => {
    const rows = decodeRows(model);
    chart.dataset.points = String(rows.length);
    return rows;
  };
  const draw = async () => {
    const mine = ++generation;
    const spec = model.get("spec");
    if (!spec || !Object.keys(spec).length) return;
    try {
      const result = await embed(model, chart, spec, { points: setData() });
      if (mine !== generation) { result.finalize(); return; }
      view?.finalize();
      view = result.view;
    } catch (err) {
      error.textContent = `chart failed: ${err}`;
    }
  };
  // At most one data update per animation frame, however fast the kernel sends them.
  const update = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(async () => {
      pending = false;
      if (!view) return draw();
      const rows = setData();
      await view.data("points", rows).runAsync();
    });
  };
  model.on("change:spec", draw);
  model.on("change:columns", update);
  model.on("change:series", update);
  model.on("change:error", showError);
  showError();
  draw();
  return () => { generation++; view?.finalize(); };
}

export default { render };
