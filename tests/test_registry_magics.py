"""``%track register / promote / alias / registry`` on a real IPython shell."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import nbtrack
from model_helpers import classifier, logged_run
from nbtrack import registry
from nbtrack.errors import InvalidParameterError
from nbtrack.registry import TransitionRefused


@pytest.fixture
def shell(tracking, monkeypatch):
    monkeypatch.setenv("NBTRACK_USER", "alice")
    ip = InteractiveShell.instance()
    nbtrack.load_ipython_extension(ip)
    yield ip
    nbtrack.unload_ipython_extension(ip)


def track(shell, line: str):
    return shell.run_line_magic("track", line)


def test_register_last_promote_and_alias(shell, tracking) -> None:
    logged_run(tracking, 0.8)
    run_id = logged_run(tracking, 0.9)
    version = track(shell, "register last --model churn")
    assert (version.name, version.version, version.run_id) == ("churn", 1, run_id)
    moved = track(shell, 'promote churn 1 --to production --reason "beats the heuristic"')
    assert moved.current_stage == "Production"
    assert registry.history("churn")["reason"].iloc[-1] == "beats the heuristic"
    assert track(shell, "alias churn 1 champion").aliases == ["champion"]
    assert registry.get_model_version_by_alias("churn", "champion").version == 1


def test_register_finds_the_package_or_asks_for_artifact(shell, tracking) -> None:
    with tracking.start_run(run_name="two-models") as run:
        tracking.log_model(classifier(), "a")
        tracking.log_model(classifier(), "b")
    with pytest.raises(UsageError, match=r"2 model packages \(a, b\); choose one with --artifact"):
        track(shell, "register two-models --model churn")
    assert track(shell, "register two-models --model churn --artifact b").source == (
        f"runs:/{run.info.run_id}/b"
    )
    with tracking.start_run(run_name="no-model"):
        tracking.log_metric("x", 1)
    with pytest.raises(UsageError, match="has no model package"):
        track(shell, "register no-model --model churn")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("register", "the following arguments are required: run, --model"),
        ("register last", "--model"),
        ("promote churn 1", "--to"),
        ("promote churn", "required: version"),
        ("alias churn 1", "required: alias"),
        ("registry a b", "unrecognized arguments: b"),
    ],
)
def test_argument_errors_are_usage_errors(shell, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        track(shell, line)


def test_promote_needs_a_reason_and_gates_apply(shell, tracking) -> None:
    logged_run(tracking, 0.7)
    track(shell, "register last --model churn")
    registry.set_policy("churn", production=["metrics.val_auc >= 0.85"])
    with pytest.raises(InvalidParameterError, match="--reason"):
        track(shell, "promote churn 1 --to Production")
    with pytest.raises(TransitionRefused, match="--force"):
        track(shell, "promote churn 1 --to Production --reason 'ship'")
    track(shell, "promote churn 1 --to Production --reason 'deadline; retrain next week' --force")
    event = registry.history("churn").iloc[-1]
    assert (bool(event["forced"]), event["reason"]) == (True, "deadline; retrain next week")


def test_a_protected_alias_needs_a_reason_and_its_checks_or_force(shell, tracking) -> None:
    for auc in (0.9, 0.8):
        logged_run(tracking, auc)
        track(shell, "register last --model churn")
    registry.set_policy("churn", aliases={"champion": ["beats:metrics.val_auc"]})
    with pytest.raises(InvalidParameterError, match="--reason"):
        track(shell, "alias churn 1 champion")
    track(shell, "alias churn 1 champion --reason 'first in production'")
    with pytest.raises(TransitionRefused, match=r"--force in %track alias"):
        track(shell, "alias churn 2 champion --reason 'try the new one'")
    assert registry.get_model_version_by_alias("churn", "champion").version == 1
    moved = track(shell, "alias churn 2 champion --reason 'canary for a week' --force")
    assert moved.aliases == ["champion"]
    event = registry.history("churn").iloc[-1]
    assert (event["event"], event["reason"], bool(event["forced"])) == (
        "alias.set",
        "canary for a week",
        True,
    )
    assert event["checks"] == [
        {
            "check": "beats:metrics.val_auc",
            "passed": False,
            "actual": "0.8 vs 0.9 (incumbent version 1)",
        }
    ]


def test_registry_view_escapes_what_users_typed(shell, tracking) -> None:
    logged_run(tracking, 0.9)
    track(shell, "register last --model churn")
    track(shell, "promote churn 1 --to Staging --reason '<script>alert(1)</script> & more'")
    view = track(shell, "registry churn")  # a RegistryPanel; its display carries static forms
    bundle, _ = view._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == view.model_id
    assert "<script>" not in bundle["text/html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in bundle["text/html"]
    assert "<script>alert(1)</script> & more" in bundle["text/plain"]
    assert "Staging" in bundle["text/html"] and "churn (1 version)" in bundle["text/plain"]
    everything = track(shell, "registry")
    assert "audit log" in repr(everything) and "version.stage" in repr(everything)
    assert registry.show().text in repr(everything)  # the static view, reused


def test_usage_lists_the_registry_commands() -> None:
    from nbtrack.magics import usage

    text = usage()
    for spec in (
        "register RUN --model NAME",
        "promote NAME VERSION --to STAGE",
        "alias NAME VERSION ALIAS [--reason TEXT]",
        "registry [NAME]",
    ):
        assert f"%track {spec}" in text
