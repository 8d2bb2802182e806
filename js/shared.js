// Importing an ES module that a SharedModule model carries (nbtrack/widgets/panel.py):
// vega's bundle, or a panel's own module. The kernel sends each once; every panel refers
// to it by a trait ("IPY_MODEL_<id>"), and the page imports it once per digest.

export const MODEL_PREFIX = "IPY_MODEL_";

/** The module that the SharedModule named by `model`'s trait `name` carries. */
export async function importShared(model, name) {
  const ref = model.get(name);
  const shared = await model.widget_manager.get_model(ref.slice(MODEL_PREFIX.length));
  const cache = (globalThis.__nbtrackModules ??= new Map());
  const digest = shared.get("digest");
  if (!cache.has(digest)) {
    const url = URL.createObjectURL(new Blob([shared.get("code")], { type: "text/javascript" }));
    cache.set(digest, import(/* webpackIgnore: true */ url).finally(() => URL.revokeObjectURL(url)));
  }
  return cache.get(digest);
}
