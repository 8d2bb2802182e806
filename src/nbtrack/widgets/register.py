"""The Register action of the run card and the run table, and the form it opens.

The action checks that the run logged a model package, then shows a :class:`RegisterForm`
in the panel's detail area: a model name (existing names offered) and the package's
artifact path (the run's logged model folder by default). Submitting registers the
package as the model's next version (:func:`nbtrack.registry.register_model`) and
reports the version, or says what was wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import traitlets

from nbtrack.errors import InvalidParameterError
from nbtrack.models.source import model_packages
from nbtrack.registry import changes, queries
from nbtrack.registry.queries import using_store
from nbtrack.tracking import fluent
from nbtrack.widgets.panel import Panel

if TYPE_CHECKING:
    from nbtrack.store import Store

DEFAULT_ARTIFACT = "model"  # log_model's default name


class RegisterForm(Panel):
    """Asks for a model name (and artifact path) and registers one run's model package."""

    module_name = "register.js"
    run = traitlets.Dict().tag(sync=True)  # {run_id, name}
    packages = traitlets.List(traitlets.Unicode()).tag(sync=True)  # the run's package paths
    artifact = traitlets.Unicode("").tag(sync=True)  # the default (then the last submitted)
    models = traitlets.List(traitlets.Unicode()).tag(sync=True)  # names registered so far
    registered = traitlets.Dict().tag(sync=True)  # {name, version, uri} after success
    answered = traitlets.Int(0).tag(sync=True)  # counts replies, so the page re-enables

    def __init__(self, run_id: str, store: Store | None = None) -> None:
        store = store or fluent.current_store()
        row = store.get_run(run_id)
        packages = [p for p in model_packages(store, run_id) if p != "."]
        if not packages:
            label = row.get("run_name") or run_id[:8]
            raise InvalidParameterError(
                f"Run {label!r} ({run_id[:8]}) logged no model, so there is nothing to register: "
                "log one in the run with nbtrack.log_model(model, 'model'), then register it."
            )
        artifact = DEFAULT_ARTIFACT if DEFAULT_ARTIFACT in packages else packages[0]
        with using_store(store):
            models = [m.name for m in queries.search_registered_models(max_results=None)]
        super().__init__(
            run={"run_id": run_id, "name": row.get("run_name", "")},
            packages=packages,
            artifact=artifact,
            models=models,
        )
        self._store = store

    def register(self, model: str, artifact: str = "") -> Any:
        """Register the run's package at ``artifact`` as the next version of ``model``."""
        with self._lock:
            self.error = self.message = ""
            try:
                return self._register(model.strip(), artifact.strip().strip("/"))
            finally:
                self.answered += 1

    def _register(self, model: str, artifact: str) -> Any:
        if not model:
            raise InvalidParameterError("Give the model a name to register this run under.")
        artifact = artifact or self.artifact
        run_id = self.run["run_id"]
        with using_store(self._store):  # the panel's store, whatever is current now
            version = changes.register_model(f"runs:/{run_id}/{artifact}", model)
        uri = f"models:/{version.name}/{version.version}"
        self.artifact = artifact
        self.registered = {"name": version.name, "version": version.version, "uri": uri}
        if version.name not in self.models:
            self.models = sorted([*self.models, version.name])
        self.message = (
            f"Registered {self.run['name'] or run_id[:8]} as {version.name} version "
            f"{version.version} ({uri}); %track registry {version.name} shows it."
        )
        return version

    def handle_intent(self, kind: str, content: dict[str, Any]) -> None:
        if kind == "register":
            self.register(str(content.get("model") or ""), str(content.get("artifact") or ""))
        else:
            super().handle_intent(kind, content)

    def static_bundle(self, charts: bool = True) -> dict[str, Any]:
        import html

        done = self.registered
        text = (
            f"registered as {done['name']} version {done['version']}"
            if done
            else f"register run {self.run['name'] or self.run['run_id'][:8]}"
        )
        return {"text/html": f"<div>{html.escape(text)}</div>", "text/plain": text}


def register_run(panel: Any, run_ids: list[str]) -> RegisterForm:
    """The Register action: a form for the (one) selected run, shown in the detail area."""
    return RegisterForm(run_ids[0], store=panel.store)
