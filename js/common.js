// Helpers shared by the nbtrack panels, an ES module: the JupyterLab extension imports it,
// and each panel imports what it uses from it. In a notebook, nbtrack/widgets/panel.py
// inlines shared.js and this file in front of each panel's module instead (a module is
// loaded from a blob URL, so it cannot import a sibling file). Reads no traitlets itself; the
// helpers take the model they work on.
//
// Every string that came from the kernel reaches the page through textContent or a
// DOM attribute, never as markup: run names, params and code are user-controlled.

import { MODEL_PREFIX, importShared } from "./shared.js";

/** Create an element: h("td", {className: "x", title: "t"}, "text", childNode, ...). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") el.style.cssText = value;
    else if (key in el && key !== "list") el[key] = value;
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace el's children; strings become text nodes, null/false/undefined are skipped. */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

/** Send an intent to the kernel: the Python side owns the state and answers with traits. */
export function intent(model, kind, payload = {}) {
  model.send({ kind, ...payload });
}

/** Set a synced trait from the page (a user's choice) and send it to the kernel. */
export function choose(model, name, value) {
  model.set(name, value);
  model.save_changes();
}

/** Render the child widget a trait refers to ("IPY_MODEL_<id>") into `container`. */
export async function mountChild(model, ref, container) {
  if (typeof ref !== "string" || !ref.startsWith(MODEL_PREFIX)) return null;
  const child = await model.widget_manager.get_model(ref.slice(MODEL_PREFIX.length));
  const view = await model.widget_manager.create_view(child, {});
  container.replaceChildren(view.el);
  return view;
}

/** Keep a child slot in sync with a widget-reference trait; returns a cleanup function. */
export function childSlot(model, name, container, onChange) {
  let view = null;
  let generation = 0;
  const update = async () => {
    const mine = ++generation;
    if (view) view.remove();
    view = null;
    container.replaceChildren();
    const ref = model.get(name);
    container.hidden = !ref;
    if (ref) {
      const made = await mountChild(model, ref, container);
      if (mine !== generation) made?.remove(); // a newer value arrived meanwhile
      else view = made;
    }
    onChange?.(Boolean(ref));
  };
  model.on(`change:${name}`, update);
  update();
  return () => {
    model.off(`change:${name}`, update);
    generation++;
    view?.remove();
  };
}

/**
 * vega-embed, from the shared model the `runtime` trait names (vl-convert's vega-embed
 * bundle): every chart panel refers to that one model, so a saved notebook stores the
 * ~0.9 MB of vega once, not once per chart.
 */
export function loadVega(model) {
  return importShared(model, "runtime");
}

/** Draw a vega-lite spec into `el`; data for named datasets is passed in `datasets`. */
export async function embed(model, el, spec, datasets = {}) {
  const { vegaEmbed } = await loadVega(model);
  const full = { ...spec, datasets: { ...(spec.datasets || {}), ...datasets } };
  // The default tooltip handler escapes HTML in values, so run names stay text.
  return vegaEmbed(el, full, { actions: false, renderer: "svg" });
}

/** A plain <select> whose options are `values`; calls onPick(value). */
export function select(values, current, onPick, props = {}) {
  const el = h("select", props, values.map((v) => h("option", { value: v, selected: v === current }, v)));
  el.addEventListener("change", () => onPick(el.value));
  return el;
}

/** A run's colour as a small square; `color` comes from the kernel (nbtrack/colors.py). */
export function swatch(color) {
  return h("span", { className: "nbt-swatch", style: `background:${color}` });
}

/** Seconds as the kernel's render.format_seconds writes them, whole seconds (it ticks). */
export function formatElapsed(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  const pad = (n) => String(n).padStart(2, "0");
  return m < 60 ? `${m}m${pad(s % 60)}s` : `${Math.floor(m / 60)}h${pad(m % 60)}m`;
}

/**
 * Show the `message` trait in `el`; a few seconds later it fades and the page clears the
 * trait (so the same message, sent again, shows again). Returns a cleanup function.
 */
export function fadingMessage(model, el, seconds = 5) {
  let timer = null;
  const show = () => {
    clearTimeout(timer);
    const text = model.get("message");
    el.textContent = text;
    el.classList.remove("nbt-faded");
    if (!text) return;
    timer = setTimeout(() => {
      el.classList.add("nbt-faded");
      timer = setTimeout(() => { if (model.get("message") === text) choose(model, "message", ""); }, 800);
    }, seconds * 1000);
  };
  model.on("change:message", show);
  show();
  return () => { clearTimeout(timer); model.off("change:message", show); };
}

/** A button that runs `onClick` and is disabled when `enabled` is false. */
export function button(label, onClick, props = {}) {
  return h("button", { type: "button", className: "nbt-button", onClick, ...props }, label);
}

export const NBT_STYLE = `
.nbt { font: 12px/1.4 var(--jp-ui-font-family, system-ui, sans-serif); color: var(--jp-ui-font-color1, #1f2328); }
.nbt-button { font: inherit; padding: 1px 8px; border: 1px solid var(--jp-border-color1, #bbb); border-radius: 3px;
  background: var(--jp-layout-color1, #fff); color: inherit; cursor: pointer; }
.nbt-button:disabled { opacity: .45; cursor: default; }
.nbt-badge { color: #fff; border-radius: 3px; padding: 0 5px; font-size: 11px; white-space: nowrap; }
.nbt-status-RUNNING { background: #1f6feb; } .nbt-status-FINISHED { background: #1a7f37; }
.nbt-status-FAILED { background: #cf222e; } .nbt-status-KILLED { background: #9a6700; }
.nbt-status-SCHEDULED { background: #6e7781; } .nbt-stale { background: #bf8700; }
.nbt-error { color: #cf222e; white-space: pre-wrap; }
.nbt-muted { color: var(--jp-ui-font-color2, #6e7781); }
.nbt-message { color: var(--jp-ui-font-color2, #57606a); transition: opacity .8s; }
.nbt-faded { opacity: 0; }
.nbt-slot:empty { display: none; }
.nbt-slot { margin-top: 6px; }
.nbt-toolbar { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin: 4px 0; }
.nbt-card-line { display: flex; gap: 10px; flex-wrap: wrap; align-items: center;
  border-left: 3px solid #8250df; padding: 2px 8px; }
.nbt-chip { display: inline-flex; align-items: center; gap: 2px; }
.nbt table { border-collapse: collapse; margin: 2px 0 6px; }
.nbt th, .nbt td { border: 1px solid var(--jp-border-color2, #ddd); padding: 1px 6px; text-align: left;
  max-width: 28em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.nbt th { background: var(--jp-layout-color2, #f6f8fa); font-weight: 600; }
.nbt-subtitle { font-weight: 600; margin: 6px 0 2px; }
.nbt-swatch { display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin-right: 4px; }
.nbt-differs td { background: #fff8c5; color: #1f2328; }
.nbt-best { font-weight: 700; }
.nbt-diff-add { color: #1a7f37; background: #dafbe1; } .nbt-diff-del { color: #cf222e; background: #ffebe9; }
.nbt-diff-hunk { color: #8250df; } .nbt-diff-file { color: #57606a; font-weight: 600; }
.nbt-compare-charts { display: flex; gap: 16px; flex-wrap: wrap; }
.nbt-deleted td { color: var(--jp-ui-font-color3, #8c959f); text-decoration: line-through; }
.nbt-runs tbody tr:hover td { background: var(--jp-layout-color2, #f6f8fa); }
.nbt-runs { border-collapse: separate; border-spacing: 0; }
.nbt-runs th, .nbt-runs td { border-width: 0 1px 1px 0; }
.nbt-runs tr > :first-child { border-left-width: 1px; }
.nbt-runs thead th { border-top-width: 1px; }
.nbt-runs .nbt-pin { position: sticky; z-index: 1; background: var(--jp-layout-color1, #fff); }
.nbt-runs th.nbt-pin { background: var(--jp-layout-color2, #f6f8fa); }
.nbt-runs .nbt-pin-0 { left: 0; }
.nbt-runs .nbt-pin-1 { left: var(--nbt-pin-left, 26px); box-shadow: 2px 0 2px -1px rgba(0,0,0,.12); }
.nbt-runs tbody tr:hover td.nbt-pin { background: var(--jp-layout-color2, #f6f8fa); }
.nbt-open-run { color: inherit; text-decoration: none; } .nbt-open-run:hover { text-decoration: underline; }
.nbt-columns > summary { cursor: pointer; }
.nbt-column-popup { position: absolute; right: 0; z-index: 10; min-width: 26em; max-width: 44em; padding: 6px 8px;
  background: var(--jp-layout-color1, #fff); border: 1px solid var(--jp-border-color1, #ccc);
  border-radius: 4px; box-shadow: 0 4px 12px rgba(0,0,0,.15); }
.nbt-column-search { flex: 1; min-width: 14em; font: inherit; }
.nbt-column-list { max-height: 24em; overflow-y: auto; }
.nbt-column-group { font-weight: 600; margin: 6px 0 2px; color: var(--jp-ui-font-color2, #57606a); }
.nbt-column-choice { display: flex; gap: 6px; align-items: baseline; white-space: nowrap; padding: 1px 0; }
.nbt-column-choice[hidden] { display: none; }
.nbt-filter-echo { font-family: var(--jp-code-font-family, monospace); white-space: pre; margin: 2px 0 0;
  color: var(--jp-ui-font-color1, #1f2328); }
.nbt-filter-token { background: #ffebe9; color: #cf222e; }
.nbt-filter-caret { color: #cf222e; font-weight: 700; }
.nbt-card-line .nbt-duration { font-variant-numeric: tabular-nums; }
.nbt-details { margin: 4px 0 0 11px; }
.nbt-details-columns { display: flex; gap: 28px; flex-wrap: wrap; align-items: flex-start; }
.nbt-details td:first-child { color: var(--jp-ui-font-color2, #57606a); }
.nbt-spark { display: block; }
.nbt-details-block { max-height: 24em; overflow: auto; }
.nbt-pre { font-family: var(--jp-code-font-family, monospace); white-space: pre; overflow-x: auto; margin: 0;
  background: var(--jp-layout-color2, #f6f8fa); padding: 4px 6px; }
`;

/** Add the shared stylesheet once per page. */
export function ensureStyle() {
  if (document.getElementById("nbtrack-style")) return;
  document.head.append(h("style", { id: "nbtrack-style" }, NBT_STYLE));
}

export function statusBadge(status) {
  return h("span", { className: `nbt-badge nbt-status-${status}` }, status);
}

export function staleBadge(reason) {
  return reason ? h("span", { className: "nbt-badge nbt-stale", title: reason }, "stale") : null;
}
