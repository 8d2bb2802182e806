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
    return parser


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

    report = doctor(fluent._store(), rebuild_catalog=args.rebuild)
    print(report)
    return 0 if report.healthy else 1


def _experiments(args: argparse.Namespace, fluent) -> int:
    from nbtrack.entities import ViewType

    experiments = fluent.search_experiments(ViewType.ALL)
    counts: dict[str, int] = {}
    for row in fluent._store().runs():
        if row.get("lifecycle_stage") == "active":
            counts[row["experiment_id"]] = counts.get(row["experiment_id"], 0) + 1
    width = max([len(e.name) for e in experiments] + [4])
    print(f"{'id':>4}  {'name':<{width}}  {'runs':>5}  state")
    for e in experiments:
        runs = counts.get(e.experiment_id, 0)
        print(f"{e.experiment_id:>4}  {e.name:<{width}}  {runs:>5}  {e.lifecycle_stage}")
    return 0


_COMMANDS = {"runs": _runs, "show": _show, "doctor": _doctor, "experiments": _experiments}


if __name__ == "__main__":
    sys.exit(main())
