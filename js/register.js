// RegisterForm (nbtrack/widgets/register.py): register one run's model package as a new
// version of a registered model; opened by the Register action of a run card or run table.
//
// reads:  run ({run_id, name}), packages, artifact, models, registered ({name, version,
//         uri}), answered (a reply arrived: the button is enabled again), error, message
// writes: nothing directly; the Register button sends {kind: "register", model, artifact}

import { h, fill, intent, button, ensureStyle } from "./common.js";

let formCount = 0;

function render({ model, el }) {
  ensureStyle();
  const id = `nbt-register-${++formCount}`;
  const run = model.get("run");
  const names = h("datalist", { id: `${id}-models` });
  const paths = h("datalist", { id: `${id}-paths` });
  const name = h("input", {
    type: "text", className: "nbt-model-name", placeholder: "model name, e.g. churn",
    spellcheck: false, list: `${id}-models`,
  });
  const artifact = h("input", {
    type: "text", className: "nbt-artifact", value: model.get("artifact"), spellcheck: false,
    title: "the model package's artifact path in the run", list: `${id}-paths`,
  });
  const submit = button("Register", () => send(), { className: "nbt-button nbt-register-submit" });
  const send = () => {
    submit.disabled = true;
    intent(model, "register", { model: name.value, artifact: artifact.value });
  };
  name.addEventListener("keydown", (e) => { if (e.key === "Enter") send(); });
  const error = h("div", { className: "nbt-error nbt-register-error" });
  const result = h("div", { className: "nbt-register-result" });
  el.append(h("div", { className: "nbt nbt-register" },
    h("div", { className: "nbt-subtitle" }, "Register run ", h("b", {}, run.name || run.run_id.slice(0, 8)),
      " ", h("code", { className: "nbt-muted" }, run.run_id.slice(0, 8)), " as a model version"),
    h("div", { className: "nbt-toolbar" },
      h("label", {}, "model ", name), h("label", {}, "artifact ", artifact), submit),
    names, paths, error, result));

  const draw = () => {
    fill(names, model.get("models").map((m) => h("option", { value: m })));
    fill(paths, model.get("packages").map((p) => h("option", { value: p })));
    error.textContent = model.get("error");
    const done = model.get("registered");
    fill(result, done.name ? [h("b", { className: "nbt-registered" }, `✓ ${done.name} version ${done.version}`), " "] : [],
      h("span", { className: "nbt-message" }, model.get("message")));
    submit.disabled = false;
  };
  for (const trait of ["models", "packages", "error", "message", "registered", "answered"]) {
    model.on(`change:${trait}`, draw);
  }
  draw();
  setTimeout(() => name.focus(), 0);
}

export default { render };
