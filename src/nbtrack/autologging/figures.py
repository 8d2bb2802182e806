"""matplotlib autologging: every figure a tracked cell displays, saved as a PNG artifact.

IPython renders a figure for the notebook with ``IPython.core.pylabtools.print_figure``,
the printer its ``image/png`` formatter holds for ``matplotlib.figure.Figure``
(``plt.show()``, ``display(fig)`` and the inline backend's end-of-cell display all go
through it). That function is wrapped, and so is a printer already registered when
autolog starts, so the artifact is exactly the image the user saw, with no second
rendering. The file is ``figures/<sha256 prefix>.png``: an image shown twice in a run is
stored once.

A figure is logged into the active run or, after a ``%%track`` cell ended its run, into
the run that cell made (the inline backend displays figures after the cell body). In a
plain script (no IPython display) nothing is captured.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from typing import TYPE_CHECKING, Any

from nbtrack.autologging import AutologConfig
from nbtrack.autologging.patches import Patches, guarded
from nbtrack.capture.notebook import ipython_shell
from nbtrack.tracking import fluent

if TYPE_CHECKING:
    from nbtrack.tracking.session import ActiveRun

FOLDER = "figures"
PNG_FORMATS = ("png", "retina")

_config: AutologConfig | None = None
_patches = Patches()
_cell_runs: list[tuple[Any, str]] = []  # (store, run id) of runs this cell started
_events: list[tuple[str, Any]] = []  # the IPython events this integration registered
_wrapped: list[tuple[Any, type, Any]] = []  # (formatter, Figure, printer) wrapped at enable


def enable(config: AutologConfig) -> None:
    global _config
    _config = config
    hooks = fluent.default_session().run_start_hooks
    if _on_run_start not in hooks:
        hooks.append(_on_run_start)
    shell = ipython_shell()
    if shell is None or len(_patches):
        return
    from IPython.core import pylabtools

    # Printers registered from now on (the inline backend registers one when pyplot is
    # first imported) call the wrapped function; one registered before is wrapped itself.
    _patches.replace(pylabtools, "print_figure", _saving(pylabtools.print_figure, 1))
    figure, formatter = _figure_class(), _png_formatter(shell)
    printer = formatter.type_printers.get(figure) if figure and formatter else None
    if printer is not None:
        formatter.for_type(figure, _saving(printer, 0))
        _wrapped.append((formatter, figure, printer))
    shell.events.register("pre_run_cell", _new_cell)
    _events.append(("pre_run_cell", _new_cell))


def disable() -> None:
    global _config
    _config = None
    hooks = fluent.default_session().run_start_hooks
    if _on_run_start in hooks:
        hooks.remove(_on_run_start)
    shell = ipython_shell()
    while _events:
        event, callback = _events.pop()
        if shell is not None:
            shell.events.unregister(event, callback)
    _patches.restore()
    while _wrapped:
        formatter, figure, printer = _wrapped.pop()
        if getattr(formatter.type_printers.get(figure), "__wrapped__", None) is printer:
            formatter.for_type(figure, printer)
    _cell_runs.clear()


def _new_cell(*_: Any) -> None:
    _cell_runs.clear()


def _on_run_start(run: ActiveRun, resumed: bool) -> None:
    _cell_runs.append((run.store, run.run_id))


def _png_formatter(shell: Any) -> Any:
    return shell.display_formatter.formatters.get("image/png")


def _figure_class() -> type | None:
    module = sys.modules.get("matplotlib.figure")
    return getattr(module, "Figure", None) if module is not None else None


def _saving(printer: Any, format_position: int) -> Any:
    """``printer`` that also saves its PNG output; ``format_position`` says where its
    ``fmt`` argument sits (print_figure's), or 0 for a printer that only makes PNGs."""

    def print_and_save(figure: Any, *args: Any, **kwargs: Any) -> Any:
        output = printer(figure, *args, **kwargs)
        fmt = kwargs.get("fmt", args[0] if args and format_position else "png")
        if _config is not None and output is not None and fmt in PNG_FORMATS:
            guarded("save the figure", save_png, output, silent=_config.silent)
        return output

    print_and_save.__wrapped__ = printer  # type: ignore[attr-defined]
    return print_and_save


def target_run() -> tuple[Any, str] | None:
    """(store, run id) a figure shown now belongs to, or None in an untracked cell."""
    active = fluent.active_run()
    if active is not None:
        return active.store, active.run_id
    if _cell_runs:
        return _cell_runs[-1]
    return None


def save_png(output: Any) -> str | None:
    """Store the printer's output (PNG bytes or base64 text, possibly with metadata) in
    the target run as ``figures/<hash>.png``; the path, or None when there is no run."""
    target = target_run()
    if target is None:
        return None
    data = output[0] if isinstance(output, tuple) else output
    png = base64.b64decode(data) if isinstance(data, str) else bytes(data)
    store, run_id = target
    path = f"{FOLDER}/{hashlib.sha256(png).hexdigest()[:16]}.png"
    if not (store.artifact_dir(run_id) / path).exists():
        store.add_artifact(run_id, path, png)
    return path
