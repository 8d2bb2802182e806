"""The ``nbtrack`` command: list, show and check the runs of a store from a terminal."""

from __future__ import annotations

import argparse
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
    _add_run_command(commands)
    return parser


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
    from nbtrack.widgets.static import runs_table_text

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
    from nbtrack.widgets import run_details

    print(run_details(args.run).text)
    return 0


def _doctor(args: argparse.Namespace, fluent) -> int:
    from nbtrack.store import doctor

    report = doctor(fluent.current_store(), rebuild_catalog=args.rebuild)
    print(report)
    return 0 if report.healthy else 1


def _experiments(args: argparse.Namespace, fluent) -> int:
    from nbtrack.entities import ViewType

    experiments = fluent.search_experiments(ViewType.ALL)
    counts = fluent.current_store().run_counts()
    width = max([len(e.name) for e in experiments] + [4])
    print(f"{'id':>4}  {'name':<{width}}  {'runs':>5}  state")
    for e in experiments:
        runs = counts.get(e.experiment_id, 0)
        print(f"{e.experiment_id:>4}  {e.name:<{width}}  {runs:>5}  {e.lifecycle_stage}")
    return 0


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


_COMMANDS = {
    "runs": _runs,
    "show": _show,
    "doctor": _doctor,
    "experiments": _experiments,
    "run": _run,
}


if __name__ == "__main__":
    sys.exit(main())
