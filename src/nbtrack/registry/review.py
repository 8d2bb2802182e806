"""What every reviewed registry move goes through: its policy's checks, a reason, evidence.

Stage changes (registry.stages) and moves of protected aliases (registry.aliases) are
reviewed alike: failed checks refuse the move unless it is forced with a reason, and
who asks decides how a missing reason is treated — nbtrack's own API and magics refuse,
MLflow-style calls warn and record "no reason given" (see names.mlflow_style_reason).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from nbtrack.errors import InvalidParameterError
from nbtrack.registry import gates
from nbtrack.registry.names import NO_REASON, mlflow_style_reason, required_reason

NBTRACK, MLFLOW = "nbtrack", "mlflow"


class Asker(NamedTuple):
    """Who asks for a move, and how they would have given a reason (or forced it)."""

    caller: str  # NBTRACK or MLFLOW
    call: str  # the call with a reason: "nbtrack.registry.promote('m', 2, ..., reason='why')"
    command: str  # the magic with a reason ('%track promote m 2 --to Production --reason "why"'),
    # or "" when no magic makes this move


def reason(given: str | None, action: str, model: dict[str, Any], asker: Asker) -> str:
    """The reason the move records, or an error saying that ``action`` needs one."""
    if asker.caller == MLFLOW:
        required = bool((model["policy"] or {}).get("require_reason"))
        how = f"Pass reason='...' to the call, e.g. {asker.call}"
        return mlflow_style_reason(given, action, how, required)
    how = f"{asker.call}, or {asker.command}" if asker.command else asker.call
    return required_reason(given, action, how)


def enforce(
    checks: list[gates.CheckResult], action: str, force: bool, why: str | None, asker: Asker
) -> dict[str, Any]:
    """The event fields recording ``checks``; raises unless they passed, or failed and
    ``force`` overrides them with a reason."""
    failed = [c for c in checks if not c.passed]
    if failed and not force:
        raise gates.refusal(action, checks, _force_hint(asker))
    if failed and why in (None, NO_REASON):
        raise InvalidParameterError(
            f"force=True to {action} overrides {len(failed)} failed check(s) and needs a "
            "reason saying why: pass reason='...'."
        )
    return {"forced": bool(failed), "checks": [c._asdict() for c in checks]}


def _force_hint(asker: Asker) -> str:
    if asker.caller == MLFLOW:
        return "Improve the model, or pass force=True with a reason (recorded as forced)."
    magic = " ".join(asker.command.split()[:2])  # "%track promote"
    return (
        f"Improve the model, or pass force=True with a reason (--force in {magic}); "
        "the move is then recorded as forced."
    )


def evidence(row: dict[str, Any]) -> dict[str, Any]:
    """What a reviewed move records about the version it moves."""
    return {"metrics": {k: p[0] for k, p in row["metrics"].items()}, "digest": row.get("digest")}
