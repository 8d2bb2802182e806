"""The ``nbtrack`` command: list, show, check and clean up the runs of a store from a terminal."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys

from nbtrack.errors import NbtrackError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbtrack", description="Look at and look after an nbtrack store."
    )
    parser.add_argument(
        "--store",
        metavar="PATH",
        help="the store folder or file: URI (default: $NBTRACK_DIR or ./.nbtrack)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    runs = commands.add_parser("runs", help="list runs, optionally filtered (MLflow grammar)")
    runs.add_argument("filter", nargs="?", default="", help='e.g. "metrics.acc > 0.9"')
    runs.add_argument("--experiment", "-e", help="experiment name (default: all experiments)")
    runs.add_argument(
        "--order-by", action="append", metavar="CLAUSE", help="e.g. 'metrics.acc DESC'"
    )
    runs.add_argument("--max", type=int, default=1000, dest="max_results", help="at most N runs")
    runs.add_argument("--deleted", action="store_true", help="list deleted runs instead")

    show = commands.add_parser("show", help="one run in full")
    show.add_argument("run", help="run id, id prefix, run name, or 'last'")

    doctor = commands.add_parser("doctor", help="check the store and mend what is safe")
    doctor.add_argument(
        "--rebuild", action="store_true", help="re-derive the catalog from the journals"
    )

    commands.add_parser("experiments", help="list experiments")
    _add_gc_command(commands)
    _add_run_command(commands)
    _add_sync_command(commands)
    _add_serving_commands(commands)
    _add_ui_command(commands)
    return parser


def _add_serving_commands(commands) -> None:
    """``nbtrack serve`` and ``nbtrack predict``: MLflow's scoring server on the store."""
    from nbtrack.serving import DEFAULT_HOST, DEFAULT_PORT

    model = "models:/NAME@ALIAS, models:/NAME/VERSION, models:/NAME/STAGE or runs:/RUN/PATH"
    serve = commands.add_parser(
        "serve", help="serve a model with MLflow's scoring server (/ping, /invocations)"
    )
    serve.add_argument("model_uri", metavar="MODEL_URI", help=model)
    serve.add_argument("--port", "-p", type=int, default=DEFAULT_PORT, help="default: 5000")
    serve.add_argument("--host", default=DEFAULT_HOST, help="default: 127.0.0.1 (loopback)")
    serve.add_argument("--workers", "-w", type=int, help="uvicorn workers (default: 1)")
    predict = commands.add_parser("predict", help="score a CSV or JSON file with a model")
    predict.add_argument("model_uri", metavar="MODEL_URI", help=model)
    predict.add_argument("--input-path", "-i", required=True, help="CSV or JSON input")
    predict.add_argument(
        "--output-path", "-o", help="predictions: a table if it ends in .csv, else JSON"
    )
    predict.add_argument(
        "--content-type", "-t", choices=["csv", "json"], help="default: by the input's suffix"
    )


def _add_ui_command(commands) -> None:
    """``nbtrack ui``: MLflow's web UI over the store (see nbtrack.mlflow_ui)."""
    ui = commands.add_parser("ui", help="MLflow's web UI over the store (needs nbtrack[mlflow])")
    ui.add_argument("--port", "-p", type=int, default=5000, help="port (default: 5000)")
    ui.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: loopback only)"
    )


def _add_sync_command(commands) -> None:
    """``nbtrack sync push|pull|status SERVER``: two-way sync with an MLflow server."""
    sync = commands.add_parser(
        "sync",
        help="push runs and the registry to an MLflow tracking server, pull teammates' runs",
        description="Credentials: MLflow's MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD "
        "or MLFLOW_TRACKING_TOKEN; TLS: MLFLOW_TRACKING_INSECURE_TLS, "
        "MLFLOW_TRACKING_SERVER_CERT_PATH.",
    )
    sync.add_argument("action", choices=["push", "pull", "status"])
    sync.add_argument("server", metavar="SERVER", help="tracking URI, http(s)://HOST:PORT")
    sync.add_argument(
        "-e",
        "--experiment",
        dest="experiments",
        action="extend",
        nargs="+",
        metavar="EXPERIMENT",
        help="only these experiments (by name; default: all)",
    )
    sync.add_argument("--filter", default="", help="only runs matching an MLflow filter")
    sync.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _add_gc_command(commands) -> None:
    """``nbtrack gc``: MLflow's gc over a store (see nbtrack.store.purge)."""
    gc = commands.add_parser(
        "gc", help="permanently remove deleted runs: their rows, journals and artifacts"
    )
    gc.add_argument(
        "--older-than",
        metavar="AGE",
        type=_days,
        help="only runs deleted at least AGE ago: days (30, 0.5) or MLflow's 1d2h30m10s",
    )
    gc.add_argument(
        "--run-ids",
        metavar="IDS",
        type=lambda text: [i.strip() for i in text.split(",") if i.strip()],
        help="comma-separated: only these runs (each must be deleted, or nothing is removed)",
    )
    gc.add_argument("--dry-run", action="store_true", help="list what would go; remove nothing")


_AGE = re.compile(r"(?:([\d.]+)d)?(?:([\d.]+)h)?(?:([\d.]+)m)?(?:([\d.]+)s)?")
_UNIT_DAYS = (1, 1 / 24, 1 / 1440, 1 / 86400)


def _days(text: str) -> float:
    """An age in days: a number of days, or MLflow's ``#d#h#m#s`` (floats allowed)."""
    with contextlib.suppress(ValueError):
        return float(text)
    match = _AGE.fullmatch(text)
    with contextlib.suppress(ValueError):
        if match and any(match.groups()):
            parts = zip(match.groups(), _UNIT_DAYS, strict=True)
            return sum(float(value) * unit for value, unit in parts if value)
    raise argparse.ArgumentTypeError(
        f"{text!r} is not an age: give days (30, 0.5) or MLflow's form (2d8h, 1d2h3m4s)"
    )


def _add_run_command(commands) -> None:
    """``nbtrack run NOTEBOOK|DIR``: parameterised notebook runs and MLproject entry points."""
    run = commands.add_parser(
        "run",
        help="run a notebook per parameter set, or an MLproject entry point, as tracked runs",
    )
    run.add_argument("target", help="a notebook (.ipynb) or a folder with an MLproject file")
    run.add_argument(
        "-p",
        "-P",
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="K=V",
        help="a parameter (repeatable)",
    )
    run.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="K=V1,V2",
        help="notebooks: sweep a parameter over values (repeatable: every combination)",
    )
    run.add_argument("--jobs", "-j", type=int, default=1, help="notebooks: kernels at once")
    run.add_argument("--entry-point", "-e", default="main", help="MLproject: entry point")
    run.add_argument("--experiment", help="experiment of the runs (created if missing)")
    run.add_argument("--name", help="run name (notebooks: its prefix)")
    run.add_argument("--timeout", type=float, default=600, help="notebooks: seconds per cell")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from nbtrack.tracking import fluent

    try:
        if args.store:
            fluent.set_tracking_uri(args.store)
        return _COMMANDS[args.command](args, fluent)
    except NbtrackError as error:
        print(f"nbtrack: error: {error}", file=sys.stderr)
        return 2


def _runs(args: argparse.Namespace, fluent) -> int:
    from nbtrack.entities import ViewType
    from nbtrack.render import runs_table_text

    rows = fluent.search_rows(
        experiment_names=[args.experiment] if args.experiment else None,
        search_all_experiments=not args.experiment,
        filter_string=args.filter,
        order_by=args.order_by,
        max_results=args.max_results,
        run_view_type=ViewType.DELETED_ONLY if args.deleted else ViewType.ACTIVE_ONLY,
    )
    print(runs_table_text(rows))
    return 0


def _show(args: argparse.Namespace, fluent) -> int:
    from nbtrack.render import run_details

    store = fluent.current_store()
    run_id = store.resolve_run(args.run)["run_id"]
    print(run_details(store.get_run(run_id), store.records(run_id)).text)
    return 0


def _doctor(args: argparse.Namespace, fluent) -> int:
    from nbtrack.store import doctor

    report = doctor(fluent.current_store(), rebuild_catalog=args.rebuild)
    print(report)
    return 0 if report.healthy else 1


def _experiments(args: argparse.Namespace, fluent) -> int:
    from nbtrack.entities import ViewType

    experiments = fluent.search_experiments(ViewType.ALL, order_by=["experiment_id ASC"])
    counts = fluent.current_store().run_counts()
    width = max([len(e.name) for e in experiments] + [4])
    print(f"{'id':>4}  {'name':<{width}}  {'runs':>5}  state")
    for e in experiments:
        runs = counts.get(e.experiment_id, 0)
        print(f"{e.experiment_id:>4}  {e.name:<{width}}  {runs:>5}  {e.lifecycle_stage}")
    return 0


def _gc(args: argparse.Namespace, fluent) -> int:
    from nbtrack.store.purge import gc

    items = gc(fluent.current_store(), args.older_than, args.run_ids, dry_run=args.dry_run)
    if not items:
        print("no deleted runs to remove" + " that old" * (args.older_than is not None))
        return 0
    going = "would remove" if args.dry_run else "removed"
    print(_gc_table(items, going))
    gone = [item for item in items if not item.kept]
    kept = len(items) - len(gone)
    summary = f"{going} {len(gone)} runs ({_size(sum(item.size for item in gone))})"
    print(summary + f"; kept {kept}" * bool(kept))
    return 0


def _gc_table(items: list, going: str) -> str:
    from nbtrack.render import format_time, text_table

    table = [["run_id", "name", "experiment", "deleted", "size", "outcome"]]
    for item in items:
        when = format_time(item.deleted_time)
        table.append(
            [
                item.run_id,
                item.run_name,
                item.experiment_id,
                when if item.deleted_time_recorded else f"by {when}",
                _size(item.size),
                f"kept: {item.kept}" if item.kept else going,
            ]
        )
    return "\n".join(text_table(table))


def _size(size: float) -> str:
    units, power = ("B", "kB", "MB", "GB"), 0
    while size >= 1000 and power < len(units) - 1:
        size, power = size / 1000, power + 1
    return f"{size:.0f} B" if power == 0 else f"{size:.1f} {units[power]}"


def _run(args: argparse.Namespace, fluent) -> int:
    from pathlib import Path

    if args.experiment:
        fluent.set_experiment(args.experiment)
    target = Path(args.target)
    if target.is_dir():
        from nbtrack.projects import run_project

        if args.grid:
            print("nbtrack: error: --grid applies to notebooks only", file=sys.stderr)
            return 2
        bad = [item for item in args.params if "=" not in item or item.startswith("=")]
        if bad:
            print(f"nbtrack: error: -P expects NAME=VALUE, got {bad[0]!r}", file=sys.stderr)
            return 2
        given = dict(item.partition("=")[::2] for item in args.params)
        run_id, code = run_project(target, args.entry_point, given, name=args.name)
        print(f"run {run_id}: {'FINISHED' if code == 0 else 'FAILED'}")
        return 0 if code == 0 else 1
    from nbtrack.projects import parameter_sets, run_sweep
    from nbtrack.projects.sweep import summary_table

    sets = parameter_sets(args.params, args.grid)
    outcomes = run_sweep(target, sets, jobs=args.jobs, name=args.name, timeout=args.timeout)
    print(summary_table(outcomes))
    return 0 if all(o.status == "FINISHED" for o in outcomes) else 1


def _serve(args: argparse.Namespace, fluent) -> int:
    from nbtrack.serving import serve

    root = fluent.current_store().root
    return serve(args.model_uri, root, host=args.host, port=args.port, workers=args.workers)


def _predict(args: argparse.Namespace, fluent) -> int:
    from nbtrack.serving import predict

    root = fluent.current_store().root
    predict(args.model_uri, root, args.input_path, args.output_path, args.content_type)
    return 0


def _sync(args: argparse.Namespace, fluent) -> int:
    import nbtrack.sync

    store = fluent.current_store()
    if args.action == "status":
        print(nbtrack.sync.status(args.server, store=store))
        return 0
    act = nbtrack.sync.push if args.action == "push" else nbtrack.sync.pull
    print(act(args.server, args.experiments, args.filter, store=store, progress=not args.quiet))
    return 0


def _ui(args: argparse.Namespace, fluent) -> int:
    from nbtrack.mlflow_ui import serve

    serve(fluent.default_session().store_path, args.host, args.port)  # returns only on error
    return 1


_COMMANDS = {
    "runs": _runs,
    "show": _show,
    "doctor": _doctor,
    "experiments": _experiments,
    "gc": _gc,
    "run": _run,
    "sync": _sync,
    "serve": _serve,
    "predict": _predict,
    "ui": _ui,
}


if __name__ == "__main__":
    sys.exit(main())
