"""The IPython extension: ``%%track`` makes a cell a run; ``%track`` manages tracking.

Each line magic has a Python equivalent (``nbtrack.status()``, ``set_experiment``,
``set_tracking_uri``, ``track_cells``, ``runs_table``), so scripts need no magic.
"""

from __future__ import annotations

import argparse
import ast
import functools
import numbers
import pkgutil
import shlex
import traceback
import warnings
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from nbtrack.capture.notebook import notebook_path
from nbtrack.capture.params import literal_assignments
from nbtrack.capture.redact import redact_source
from nbtrack.capture.trace import ExecutionTrace
from nbtrack.errors import NbtrackError
from nbtrack.store.records import cell_record, traceback_record
from nbtrack.tracking import fluent
from nbtrack.tracking.session import ActiveRun, status_for
from nbtrack.validation import MAX_PARAM_VALUE_LENGTH, check_tags


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would sys.exit
        raise UsageError(f"%%track: {message}\n{self.format_usage()}")


@functools.cache
def _cell_parser() -> _Parser:
    parser = _Parser(prog="%%track", add_help=False)
    parser.add_argument("--name", help="run name")
    parser.add_argument("--experiment", help="experiment for this run")
    parser.add_argument("--tag", action="append", default=[], metavar="K=V")
    parser.add_argument("--param", action="append", default=[], metavar="K=V")
    parser.add_argument("--metrics", default="", metavar="A,B", help="names logged after")
    parser.add_argument("--no-params", action="store_true", help="no params from the code")
    return parser


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"%%track {option} expects KEY=VALUE, got {item!r}.")
        pairs[key.strip()] = value
    return pairs


@magics_class
class TrackMagics(Magics):
    """``%track`` / ``%%track``; holds the per-kernel state of cell tracking."""

    def __init__(self, shell) -> None:
        super().__init__(shell)
        self.cell_id: str | None = None
        self.cell_source = ""
        self.cell_filename = ""  # what tracebacks call the running %%track cell
        self.execution_count = 0
        self._count_offset = _count_offset(shell)
        self._count_before_cell: int | None = None  # None until we see a cell start
        self.cells_tracked = False
        self._session_run: ActiveRun | None = None
        self._cell_run: ActiveRun | None = None
        self.tracked_run: ActiveRun | None = None  # a %%track cell's run while it executes
        # Provenance: every cell this kernel runs, so each run records the cells it
        # depends on and whether they were stale (capture/trace.py). Cells run before
        # the extension was loaded come from IPython's input history.
        self.trace = ExecutionTrace(transform=shell.transform_cell)
        _guarded(_seed_trace, self.trace, shell)

    # -- events -----------------------------------------------------------------------

    def pre_run_cell(self, info) -> None:
        self.cell_id = getattr(info, "cell_id", None)
        self.cell_source = getattr(info, "raw_cell", "") or ""
        self._count_before_cell = self.shell.execution_count
        offset = self._count_offset if getattr(info, "store_history", True) else 0
        self.execution_count = self._count_before_cell - offset
        _guarded(self.trace.start_cell, self.execution_count, self.cell_id, self.cell_source)

    def post_run_cell(self, result) -> None:
        seen, self._count_before_cell = self._count_before_cell, None
        if seen is not None and result.execution_count is not None and result.info.store_history:
            self._count_offset = seen - result.execution_count
        run, self._cell_run = self._cell_run, None
        session = fluent.default_session()
        if run is not None:
            error = result.error_in_exec or result.error_before_exec
            session.end(run, status_for(type(error) if error is not None else None))
        _guarded(self.trace.finish_cell)  # provenance: the cell joins the trace
        session.flush_buffers()

    # -- %%track -----------------------------------------------------------------------

    @line_cell_magic
    def track(self, line: str, cell: str | None = None) -> Any:
        """Track a cell as a run (``%%track``), or manage tracking (``%track``)."""
        __tracebackhide__ = True
        if cell is None:
            return self._line(line)
        return self._track_cell(line, cell)

    def _track_cell(self, line: str, cell: str) -> Any:
        __tracebackhide__ = True
        args = _cell_parser().parse_args(shlex.split(line))
        run = self.tracked_run = self._start_cell_run(args, cell)
        try:
            value = self._execute(cell)
        except BaseException as error:
            self.tracked_run = None
            self._finish_cell_run(run, args, cell, error)
            raise
        self.tracked_run = None
        self._finish_cell_run(run, args, cell, None)
        return value

    def _start_cell_run(self, args: argparse.Namespace, cell: str) -> ActiveRun:
        tags = check_tags(_pairs(args.tag, "--tag"))
        params = _pairs(args.param, "--param")
        session = fluent.default_session()
        experiment_id = None
        if args.experiment:
            experiment_id = session.set_experiment(args.experiment)["experiment_id"]
        parent = session.active_run() or self._session_parent()
        run = session.start_run(
            run_name=args.name or _default_name(self.execution_count),
            experiment_id=experiment_id,
            nested=parent is not None,
            parent_run_id=parent.run_id if parent is not None else None,
            tags=tags,
        )
        run.store.append(run.run_id, [self._cell_record(cell)])
        if params:
            fluent.log_params(params, run_id=run.run_id)
        from nbtrack.widgets.card import watch_run  # O(1): live curves if it logs steps

        watch_run(run.run_id)
        return run

    def _cell_record(self, cell: str) -> dict[str, Any]:
        return cell_record(redact_source(cell), self.execution_count, self.cell_id, notebook_path())

    def _execute(self, cell: str) -> Any:
        """Run the cell body in the user namespace and return its last expression's value."""
        __tracebackhide__ = True
        shell = self.shell
        code = shell.transform_cell(cell)
        tree = shell.transform_ast(shell.compile.ast_parse(code))
        filename = self.cell_filename = shell.compile.cache(
            code, self.execution_count, raw_code=cell
        )
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        namespace = shell.user_ns
        exec(shell.compile(tree, filename, "exec"), shell.user_global_ns, namespace)
        if last is not None:
            return eval(shell.compile(last, filename, "eval"), shell.user_global_ns, namespace)
        return None

    def _finish_cell_run(self, run, args, cell: str, error: BaseException | None) -> None:
        store = run.store
        if not args.no_params:
            _log_code_params(run, cell, skip=_names(args.metrics))
        if error is None:
            _log_named_metrics(run, self.shell.user_ns, args.metrics)
        else:
            label = f"Cell In[{self.execution_count}]"
            _record_error(run, error, self.cell_filename, label)
        run.session.end(run, status_for(type(error) if error is not None else None))
        row = store.get_run(run.run_id)
        # The card widget (its bundle also holds the static card); if the run logged steps
        # while the cell ran, this updates the live card shown then instead.
        from nbtrack.widgets.card import show_run_card

        show_run_card(row)

    # -- %track on|off ------------------------------------------------------------------

    def track_cells(self, on: bool) -> None:
        self.cells_tracked = on
        session = fluent.default_session()
        session.run_factory = self._cell_run_factory if on else None
        if not on and self._session_run is not None:
            parent, self._session_run = self._session_run, None
            parent.session.end(parent, "FINISHED")

    def _session_parent(self) -> ActiveRun | None:
        """Under ``%track on``, the notebook's session run: every cell run's parent."""
        if not self.cells_tracked:
            return None
        if self._session_run is None:
            session = fluent.default_session()
            parent = session.start_run(run_name="notebook-session", tags={"nbtrack.session": "1"})
            session.detach(parent)  # a parent, never the active run
            self._session_run = parent
        return self._session_run

    def _cell_run_factory(self) -> ActiveRun:
        parent = self._session_parent()
        session = fluent.default_session()
        run = session.start_run(
            run_name=_default_name(self.execution_count), parent_run_id=parent.run_id
        )
        run.store.append(run.run_id, [self._cell_record(self.cell_source)])
        self._cell_run = run
        return run

    # -- %track ... ---------------------------------------------------------------------

    def _line(self, line: str) -> Any:
        words = shlex.split(line)
        if not words:
            return fluent.status()
        entry = LINE_COMMANDS.get(words[0])
        if entry is None:
            raise UsageError(f"%track: unknown command {words[0]!r}.\n{usage()}")
        handler = entry[1]
        if isinstance(handler, str):  # "module:function", imported on first use
            handler = pkgutil.resolve_name(handler)
        rest = line.strip()[len(words[0]) :].strip()
        return handler(self, words[1:], rest)


def usage() -> str:
    """One line per %track command, for error messages."""
    rows = [("", "status: store, experiment, active run")]
    rows += [(spec, text) for spec, _, text in LINE_COMMANDS.values()]
    return "\n".join(f"%track {spec:<24} {text}" for spec, text in rows)


def _on(magics: TrackMagics, argv: list[str], rest: str) -> Any:
    _expect(argv, 0, "on")
    magics.track_cells(True)
    return fluent.status()


def _off(magics: TrackMagics, argv: list[str], rest: str) -> Any:
    _expect(argv, 0, "off")
    magics.track_cells(False)
    return fluent.status()


def _experiment(magics: TrackMagics, argv: list[str], rest: str) -> None:
    _expect(argv, 1, "experiment NAME")
    experiment = fluent.set_experiment(argv[0])
    print(f"experiment: {experiment.name} (id {experiment.experiment_id})")


def _store(magics: TrackMagics, argv: list[str], rest: str) -> None:
    _expect(argv, 1, "store PATH|--scratch")
    if argv[0] == "--scratch":  # a store of the notebook's own: examples, throwaway work
        import os
        import tempfile

        # Whoever runs the notebook may say where (make quickstart does); else a new folder.
        argv = [os.environ.get("NBTRACK_DIR") or tempfile.mkdtemp(prefix="nbtrack-scratch-")]
    fluent.set_tracking_uri(argv[0])
    print(f"store: {fluent.get_tracking_uri()}")


def _expect(argv: list[str], count: int, spec: str) -> None:
    if len(argv) != count:
        raise UsageError(f"usage: %track {spec}")


def _runs(magics: TrackMagics, argv: list[str], rest: str) -> Any:
    from nbtrack.widgets import runs_table

    return runs_table(rest)


def _show(magics: TrackMagics, argv: list[str], rest: str) -> Any:
    _expect(argv, 1, "show RUN")
    from nbtrack.widgets import run_details

    return run_details(argv[0])


# The %track subcommands: name -> (arguments, handler, what it does). A handler is called
# as handler(magics, argv, rest) with the words after the name and the raw rest of the
# line; a "module:function" string is imported on first use, so features that live in
# heavier modules add their command here without slowing %load_ext.
LINE_COMMANDS: dict[str, tuple[str, Any, str]] = {
    "on": ("on", _on, "make every cell that logs something a child run"),
    "off": ("off", _off, "stop tracking every cell"),
    "experiment": ("experiment NAME", _experiment, "set (and create) the active experiment"),
    "store": (
        "store PATH|--scratch",
        _store,
        "use the store in PATH (--scratch: $NBTRACK_DIR if set, else a new temporary one)",
    ),
    "runs": ("runs [FILTER]", _runs, "table of runs matching an MLflow filter"),
    "show": ("show RUN", _show, "one run in detail (id, id prefix, name or 'last')"),
    "autolog": (
        "autolog on|off [sklearn,matplotlib,pandas,system]",
        "nbtrack.autologging:track_autolog",
        "log fits, figures, data read and system use without logging code",
    ),
    "reproduce": (
        "reproduce RUN [--execute] [--path P]",
        "nbtrack.reproduction:track_reproduce",
        "a clean notebook of the cells RUN depends on (--execute: run it, compare metrics)",
    ),
    "curves": (
        "curves [RUN…] [--metric M]",
        "nbtrack.widgets.commands:curves",
        "metric curves of runs (default: the last run)",
    ),
    "compare": (
        "compare RUN RUN…|--last N",
        "nbtrack.widgets.commands:compare",
        "runs side by side: params, metrics, code diff, curves",
    ),
    "register": (
        "register RUN --model NAME [--artifact PATH]",
        "nbtrack.magics.registry:register",
        "register a run's model package as a new version (RUN may be 'last')",
    ),
    "promote": (
        "promote NAME VERSION --to STAGE --reason TEXT",
        "nbtrack.magics.registry:promote",
        "move a version to a stage after its policy's checks (--force to override)",
    ),
    "alias": (
        "alias NAME VERSION ALIAS [--reason TEXT]",
        "nbtrack.magics.registry:alias",
        "point an alias (e.g. champion) at a version; a protected one after its checks",
    ),
    "registry": (
        "registry [NAME]",
        "nbtrack.magics.registry:registry",
        "registered models, versions, stages, aliases and the audit log",
    ),
    "sync": (
        "sync push|pull|status SERVER | on SERVER | off",
        "nbtrack.magics.sync:track_sync",
        "push to / pull from an MLflow tracking server; on: push each run as it ends",
    ),
}


def _count_offset(shell) -> int:
    """How far ``shell.execution_count`` is ahead of the running cell's In[n].

    Newer IPython counts a cell before it runs it, older IPython after. Loaded from a
    cell, the input history (which already holds that cell) tells which; otherwise
    assume the older order until post_run_cell reports a cell's true number.
    """
    history = getattr(shell.history_manager, "input_hist_parsed", [])
    return shell.execution_count - (len(history) - 1) if len(history) > 1 else 0


def _default_name(execution_count: int) -> str:
    return f"cell-{execution_count}"


def _names(csv: str) -> list[str]:
    return [name for name in (n.strip() for n in csv.split(",")) if name]


def _log_code_params(run: ActiveRun, cell: str, skip: list[str]) -> None:
    """Log the cell's literal assignments, except --metrics names and keys already logged."""
    found = {
        name: str(value)
        for name, value in literal_assignments(cell).items()
        if name not in skip and len(str(value)) <= MAX_PARAM_VALUE_LENGTH
    }
    if not found:
        return  # most cells: no need to read the run
    logged = run.store.get_run(run.run_id).get("params", {})
    new = {name: value for name, value in found.items() if name not in logged}
    if new:
        run.store.log_params(run.run_id, new)


def _log_named_metrics(run: ActiveRun, namespace: dict[str, Any], names: str) -> None:
    for name in _names(names):
        if name not in namespace:
            warnings.warn(
                f"%%track --metrics: {name!r} is not defined after the cell.", stacklevel=2
            )
            continue
        value = namespace[name]
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            fluent.log_metric(name, value, run_id=run.run_id)
        else:
            warnings.warn(
                f"%%track --metrics: {name!r} is {type(value).__name__}, not a number; skipped.",
                stacklevel=2,
            )


def _record_error(run: ActiveRun, error: BaseException, cell_filename: str, label: str) -> None:
    summary = f"{type(error).__name__}: {error}".strip().rstrip(":")
    run.store.set_fields(run.run_id, error=summary[:1000])
    run.store.append(run.run_id, [traceback_record(_user_traceback(error, cell_filename, label))])


def _user_traceback(error: BaseException, cell_filename: str, label: str) -> str:
    """The traceback from the user's cell on (nbtrack's own frames dropped), as text."""
    details = traceback.TracebackException.from_exception(error)
    frames = list(details.stack)
    start = next((i for i, f in enumerate(frames) if f.filename == cell_filename), 0)
    for frame in frames[start:]:
        if frame.filename == cell_filename:
            frame.filename = label
    details.stack = traceback.StackSummary.from_list(frames[start:])
    return "".join(details.format())


_magics: TrackMagics | None = None


def load_ipython_extension(shell) -> None:
    """``%load_ext nbtrack``: register the magics and the cell events."""
    global _magics
    if _magics is not None and _magics.shell is shell:
        return
    _magics = TrackMagics(shell)
    shell.register_magics(_magics)
    shell.events.register("pre_run_cell", _magics.pre_run_cell)
    shell.events.register("post_run_cell", _magics.post_run_cell)
    if not shell.custom_exceptions:  # another extension's handler stays in charge
        shell.set_custom_exc((Exception,), _show_error)
    # Provenance: runs started in a cell get its trace; the environment is captured in
    # the background now, so the first tracked cell does not wait for it.
    fluent.default_session().run_start_hooks.append(_magics.trace.on_run_start)
    _guarded(_prefetch_environment)
    _preload()


def _preload() -> None:
    """Import now what every tracked cell needs (numpy for the metric buffer, the run
    card's widget modules), so that the first %%track cell does not wait for it; and ask
    the page whether it draws run cards itself (nbtrack's JupyterLab extension does)."""
    import numpy  # noqa: F401

    from nbtrack.widgets import card, frontend

    card.serve_cards()
    frontend.ask_the_page()


def unload_ipython_extension(shell) -> None:
    global _magics
    if _magics is None:
        return
    _magics.track_cells(False)
    shell.events.unregister("pre_run_cell", _magics.pre_run_cell)
    shell.events.unregister("post_run_cell", _magics.post_run_cell)
    if getattr(shell.CustomTB, "__func__", None) is _show_error:
        shell.set_custom_exc((), None)
    hooks = fluent.default_session().run_start_hooks
    if _magics.trace.on_run_start in hooks:
        hooks.remove(_magics.trace.on_run_start)
    _magics = None


def _show_error(shell, etype, value, tb, tb_offset=None) -> None:
    """How a cell's error shows (IPython's custom exception handler).

    nbtrack's own errors (a refused promotion, a bad filter, a rejected value) are messages
    for the user: they show as one, like IPython's usage errors, with ``%tb`` for the
    stack. Any other error shows its traceback from the user's code: a ``%%track`` cell's
    traceback starts at the cell, without the ``run_cell_magic`` call holding its source.
    """
    if issubclass(etype, NbtrackError):
        shell.showtraceback((etype, value, tb), exception_only=True)
    else:
        shell.showtraceback((etype, value, _from_tracked_cell(tb)), tb_offset=tb_offset)


def _from_tracked_cell(tb):
    """The traceback from the running ``%%track`` cell's body on, if it passed there."""
    if _magics is None or not _magics.cell_filename:
        return tb
    start = tb
    while start is not None and start.tb_frame.f_code.co_filename != _magics.cell_filename:
        start = start.tb_next
    return start if start is not None else tb


def _guarded(function, *args) -> None:
    """Provenance hooks run under every cell: a fault warns, never fails the cell."""
    try:
        function(*args)
    except Exception as error:
        warnings.warn(f"nbtrack: {function.__name__} failed: {error!r}", stacklevel=2)


def _seed_trace(trace: ExecutionTrace, shell) -> None:
    for count, raw in enumerate(getattr(shell.history_manager, "input_hist_raw", [])[1:], 1):
        trace.start_cell(count, None, raw)
        trace.finish_cell()


def _prefetch_environment() -> None:
    from nbtrack.capture import environment

    environment.prefetch()


def extension_loaded() -> bool:
    """Whether ``%load_ext nbtrack`` is in effect in this process."""
    return _magics is not None


def running_cell_record() -> dict[str, Any] | None:
    """The journal record of the cell the kernel is running, for a run that other code
    starts in it (MLflow's own ``start_run``, through nbtrack's MLflow plugin); None
    outside a cell or without the extension."""
    if _magics is None or _magics._count_before_cell is None:
        return None
    return _magics._cell_record(_magics.cell_source)


def tracked_cell_run() -> ActiveRun | None:
    """The run of the ``%%track`` cell executing now, if any: MLflow's ``start_run`` in it
    joins this run (nbtrack's MLflow plugin) instead of starting a second one."""
    return _magics.tracked_run if _magics is not None else None


def track_cells(on: bool = True) -> None:
    """Python equivalent of ``%track on`` / ``%track off`` (needs a loaded extension)."""
    if _magics is None:
        raise UsageError("Run %load_ext nbtrack first; cell tracking needs the extension.")
    _magics.track_cells(on)
