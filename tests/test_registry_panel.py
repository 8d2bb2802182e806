"""The RegistryPanel and the Register action, without a browser: what the page is sent, what
its intents do to the registry (dry-run gates first, then the move or a refusal, the forced
path), and the static forms."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from model_helpers import classifier, iris, logged_run, register, registry_bytes
from nbtrack import registry
from nbtrack.errors import NotFoundError
from nbtrack.registry.render import registry_view
from nbtrack.tracking import fluent
from nbtrack.widgets import live
from nbtrack.widgets.card import RunCard
from nbtrack.widgets.register import RegisterForm
from nbtrack.widgets.registry import RegistryPanel
from nbtrack.widgets.table import RunTable

ROOT = Path(__file__).resolve().parents[1]
WIDGET = "application/vnd.jupyter.widget-view+json"
XSS = "<img src=x onerror=alert(1)>"
POLICY = ["metrics.val_auc >= 0.85", "beats:metrics.val_auc"]


@pytest.fixture
def nb(tracking, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NBTRACK_USER", "alice")
    yield tracking
    import ipywidgets

    live.clear()
    ipywidgets.Widget.close_all()


def send(panel: Any, content: dict[str, Any]) -> None:
    """A message from the page, through the widget's own handler (as a click sends it)."""
    panel._handle_custom_msg(content, [])


def versions(panel: RegistryPanel, model: str) -> dict[int, dict[str, Any]]:
    [found] = [m for m in panel.models if m["name"] == model]
    return {v["version"]: v for v in found["versions"]}


def named_run(nb, name: str, auc: float) -> str:
    with nb.start_run(run_name=name) as run:
        nb.log_metric("val_auc", auc)
        nb.log_model(classifier(), "model", input_example=iris()[0].head(3))
    return run.info.run_id


# -- what the panel shows ------------------------------------------------------------------------


def test_lists_models_with_versions_stages_aliases_and_source_runs(nb) -> None:
    run_id = named_run(nb, "forest", 0.9)
    nb.register_model(f"runs:/{run_id}/model", "churn")
    register(nb, "churn", 0.95)
    register(nb, "fraud", 0.7)
    registry.promote("churn", 1, "Staging", reason="first review")
    registry.set_alias("churn", "champion", 1)
    registry.set_policy("churn", production=POLICY)

    panel = nb.registry_panel()
    assert isinstance(panel, RegistryPanel) and panel.model_name == ""
    assert [m["name"] for m in panel.models] == ["churn", "fraud"]
    [churn] = [m for m in panel.models if m["name"] == "churn"]
    assert churn["policy"] == "Production: metrics.val_auc >= 0.85, beats:metrics.val_auc"
    assert [v["version"] for v in churn["versions"]] == [2, 1]  # newest first
    first = versions(panel, "churn")[1]
    assert (first["stage"], first["aliases"]) == ("Staging", ["champion"])
    assert (first["run_id"], first["run_name"]) == (run_id, "forest")
    assert first["moves"] == ["None", "Production", "Archived"]  # every stage but its own
    assert first["created_by"] == "alice" and first["metrics"] == "val_auc=0.9"
    assert [e["event"] for e in panel.events][:3] == ["model.policy", "alias.set", "version.stage"]
    assert panel.events[2]["reason"] == "first review"
    assert panel.total_events == len(registry.history())

    only = RegistryPanel("churn")
    assert [m["name"] for m in only.models] == ["churn"]
    assert {e["model"] for e in only.events} == {"churn"}
    with pytest.raises(NotFoundError, match="nope"):
        RegistryPanel("nope")


def test_display_carries_the_static_registry_view(nb) -> None:
    register(nb, "churn", 0.9)
    panel = RegistryPanel("churn")
    bundle = panel.bundle()
    assert bundle[WIDGET]["model_id"] == panel.model_id
    with fluent.current_store().registry.reading() as state:
        view = registry_view(state, "churn")
    assert bundle["text/html"] == view.html
    assert bundle["text/plain"].endswith(view.text) and "churn (1 version)" in repr(panel)


def test_everything_users_typed_is_text_in_the_page_and_escaped_in_the_static_form(nb) -> None:
    run_id = named_run(nb, XSS, 0.9)
    nb.register_model(f"runs:/{run_id}/model", XSS)
    panel = RegistryPanel()
    panel.prepare(XSS, 1, "Staging")
    panel.confirm(reason=f"reviewed {XSS} & more")
    # The page gets the raw strings and sets them as text (see test_widgets' module checks).
    assert versions(panel, XSS)[1]["run_name"] == XSS
    assert panel.events[0]["reason"] == f"reviewed {XSS} & more"
    markup = panel.bundle()["text/html"]
    assert "<img" not in markup and "<script" not in markup
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; more" in markup


# -- transitions ---------------------------------------------------------------------------------


def test_prepare_shows_the_gate_results_and_moves_nothing(nb) -> None:
    register(nb, "churn", 0.9)
    register(nb, "churn", 0.95)
    registry.set_policy("churn", production=POLICY)
    registry.promote("churn", 1, "Production", reason="first")
    before = registry_bytes(nb)
    panel = RegistryPanel("churn")
    send(panel, {"kind": "prepare", "model": "churn", "version": 2, "stage": "production"})
    pending = panel.pending
    assert panel.error == ""
    assert (pending["model"], pending["version"], pending["from"], pending["to"]) == (
        "churn",
        2,
        "None",
        "Production",
    )
    assert pending["checks"] == [
        {"check": "metrics.val_auc >= 0.85", "passed": True, "actual": "metrics.val_auc = 0.95"},
        {
            "check": "beats:metrics.val_auc",
            "passed": True,
            "actual": "0.95 vs 0.9 (incumbent version 1)",
        },
    ]
    assert pending["failed"] == 0 and pending["reason_required"] is True
    assert pending["archives"] == [1] and pending["who"] == "alice"
    assert registry_bytes(nb) == before  # a dry run: nothing recorded
    assert registry.get_model_version("churn", 2).current_stage == "None"
    send(panel, {"kind": "cancel"})
    assert panel.pending == {}


def test_confirm_promotes_with_the_reason_and_the_audit_log_shows_it(nb) -> None:
    register(nb, "churn", 0.9)
    register(nb, "churn", 0.95)
    registry.set_policy("churn", production=POLICY)
    registry.promote("churn", 1, "Production", reason="first")
    panel = RegistryPanel("churn")
    send(panel, {"kind": "prepare", "model": "churn", "version": 2, "stage": "Production"})
    send(panel, {"kind": "confirm", "reason": "  beats v1 on val_auc  ", "force": False})
    assert panel.error == "" and panel.pending == {}
    assert panel.message == "Moved churn version 2 from None to Production; archived version 1."
    stages = {n: v["stage"] for n, v in versions(panel, "churn").items()}
    assert stages == {1: "Archived", 2: "Production"}
    moved, archived = panel.events[1], panel.events[0]
    assert (moved["event"], moved["version"], moved["to"]) == ("version.stage", "2", "Production")
    assert (moved["reason"], moved["who"], moved["checks"], moved["forced"]) == (
        "beats v1 on val_auc",
        "alice",
        "2/2 passed",
        False,
    )
    assert moved["check_lines"][0] == (
        "[pass] metrics.val_auc >= 0.85 (actual: metrics.val_auc = 0.95)"
    )
    assert (archived["version"], archived["to"]) == ("1", "Archived")
    event = registry.history("churn").iloc[-2]
    assert (event["reason"], bool(event["forced"])) == ("beats v1 on val_auc", False)


def test_a_move_to_a_reviewed_stage_needs_a_reason(nb) -> None:
    register(nb, "churn", 0.9)
    panel = RegistryPanel("churn")
    panel.prepare("churn", 1, "Archived")
    first = panel.pending["id"]
    before = registry_bytes(nb)
    send(panel, {"kind": "confirm", "reason": "   ", "force": False})
    assert "needs a reason" in panel.error and "reason box" in panel.error
    assert registry_bytes(nb) == before
    assert panel.pending["id"] != first  # a new answer, so the page enables its buttons again
    registry.promote("churn", 1, "Staging", reason="review")
    panel.prepare("churn", 1, "None")  # None is not a reviewed stage: no reason needed
    assert panel.pending["reason_required"] is False
    panel.confirm("")
    assert panel.error == "" and versions(panel, "churn")[1]["stage"] == "None"


def test_failed_checks_refuse_the_move_until_forced_with_a_reason(nb) -> None:
    register(nb, "churn", 0.8)
    registry.set_policy("churn", production=POLICY)
    panel = RegistryPanel("churn")
    panel.prepare("churn", 1, "Production")
    assert panel.pending["failed"] == 1
    assert panel.pending["checks"][0] == {
        "check": "metrics.val_auc >= 0.85",
        "passed": False,
        "actual": "metrics.val_auc = 0.8",
    }
    before = registry_bytes(nb)
    send(panel, {"kind": "confirm", "reason": "ship it", "force": False})
    assert panel.error.startswith("Refused: 1 of 2 check(s) failed")
    assert "[FAIL] metrics.val_auc >= 0.85 (actual: metrics.val_auc = 0.8)" in panel.error
    assert "Force with reason" in panel.error
    assert registry_bytes(nb) == before and panel.pending["failed"] == 1
    send(panel, {"kind": "confirm", "reason": "", "force": True})
    assert "needs a reason" in panel.error and registry_bytes(nb) == before
    send(panel, {"kind": "confirm", "reason": "launch deadline", "force": True})
    assert panel.error == "" and panel.pending == {}
    assert panel.message == (
        "Moved churn version 1 from None to Production, forced past 1 failed check(s)."
    )
    event = panel.events[0]
    assert (event["forced"], event["reason"], event["checks"]) == (
        True,
        "launch deadline",
        "1/2 passed",
    )
    assert bool(registry.history("churn").iloc[-1]["forced"]) is True


def test_confirm_checks_again_and_refuses_when_the_incumbent_changed(nb) -> None:
    register(nb, "churn", 0.9)
    register(nb, "churn", 0.95)
    register(nb, "churn", 0.97)
    registry.set_policy("churn", production=POLICY)
    panel = RegistryPanel("churn")
    panel.prepare("churn", 2, "Production")
    assert panel.pending["failed"] == 0  # no incumbent yet
    registry.promote("churn", 3, "Production", reason="someone else, meanwhile")
    panel.confirm(reason="beats the baseline")
    assert panel.error.startswith("Refused: 1 of 2 check(s) failed")
    beats = panel.pending["checks"][1]
    assert beats == {
        "check": "beats:metrics.val_auc",
        "passed": False,
        "actual": "0.95 vs 0.97 (incumbent version 3)",
    }
    assert registry.get_model_version("churn", 2).current_stage == "None"


def test_a_protected_alias_moves_through_the_same_review_as_a_stage(nb) -> None:
    register(nb, "churn", 0.9)
    register(nb, "churn", 0.8)
    registry.set_policy("churn", aliases={"champion": POLICY})
    registry.set_alias("churn", "champion", 1, reason="first")
    registry.set_alias("churn", "shadow", 2)  # not protected: no button, no review
    panel = RegistryPanel("churn")
    assert [v["alias_moves"] for v in versions(panel, "churn").values()] == [["champion"], []]
    assert panel.models[0]["policy"] == (
        "@champion: metrics.val_auc >= 0.85, beats:metrics.val_auc"
    )

    before = registry_bytes(nb)
    send(panel, {"kind": "prepare", "model": "churn", "version": 2, "alias": "Champion"})
    pending = panel.pending
    assert panel.error == ""
    assert (pending["kind"], pending["alias"], pending["from"], pending["to"]) == (
        "alias",
        "champion",
        "version 1",
        "@champion",
    )
    assert (pending["failed"], pending["reason_required"], pending["archives"]) == (2, True, [])
    assert pending["checks"][1] == {
        "check": "beats:metrics.val_auc",
        "passed": False,
        "actual": "0.8 vs 0.9 (incumbent version 1)",
    }
    assert registry_bytes(nb) == before  # a dry run: nothing recorded

    send(panel, {"kind": "confirm", "reason": "", "force": False})
    assert "Pointing 'churn'@champion at version 2 needs a reason" in panel.error
    send(panel, {"kind": "confirm", "reason": "canary", "force": False})
    assert panel.error.startswith("Refused: 2 of 2 check(s) failed")
    assert registry_bytes(nb) == before
    send(panel, {"kind": "confirm", "reason": "canary for a week", "force": True})
    assert panel.error == "" and panel.pending == {}
    assert panel.message == (
        "Pointed churn@champion at version 2 (was version 1), forced past 2 failed check(s)."
    )
    assert versions(panel, "churn")[2]["aliases"] == ["champion", "shadow"]
    assert [v["alias_moves"] for v in versions(panel, "churn").values()] == [[], ["champion"]]
    moved = panel.events[0]
    assert (moved["event"], moved["from"], moved["to"], moved["reason"]) == (
        "alias.set",
        "version 1",
        "version 2",
        "canary for a week",
    )
    assert (moved["forced"], moved["checks"]) == (True, "0/2 passed")
    event = registry.history("churn").iloc[-1]
    assert (event["event"], bool(event["forced"]), event["reason"]) == (
        "alias.set",
        True,
        "canary for a week",
    )
    send(panel, {"kind": "prepare", "model": "churn", "version": 2, "alias": "champion"})
    assert "already on version 2" in panel.error


def test_bad_intents_are_reported_in_the_panel(nb) -> None:
    register(nb, "churn", 0.9)
    panel = RegistryPanel()
    send(panel, {"kind": "confirm", "reason": "why", "force": False})
    assert "Nothing to confirm" in panel.error
    send(panel, {"kind": "prepare", "model": "churn", "version": 7, "stage": "Staging"})
    assert "has no version 7" in panel.error and panel.pending == {}
    send(panel, {"kind": "prepare", "model": "churn", "version": 1, "stage": "Live"})
    assert "Invalid stage 'Live'" in panel.error
    send(panel, {"kind": "prepare", "model": "churn", "version": 1, "stage": "None"})
    assert "already in None" in panel.error
    send(panel, {"kind": "prepare", "model": "churn", "version": 1, "stage": "Staging"})
    assert panel.error == "" and panel.pending["to"] == "Staging"


def test_the_panel_acts_on_the_store_it_shows_after_the_store_changes(nb, tmp_path) -> None:
    register(nb, "churn", 0.9)
    panel = RegistryPanel()
    shown = nb.get_tracking_uri()
    nb.set_tracking_uri(tmp_path / "elsewhere")
    send(panel, {"kind": "prepare", "model": "churn", "version": 1, "stage": "Staging"})
    send(panel, {"kind": "confirm", "reason": "ready for review", "force": False})
    assert panel.error == "" and versions(panel, "churn")[1]["stage"] == "Staging"
    assert registry.search_registered_models() == []  # the store now in use has none
    nb.set_tracking_uri(shown)
    assert registry.get_model_version("churn", 1).current_stage == "Staging"


# -- source runs, refreshing ---------------------------------------------------------------------


def test_a_versions_source_run_opens_in_the_detail_area(nb) -> None:
    run_id = named_run(nb, "forest", 0.9)
    nb.register_model(f"runs:/{run_id}/model", "churn")
    panel = RegistryPanel()
    send(panel, {"kind": "open_run", "run_id": versions(panel, "churn")[1]["run_id"]})
    detail = panel.detail
    assert detail["run_id"] == run_id
    sections = dict(detail["sections"])
    assert "name = forest" in sections["run forest"]
    assert "val_auc = 0.9" in sections["metrics (latest)"]
    assert "model/MLmodel" in sections["artifacts"]
    send(panel, {"kind": "close_detail"})
    assert panel.detail == {}
    send(panel, {"kind": "open_run", "run_id": "f" * 32})
    assert "not found" in panel.error


def test_the_panel_follows_moves_made_by_another_process(nb, tmp_path) -> None:
    register(nb, "churn", 0.9)
    panel = RegistryPanel("churn")
    assert panel.tick() is True and versions(panel, "churn")[1]["stage"] == "None"
    code = (
        "import nbtrack\n"
        f"nbtrack.set_tracking_uri({str(tmp_path / 'store')!r})\n"
        "nbtrack.registry.promote('churn', 1, 'Staging', reason='from another kernel')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NBTRACK_USER": "bob"}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=env)
    panel.tick()
    assert versions(panel, "churn")[1]["stage"] == "Staging"
    assert (panel.events[0]["who"], panel.events[0]["reason"]) == ("bob", "from another kernel")
    send(panel, {"kind": "refresh"})  # the button: nothing new, nothing changes
    assert versions(panel, "churn")[1]["stage"] == "Staging"


# -- the Register action -------------------------------------------------------------------------


def test_table_register_asks_for_a_name_and_registers_the_runs_model(nb) -> None:
    run_id = named_run(nb, "forest", 0.9)
    registry.create_registered_model("fraud")
    table = RunTable()
    assert "register" in [a["name"] for a in table.actions]
    send(table, {"kind": "action", "name": "register", "run_ids": [run_id]})
    form = table.detail
    assert isinstance(form, RegisterForm) and table.error == ""
    assert form.run == {"run_id": run_id, "name": "forest"}
    assert (form.artifact, form.packages, form.models) == ("model", ["model"], ["fraud"])
    send(form, {"kind": "register", "model": "churn", "artifact": ""})
    assert form.error == "" and form.answered == 1
    assert form.registered == {"name": "churn", "version": 1, "uri": "models:/churn/1"}
    assert "as churn version 1" in form.message and "churn" in form.models
    version = registry.get_model_version("churn", 1)
    assert (version.run_id, version.source) == (run_id, f"runs:/{run_id}/model")
    send(form, {"kind": "register", "model": "churn", "artifact": "model"})
    assert form.registered["version"] == 2 and form.answered == 2


def test_card_register_registers_its_run(nb) -> None:
    run_id = named_run(nb, "forest", 0.9)
    card = RunCard(fluent.current_store().get_run(run_id))
    assert "register" in [a["name"] for a in card.actions]
    send(card, {"kind": "action", "name": "register", "run_ids": [run_id]})
    assert isinstance(card.detail, RegisterForm)
    card.detail.register("churn")
    assert registry.get_model_version("churn", 1).run_id == run_id


def test_register_reports_a_run_that_logged_no_model(nb) -> None:
    with nb.start_run(run_name="no-model") as run:
        nb.log_metric("val_auc", 0.9)
    table = RunTable()
    send(table, {"kind": "action", "name": "register", "run_ids": [run.info.run_id]})
    assert "'no-model'" in table.error and "logged no model" in table.error
    assert "nbtrack.log_model" in table.error and table.detail is None
    card = RunCard(fluent.current_store().get_run(run.info.run_id))
    send(card, {"kind": "action", "name": "register", "run_ids": [run.info.run_id]})
    assert "logged no model" in card.error and card.detail is None


def test_register_form_reports_bad_names_and_paths_and_writes_nothing(nb) -> None:
    run_id = logged_run(nb, 0.9)
    form = RegisterForm(run_id)
    cases = [
        ("", "", "Give the model a name"),
        ("a/b", "", "cannot contain '/'"),
        ("churn", "nope", "nope"),
    ]
    for model, artifact, message in cases:
        send(form, {"kind": "register", "model": model, "artifact": artifact})
        assert message in form.error, (model, form.error)
        assert form.registered == {}
    assert form.answered == len(cases)  # every reply re-enables the page's button
    assert registry_bytes(nb) == b""


def test_register_form_offers_each_package_of_a_run(nb) -> None:
    with nb.start_run(run_name="two") as run:
        nb.log_model(classifier(), "b")
        nb.log_model(classifier(), "a")
    form = RegisterForm(run.info.run_id)
    assert (form.packages, form.artifact) == (["a", "b"], "a")
    form.register("churn", "b/")
    assert registry.get_model_version("churn", 1).source == f"runs:/{run.info.run_id}/b"
