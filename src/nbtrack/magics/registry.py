"""The registry's ``%track`` commands: register, promote, alias, registry.

Each handler is called as ``handler(magics, argv, rest)`` (see ``LINE_COMMANDS`` in
nbtrack.magics) and calls the Python API; argument errors are IPython UsageErrors.
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

from IPython.core.error import UsageError

from nbtrack.registry import aliases, changes, stages


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would sys.exit
        raise UsageError(f"%track {self.prog}: {message}\nusage: %track {self.format_usage()[7:]}")


@functools.cache
def _parsers() -> dict[str, _Parser]:
    register = _Parser(prog="register", add_help=False)
    register.add_argument("run", help="run id, id prefix, name, or 'last'")
    register.add_argument("--model", required=True, metavar="NAME")
    register.add_argument("--artifact", metavar="PATH", help="the package's artifact path")
    register.add_argument("--reason", metavar="TEXT")

    promote = _Parser(prog="promote", add_help=False)
    promote.add_argument("name")
    promote.add_argument("version")
    promote.add_argument("--to", required=True, metavar="STAGE", dest="stage")
    promote.add_argument("--reason", metavar="TEXT")
    promote.add_argument("--force", action="store_true", help="override failed checks")
    promote.add_argument("--keep-existing", action="store_true", help="do not archive others")

    alias = _Parser(prog="alias", add_help=False)
    alias.add_argument("name")
    alias.add_argument("version")
    alias.add_argument("alias")
    alias.add_argument("--reason", metavar="TEXT")
    alias.add_argument("--force", action="store_true", help="override failed checks")

    registry = _Parser(prog="registry", add_help=False)
    registry.add_argument("name", nargs="?")
    return {"register": register, "promote": promote, "alias": alias, "registry": registry}


def _parse(command: str, argv: list[str]) -> argparse.Namespace:
    return _parsers()[command].parse_args(argv)


def register(magics: Any, argv: list[str], rest: str) -> Any:
    """``%track register RUN --model NAME [--artifact PATH] [--reason TEXT]``."""
    args = _parse("register", argv)
    from nbtrack.registry.queries import acting_store

    run_id = acting_store().resolve_run(args.run)["run_id"]
    artifact = args.artifact or _only_package(run_id)
    return changes.register_model(f"runs:/{run_id}/{artifact}", args.model, reason=args.reason)


def _only_package(run_id: str) -> str:
    """The artifact path of the run's one model package (an error if it has none or several)."""
    from nbtrack.models.source import model_packages
    from nbtrack.registry.queries import acting_store

    packages = model_packages(acting_store(), run_id)
    if len(packages) == 1 and packages[0] != ".":
        return packages[0]
    if not packages:
        raise UsageError(
            f"Run {run_id[:8]} has no model package; log one with nbtrack.log_model(model, "
            "'model') in the run first."
        )
    raise UsageError(
        f"Run {run_id[:8]} has {len(packages)} model packages ({', '.join(packages)}); "
        "choose one with --artifact PATH."
    )


def promote(magics: Any, argv: list[str], rest: str) -> Any:
    """``%track promote NAME VERSION --to STAGE --reason TEXT [--force] [--keep-existing]``."""
    args = _parse("promote", argv)
    return stages.promote(
        args.name,
        args.version,
        args.stage,
        reason=args.reason,
        force=args.force,
        archive_existing=False if args.keep_existing else None,
    )


def alias(magics: Any, argv: list[str], rest: str) -> Any:
    """``%track alias NAME VERSION ALIAS [--reason TEXT] [--force]``."""
    args = _parse("alias", argv)
    return aliases.set_alias(
        args.name, args.alias, args.version, reason=args.reason, force=args.force
    )


def registry(magics: Any, argv: list[str], rest: str) -> Any:
    """``%track registry [NAME]``: the models, their versions and the audit log, as a panel."""
    args = _parse("registry", argv)
    from nbtrack.widgets import registry_panel

    return registry_panel(args.name)
