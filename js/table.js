// RunTable (nbtrack/widgets/table.py): a page of runs with a filter box, sortable
// headers, a column chooser, multi-select and actions on the selection.
//
// reads:  rows (the current page: {id, color, cells, status, deleted, stale}), columns,
//         visible, first_kind, sort_by, descending, page, page_size, total, filter,
//         applied, error, filter_error ({message, text, start, end}), message, view,
//         selected, actions, experiment, detail (child panel), detail_title, detail_text
// writes: selected, visible, view, first_kind (the user's choices, validated by Python),
//         message (cleared once it has faded)
// intents: {kind: "filter", text}, {kind: "sort", column}, {kind: "page", page},
//          {kind: "action", name, run_ids}, {kind: "close_detail"}, {kind: "open", run_id} (a
//          click on a run's name)
//
// The name column is pinned: it stays in view while the table scrolls sideways.

import {
  h, fill, intent, choose, childSlot, select, swatch, fadingMessage, button, ensureStyle,
  statusBadge, staleBadge
} from "./common.js";

function filterBox(model) {
  const input = h("input", {
    type: "text", className: "nbt-filter", value: model.get("filter"), spellcheck: false,
    placeholder: "filter, e.g. metrics.val_accuracy > 0.9 and params.lr = '0.1'",
    style: "min-width: 32em",
    onKeydown: (e) => { if (e.key === "Enter") intent(model, "filter", { text: input.value }); },
  });
  model.on("change:filter", () => { if (document.activeElement !== input) input.value = model.get("filter"); });
  return h("span", { className: "nbt-toolbar" }, input,
    button("Search", () => intent(model, "filter", { text: input.value }), { className: "nbt-button nbt-search" }));
}

const COLUMN_GROUPS = [
  ["run", (c) => !c.includes(".")],
  ["metrics", (c) => c.startsWith("metrics.")],
  ["params", (c) => c.startsWith("params.")],
  ["tags", (c) => c.startsWith("tags.")],
];

/** The column chooser: a search box, the columns grouped by kind, which kind comes first. */
function columnChooser(model) {
  const summary = h("summary", {});
  const search = h("input", {
    type: "search", className: "nbt-column-search", placeholder: "search columns", spellcheck: false,
  });
  const order = h("label", { className: "nbt-muted" }, "show ",
    select(["metrics", "params"], model.get("first_kind"), (v) => choose(model, "first_kind", v),
      { className: "nbt-first-kind" }), " first");
  const list = h("div", { className: "nbt-column-list" });
  const popup = h("div", { className: "nbt-column-popup" },
    h("div", { className: "nbt-toolbar" }, search, order), list);
  const details = h("details", { className: "nbt-columns" }, summary, popup);

  const applySearch = () => {
    const needle = search.value.trim().toLowerCase();
    for (const group of list.querySelectorAll(".nbt-column-section")) {
      let shown = 0;
      for (const label of group.querySelectorAll(".nbt-column-choice")) {
        label.hidden = Boolean(needle) && !label.dataset.column.toLowerCase().includes(needle);
        if (!label.hidden) shown++;
      }
      group.hidden = shown === 0;
    }
  };
  const draw = () => {
    const visible = new Set(model.get("visible"));
    const columns = model.get("columns");
    summary.textContent = `Columns (${visible.size} of ${columns.length})`;
    const toggle = (column, on) => {
      const chosen = new Set(model.get("visible"));
      if (on) chosen.add(column); else chosen.delete(column);
      choose(model, "visible", model.get("columns").filter((c) => chosen.has(c)));
    };
    fill(list, COLUMN_GROUPS.map(([title, test]) => {
      const members = columns.filter(test);
      if (!members.length) return null;
      return h("div", { className: "nbt-column-section", dataset: { group: title } },
        h("div", { className: "nbt-column-group" }, `${title} (${members.length})`),
        members.map((column) => h("label", { className: "nbt-column-choice", title: column, dataset: { column } },
          h("input", {
            type: "checkbox", checked: visible.has(column), disabled: column === "name",
            onChange: (e) => toggle(column, e.target.checked),
          }),
          title === "run" ? column : column.slice(column.indexOf(".") + 1))));
    }));
    applySearch();
  };
  search.addEventListener("input", applySearch);
  details.addEventListener("toggle", () => { if (details.open) search.focus(); });
  const outside = (e) => { if (details.open && !details.contains(e.target)) details.open = false; };
  document.addEventListener("click", outside);
  model.on("change:columns", draw);
  model.on("change:visible", draw);
  model.on("change:first_kind", () => { order.querySelector("select").value = model.get("first_kind"); });
  draw();
  const el = h("span", { style: "position:relative" }, details);
  return { el, cleanup: () => document.removeEventListener("click", outside) };
}

function table(model) {
  const selected = new Set(model.get("selected"));
  const toggle = (id, on) => {
    if (on) selected.add(id); else selected.delete(id);
    choose(model, "selected", [...selected]);
  };
  const rows = model.get("rows");
  const pageIds = rows.map((r) => r.id);
  const allOnPage = pageIds.length > 0 && pageIds.every((id) => selected.has(id));
  const visible = model.get("visible");
  const pin = (column) => (column === "name" ? "nbt-pin nbt-pin-1" : "");
  const head = h("tr", {},
    h("th", { className: "nbt-pin nbt-pin-0" }, h("input", {
      type: "checkbox", className: "nbt-select-page", checked: allOnPage, title: "select this page",
      onChange: (e) => { pageIds.forEach((id) => (e.target.checked ? selected.add(id) : selected.delete(id))); choose(model, "selected", [...selected]); },
    })),
    visible.map((column) => {
      const sorted = column === model.get("sort_by");
      const arrow = sorted ? (model.get("descending") ? " ▼" : " ▲") : "";
      return h("th", {
        className: `nbt-sortable ${pin(column)}`, title: `sort by ${column}`, style: "cursor:pointer",
        dataset: { column }, onClick: () => intent(model, "sort", { column }),
      }, column, arrow);
    }));
  const body = rows.map((row) => h("tr", {
    className: row.deleted ? "nbt-deleted" : "", dataset: { runId: row.id },
  },
  h("td", { className: "nbt-pin nbt-pin-0" }, h("input", {
    type: "checkbox", className: "nbt-select", checked: selected.has(row.id),
    onChange: (e) => toggle(row.id, e.target.checked),
  })),
  row.cells.map((text, i) => {
    const column = visible[i];
    if (column === "status") return h("td", {}, statusBadge(text), " ", staleBadge(row.stale));
    if (column === "name") {
      return h("td", { title: `${text}: open the run`, className: `nbt-run-name ${pin(column)}` }, swatch(row.color),
        h("a", { href: "#", className: "nbt-open-run", onClick: (e) => { e.preventDefault(); intent(model, "open", { run_id: row.id }); } }, text));
    }
    return h("td", { title: text }, text);
  })));
  return h("table", { className: "nbt-runs" }, h("thead", {}, head), h("tbody", {}, body));
}

/** The pinned name column sits right of the checkbox column, whatever its width. */
function pinOffsets(grid) {
  const first = grid.querySelector("th.nbt-pin-0");
  if (first) grid.querySelector("table")?.style.setProperty("--nbt-pin-left", `${first.offsetWidth}px`);
}

function pager(model) {
  const total = model.get("total");
  const size = Math.max(1, model.get("page_size"));
  const pages = Math.max(1, Math.ceil(total / size));
  const page = model.get("page");
  const go = (n) => intent(model, "page", { page: Math.min(pages - 1, Math.max(0, n)) });
  return h("div", { className: "nbt-toolbar nbt-pager" },
    button("«", () => go(0), { disabled: page === 0 }),
    button("‹", () => go(page - 1), { disabled: page === 0, className: "nbt-button nbt-prev" }),
    h("span", {}, `page ${page + 1} of ${pages}`),
    button("›", () => go(page + 1), { disabled: page >= pages - 1, className: "nbt-button nbt-next" }),
    button("»", () => go(pages - 1), { disabled: page >= pages - 1 }),
    h("span", { className: "nbt-muted nbt-total" }, `${total.toLocaleString()} run${total === 1 ? "" : "s"}`),
    model.get("applied") ? h("span", { className: "nbt-muted" }, `matching ${model.get("applied")}`) : null);
}

function actionBar(model) {
  const chosen = model.get("selected");
  const buttons = model.get("actions").map((a) => {
    const ok = chosen.length >= a.min && (a.max === null || chosen.length <= a.max);
    return button(a.label, () => intent(model, "action", { name: a.name, run_ids: chosen }),
      { disabled: !ok, dataset: { action: a.name }, title: ok ? "" : `select ${a.max === a.min ? a.min : `${a.min}+`} run(s)` });
  });
  return [...buttons, h("span", { className: "nbt-muted" }, `${chosen.length} selected`)];
}

/** A bad filter: its message, then the filter in monospace with the offending token marked. */
function filterError(model) {
  const found = model.get("filter_error");
  const error = model.get("error");
  if (!found || found.text === undefined || !error.startsWith(found.message)) return [error];
  const text = found.text.replace(/[\t\n\r\f\v]/g, " "); // one line, as the caret assumes
  const { start, end } = found;
  return [
    h("div", {}, found.message),
    h("pre", { className: "nbt-filter-echo" },
      text.slice(0, start),
      h("mark", { className: "nbt-filter-token" }, text.slice(start, end) || " "),
      text.slice(end), "\n",
      " ".repeat(start), h("span", { className: "nbt-filter-caret" }, "^".repeat(Math.max(1, end - start)))),
  ];
}

function render({ model, el }) {
  ensureStyle();
  const chooser = columnChooser(model);
  const top = h("div", { className: "nbt-toolbar" },
    h("b", {}, model.get("experiment")),
    filterBox(model),
    select(["active", "deleted", "all"], model.get("view"), (v) => choose(model, "view", v), { className: "nbt-view" }),
    chooser.el);
  const error = h("div", { className: "nbt-error nbt-filter-error" });
  const actionButtons = h("span", { className: "nbt-toolbar" });
  const message = h("span", { className: "nbt-message" });
  const actions = h("div", { className: "nbt-toolbar nbt-actions" }, actionButtons, message);
  const grid = h("div", { className: "nbt-grid", style: "overflow-x:auto" });
  const pages = h("div");
  const detailBody = h("div");
  const detailText = h("div");
  const detail = h("div", { className: "nbt-slot nbt-detail", hidden: true },
    h("div", { className: "nbt-toolbar" },
      button("× close", () => intent(model, "close_detail"), { className: "nbt-button nbt-close" })),
    detailText, detailBody);
  el.append(h("div", { className: "nbt nbt-table" }, top, error, actions, grid, pages, detail));

  const drawError = () => fill(error, ...filterError(model));
  const drawGrid = () => {
    fill(grid, table(model));
    requestAnimationFrame(() => pinOffsets(grid));
  };
  const drawActions = () => fill(actionButtons, ...actionBar(model));
  const drawPages = () => fill(pages, pager(model));
  let hasChild = false;
  const drawDetail = () => {
    const text = model.get("detail_text");
    fill(detailText, ...(text ? [
      h("div", { className: "nbt-subtitle" }, model.get("detail_title")),
      h("pre", { className: "nbt-pre nbt-source" }, text)] : []));
    detail.hidden = !(text || hasChild);
  };
  const watch = {
    error: [drawError], filter_error: [drawError],
    rows: [drawGrid], visible: [drawGrid], sort_by: [drawGrid], descending: [drawGrid],
    selected: [drawGrid, drawActions], actions: [drawActions],
    total: [drawPages], page: [drawPages], page_size: [drawPages], applied: [drawPages],
    detail_text: [drawDetail], detail_title: [drawDetail],
  };
  for (const [name, fns] of Object.entries(watch)) for (const fn of fns) model.on(`change:${name}`, fn);
  drawError(); drawGrid(); drawActions(); drawPages(); drawDetail();
  const cleanups = [
    childSlot(model, "detail", detailBody, (present) => { hasChild = present; drawDetail(); }),
    fadingMessage(model, message),
    chooser.cleanup,
  ];
  return () => cleanups.forEach((c) => c());
}

export default { render };
