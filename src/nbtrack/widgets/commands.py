"""The ``%track curves`` and ``%track compare`` commands (named in magics.LINE_COMMANDS)."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would sys.exit
        raise UsageError(f"%track {self.prog}: {message}\n{self.format_usage()}")


def curves(magics: Any, argv: list[str], rest: str) -> Any:
    """``%track curves [RUN…] [--metric M]…``: runs default to the last one."""
    from nbtrack.widgets import metric_curves

    parser = _Parser(prog="curves", add_help=False)
    parser.add_argument("runs", nargs="*", default=["last"])
    parser.add_argument("--metric", action="append", default=[])
    args = parser.parse_args(argv)
    return metric_curves(args.runs, metrics=args.metric or None)


def compare(magics: Any, argv: list[str], rest: str) -> Any:
    """``%track compare RUN RUN…`` or ``%track compare --last N`` [--min M] [--max M]."""
    from nbtrack.widgets import compare_runs

    parser = _Parser(prog="compare", add_help=False)
    parser.add_argument("runs", nargs="*")
    parser.add_argument("--last", type=int, metavar="N")
    parser.add_argument("--min", action="append", default=[], metavar="METRIC")
    parser.add_argument("--max", action="append", default=[], metavar="METRIC")
    args = parser.parse_args(argv)
    if bool(args.runs) == (args.last is not None):
        raise UsageError("usage: %track compare RUN RUN… | --last N  [--min METRIC] [--max METRIC]")
    directions = {**dict.fromkeys(args.min, "min"), **dict.fromkeys(args.max, "max")}
    return compare_runs(args.runs, last=args.last, directions=directions)
