// Every nbtrack panel's anywidget module in a notebook: a few hundred bytes that import
// the panel's own module from the SharedModule its `_module` trait names, then draw with
// it. A run card under every %%track cell thus sends (and a saved notebook stores) its
// 20 kB module once per kernel, not once per card.

import { importShared } from "./shared.js";

export default {
  async render(context) {
    const panel = await importShared(context.model, "_module");
    return panel.default.render(context);
  },
};
