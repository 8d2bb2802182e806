"""The model registry: versions, gated promotions with reasons, rollback, aliases, audit trail."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from model_helpers import (
    artifacts,
    classifier,
    logged_run,
    register,
    registry_bytes,
    store_path,
)
from nbtrack import registry
from nbtrack.errors import InvalidParameterError, NotFoundError
from nbtrack.registry import NO_REASON, MissingReasonWarning, TransitionRefused
from nbtrack.store import Store
from nbtrack.store.artifacts import sha256_file
from nbtrack.store.journal import read_records


@pytest.fixture
def nb(tracking, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NBTRACK_USER", "alice")
    return tracking


def _stages(name: str) -> dict[int, str]:
    return {v.version: v.current_stage for v in registry.search_model_versions(f"name = '{name}'")}


# -- registering ----------------------------------------------------------------------------


def test_register_records_the_package_sums_signature_and_run_snapshot(nb) -> None:
    run_id = logged_run(nb, 0.91, f1=0.8)
    version = nb.register_model(f"runs:/{run_id}/model", "churn")
    assert (version.name, version.version, version.current_stage) == ("churn", 1, "None")
    assert version.created_by == version.user_id == "alice"
    assert version.source == f"runs:/{run_id}/model"
    assert version.metrics == {"val_auc": 0.91, "f1": 0.8}
    assert version.params == {"C": "1.0"}
    package = artifacts(nb, run_id) / "model"
    recorded = {
        r["path"]: r["sha256"]
        for r in read_records(store_path(nb) / "runs" / run_id / "journal.jsonl")
        if r["op"] == "artifact"
    }
    files = {f.name: sha256_file(f) for f in package.iterdir()}
    assert {f"model/{k}": v for k, v in files.items()} == recorded
    assert version.digest == registry.changes.digest(files)
    assert json.loads(version.signature["inputs"])[0]["name"] == "sepal length (cm)"
    assert nb.register_model(f"runs:/{logged_run(nb, 0.5)}/model", "churn").version == 2


def test_non_finite_metrics_survive_the_registry_journal(nb) -> None:
    run_id = logged_run(nb, float("nan"), loss=float("inf"))
    nb.register_model(f"runs:/{run_id}/model", "churn")
    registry.promote("churn", 1, "Staging", reason="smoke test", force=True)
    text = registry_bytes(nb).decode()
    assert '"NaN"' in text and '"Infinity"' in text  # JSON has no NaN: spelled as strings
    # Read back from disk, as another process would.
    with Store(store_path(nb)) as store, store.registry.reading() as state:
        [version] = state.versions_of(state.model_id("churn"))
    assert math.isnan(version["metrics"]["val_auc"][0])
    assert version["metrics"]["loss"][0] == math.inf
    [event] = [e for e in registry.history("churn").itertuples() if e.event == "version.stage"]
    assert math.isnan(event.metrics["val_auc"]) and event.metrics["loss"] == math.inf


def test_registering_inside_a_run_snapshots_the_metrics_logged_so_far(nb) -> None:
    with nb.start_run():
        for step, auc in enumerate((0.7, 0.8, 0.85)):
            nb.log_metric("val_auc", auc, step=step)  # buffered, not yet in the journal
        info = nb.log_model(classifier(), "model", registered_model_name="churn")
    assert info.registered_model_version == 1
    assert registry.get_model_version("churn", 1).metrics == {"val_auc": 0.85}


def test_register_refuses_what_is_not_a_model_package(nb) -> None:
    with nb.start_run() as run:
        nb.log_text("hello", "notes/readme.txt")
    before = registry_bytes(nb)
    with pytest.raises(InvalidParameterError, match="has no MLmodel file"):
        nb.register_model(f"runs:/{run.info.run_id}/notes", "churn")
    with pytest.raises(NotFoundError, match="has no model at 'model'"):
        nb.register_model(f"runs:/{run.info.run_id}/model", "churn")
    with pytest.raises(InvalidParameterError, match="cannot contain"):
        nb.register_model(f"runs:/{run.info.run_id}/notes", "a/b")
    assert registry_bytes(nb) == before
    with pytest.raises(NotFoundError, match="not found"):
        registry.get_registered_model("churn")


def test_create_registered_model_refuses_a_taken_name(nb) -> None:
    registry.create_registered_model("churn", tags={"team": "growth"}, description="d")
    with pytest.raises(InvalidParameterError, match="already exists"):
        registry.create_registered_model("churn")
    model = registry.get_registered_model("churn")
    assert (model.tags, model.description, model.latest_versions) == ({"team": "growth"}, "d", [])


# -- reasons --------------------------------------------------------------------------------


def test_nbtracks_own_promote_requires_a_reason_and_writes_nothing_without(nb) -> None:
    register(nb, "churn", 0.9)
    before = registry_bytes(nb)
    with pytest.raises(InvalidParameterError, match="needs a reason") as error:
        registry.promote("churn", 1, "Production")
    assert "--reason" in str(error.value)
    assert registry_bytes(nb) == before
    assert _stages("churn") == {1: "None"}
    registry.promote("churn", 1, "Staging", reason="ready for review")
    registry.promote("churn", 1, "None")  # a move back to None needs no reason
    assert _stages("churn") == {1: "None"}


def test_mlflow_style_transition_without_reason_warns_and_records_it(nb) -> None:
    register(nb, "churn", 0.9)
    client = nb.MlflowClient()
    with pytest.warns(MissingReasonWarning, match="reason="):
        client.transition_model_version_stage("churn", "1", "staging")
    [event] = registry.history("churn").query("event == 'version.stage'").to_dict("records")
    assert (event["from"], event["to"], event["reason"]) == ("None", "Staging", "no reason given")
    client.transition_model_version_stage("churn", 1, "Production", reason="shadow test passed")
    assert registry.history("churn")["reason"].iloc[-1] == "shadow test passed"


def test_require_reason_policy_makes_a_missing_reason_an_error(nb) -> None:
    register(nb, "churn", 0.9)
    registry.set_policy("churn", require_reason=True)
    before = registry_bytes(nb)
    with pytest.raises(InvalidParameterError, match="require_reason=True") as error:
        nb.MlflowClient().transition_model_version_stage("churn", 1, "Production")
    assert "reason='" in str(error.value)
    assert registry_bytes(nb) == before


# -- gates -----------------------------------------------------------------------------------


def test_gates_pass_and_every_check_is_recorded_with_its_value(nb) -> None:
    register(nb, "churn", 0.91)
    registry.set_policy("churn", production=["metrics.val_auc >= 0.85", "beats:metrics.val_auc"])
    registry.promote("churn", 1, "Production", reason="first model that clears the bar")
    event = registry.history("churn").iloc[-1]
    assert (event["event"], event["to"], event["forced"]) == ("version.stage", "Production", False)
    assert event["checks"] == [
        {"check": "metrics.val_auc >= 0.85", "passed": True, "actual": "metrics.val_auc = 0.91"},
        {
            "check": "beats:metrics.val_auc",
            "passed": True,
            "actual": "0.91; no incumbent in Production",
        },
    ]
    assert event["metrics"] == {"val_auc": 0.91}


def test_a_failing_gate_refuses_listing_each_failed_check_and_its_actual_value(nb) -> None:
    register(nb, "churn", 0.91)
    register(nb, "churn", 0.80)
    registry.set_policy("churn", production=["metrics.val_auc >= 0.85", "beats:metrics.val_auc"])
    registry.promote("churn", 1, "Production", reason="baseline")
    before = registry_bytes(nb)
    with pytest.raises(TransitionRefused) as refused:
        registry.promote("churn", 2, "Production", reason="try the new one")
    message = str(refused.value)
    assert "2 of 2 check(s) failed" in message
    assert "[FAIL] metrics.val_auc >= 0.85 (actual: metrics.val_auc = 0.8)" in message
    assert "[FAIL] beats:metrics.val_auc (actual: 0.8 vs 0.91 (incumbent version 1))" in message
    assert [c.passed for c in refused.value.checks] == [False, False]
    assert registry_bytes(nb) == before
    assert _stages("churn") == {1: "Production", 2: "None"}
    dry_run = registry.check_transition("churn", 2, "Production")
    assert [c.check for c in dry_run if not c.passed] == [
        "metrics.val_auc >= 0.85",
        "beats:metrics.val_auc",
    ]


def test_force_passes_failed_gates_only_with_a_reason_and_is_recorded_as_forced(nb) -> None:
    register(nb, "churn", 0.70)
    registry.set_policy("churn", production=["metrics.val_auc >= 0.85"])
    client = nb.MlflowClient()
    with (
        pytest.raises(InvalidParameterError, match=r"force=True .* needs a reason"),
        pytest.warns(MissingReasonWarning),
    ):
        client.transition_model_version_stage("churn", 1, "Production", force=True)
    assert _stages("churn") == {1: "None"}
    registry.promote("churn", 1, "Production", reason="only model we have", force=True)
    event = registry.history("churn").iloc[-1]
    assert bool(event["forced"]) is True
    assert event["reason"] == "only model we have"
    assert event["checks"][0]["passed"] is False
    assert _stages("churn") == {1: "Production"}


def test_beats_lower_for_metrics_where_smaller_wins(nb) -> None:
    register(nb, "reg", 0.9, rmse=3.0)
    register(nb, "reg", 0.9, rmse=4.0)
    register(nb, "reg", 0.9, rmse=2.0)
    registry.set_policy("reg", production=["beats:metrics.rmse lower"])
    registry.promote("reg", 1, "Production", reason="first")
    with pytest.raises(TransitionRefused, match=r"4 vs 3 \(incumbent version 1\)"):
        registry.promote("reg", 2, "Production", reason="worse")
    registry.promote("reg", 3, "Production", reason="lower error")
    assert _stages("reg") == {1: "Archived", 2: "None", 3: "Production"}


def test_gates_read_params_attributes_and_version_tags(nb) -> None:
    register(nb, "churn", 0.9)
    registry.set_policy(
        "churn",
        staging=["params.C = '1.0' and attributes.status = 'FINISHED'"],
        production=["tags.validation = 'passed'"],
    )
    registry.promote("churn", 1, "Staging", reason="params as expected")
    with pytest.raises(TransitionRefused, match=r"tags.validation = missing"):
        registry.promote("churn", 1, "Production", reason="ship")
    registry.set_model_version_tag("churn", 1, "validation", "passed")
    registry.promote("churn", 1, "Production", reason="validated")
    assert _stages("churn") == {1: "Production"}


def test_set_policy_refuses_gates_that_do_not_parse_and_records_nothing(nb) -> None:
    register(nb, "churn", 0.9)
    before = registry_bytes(nb)
    with pytest.raises(InvalidParameterError, match=r"metrics\.auc >>> 3"):
        registry.set_policy("churn", production=["metrics.auc >>> 3"])
    with pytest.raises(InvalidParameterError, match=r"beats:metrics\.KEY"):
        registry.set_policy("churn", production=["beats:params.C"])
    assert registry_bytes(nb) == before
    assert registry.get_policy("churn") is None


def test_distinct_approver_refuses_the_registrant_and_accepts_someone_else(nb, monkeypatch) -> None:
    register(nb, "churn", 0.9)  # registered by alice
    registry.set_policy("churn", production=["metrics.val_auc > 0.5"], distinct_approver=True)
    registry.promote("churn", 1, "Staging", reason="alice may stage her own model")
    with pytest.raises(
        TransitionRefused,
        match=r"\[FAIL\] distinct_approver \(actual: approver 'alice', registered by 'alice'\)",
    ):
        registry.promote("churn", 1, "Production", reason="ship it")
    monkeypatch.setenv("NBTRACK_USER", "bob")
    registry.promote("churn", 1, "Production", reason="reviewed the eval report")
    event = registry.history("churn").iloc[-1]
    assert (event["who"], event["to"]) == ("bob", "Production")
    assert event["checks"][-1] == {
        "check": "distinct_approver",
        "passed": True,
        "actual": "approver 'bob', registered by 'alice'",
    }


# -- stages, archive_existing, rollback ----------------------------------------------------------


def test_promoting_to_production_archives_the_incumbent_by_default(nb) -> None:
    for auc in (0.8, 0.9):
        register(nb, "churn", auc)
    registry.promote("churn", 1, "Production", reason="first")
    registry.promote("churn", 2, "Production", reason="better")
    assert _stages("churn") == {1: "Archived", 2: "Production"}
    history = registry.history("churn")
    moved, archived = history.iloc[-2], history.iloc[-1]
    assert (archived["version"], archived["from"], archived["to"]) == (1, "Production", "Archived")
    assert archived["reason"] == "archived: version 2 moved to Production"
    assert archived["detail"] == f"because of event {moved['seq']}"


def test_mlflow_archive_existing_versions_flag(nb) -> None:
    for auc in (0.7, 0.8, 0.9):
        register(nb, "churn", auc)
    client = nb.MlflowClient()
    client.transition_model_version_stage("churn", 1, "Production", reason="a")
    client.transition_model_version_stage("churn", 2, "Production", reason="b")
    assert _stages("churn") == {1: "Production", 2: "Production", 3: "None"}  # MLflow's default
    client.transition_model_version_stage(
        "churn", 3, "Production", archive_existing_versions=True, reason="c"
    )
    assert _stages("churn") == {1: "Archived", 2: "Archived", 3: "Production"}
    latest = client.get_latest_versions("churn", stages=["Production", "Archived"])
    assert [(v.version, v.current_stage) for v in latest] == [(3, "Production"), (2, "Archived")]


def test_rollback_restores_the_previous_production_version_with_its_reason(nb) -> None:
    for auc in (0.8, 0.9):
        register(nb, "churn", auc)
    registry.promote("churn", 1, "Production", reason="first")
    with pytest.raises(InvalidParameterError, match="no earlier Production version"):
        registry.rollback("churn", reason="nothing to go back to")
    registry.promote("churn", 2, "Production", reason="better offline")
    with pytest.raises(InvalidParameterError, match="needs a reason"):
        registry.rollback("churn")
    restored = registry.rollback("churn", reason="v2 mis-scores new customers")
    assert restored.version == 1
    assert _stages("churn") == {1: "Production", 2: "Archived"}
    event = registry.history("churn").iloc[-1]
    assert (event["event"], event["from"], event["to"]) == (
        "version.rollback",
        "version 2",
        "version 1",
    )
    assert event["reason"] == "v2 mis-scores new customers"
    assert event["metrics"] == {"val_auc": 0.8}
    assert registry.rollback("churn", reason="fixed, undo").version == 2  # a rollback undoes one


@pytest.mark.parametrize("rule", ["move", "drop", "keep"])
def test_a_rollback_applies_the_policys_rule_to_the_archived_versions_aliases(nb, rule) -> None:
    for auc in (0.8, 0.9):
        register(nb, "churn", auc)
    if rule != "move":  # "move" is the default: no policy needed
        registry.set_policy("churn", on_rollback=rule)
    registry.promote("churn", 1, "Production", reason="first")
    registry.promote("churn", 2, "Production", reason="better offline")
    registry.set_alias("churn", "champion", 2)
    registry.set_alias("churn", "shadow", 1)
    if rule == "keep":
        with pytest.warns(UserWarning, match="@champion still name version 2"):
            registry.rollback("churn", reason="v2 mis-scores new customers")
    else:
        registry.rollback("churn", reason="v2 mis-scores new customers")
    aliases = registry.get_registered_model("churn").aliases
    expected = {"move": {"champion": 1}, "drop": {}, "keep": {"champion": 2}}[rule]
    assert aliases == {**expected, "shadow": 1}
    events = registry.history("churn")
    last = events.iloc[-1]
    if rule == "keep":
        assert last["event"] != "alias.set" and last["event"] != "alias.delete"
    else:
        assert last["event"] == {"move": "alias.set", "drop": "alias.delete"}[rule]
        assert last["reason"] == "rollback: v2 mis-scores new customers"


def test_a_bad_rollback_rule_is_refused_naming_the_choices(nb) -> None:
    with pytest.raises(InvalidParameterError, match=r"on_rollback='sometimes'.*'move', 'drop'"):
        registry.set_policy("churn", on_rollback="sometimes")
    assert registry.search_registered_models() == []


# -- aliases -------------------------------------------------------------------------------------


def test_alias_rules(nb) -> None:
    for auc in (0.8, 0.9):
        register(nb, "churn", auc)
    registry.set_alias("churn", "Champion", 1)
    assert registry.get_model_version_by_alias("churn", "champion").version == 1
    registry.set_alias("churn", "champion", 2, reason="v2 wins the A/B test")
    version = nb.MlflowClient().get_model_version_by_alias("churn", "CHAMPION")
    assert (version.version, version.aliases) == (2, ["champion"])
    moved = registry.history("churn").iloc[-1]
    assert (moved["from"], moved["to"], moved["detail"]) == (
        "version 1",
        "version 2",
        "alias 'champion'",
    )
    before = registry_bytes(nb)
    for bad, rule in [
        ("latest", "reserved"),
        ("LATEST", "reserved"),
        ("v3", "reserved"),
        ("has space", "letters, digits"),
        ("", "letters, digits"),
    ]:
        with pytest.raises(InvalidParameterError, match=rule):
            registry.set_alias("churn", bad, 1)
    with pytest.raises(NotFoundError, match="no version 7"):
        registry.set_alias("churn", "challenger", 7)
    assert registry_bytes(nb) == before
    assert registry.get_model_version_by_alias("churn", "latest").version == 2
    registry.set_alias("churn", "challenger", 1)
    registry.delete_model_version("churn", 1, reason="superseded")
    assert registry.get_registered_model("churn").aliases == {"champion": 2}
    with pytest.raises(NotFoundError, match="no alias 'challenger'"):
        registry.get_model_version_by_alias("churn", "challenger")
    registry.delete_alias("churn", "champion")
    assert registry.get_registered_model("churn").aliases == {}


def _protect_champion(nb, *aucs: float, **policy) -> None:
    for auc in aucs:
        register(nb, "churn", auc)
    registry.set_policy(
        "churn",
        aliases={"champion": ["metrics.val_auc >= 0.85", "beats:metrics.val_auc"]},
        **policy,
    )


def test_a_protected_alias_moves_through_its_checks_with_a_reason_as_a_stage_does(nb) -> None:
    _protect_champion(nb, 0.9, 0.8, 0.95)
    before = registry_bytes(nb)
    with pytest.raises(InvalidParameterError, match="needs a reason") as error:
        registry.set_alias("churn", "champion", 1)
    assert "%track alias churn 1 champion --reason" in str(error.value)
    assert registry_bytes(nb) == before
    registry.set_alias("churn", "Champion", 1, reason="clears the bar")
    event = registry.history("churn").iloc[-1]
    assert (event["event"], event["to"], event["reason"], event["forced"]) == (
        "alias.set",
        "version 1",
        "clears the bar",
        False,
    )
    assert event["checks"][1] == {
        "check": "beats:metrics.val_auc",
        "passed": True,
        "actual": "0.9; no incumbent at @champion",
    }
    assert event["metrics"] == {"val_auc": 0.9}

    before = registry_bytes(nb)
    with pytest.raises(TransitionRefused) as refused:
        registry.set_alias("churn", "champion", 2, reason="try it")
    assert str(refused.value).startswith(
        "Cannot point 'churn'@champion at version 2: 2 of 2 check(s) failed."
    )
    assert "[FAIL] beats:metrics.val_auc (actual: 0.8 vs 0.9 (incumbent version 1))" in str(
        refused.value
    )
    assert "--force in %track alias" in str(refused.value)
    with pytest.raises(InvalidParameterError, match="needs a reason"):
        registry.set_alias("churn", "champion", 2, force=True)
    assert registry_bytes(nb) == before
    assert [c.passed for c in registry.check_alias_move("churn", 2, "champion")] == [False, False]

    registry.set_alias("churn", "champion", 2, reason="A/B test needs it live", force=True)
    event = registry.history("churn").iloc[-1]
    assert (event["from"], event["to"], bool(event["forced"])) == ("version 1", "version 2", True)
    registry.set_alias("churn", "champion", 3, reason="beats v2")  # the incumbent is now v2
    registry.set_alias("churn", "challenger", 2)  # an unprotected alias moves freely
    assert registry.get_registered_model("churn").aliases == {"champion": 3, "challenger": 2}

    with pytest.raises(InvalidParameterError, match=r"Removing 'churn'@champion needs a reason"):
        registry.delete_alias("churn", "champion")
    registry.delete_alias("churn", "CHAMPION", reason="retired: traffic moves to v4")
    event = registry.history("churn").iloc[-1]
    assert (event["event"], event["from"], event["reason"]) == (
        "alias.delete",
        "version 3",
        "retired: traffic moves to v4",
    )
    assert registry.get_registered_model("churn").aliases == {"challenger": 2}


def test_mlflow_client_moves_protected_aliases_as_it_moves_stages(nb) -> None:
    _protect_champion(nb, 0.9, 0.8)
    client = nb.MlflowClient()
    with pytest.warns(MissingReasonWarning, match=r"set_registered_model_alias\(.*reason="):
        client.set_registered_model_alias("churn", "champion", 1)
    assert registry.history("churn").iloc[-1]["reason"] == NO_REASON
    with pytest.raises(TransitionRefused), pytest.warns(MissingReasonWarning):
        client.set_registered_model_alias("churn", "champion", 2)
    with (
        pytest.raises(InvalidParameterError, match=r"force=True .* needs a reason"),
        pytest.warns(MissingReasonWarning),
    ):
        client.set_registered_model_alias("churn", "champion", 2, force=True)
    client.set_registered_model_alias("churn", "champion", 2, reason="canary", force=True)
    assert bool(registry.history("churn").iloc[-1]["forced"]) is True
    with pytest.warns(MissingReasonWarning, match="delete_registered_model_alias"):
        client.delete_registered_model_alias("churn", "champion")
    assert registry.get_registered_model("churn").aliases == {}

    registry.set_policy("churn", aliases={"champion": []}, require_reason=True)
    before = registry_bytes(nb)
    with pytest.raises(InvalidParameterError, match="require_reason=True"):
        client.set_registered_model_alias("churn", "champion", 2)
    assert registry_bytes(nb) == before
    client.set_registered_model_alias("churn", "champion", 2, reason="protected, no checks")
    assert registry.history("churn").iloc[-1]["checks"] == []


def test_protected_aliases_need_a_distinct_approver_when_the_policy_says_so(
    nb, monkeypatch
) -> None:
    _protect_champion(nb, 0.9, distinct_approver=True)  # registered by alice
    with pytest.raises(TransitionRefused, match=r"\[FAIL\] distinct_approver"):
        registry.set_alias("churn", "champion", 1, reason="mine is good")
    monkeypatch.setenv("NBTRACK_USER", "bob")
    registry.set_alias("churn", "champion", 1, reason="reviewed alice's eval")
    event = registry.history("churn").iloc[-1]
    assert (event["who"], event["checks"][-1]["passed"]) == ("bob", True)


def test_a_version_holding_a_protected_alias_is_not_deleted_with_it(nb) -> None:
    _protect_champion(nb, 0.9, 0.95)
    registry.set_alias("churn", "champion", 1, reason="first")
    before = registry_bytes(nb)
    with pytest.raises(InvalidParameterError, match="holds the protected alias @champion"):
        registry.delete_model_version("churn", 1, reason="cleanup")
    assert registry_bytes(nb) == before
    registry.set_alias("churn", "champion", 2, reason="better")
    registry.delete_model_version("churn", 1, reason="cleanup")
    assert registry.get_registered_model("churn").aliases == {"champion": 2}


def test_set_policy_checks_protected_aliases_and_their_gates(nb) -> None:
    register(nb, "churn", 0.9)
    before = registry_bytes(nb)
    for aliases, message in [
        ({"latest": []}, "reserved"),
        (
            {"champion": ["metrics.auc >>> 3"]},
            r"@champion gate 'metrics\.auc >>> 3' does not parse",
        ),
        ({"champion": [""]}, "is not a check"),
        (["champion"], "give a dict of each protected alias"),
    ]:
        with pytest.raises(InvalidParameterError, match=message):
            registry.set_policy("churn", aliases=aliases)
    assert registry_bytes(nb) == before
    policy = registry.set_policy("churn", aliases={"Champion": "beats:metrics.val_auc"})
    assert policy["aliases"] == {"champion": ["beats:metrics.val_auc"]}
    assert registry.history("churn").iloc[-1]["detail"] == "@champion: beats:metrics.val_auc"


# -- audit trail and persistence -----------------------------------------------------------------


def test_history_is_a_dataframe_of_every_event_and_the_journal_only_grows(nb) -> None:
    register(nb, "churn", 0.9)
    first = registry_bytes(nb)
    registry.set_alias("churn", "champion", 1)
    registry.promote("churn", 1, "Staging", reason="ready for review")
    registry.set_model_version_tag("churn", 1, "validation", "passed")
    assert registry_bytes(nb).startswith(first)
    history = registry.history("churn")
    assert isinstance(history, pd.DataFrame)
    assert list(history["event"]) == [
        "model.create",
        "version.create",
        "alias.set",
        "version.stage",
        "version.tag",
    ]
    assert list(history["seq"]) == [1, 2, 3, 4, 5]
    assert set(history["who"]) == {"alice"}
    assert str(history["time"].dtype).endswith("UTC]")
    with pytest.raises(NotFoundError, match="was ever recorded"):
        registry.history("nope")


def test_history_follows_renames_and_outlives_deletion(nb) -> None:
    register(nb, "churn", 0.9)
    client = nb.MlflowClient()
    client.rename_registered_model("churn", "churn-v2")
    assert registry.get_model_version("churn-v2", 1).name == "churn-v2"
    with pytest.raises(NotFoundError):
        registry.get_registered_model("churn")
    client.delete_registered_model("churn-v2")
    events = list(registry.history("churn-v2")["event"])
    assert events == ["model.create", "version.create", "model.rename", "model.delete"]
    assert client.search_registered_models() == []


def test_registry_survives_doctor_rebuild_and_a_lost_catalog(nb) -> None:
    for auc in (0.8, 0.9):
        register(nb, "churn", auc)
    registry.promote("churn", 2, "Production", reason="better")
    registry.set_alias("churn", "champion", 2)
    registry.delete_model_version("churn", 1)

    def catalog_tables(store: Store) -> tuple[dict, dict]:
        models = {d["name"]: d for d in store.catalog.documents("registered_models")}
        versions = {(d["name"], d["version"]): d for d in store.catalog.documents("model_versions")}
        return models, versions

    nb.flush()
    with Store(store_path(nb)) as store:
        before = catalog_tables(store)
    assert before[0]["churn"]["aliases"] == {"champion": 2}
    assert before[1][("churn", 2)]["current_stage"] == "Production"
    assert before[1][("churn", 1)]["deleted"] is True
    report = nb.doctor(rebuild=True, progress=False)
    assert report.rebuilt
    with Store(store_path(nb)) as store:
        assert catalog_tables(store) == before
    for name in ("catalog.snapshot", "catalog.json", "catalog.log"):
        (store_path(nb) / name).unlink(missing_ok=True)
    with Store(store_path(nb)) as store:  # a lost catalog is rebuilt on open
        assert catalog_tables(store) == before


def test_search_model_versions_and_registered_models(nb) -> None:
    run_a = logged_run(nb, 0.8)
    nb.register_model(f"runs:/{run_a}/model", "churn")
    nb.register_model(f"runs:/{logged_run(nb, 0.9)}/model", "churn")
    nb.register_model(f"runs:/{run_a}/model", "fraud")
    registry.set_registered_model_tag("fraud", "team", "risk")
    found = registry.search_model_versions("name = 'churn'")
    assert [(v.name, v.version) for v in found] == [("churn", 2), ("churn", 1)]
    found = registry.search_model_versions(f"run_id = '{run_a}'", order_by=["name DESC"])
    assert [(v.name, v.version) for v in found] == [("fraud", 1), ("churn", 1)]
    assert [m.name for m in registry.search_registered_models("name LIKE 'ch%'")] == ["churn"]
    assert [m.name for m in registry.search_registered_models("tags.team = 'risk'")] == ["fraud"]
    with pytest.raises(
        InvalidParameterError,
        match=r"unknown attribute 'colour'; valid attributes are current_stage, name, run_id, "
        r"source_path, version_number \(or write tags.colour\)",
    ):
        registry.search_model_versions("colour = 'red'")
    assert dict(found[0])["version"] == 1


CRASH_AFTER_APPEND = """
import os, sys
import nbtrack
from nbtrack import registry
from nbtrack.tracking import fluent

nbtrack.set_tracking_uri(sys.argv[1])
store = fluent.current_store()
store.catalog.commit = lambda: os._exit(3)  # die between the journal append and the commit
registry.set_alias("churn", "champion", 1)
"""


def test_a_torn_event_and_a_lost_catalog_commit_are_mended(nb) -> None:
    register(nb, "churn", 0.9)
    nb.flush()
    journal = store_path(nb) / "registry.jsonl"
    with journal.open("ab") as handle:  # a writer died in the middle of an event
        handle.write(b'{"seq": 3, "op": "version.sta')
    assert list(registry.history("churn")["seq"]) == [1, 2]  # the torn line is not an event
    src = str(Path(__file__).resolve().parents[1] / "src")
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_APPEND, str(store_path(nb))],
        env={**os.environ, "PYTHONPATH": src},
        capture_output=True,
        timeout=120,
    )
    assert crashed.returncode == 3, crashed.stderr
    assert b'"version.sta' not in journal.read_bytes()  # cut before the new event
    with Store(store_path(nb)) as other:
        [row] = other.catalog.documents("registered_models")
        assert row["aliases"] == {}  # the dead process never committed its catalog change
        with other.registry.transaction("carol") as tx:  # the next write mends it
            assert tx.state.model("churn")["aliases"] == {"champion": 1}
    with Store(store_path(nb)) as fresh:
        [row] = fresh.catalog.documents("registered_models")
        assert row["aliases"] == {"champion": 1}
    assert list(registry.history("churn")["event"])[-1] == "alias.set"


def test_history_spells_every_missing_value_the_same_way(nb) -> None:
    import pandas as pd

    register(nb, "churn", 0.8)
    registry.set_registered_model_tag("churn", "team", "risk")
    registry.promote("churn", 1, "Staging", reason="try it")
    frame = registry.history("churn")
    missing = {
        type(value).__name__
        for column in frame.columns
        if column not in ("checks", "metrics")
        for value in frame[column]
        if value is None or value is pd.NA or (isinstance(value, float) and value != value)
    }
    assert missing == {"NAType"}
    tagged = frame[frame["event"] == "model.tag"].iloc[0]
    assert tagged["version"] is pd.NA and tagged["reason"] is pd.NA and tagged["to"] is pd.NA
    assert str(frame.dtypes["reason"]) == "string" and str(frame.dtypes["forced"]) == "boolean"
