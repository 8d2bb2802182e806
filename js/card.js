// RunCard (nbtrack/widgets/card.py): one run under its %%track cell.
//
// reads:  run (display strings: name, status, duration, params, metrics, error, stale,
//         run_id), actions, curves (child MetricCurves), show_curves, detail (child panel
//         an action opened), message, error
// writes: nothing directly; buttons send intents {kind: "action", name, run_ids} and
//         {kind: "close_detail"}, and Python changes the traits above in answer.

function pairs(label, items, more) {
  if (!items.length) return null;
  const text = items.map(([k, v]) => `${k}=${v}`).join(", ") + (more ? `, +${more} more` : "");
  return h("span", { className: "nbt-pairs" }, h("i", {}, label), " ", text);
}

function render({ model, el }) {
  ensureStyle();
  const line = h("div", { className: "nbt-card-line" });
  const error = h("div", { className: "nbt-error" });
  const message = h("div", { className: "nbt-message" });
  const curves = h("div", { className: "nbt-slot nbt-card-curves" });
  const detailBody = h("div");
  const detail = h("div", { className: "nbt-slot nbt-detail" },
    h("div", { className: "nbt-toolbar" },
      button("× close", () => intent(model, "close_detail"), { className: "nbt-button nbt-close" })),
    detailBody);
  const root = h("div", { className: "nbt nbt-run-card" }, line, error, message, curves, detail);
  el.append(root);

  const draw = () => {
    const run = model.get("run");
    const buttons = model.get("actions").map((a) =>
      button(a.label, () => intent(model, "action", { name: a.name, run_ids: [run.run_id] }),
        { dataset: { action: a.name } }));
    fill(line,
      h("b", { className: "nbt-name" }, run.name),
      statusBadge(run.status),
      staleBadge(run.stale),
      h("span", {}, run.duration),
      pairs("params", run.params, run.more_params),
      pairs("metrics", run.metrics, run.more_metrics),
      h("code", { className: "nbt-muted" }, run.run_id.slice(0, 8)),
      ...buttons,
    );
    error.textContent = [run.error, model.get("error")].filter(Boolean).join("\n");
    message.textContent = model.get("message");
    curves.style.display = model.get("show_curves") ? "" : "none";
  };
  for (const name of ["run", "actions", "error", "message", "show_curves"]) model.on(`change:${name}`, draw);
  draw();
  const cleanups = [
    childSlot(model, "curves", curves),
    childSlot(model, "detail", detailBody, (present) => { detail.hidden = !present; }),
  ];
  return () => cleanups.forEach((c) => c());
}

export default { render };
