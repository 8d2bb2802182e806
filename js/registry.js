// RegistryPanel (nbtrack/widgets/registry.py): registered models with their versions,
// stage transitions through the model's policy, a version's source run, the audit log.
//
// reads:  model_name, models ({name, description, policy, versions: [{version, stage,
//         moves, alias_moves, aliases, run_id, run_name, source, created_by, created,
//         metrics, digest}]}), pending (the prepared move: {id, kind ("stage" or "alias"),
//         model, version, alias, from, to, who, policy, checks, failed, reason_required,
//         archives}), events (newest first), total_events, detail ({run_id, title,
//         sections}), error, message
// writes: nothing directly; intents: {kind: "prepare", model, version, stage} (or alias
//         instead of stage: a protected alias, reviewed as a stage move is),
//         {kind: "confirm", reason, force}, {kind: "cancel"}, {kind: "open_run", run_id},
//         {kind: "close_detail"}, {kind: "refresh"}

import { h, fill, intent, button, ensureStyle } from "./common.js";

const REGISTRY_STYLE = `
.nbt-stage-Production { background: #1a7f37; } .nbt-stage-Staging { background: #9a6700; }
.nbt-stage-Archived { background: #6e7781; } .nbt-stage-None { background: #8c959f; }
.nbt-alias { background: #8250df; margin-right: 3px; }
.nbt-forced { background: #cf222e; }
.nbt-model { margin: 4px 0 10px; }
.nbt-model-title { font-size: 13px; font-weight: 600; }
.nbt-run-link { font: inherit; border: none; background: none; padding: 0; cursor: pointer;
  color: var(--jp-content-link-color, #0969da); text-decoration: underline; }
.nbt-moves { display: flex; flex-wrap: wrap; gap: 3px; }
.nbt-moves .nbt-button { padding: 0 5px; font-size: 11px; }
.nbt-transition { border: 1px solid var(--jp-border-color1, #bbb); border-left: 3px solid #8250df;
  padding: 6px 8px; margin: 4px 0 8px; max-width: 60em; }
.nbt-checks { list-style: none; padding: 0; margin: 4px 0; }
.nbt-check { margin: 1px 0; }
.nbt-check .nbt-verdict { display: inline-block; min-width: 4.5em; font-weight: 700; white-space: nowrap; }
.nbt-pass .nbt-verdict { color: #1a7f37; } .nbt-fail .nbt-verdict { color: #cf222e; }
.nbt-reason { width: 100%; box-sizing: border-box; min-height: 3.2em; font: inherit; margin: 4px 0; }
.nbt-audit-log { max-width: 100%; overflow-x: auto; }
.nbt-audit { width: 100%; }
.nbt-audit td, .nbt-audit th { vertical-align: top; }
.nbt-audit td.nbt-why, .nbt-audit td.nbt-check-summary { white-space: normal; overflow-wrap: break-word; }
.nbt-audit td.nbt-why { min-width: 12em; }
.nbt-audit tr.nbt-latest td { background: #fff8c5; color: #1f2328; }
`;

function ensureRegistryStyle() {
  ensureStyle();
  if (document.getElementById("nbtrack-registry-style")) return;
  document.head.append(h("style", { id: "nbtrack-registry-style" }, REGISTRY_STYLE));
}

function stageBadge(stage) {
  return h("span", { className: `nbt-badge nbt-stage-${stage}` }, stage);
}

function versionRow(model, name, v) {
  const run = v.run_id
    ? button(v.run_name || v.run_id.slice(0, 8), () => intent(model, "open_run", { run_id: v.run_id }),
      { className: "nbt-run-link", title: `open run ${v.run_id}` })
    : h("span", { className: "nbt-muted" }, "-");
  const moves = v.moves.map((stage) => button(`→ ${stage}`,
    () => intent(model, "prepare", { model: name, version: v.version, stage }),
    { className: "nbt-button nbt-move", dataset: { stage }, title: `move version ${v.version} to ${stage}` }));
  const aliasMoves = v.alias_moves.map((alias) => button(`→ @${alias}`,
    () => intent(model, "prepare", { model: name, version: v.version, alias }),
    { className: "nbt-button nbt-move nbt-alias-move", dataset: { alias },
      title: `point the protected alias @${alias} at version ${v.version}` }));
  return h("tr", { dataset: { version: String(v.version) } },
    h("td", {}, `v${v.version}`),
    h("td", { className: "nbt-version-stage" }, stageBadge(v.stage)),
    h("td", { className: "nbt-aliases" }, v.aliases.map((a) => h("span", { className: "nbt-badge nbt-alias" }, `@${a}`))),
    h("td", { className: "nbt-source" }, run, " ", h("code", { className: "nbt-muted" }, v.run_id.slice(0, 8))),
    h("td", {}, v.created_by),
    h("td", {}, v.created),
    h("td", { title: v.metrics }, v.metrics),
    h("td", {}, h("span", { className: "nbt-moves" }, moves, aliasMoves)));
}

function modelSection(model, m) {
  const head = ["version", "stage", "aliases", "source run", "registered by", "created", "metrics", "move to"];
  const table = m.versions.length
    ? h("table", { className: "nbt-versions" },
      h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
      h("tbody", {}, m.versions.map((v) => versionRow(model, m.name, v))))
    : h("div", { className: "nbt-muted" }, "no versions yet: register a run's model (the Register button of a run table or card, or %track register)");
  return h("div", { className: "nbt-model", dataset: { model: m.name } },
    h("div", { className: "nbt-model-title" }, m.name, " ",
      h("span", { className: "nbt-muted" }, `${m.versions.length} version${m.versions.length === 1 ? "" : "s"}`)),
    m.description ? h("div", {}, m.description) : null,
    h("div", { className: "nbt-muted nbt-policy" }, `policy: ${m.policy}`),
    table);
}

function checkList(p) {
  if (!p.checks.length) {
    return h("div", { className: "nbt-muted nbt-no-checks" }, `no checks: the policy has none for ${p.to}`);
  }
  return h("ul", { className: "nbt-checks" }, p.checks.map((c) =>
    h("li", { className: `nbt-check ${c.passed ? "nbt-pass" : "nbt-fail"}` },
      h("span", { className: "nbt-verdict" }, c.passed ? "✓ pass" : "✗ FAIL"), " ",
      h("code", {}, c.check), " ", h("span", { className: "nbt-muted" }, `actual: ${c.actual}`))));
}

// What the user typed, per prepared move, so a redraw (a refusal, a refresh) keeps it.
const drafts = new Map();

function transitionForm(model, p) {
  const key = `${p.model}\u0000${p.version}\u0000${p.to}`;
  const reason = h("textarea", {
    className: "nbt-reason", value: drafts.get(key) || "",
    placeholder: p.reason_required ? `why move it to ${p.to}? (required, recorded in the audit log)` : "why? (optional)",
  });
  const alias = p.kind === "alias";
  const label = alias ? `Point @${p.alias} here`
    : p.to === "Archived" ? "Archive" : p.to === "None" ? "Move to None" : `Promote to ${p.to}`;
  const confirm = button(label, () => send(false), { className: "nbt-button nbt-confirm" });
  const force = p.failed
    ? button("Force with reason", () => send(true), {
      className: "nbt-button nbt-force", title: "move despite the failed checks; recorded as forced",
    })
    : null;
  const update = () => {
    const text = reason.value.trim();
    drafts.set(key, reason.value);
    confirm.disabled = p.failed > 0 || (p.reason_required && !text);
    confirm.title = p.failed > 0 ? `${p.failed} check(s) failed` : (confirm.disabled ? "give a reason first" : "");
    if (force) force.disabled = !text;
  };
  const send = (forced) => {
    confirm.disabled = true;
    if (force) force.disabled = true;
    intent(model, "confirm", { reason: reason.value, force: forced });
  };
  reason.addEventListener("input", update);
  update();
  const passed = p.checks.length - p.failed;
  return h("div", { className: "nbt-transition", dataset: { model: p.model, version: String(p.version), stage: p.to } },
    alias
      ? h("div", { className: "nbt-subtitle" }, `Point ${p.model} `, h("span", { className: "nbt-badge nbt-alias" }, p.to),
        ` at version ${p.version} (now: ${p.from})`)
      : h("div", { className: "nbt-subtitle" }, `Move ${p.model} version ${p.version}: `, stageBadge(p.from), " → ", stageBadge(p.to)),
    h("div", { className: "nbt-muted" }, `as ${p.who} · policy: ${p.policy}`),
    h("div", { className: `nbt-check-summary${p.failed ? " nbt-error" : ""}` }, p.checks.length
      ? `checks (dry run, nothing moved yet): ${passed} of ${p.checks.length} passed`
      : "checks (dry run, nothing moved yet)"),
    checkList(p),
    p.archives.length
      ? h("div", { className: "nbt-archives" }, `Version ${p.archives.join(", ")} (now in ${p.to}) will be archived.`)
      : null,
    reason,
    h("div", { className: "nbt-toolbar" }, confirm, force,
      button("Cancel", () => intent(model, "cancel"), { className: "nbt-button nbt-cancel" })));
}

function auditLog(model) {
  const events = model.get("events");
  const total = model.get("total_events");
  const all = !model.get("model_name");
  const head = ["time", "who", ...(all ? ["model"] : []), "event", "version", "from", "to", "reason", "checks"];
  const rows = events.map((e, i) => h("tr", { className: i === 0 ? "nbt-latest" : "", dataset: { seq: String(e.seq) } },
    h("td", { className: "nbt-time" }, e.time), h("td", {}, e.who), all ? h("td", {}, e.model) : null,
    h("td", { className: "nbt-event" }, e.event, e.forced ? [" ", h("span", { className: "nbt-badge nbt-forced" }, "forced")] : null),
    h("td", {}, e.version),
    h("td", {}, e.from), h("td", {}, e.to),
    h("td", { className: "nbt-why", title: e.reason || e.detail }, e.reason || h("span", { className: "nbt-muted" }, e.detail)),
    h("td", { className: "nbt-check-summary", title: e.check_lines.join("\n") }, e.checks)));
  return h("div", { className: "nbt-audit-log" },
    h("div", { className: "nbt-subtitle" }, "audit log ",
      h("span", { className: "nbt-muted" }, total > events.length ? `(newest ${events.length} of ${total})` : `(${total} event${total === 1 ? "" : "s"}, newest first)`)),
    events.length
      ? h("table", { className: "nbt-audit" }, h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))), h("tbody", {}, rows))
      : h("div", { className: "nbt-muted" }, "no events yet"));
}

function runDetail(model) {
  const d = model.get("detail");
  if (!d.run_id) return [];
  return h("div", { className: "nbt-run-detail" },
    h("div", { className: "nbt-toolbar" }, h("b", {}, d.title),
      button("× close", () => intent(model, "close_detail"), { className: "nbt-button nbt-close" })),
    d.sections.flatMap(([title, body]) => [h("div", { className: "nbt-subtitle" }, title), h("pre", { className: "nbt-pre" }, body)]));
}

function render({ model, el }) {
  ensureRegistryStyle();
  const title = model.get("model_name") ? `Model registry: ${model.get("model_name")}` : "Model registry";
  const status = h("span", { className: "nbt-message nbt-registry-message" });
  const error = h("div", { className: "nbt-error nbt-registry-error" });
  const models = h("div", { className: "nbt-models" });
  const detail = h("div", { className: "nbt-slot nbt-detail" });
  const log = h("div");
  el.append(h("div", { className: "nbt nbt-registry" },
    h("div", { className: "nbt-toolbar" }, h("b", {}, title),
      button("↻ refresh", () => intent(model, "refresh"), { className: "nbt-button nbt-refresh" }), status),
    error, models, detail, log));

  let form = null; // the open transition form, kept while its pending move is the same
  let formId = null;
  const drawModels = () => {
    const list = model.get("models");
    const p = model.get("pending");
    if (!p.model) { form = null; formId = null; } else if (p.id !== formId) { form = transitionForm(model, p); formId = p.id; }
    fill(models, list.length
      ? list.map((m) => {
        const section = modelSection(model, m);
        if (form && p.model === m.name) section.append(form);
        return section;
      })
      : h("div", { className: "nbt-muted" }, "No registered models yet."));
  };
  const drawStatus = () => {
    status.textContent = model.get("message");
    error.textContent = model.get("error");
  };
  const drawDetail = () => fill(detail, runDetail(model));
  const drawLog = () => fill(log, auditLog(model));
  const watch = {
    models: [drawModels], pending: [drawModels], error: [drawStatus], message: [drawStatus],
    detail: [drawDetail], events: [drawLog], total_events: [drawLog],
  };
  for (const [name, fns] of Object.entries(watch)) for (const fn of fns) model.on(`change:${name}`, fn);
  drawModels(); drawStatus(); drawDetail(); drawLog();
}

export default { render };
