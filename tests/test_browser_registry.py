"""The registry from a real JupyterLab, driven by Playwright in headless Chromium: a run is
registered from the run table's Register action, then promoted in the RegistryPanel through
the reason prompt (the gate results shown first), and the move appears in the audit log;
a weak run registered from its run card fails the gate and goes through only when forced
with a reason; the protected alias ``champion`` moves through the same review.

Reuses test_browser's JupyterLab server fixture (``lab``) and helpers; the notebook is
written into the server's root here. Screenshots go to the test's ``tmp_path`` and to
``benchmarks/results/screenshots/`` (gitignored). Skipped only when /usr/bin/chromium is
missing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import test_browser as browser

lab = browser.lab  # the module-scoped `jupyter lab` on loopback, shared with test_browser

NOTEBOOK = "registry-panel.ipynb"
XSS = browser.XSS
REASON = f"clears the launch bar; reviewed by the team {XSS}"
CELLS = [
    "%load_ext nbtrack\n%track experiment registry-panel",
    "from sklearn.datasets import load_digits\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "from sklearn.model_selection import train_test_split\n"
    "import nbtrack\n"
    "from nbtrack import registry\n"
    "import os\n\n"
    'os.environ["NBTRACK_USER"] = "alice"  # who the registry records\n'
    "X, y = load_digits(return_X_y=True)\n"
    "X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=0)\n"
    "policy = registry.set_policy(\n"
    '    "digits",\n'
    '    production=["metrics.val_accuracy >= 0.9"],\n'
    '    aliases={"champion": ["metrics.val_accuracy >= 0.9"]},\n'
    '    reason="the launch bar",\n'
    ")",
    "%%track --name no-model --metrics val_accuracy\nval_accuracy = 0.5  # logs no model",
    "%%track --name logreg --metrics val_accuracy\n"
    "C = 0.1\n"
    "model = LogisticRegression(C=C, max_iter=2000).fit(X_train, y_train)\n"
    "val_accuracy = model.score(X_val, y_val)\n"
    'info = nbtrack.log_model(model, "model", input_example=X_val[:3])',
    "%%track --name weak --metrics val_accuracy\n"
    "from sklearn.dummy import DummyClassifier\n"
    "weak = DummyClassifier().fit(X_train, y_train)  # always the most frequent digit\n"
    "val_accuracy = weak.score(X_val, y_val)\n"
    'info = nbtrack.log_model(weak, "model", input_example=X_val[:3])',
    "%track runs",
    "%track registry digits",
]

pytestmark = browser.pytestmark


def _write_notebook(root: Path) -> None:
    import nbformat  # here: importing it takes seconds, and collection needs no kernel

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, root / NOTEBOOK)


@pytest.fixture
def session(lab: Any) -> Any:
    """The notebook opened and run to the end; page errors, dialogs and blocked URLs kept."""
    _write_notebook(lab.root)
    with browser.opened(lab, NOTEBOOK, "registry") as session:
        browser._wait_idle(session.page)
        yield session


def _output(page: Any, source: str) -> Any:
    """The output area of the code cell whose source is ``source`` (outputs may quote it)."""
    exact = re.compile(f"^{re.escape(source)}$")
    cell = page.locator(".jp-CodeCell").filter(
        has=page.locator(".jp-InputArea-editor", has_text=exact)
    )
    return cell.locator(".jp-OutputArea")


def _row(table: Any, name: str) -> Any:
    cell = table.page.locator("td.nbt-run-name", has_text=re.compile(f"^{re.escape(name)}$"))
    return table.locator("tbody tr").filter(has=cell)


def _right_edge(locator: Any) -> float:
    box = locator.bounding_box()
    return box["x"] + box["width"]


def _events(root: Path) -> list[dict[str, Any]]:
    lines = (root / ".nbtrack" / "registry.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_register_from_the_table_then_promote_in_the_registry_panel(session, lab, tmp_path):
    page = session.page
    table = _output(page, "%track runs").locator(".nbt-table")
    _row(table, "logreg").wait_for()
    register = table.locator("button[data-action='register']")

    # A run without a model: the action says so, and nothing opens.
    _row(table, "no-model").locator("input.nbt-select").check()
    register.click()
    error = table.locator(".nbt-filter-error")
    error.filter(has_text="logged no model").wait_for()
    assert "'no-model'" in error.inner_text()
    _row(table, "no-model").locator("input.nbt-select").uncheck()

    # Register logreg: the form asks for a name, the artifact path defaults to the package.
    _row(table, "logreg").locator("input.nbt-select").check()
    register.click()
    form = table.locator(".nbt-detail .nbt-register")
    form.wait_for()
    assert error.inner_text() == ""
    assert form.locator("input.nbt-artifact").input_value() == "model"
    form.locator("input.nbt-model-name").fill("digits")
    form.locator(".nbt-register-submit").click()
    form.locator(".nbt-registered", has_text="✓ digits version 1").wait_for()
    assert "models:/digits/1" in form.locator(".nbt-register-result").inner_text()
    browser._shoot(table, tmp_path, "registry-table-register")

    # The registry panel, shown before the version existed, picks it up by itself.
    panel = _output(page, "%track registry digits").locator(".nbt-registry")
    version = panel.locator(".nbt-versions tr[data-version='1']")
    version.wait_for()
    assert version.locator(".nbt-version-stage").inner_text() == "None"
    assert version.locator(".nbt-run-link").inner_text() == "logreg"

    # Its source run opens in the panel.
    version.locator(".nbt-run-link").click()
    detail = panel.locator(".nbt-run-detail")
    detail.locator(".nbt-subtitle", has_text="run logreg").wait_for()
    assert "name = logreg" in detail.locator("pre").first.inner_text()
    assert "val_accuracy" in detail.inner_text() and "model/MLmodel" in detail.inner_text()
    detail.locator(".nbt-close").click()
    detail.wait_for(state="detached")

    # Promote: the gate results show first, and the move waits for a reason.
    version.locator("button.nbt-move[data-stage='Production']").click()
    prompt = panel.locator(".nbt-transition")
    prompt.wait_for()
    check = prompt.locator(".nbt-check")
    assert check.count() == 1
    assert "nbt-pass" in check.get_attribute("class")
    assert "metrics.val_accuracy >= 0.9" in check.inner_text()
    assert re.search(r"actual: metrics\.val_accuracy = 0\.9\d", check.inner_text())
    assert "1 of 1 passed" in prompt.inner_text()
    confirm = prompt.locator(".nbt-confirm")
    assert confirm.inner_text() == "Promote to Production" and confirm.is_disabled()
    assert prompt.locator(".nbt-force").count() == 0  # nothing failed: nothing to force
    assert _events(lab.root)[-1]["op"] == "version.create"  # a dry run moved nothing
    prompt.locator("textarea.nbt-reason").fill(REASON)
    assert confirm.is_enabled()
    browser._shoot(panel, tmp_path, "registry-panel-prompt")
    confirm.click()

    prompt.wait_for(state="detached")
    version.locator(".nbt-stage-Production").wait_for()
    message = panel.locator(".nbt-registry-message")
    assert message.inner_text() == "Moved digits version 1 from None to Production."
    latest = panel.locator(".nbt-audit tbody tr").first
    cells = latest.locator("td").all_inner_texts()
    assert cells[1:] == [
        "alice",
        "version.stage",
        "1",
        "None",
        "Production",
        REASON,  # as text: the markup in it made no element
        "1/1 passed",
    ]
    browser._shoot(panel, tmp_path, "registry-panel-promoted")

    # The weak model, registered from its run card: the gate fails, so only a forced move
    # with a reason gets it through, and the log says it was forced.
    card = browser._output(page, "%%track --name weak").locator(".nbt-run-card")
    card.locator("button[data-action='register']").click()
    card.locator(".nbt-register input.nbt-model-name").fill("digits")
    card.locator(".nbt-register-submit").click()
    card.locator(".nbt-registered", has_text="✓ digits version 2").wait_for()
    weak = panel.locator(".nbt-versions tr[data-version='2']")
    weak.locator("button.nbt-move[data-stage='Production']").click()
    prompt.wait_for()
    check = prompt.locator(".nbt-check")
    assert "nbt-fail" in check.get_attribute("class") and "FAIL" in check.inner_text()
    assert "0 of 1 passed" in prompt.inner_text()
    assert "Version 1 (now in Production) will be archived." in prompt.inner_text()
    force = prompt.locator(".nbt-force")
    assert confirm.is_disabled() and force.is_disabled()  # no reason yet
    prompt.locator("textarea.nbt-reason").fill("demo build for the sales call")
    assert confirm.is_disabled() and force.is_enabled()  # a failed check: only forcing
    browser._shoot(panel, tmp_path, "registry-panel-refused")
    force.click()

    prompt.wait_for(state="detached")
    weak.locator(".nbt-stage-Production").wait_for()
    assert version.locator(".nbt-version-stage").inner_text() == "Archived"
    assert message.inner_text() == (
        "Moved digits version 2 from None to Production, forced past 1 failed check(s); "
        "archived version 1."
    )
    forced = panel.locator(".nbt-audit tbody tr").nth(1)  # the newest is version 1 archived
    assert forced.locator("td").all_inner_texts()[2:7] == [
        "version.stage forced",
        "2",
        "None",
        "Production",
        "demo build for the sales call",
    ]
    assert forced.locator(".nbt-forced").inner_text() == "forced"
    # The whole log fits its panel: the last column and the badge are not cut off.
    right = _right_edge(panel)
    assert _right_edge(panel.locator(".nbt-audit")) <= right + 1
    assert _right_edge(forced.locator("td").last) <= right + 1
    assert _right_edge(forced.locator(".nbt-forced")) <= right + 1
    browser._shoot(panel, tmp_path, "registry-panel-forced")

    promoted, _, forced_event, archived = _events(lab.root)[-4:]
    assert (promoted["op"], promoted["version"], promoted["to"], promoted["reason"]) == (
        "version.stage",
        1,
        "Production",
        REASON,
    )
    assert promoted["forced"] is False and promoted["checks"][0]["passed"] is True
    assert (forced_event["version"], forced_event["forced"]) == (2, True)
    assert forced_event["checks"][0]["passed"] is False
    assert (archived["version"], archived["to"]) == (1, "Archived")

    # The protected alias: its button opens the same review, and the move needs a reason.
    assert weak.locator("button.nbt-alias-move").inner_text() == "→ @champion"
    version.locator("button.nbt-alias-move[data-alias='champion']").click()
    prompt.wait_for()
    assert "Point digits @champion at version 1 (now: unset)" in prompt.inner_text()
    assert "1 of 1 passed" in prompt.inner_text()
    confirm = prompt.locator(".nbt-confirm")
    assert confirm.inner_text() == "Point @champion here" and confirm.is_disabled()
    prompt.locator("textarea.nbt-reason").fill("the accurate one serves")
    confirm.click()
    prompt.wait_for(state="detached")
    version.locator(".nbt-alias", has_text="@champion").wait_for()
    assert message.inner_text() == "Pointed digits@champion at version 1 (was unset)."
    assert version.locator("button.nbt-alias-move").count() == 0  # it holds the alias now
    pointed = _events(lab.root)[-1]
    assert (pointed["op"], pointed["alias"], pointed["version"], pointed["reason"]) == (
        "alias.set",
        "champion",
        1,
        "the accurate one serves",
    )
    assert pointed["forced"] is False and pointed["checks"][0]["passed"] is True
    browser._shoot(panel, tmp_path, "registry-panel-alias")

    outputs = page.locator(".jp-OutputArea")
    assert outputs.locator("img[src='x']").count() == 0
    assert session.dialogs == [] and session.errors == [] and session.blocked == []
    browser._shoot(page, tmp_path, "registry-notebook")
