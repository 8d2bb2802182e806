"""``%track sync push|pull|status SERVER`` and ``%track sync on SERVER|off``.

Called as ``handler(magics, argv, rest)`` (see ``LINE_COMMANDS`` in nbtrack.magics); each
calls :mod:`nbtrack.sync`, whose errors say what to do.
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

from IPython.core.error import UsageError

import nbtrack.sync

USAGE = "sync push|pull|status SERVER [-e EXPERIMENT …] [--filter F] | sync on SERVER | sync off"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would sys.exit
        raise UsageError(f"%track sync: {message}\nusage: %track {USAGE}")


@functools.cache
def _parser() -> _Parser:
    parser = _Parser(prog="sync", add_help=False)
    parser.add_argument("action", choices=["push", "pull", "status", "on", "off"])
    parser.add_argument("server", nargs="?")
    parser.add_argument("-e", "--experiment", dest="experiments", action="extend", nargs="+")
    parser.add_argument("--filter", default="")
    return parser


def track_sync(magics: Any, argv: list[str], rest: str) -> Any:
    args = _parser().parse_args(argv)
    if args.action == "off":
        nbtrack.sync.auto(None)
        print("sync: off")
        return None
    if args.server is None:
        raise UsageError(f"usage: %track {USAGE}")
    if args.action == "on":
        nbtrack.sync.auto(args.server)
        print(f"sync: on; each run is pushed to {nbtrack.sync.display_uri(args.server)} as it ends")
        return None
    if args.action == "status":
        return nbtrack.sync.status(args.server)
    act = nbtrack.sync.push if args.action == "push" else nbtrack.sync.pull
    return act(args.server, args.experiments, args.filter)
