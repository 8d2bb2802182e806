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

A policy can also protect aliases, MLflow's current way to deploy::

    set_policy("churn", aliases={"champion": ["metrics.val_auc >= 0.85", "beats:metrics.val_auc"]})

Pointing a protected alias at a version then runs its checks as a stage move runs its
stage's (the incumbent being the version the alias points at now), needs a reason, and
with ``distinct_approver`` someone other than the registrant; removing it needs a reason.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from nbtrack import search
from nbtrack.errors import BAD_REQUEST, InvalidParameterError, NbtrackError
from nbtrack.registry.names import check_alias

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
    """A stage change (or protected alias move) that failed its model's policy; ``checks``
    holds every result."""

    error_code = BAD_REQUEST

    def __init__(self, message: str, checks: list[CheckResult]) -> None:
        super().__init__(message)
        self.checks = checks


# What a rollback does to the aliases of the version it archives (a policy's on_rollback).
ROLLBACK_MOVE, ROLLBACK_DROP, ROLLBACK_KEEP = "move", "drop", "keep"
ROLLBACK_RULES = (ROLLBACK_MOVE, ROLLBACK_DROP, ROLLBACK_KEEP)


def make_policy(
    staging: list[str] | None,
    production: list[str] | None,
    distinct_approver: bool,
    require_reason: bool,
    aliases: dict[str, list[str] | None] | None = None,
    on_rollback: str = ROLLBACK_MOVE,
) -> dict[str, Any]:
    """A policy as stored, after checking every gate parses.

    Raises
    ------
    InvalidParameterError
        Naming the gate that does not parse and why, or the alias that is not one.
    """
    gates = {}
    for stage, checks in (("Staging", staging), ("Production", production)):
        if checks is not None:
            gates[stage] = _checks(stage, checks)
    if on_rollback not in ROLLBACK_RULES:
        raise InvalidParameterError(
            f"on_rollback={on_rollback!r}: aliases of the version a rollback archives "
            f"{', '.join(repr(r) for r in ROLLBACK_RULES)} (move to the restored version, are "
            "removed, or stay where they are)."
        )
    return {
        "gates": gates,
        "aliases": _protected(aliases),
        "distinct_approver": bool(distinct_approver),
        "require_reason": bool(require_reason),
        "on_rollback": on_rollback,
    }


def _checks(where: str, checks: list[str] | str | None) -> list[str]:
    if isinstance(checks, str):
        checks = [checks]
    return [_validated(where, check) for check in checks or []]


def _protected(aliases: dict[str, list[str] | None] | None) -> dict[str, list[str]]:
    """Each protected alias (lowercase, as stored) with its checks (none: just protected)."""
    if aliases is None:
        return {}
    if not isinstance(aliases, dict):
        raise InvalidParameterError(
            f"aliases={aliases!r} is not a policy for aliases: give a dict of each protected "
            "alias and its checks, e.g. aliases={'champion': ['metrics.val_auc >= 0.85']} "
            "(or {'champion': []} to protect it without checks)."
        )
    protected = {}
    for alias, checks in aliases.items():
        name = check_alias(alias)
        protected[name] = _checks(f"@{name}", checks)
    return protected


def protects(policy: dict[str, Any] | None, alias: str) -> bool:
    """Whether the policy protects ``alias`` (as stored, lowercase)."""
    return alias in (policy or {}).get("aliases", {})


def _validated(where: str, check: Any) -> str:
    if not isinstance(check, str) or not check.strip():
        raise InvalidParameterError(
            f"{where} gate {check!r} is not a check: give a filter such as "
            "'metrics.val_auc >= 0.85' or 'beats:metrics.val_auc'."
        )
    check = check.strip()
    if check.startswith(BEATS):
        _beats_parts(check)
    else:
        try:
            search.compile_filter(check)
        except InvalidParameterError as error:
            raise InvalidParameterError(f"{where} gate {check!r} does not parse: {error}") from None
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
    checks = policy.get("gates", {}).get(stage, [])
    distinct = bool(policy.get("distinct_approver")) and stage == "Production"
    return _run(checks, candidate, incumbent, f"in {stage}", approver, distinct)


def evaluate_alias(
    policy: dict[str, Any] | None,
    alias: str,
    candidate: dict[str, Any],
    incumbent: dict[str, Any] | None,
    approver: str,
) -> list[CheckResult]:
    """Every check the policy makes for pointing the protected ``alias`` at ``candidate``;
    the incumbent is the version it points at now."""
    if not protects(policy, alias):
        return []
    checks = policy["aliases"][alias]
    distinct = bool(policy.get("distinct_approver"))
    return _run(checks, candidate, incumbent, f"at @{alias}", approver, distinct)


def _run(
    checks: list[str],
    candidate: dict[str, Any],
    incumbent: dict[str, Any] | None,
    where: str,
    approver: str,
    distinct: bool,
) -> list[CheckResult]:
    results = [
        _beats(check, candidate, incumbent, where)
        if check.startswith(BEATS)
        else _filter(check, candidate)
        for check in checks
    ]
    if distinct:
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
    check: str, candidate: dict[str, Any], incumbent: dict[str, Any] | None, where: str
) -> CheckResult:
    key, lower = _beats_parts(check)
    mine = _metric(candidate, key)
    if incumbent is None:
        return CheckResult(check, mine is not None, f"{_number(mine)}; no incumbent {where}")
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


def refusal(action: str, results: list[CheckResult], hint: str) -> TransitionRefused:
    """The error for a move that failed checks; ``action`` says what, e.g. "move 'churn'
    version 2 to Production"."""
    failed = [r for r in results if not r.passed]
    lines = "\n".join(f"  {r.line()}" for r in results)
    return TransitionRefused(
        f"Cannot {action}: {len(failed)} of {len(results)} check(s) failed.\n{lines}\n{hint}",
        results,
    )
