"""The base of every nbtrack panel: an anywidget whose display also carries a static form,
the actions a panel offers, and the SharedModules that ship vega and each panel's ES
module to the page once per kernel.

A panel's display bundle holds the widget view *and* ``text/plain`` (a readable table),
``text/html`` (escaped markup, no scripts, with each chart as an inline PNG) and
``image/png`` (its main chart). A live frontend draws the widget; a saved notebook opened
without a kernel (nbconvert, GitHub, JupyterLab) falls back to the static forms.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pkgutil
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import anywidget
import ipywidgets
import traitlets
from ipywidgets import widget_serialization

JS_FILES = ("shared.js", "common.js")
VEGA = "vega"  # the SharedModule holding vega-embed, not a file of js/
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _js_dir() -> Path:
    """The ES modules: inside the package when installed from a wheel, else the repo's js/."""
    packaged = Path(__file__).parent / "js"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[3] / "js"


# The panels import the shared helpers (``import { h, fill } from "./common.js";``), as the
# JupyterLab extension's bundler resolves them; common.js exports each one.
_IMPORT = re.compile(r'^import \{[^}]*\} from "\./(?:shared|common)\.js";\n', re.MULTILINE)
_EXPORT = re.compile(r"^export (?=(?:async function|function|const) )", re.MULTILINE)


@functools.cache
def esm(name: str) -> str:
    """A panel's ES module: the shared helpers (shared.js, common.js) followed by the
    panel's own file ``js/<name>``."""
    return _inline((*JS_FILES, name))


@functools.cache
def _loader() -> str:
    """Every panel's ``_esm``: imports the panel's module from its ``_module``."""
    return _inline(("shared.js", "loader.js"))


def _inline(files: tuple[str, ...]) -> str:
    """The last of ``files`` with the others, its helpers, in front of it.

    The page loads a module from a blob URL, where relative imports cannot resolve, so
    the helpers are inlined (their ``export`` dropped) and the imports of them removed.
    """
    folder = _js_dir()
    *helpers, main = (_IMPORT.sub("", (folder / f).read_text("utf-8")) for f in files)
    return "\n".join([*(_EXPORT.sub("", helper) for helper in helpers), main])


# -- modules sent once per kernel -------------------------------------------------------------


class SharedModule(ipywidgets.Widget):
    """An ES module the page imports once: vega-embed, or a panel's own module.

    A bare model, never displayed (no view, no layout). Panels refer to it by a trait
    (``runtime`` for vega, ``_module`` for their own code), so a kernel sends it once, and
    a saved notebook stores it once, rather than once per chart or per run card.
    """

    code = traitlets.Unicode("").tag(sync=True)
    digest = traitlets.Unicode("").tag(sync=True)


def is_shared_module(state: dict[str, Any]) -> bool:
    """Whether a model's opening state is a SharedModule's (its comm knows no widget yet)."""
    return state.get("_model_name") == "WidgetModel" and {"code", "digest"} <= state.keys()


_shared: dict[str, SharedModule] = {}
_shared_lock = threading.Lock()


def shared_module(name: str) -> SharedModule:
    """The kernel's SharedModule of ``name`` (a file of js/, or :data:`VEGA`), made on first
    use and again once the user closed it."""
    with _shared_lock:
        found = _shared.get(name)
        if found is None or found.comm is None:
            code = vega_bundle() if name == VEGA else esm(name)
            digest = hashlib.sha256(code.encode()).hexdigest()[:16]
            found = _shared[name] = SharedModule(code=code, digest=digest)
        return found


def vega_runtime() -> SharedModule:
    """The kernel's vega-embed, which chart panels name in their ``runtime`` trait."""
    return shared_module(VEGA)


# -- actions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """A button a panel offers for the runs it shows (or has selected).

    ``handler(panel, run_ids)`` runs in the kernel; it may return a widget (shown in the
    panel's detail area), a string (shown as a message) or None. A ``"module:function"``
    string is imported on first use, as ``%track`` commands are.
    """

    label: str
    handler: str | Callable[[Any, list[str]], Any]
    min_runs: int = 1
    max_runs: int | None = None
    views: tuple[str, ...] = ("active", "deleted", "all")  # table views it applies to

    def describe(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": self.label,
            "min": self.min_runs,
            "max": self.max_runs,
            "views": list(self.views),
        }

    def resolve(self) -> Callable[[Any, list[str]], Any]:
        if callable(self.handler):
            return self.handler
        return pkgutil.resolve_name(self.handler)


class Panel(anywidget.AnyWidget):
    """An anywidget whose display carries a static fallback, and whose actions run here.

    A run card is made under every ``%%track`` cell, so a panel is made cheaply: its ES
    module ``js/<module_name>`` travels once per kernel in a :class:`SharedModule` that
    ``_module`` refers to, ``_esm`` being a small loader of it; ``_esm`` and
    ``_anywidget_id`` are class traits (anywidget adds them per instance, which builds a
    new class each time, ~1 ms); and there is no ``layout`` child widget (a second model,
    comm and saved state per panel; the page draws panels itself).
    """

    module_name: ClassVar[str]  # the panel's ES module, a file of js/

    _esm = traitlets.Unicode(_loader()).tag(sync=True)
    _module = traitlets.Instance(SharedModule).tag(sync=True, **widget_serialization)
    layout = traitlets.Instance(ipywidgets.Layout, allow_none=True).tag(
        sync=True, **widget_serialization
    )
    error = traitlets.Unicode("").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)

    # Subclasses name their action table (a dict other features may extend).
    action_table: ClassVar[dict[str, Action]] = {}

    _anywidget_id = traitlets.Unicode().tag(sync=True)  # which class: anywidget's CSS key

    @traitlets.default("_anywidget_id")
    def _default_anywidget_id(self) -> str:
        return f"{type(self).__module__}.{type(self).__name__}"

    @traitlets.default("_module")
    def _default_module(self) -> SharedModule:
        return shared_module(self.module_name)

    def __init__(self, **kwargs: Any) -> None:
        # DOMWidget's, not AnyWidget's __init__: the traits AnyWidget would add are
        # class traits here; anywidget's front end reads the same state either way.
        ipywidgets.DOMWidget.__init__(self, **kwargs)
        self._lock = threading.RLock()  # the watcher thread and the kernel's handlers
        self.on_msg(self._on_intent)

    # -- display ------------------------------------------------------------------------

    def static_bundle(self, charts: bool = True) -> dict[str, Any]:
        """``text/plain`` and ``text/html`` (plus ``image/png`` with charts) of the panel."""
        raise NotImplementedError

    def bundle(self, charts: bool = True) -> dict[str, Any]:
        """The whole display bundle: the widget view beside the static forms."""
        with self._lock:
            data = self.static_bundle(charts=charts)
        data[WIDGET_VIEW] = {"version_major": 2, "version_minor": 1, "model_id": self.model_id}
        return data

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.bundle(), {}

    def __repr__(self) -> str:
        return self.static_bundle(charts=False)["text/plain"]

    # -- intents ------------------------------------------------------------------------

    def _on_intent(self, _widget: Any, content: Any, _buffers: list) -> None:
        self.apply_intent(content)

    def apply_intent(self, content: Any) -> None:
        """Do what the page asked (a button pressed: ``{"kind": "action", ...}``)."""
        if not isinstance(content, dict) or "kind" not in content:
            return
        with self._lock, self.hold_sync():  # one message back, whatever changed
            try:
                self.handle_intent(content["kind"], content)
            except Exception as exc:  # shown in the panel; a click must not kill the comm
                self.message = ""
                self.error = f"{type(exc).__name__}: {exc}"

    def handle_intent(self, kind: str, content: dict[str, Any]) -> None:
        if kind == "action":
            self.run_action(str(content.get("name", "")), list(content.get("run_ids", [])))

    def run_action(self, name: str, run_ids: list[str]) -> Any:
        """Run an action of this panel's table on ``run_ids`` and show what it returns."""
        action = self.action_table.get(name)
        if action is None:
            raise ValueError(f"no action {name!r}; this panel has {sorted(self.action_table)}")
        count = len(run_ids)
        if count < action.min_runs or (action.max_runs is not None and count > action.max_runs):
            raise ValueError(f"{action.label!r} needs {_arity(action)}; {count} selected")
        self.error = ""
        self.message = ""
        result = action.resolve()(self, run_ids)
        self.show_result(result)
        return result

    def show_result(self, result: Any) -> None:
        if isinstance(result, str):
            self.message = result

    def describe_actions(self) -> list[dict[str, Any]]:
        return [action.describe(name) for name, action in self.action_table.items()]


def _arity(action: Action) -> str:
    if action.max_runs == action.min_runs:
        return f"exactly {action.min_runs} run{'s' * (action.min_runs != 1)}"
    if action.max_runs is None:
        return f"at least {action.min_runs} run{'s' * (action.min_runs != 1)}"
    return f"{action.min_runs} to {action.max_runs} runs"


@functools.cache
def vega_bundle() -> str:
    """vega + vega-lite + vega-embed as one ES module exporting ``vegaEmbed`` and ``vega``.

    vl-convert takes ~2.5 s to bundle, so the result is cached on disk per vl-convert
    version (in ``$XDG_CACHE_HOME/nbtrack`` or ``~/.cache/nbtrack``).
    """
    import vl_convert

    version = getattr(vl_convert, "__version__", "unknown")
    cache = _cache_dir() / f"vega-embed-{version}.js"
    try:
        return cache.read_text("utf-8")
    except OSError:
        pass
    code = vl_convert.javascript_bundle("export { vegaEmbed, vega };")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename, so a kernel starting meanwhile never reads half a bundle.
        with tempfile.NamedTemporaryFile("w", dir=cache.parent, delete=False, suffix=".tmp") as f:
            f.write(code)
        os.replace(f.name, cache)
    except OSError:
        pass  # a read-only home: bundle again next time
    return code


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nbtrack"
