"""Promotion policies: the checks a version must pass before it enters a stage.

A policy names, per stage, checks in the run-search grammar, evaluated against the
version's snapshot of its source run (``metrics.*``, ``params.*``, run attributes) and
its version tags (``tags.*``)::

    set_policy("churn",
               production=["metrics.val_auc >= 0.85", "beats:metrics.val_auc"],
               distinct_approver=True, require_reason=True)

``beats:metrics.X`` passes when the candidate's X is higher than the incumbent's (the
newest version now in the target stage); ``beats:metrics.X lower`` when it is lower.
With no incumbent it passes. ``distinct_approver`` makes the person moving a version to
Production someone other than who registered it. ``require_reason`` turns MLflow-style
calls without a reason from a warning into an error.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from nbtrack import search
from nbtrack.errors import BAD_REQUEST, InvalidParameterError, NbtrackError

BEATS = "beats:"
DISTINCT_APPROVER = "distinct_approver"


class CheckResult(NamedTuple):
    """One check of a transition: what was checked, whether it passed, and the actual values."""

    check: str
    passed: bool
    actual: str

    def line(self) -> str:
        return f"[{'pass' if self.passed else 'FAIL'}] {self.check} (actual: {self.actual})"


class TransitionRefused(NbtrackError):
    """A stage change that failed its model's policy; ``checks`` holds every result."""

    error_code = BAD_REQUEST

    def __init__(self, message: str, checks: list[CheckResult]) -> None:
        super().__init__(message)
        self.checks = checks


def make_policy(
    staging: list[str] | None,
    production: list[str] | None,
    distinct_approver: bool,
    require_reason: bool,
) -> dict[str, Any]:
    """A policy as stored, after checking every gate parses.

    Raises
    ------
    InvalidParameterError
        Naming the gate that does not parse and why.
    """
    gates = {}
    for stage, checks in (("Staging", staging), ("Production", production)):
        if checks is None:
            continue
        if isinstance(checks, str):
            checks = [checks]
        gates[stage] = [_validated(stage, check) for check in checks]
    return {
        "gates": gates,
        "distinct_approver": bool(distinct_approver),
        "require_reason": bool(require_reason),
    }


def _validated(stage: str, check: Any) -> str:
    if not isinstance(check, str) or not check.strip():
        raise InvalidParameterError(
            f"{stage} gate {check!r} is not a check: give a filter such as "
            "'metrics.val_auc >= 0.85' or 'beats:metrics.val_auc'."
        )
    check = check.strip()
    if check.startswith(BEATS):
        _beats_parts(check)
    else:
        try:
            search.compile_filter(check)
        except InvalidParameterError as error:
            raise InvalidParameterError(f"{stage} gate {check!r} does not parse: {error}") from None
    return check


def _beats_parts(check: str) -> tuple[str, bool]:
    """The metric key of a ``beats:`` check and whether lower values win."""
    words = check[len(BEATS) :].split()
    if not 1 <= len(words) <= 2 or (len(words) == 2 and words[1] not in ("lower", "higher")):
        raise InvalidParameterError(_BEATS_RULE.format(check=check))
    kind, _, key = words[0].partition(".")
    if kind not in ("metrics", "metric") or not key:
        raise InvalidParameterError(_BEATS_RULE.format(check=check))
    return key, words[-1] == "lower"


_BEATS_RULE = (
    "Gate {check!r} is not a comparison with the incumbent: write 'beats:metrics.KEY' "
    "(higher wins) or 'beats:metrics.KEY lower' (lower wins)."
)


def gate_row(version: dict[str, Any]) -> dict[str, Any]:
    """The row search filters see for a version: its run's snapshot plus the version's tags."""
    return {
        **version.get("run", {}),
        "run_id": version.get("run_id"),
        "metrics": version.get("metrics", {}),
        "params": version.get("params", {}),
        "tags": version.get("tags", {}),
    }


def evaluate(
    policy: dict[str, Any] | None,
    stage: str,
    candidate: dict[str, Any],
    incumbent: dict[str, Any] | None,
    approver: str,
) -> list[CheckResult]:
    """Every check the policy makes for moving ``candidate`` into ``stage``."""
    if not policy:
        return []
    results = [
        _beats(check, candidate, incumbent, stage)
        if check.startswith(BEATS)
        else _filter(check, candidate)
        for check in policy.get("gates", {}).get(stage, [])
    ]
    if policy.get("distinct_approver") and stage == "Production":
        registrant = candidate.get("created_by", "")
        results.append(
            CheckResult(
                DISTINCT_APPROVER,
                approver != registrant,
                f"approver {approver!r}, registered by {registrant!r}",
            )
        )
    return results


def _filter(check: str, candidate: dict[str, Any]) -> CheckResult:
    row = gate_row(candidate)
    passed = search.compile_filter(check)(row)
    # Report the value each clause found in the row, e.g. "metrics.val_auc = 0.91".
    subjects = [clause.ident for clause in search.parse_filter(check)]
    actual = ", ".join(f"{ident.text} = {_shown(ident, row)}" for ident in subjects)
    return CheckResult(check, passed, actual)


def _shown(ident: search.Identifier, row: dict[str, Any]) -> str:
    value = ident.value_in(row)
    if value is None:
        return "missing"
    return _number(value) if ident.kind == "metrics" else repr(value)


def _beats(
    check: str, candidate: dict[str, Any], incumbent: dict[str, Any] | None, stage: str
) -> CheckResult:
    key, lower = _beats_parts(check)
    mine = _metric(candidate, key)
    if incumbent is None:
        return CheckResult(check, mine is not None, f"{_number(mine)}; no incumbent in {stage}")
    theirs = _metric(incumbent, key)
    where = f"incumbent version {incumbent['version']}"
    actual = f"{_number(mine)} vs {_number(theirs)} ({where})"
    if mine is None or math.isnan(mine):
        return CheckResult(check, False, actual)
    if theirs is None or math.isnan(theirs):
        return CheckResult(check, True, actual)
    return CheckResult(check, mine < theirs if lower else mine > theirs, actual)


def _metric(version: dict[str, Any], key: str) -> float | None:
    point = version.get("metrics", {}).get(key)
    return None if point is None else point[0]


def _number(value: float | None) -> str:
    return "missing" if value is None else f"{value:.6g}"


def refusal(
    name: str, version: int, stage: str, results: list[CheckResult], hint: str
) -> TransitionRefused:
    failed = [r for r in results if not r.passed]
    lines = "\n".join(f"  {r.line()}" for r in results)
    return TransitionRefused(
        f"Cannot move {name!r} version {version} to {stage}: {len(failed)} of {len(results)} "
        f"check(s) failed.\n{lines}\n{hint}",
        results,
    )
