// RunTable (nbtrack/widgets/table.py): a page of runs with a filter box, sortable
// headers, a column chooser, multi-select and actions on the selection.
//
// reads:  rows (the current page: {id, cells, status, deleted, stale}), columns, visible,
//         sort_by, descending, page, page_size, total, filter, applied, error, message,
//         view, selected, actions, experiment, detail (child panel), detail_title,
//         detail_text
// writes: selected, visible, view (the user's choices, validated by Python)
// intents: {kind: "filter", text}, {kind: "sort", column}, {kind: "page", page},
//          {kind: "action", name, run_ids}, {kind: "close_detail"}

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

function columnChooser(model) {
  const details = h("details", { className: "nbt-columns" });
  const draw = () => {
    const visible = model.get("visible");
    const boxes = model.get("columns").map((column) => h("label", { style: "display:block" },
      h("input", {
        type: "checkbox", checked: visible.includes(column),
        onChange: (e) => {
          const chosen = new Set(model.get("visible"));
          if (e.target.checked) chosen.add(column); else chosen.delete(column);
          choose(model, "visible", model.get("columns").filter((c) => chosen.has(c)));
        },
      }), column));
    fill(details, h("summary", {}, "Columns"),
      h("div", { style: "max-height:16em;overflow:auto;position:absolute;z-index:10;background:var(--jp-layout-color1,#fff);border:1px solid #ccc;padding:4px" }, boxes));
  };
  model.on("change:columns", draw);
  model.on("change:visible", draw);
  draw();
  return h("span", { style: "position:relative" }, details);
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
  const head = h("tr", {},
    h("th", {}, h("input", {
      type: "checkbox", className: "nbt-select-page", checked: allOnPage, title: "select this page",
      onChange: (e) => { pageIds.forEach((id) => (e.target.checked ? selected.add(id) : selected.delete(id))); choose(model, "selected", [...selected]); },
    })),
    visible.map((column) => {
      const sorted = column === model.get("sort_by");
      const arrow = sorted ? (model.get("descending") ? " ▼" : " ▲") : "";
      return h("th", {
        className: "nbt-sortable", title: `sort by ${column}`, style: "cursor:pointer",
        dataset: { column }, onClick: () => intent(model, "sort", { column }),
      }, column, arrow);
    }));
  const body = rows.map((row) => h("tr", {
    className: row.deleted ? "nbt-deleted" : "", dataset: { runId: row.id },
  },
  h("td", {}, h("input", {
    type: "checkbox", className: "nbt-select", checked: selected.has(row.id),
    onChange: (e) => toggle(row.id, e.target.checked),
  })),
  row.cells.map((text, i) => {
    const column = visible[i];
    if (column === "status") return h("td", {}, statusBadge(text), " ", staleBadge(row.stale));
    return h("td", { title: text, className: column === "name" ? "nbt-run-name" : "" }, text);
  })));
  return h("table", { className: "nbt-runs" }, h("thead", {}, head), h("tbody", {}, body));
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
  return h("div", { className: "nbt-toolbar nbt-actions" }, ...buttons,
    h("span", { className: "nbt-muted" }, `${chosen.length} selected`),
    h("span", { className: "nbt-message" }, model.get("message")));
}

function render({ model, el }) {
  ensureStyle();
  const top = h("div", { className: "nbt-toolbar" },
    h("b", {}, model.get("experiment")),
    filterBox(model),
    select(["active", "deleted", "all"], model.get("view"), (v) => choose(model, "view", v), { className: "nbt-view" }),
    columnChooser(model));
  const error = h("div", { className: "nbt-error nbt-filter-error" });
  const actions = h("div");
  const grid = h("div", { className: "nbt-grid", style: "overflow-x:auto" });
  const pages = h("div");
  const detailBody = h("div");
  const detailText = h("div");
  const detail = h("div", { className: "nbt-slot nbt-detail", hidden: true },
    h("div", { className: "nbt-toolbar" },
      button("× close", () => intent(model, "close_detail"), { className: "nbt-button nbt-close" })),
    detailText, detailBody);
  el.append(h("div", { className: "nbt nbt-table" }, top, error, actions, grid, pages, detail));

  const drawError = () => { error.textContent = model.get("error"); };
  const drawGrid = () => fill(grid, table(model));
  const drawActions = () => fill(actions, actionBar(model));
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
    error: [drawError],
    rows: [drawGrid], visible: [drawGrid], sort_by: [drawGrid], descending: [drawGrid],
    selected: [drawGrid, drawActions], actions: [drawActions], message: [drawActions],
    total: [drawPages], page: [drawPages], page_size: [drawPages], applied: [drawPages],
    detail_text: [drawDetail], detail_title: [drawDetail],
  };
  for (const [name, fns] of Object.entries(watch)) for (const fn of fns) model.on(`change:${name}`, fn);
  drawError(); drawGrid(); drawActions(); drawPages(); drawDetail();
  const cleanup = childSlot(model, "detail", detailBody, (present) => { hasChild = present; drawDetail(); });
  return cleanup;
}

export default { render };
