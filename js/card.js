// RunCard (nbtrack/widgets/card.py): one run under its %%track cell, or in full
// (%track show) when `details` is set.
//
// reads:  run (display strings: name, color, status, duration, params, metrics, error,
//         stale, run_id; start_time and now, so a RUNNING card ticks), details (info,
//         params, metrics with sparkline numbers, tags, system_tags, artifacts, blocks of
//         text), actions, curves (child MetricCurves), show_curves, detail (child panel an
//         action opened), message, error
// writes: message (cleared once it has faded); buttons send intents
//         {kind: "action", name, run_ids} and {kind: "close_detail"}, and Python changes
//         the traits above in answer.

import {
  h, fill, intent, childSlot, swatch, formatElapsed, fadingMessage, button, ensureStyle,
  statusBadge, staleBadge
} from "./common.js";

const SVG = "http://www.w3.org/2000/svg";

function pairs(label, items, more) {
  if (!items.length) return null;
  const text = items.map(([k, v]) => `${k}=${v}`).join(", ") + (more ? `, +${more} more` : "");
  return h("span", { className: "nbt-pairs" }, h("i", {}, label), " ", text);
}

/** A sparkline of `values` (numbers, null for NaN) in `color`, as an inline SVG. */
function sparkline(values, color, width = 120, height = 22) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("class", "nbt-spark");
  const finite = values.filter((v) => v !== null);
  if (finite.length < 2) return svg;
  const low = Math.min(...finite);
  const span = Math.max(...finite) - low || 1;
  const step = (width - 4) / (values.length - 1);
  const points = values.map((v, i) => (v === null ? null
    : `${(2 + i * step).toFixed(1)},${(height - 2 - ((v - low) / span) * (height - 4)).toFixed(1)}`))
    .filter(Boolean).join(" ");
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points);
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", color);
  line.setAttribute("stroke-width", "1.5");
  svg.append(line);
  return svg;
}

function keyValues(className, rows) {
  return h("table", { className }, h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v)))));
}

function section(title, ...content) {
  return h("div", { className: "nbt-details-section" }, h("div", { className: "nbt-subtitle" }, title), ...content);
}

/** The run in full: what %track show adds under the card's line. */
function detailsView(run, details) {
  const metrics = details.metrics.length ? h("table", { className: "nbt-details-metrics" },
    h("thead", {}, h("tr", {}, ["metric", "last", "history", "min", "max", "points", "last step"].map((t) => h("th", {}, t)))),
    h("tbody", {}, details.metrics.map((m) => h("tr", { dataset: { metric: m.key } },
      h("td", {}, m.key), h("td", { className: "nbt-best" }, m.last), h("td", {}, sparkline(m.spark, run.color)),
      h("td", {}, m.min), h("td", {}, m.max), h("td", {}, String(m.points)), h("td", {}, String(m.last_step)))))) : null;
  const artifacts = details.artifacts.length ? h("table", { className: "nbt-details-artifacts" },
    h("thead", {}, h("tr", {}, h("th", {}, "path"), h("th", {}, "size"), h("th", {}, "sha256"))),
    h("tbody", {}, details.artifacts.map((a) => h("tr", {}, h("td", {}, a.path), h("td", {}, a.size), h("td", {}, h("code", {}, a.sha256)))))) : null;
  const system = details.system_tags.length
    ? h("details", {}, h("summary", { className: "nbt-muted" }, `system tags (${details.system_tags.length})`),
      keyValues("nbt-details-system-tags", details.system_tags))
    : null;
  return h("div", { className: "nbt-details" },
    h("div", { className: "nbt-details-columns" },
      section("run", keyValues("nbt-details-info", details.info)),
      section(`params (${details.params.length})`, details.params.length ? keyValues("nbt-details-params", details.params) : h("span", { className: "nbt-muted" }, "none")),
      section(`tags (${details.tags.length})`, details.tags.length ? keyValues("nbt-details-tags", details.tags) : h("span", { className: "nbt-muted" }, "none"), system)),
    section(`metrics (${details.metrics.length})`, metrics || h("span", { className: "nbt-muted" }, "none")),
    artifacts ? section(`artifacts (${details.artifacts.length})`, artifacts) : null,
    details.blocks.map((b) => section(b.title, h("pre", { className: "nbt-pre nbt-details-block" }, b.text))));
}

function render({ model, el }) {
  ensureStyle();
  const line = h("div", { className: "nbt-card-line" });
  const error = h("div", { className: "nbt-error" });
  const message = h("div", { className: "nbt-message" });
  const more = h("div");
  const curves = h("div", { className: "nbt-slot nbt-card-curves" });
  const detailBody = h("div");
  const detail = h("div", { className: "nbt-slot nbt-detail" },
    h("div", { className: "nbt-toolbar" },
      button("× close", () => intent(model, "close_detail"), { className: "nbt-button nbt-close" })),
    detailBody);
  const root = h("div", { className: "nbt nbt-run-card" }, line, error, message, more, curves, detail);
  el.append(root);

  let ticker = null;
  const draw = () => {
    const run = model.get("run");
    const details = model.get("details");
    const full = Boolean(details && details.info);
    const buttons = model.get("actions").map((a) =>
      button(a.label, () => intent(model, "action", { name: a.name, run_ids: [run.run_id] }),
        { dataset: { action: a.name } }));
    const duration = h("span", { className: "nbt-duration", title: "duration" }, run.duration);
    line.style.borderLeftColor = run.color;
    fill(line,
      h("b", { className: "nbt-name" }, swatch(run.color), run.name),
      statusBadge(run.status),
      staleBadge(run.stale),
      duration,
      full ? null : pairs("params", run.params, run.more_params),
      full ? null : pairs("metrics", run.metrics, run.more_metrics),
      h("code", { className: "nbt-muted" }, run.run_id.slice(0, 8)),
      ...buttons,
    );
    fill(more, full ? detailsView(run, details) : null);
    error.textContent = [run.error, model.get("error")].filter(Boolean).join("\n");
    curves.style.display = model.get("show_curves") ? "" : "none";
    // A RUNNING run's time so far, from the kernel's clock plus this page's since it spoke.
    clearInterval(ticker);
    ticker = null;
    if (run.status === "RUNNING" && run.start_time) {
      const received = Date.now();
      const tick = () => {
        const elapsed = (run.now - run.start_time + (Date.now() - received)) / 1000;
        duration.textContent = formatElapsed(elapsed);
        duration.title = "running for";
      };
      tick();
      ticker = setInterval(tick, 1000);
    }
  };
  for (const name of ["run", "details", "actions", "error", "show_curves"]) model.on(`change:${name}`, draw);
  draw();
  const cleanups = [
    childSlot(model, "curves", curves),
    childSlot(model, "detail", detailBody, (present) => { detail.hidden = !present; }),
    fadingMessage(model, message),
    () => clearInterval(ticker),
  ];
  return () => cleanups.forEach((c) => c());
}

export default { render };
