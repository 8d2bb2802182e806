"""The JupyterLab extension in a real JupyterLab (and Notebook 7), driven by Playwright in
Debian's Chromium: the Experiments sidebar lists the runs a notebook made, filters them
(a bad filter marks its token), opens a run in a tab, and Open cell lands on the
highlighted cell of the right notebook (or says the cell changed); a run a kernel logs
appears in the open sidebar by itself; a promotion with a reason from the registry tab
reaches the audit log; the dark theme stays legible; Notebook 7 loads the sidebar.

Screenshots go to each test's ``tmp_path`` and to ``benchmarks/results/screenshots/``
(``labext-*.png``). Skipped when /usr/bin/chromium is missing, or when the extension has
not been built (``make lab`` builds it).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from server_helpers import BUILT, jupyter

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "screenshots"
CHROME_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
]  # fmt: skip
XSS = "<img src=x onerror=alert(1)>"
TRAIN = [
    "%load_ext nbtrack\nimport nbtrack\n%track experiment lab-demo",
    "%%track --name lr-0.1 --metrics acc\nlr = 0.1\nfor step in range(40):\n"
    "    nbtrack.log_metric('loss', 1 / (step + 1) + lr, step=step)\nacc = 0.91",
    "%%track --name lr-0.01 --metrics acc\nlr = 0.01\nfor step in range(40):\n"
    "    nbtrack.log_metric('loss', 1 / (step + 1) + lr, step=step)\nacc = 0.84",
    f"%%track --name '{XSS}' --metrics acc\nlr = 0.5\nacc = 0.5",
]
MODEL = """
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from nbtrack import registry
X, y = load_iris(return_X_y=True)
with nbtrack.start_run(run_name="iris-model") as run:
    nbtrack.log_metric("val_acc", 0.95)
    nbtrack.log_model(LogisticRegression(max_iter=500).fit(X, y), "model")
registry.register_model(f"runs:/{run.info.run_id}/model", "iris")
registry.set_policy("iris", production=["metrics.val_acc >= 0.9"])
nbtrack.flush()
"""
REASON = f"beats the baseline on val_acc {XSS}"
KERNEL_IDLE = """() => {
  const k = window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle'; }"""

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing"),
    pytest.mark.skipif(not BUILT.is_dir(), reason="the JupyterLab extension is not built"),
]


def _notebook(path: Path, cells: list[str]) -> None:
    import nbformat  # here: importing it takes seconds, and collection needs no kernel

    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(book, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("labroot")
    _notebook(root / "train.ipynb", TRAIN)
    _notebook(root / "other.ipynb", ["print('another notebook')"])
    with jupyter(root, tmp_path_factory.mktemp("labhome"), "lab") as served:
        yield served


@contextlib.contextmanager
def browser(url: str) -> Iterator[SimpleNamespace]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        context = chromium.new_context(viewport={"width": 1500, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        errors: list[str] = []
        dialogs: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        yield SimpleNamespace(page=page, context=context, errors=errors, dialogs=dialogs)
        context.close()
        chromium.close()


@pytest.fixture(scope="module")
def page(lab: SimpleNamespace) -> Iterator[Any]:
    """train.ipynb run in JupyterLab (its runs have cells), then the sidebar opened."""
    url = f"{lab.url}/lab/workspaces/labext/tree/train.ipynb?token={lab.token}"
    with browser(url) as opened:
        page = opened.page
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        _wait_idle(page)
        page.evaluate("() => window.jupyterapp.commands.execute('nbtrack:show-experiments')")
        sidebar = page.locator("#nbtrack-experiments")
        _rows(sidebar).nth(len(TRAIN) - 2).wait_for()
        opened.sidebar = sidebar
        yield opened
        assert opened.dialogs == []  # nothing user-controlled ran as markup


def _wait_idle(page: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    time.sleep(0.5)
    while not page.evaluate(KERNEL_IDLE) or page.locator(".jp-InputPrompt", has_text="*").count():
        assert time.monotonic() < deadline, "the notebook did not finish"
        time.sleep(0.25)


EXECUTE = """([code, ms]) => Promise.race([
  window.jupyterapp.shell.currentWidget.sessionContext.session.kernel
    .requestExecute({code}).done.then(m => m.content.status),
  new Promise(resolve => setTimeout(() => resolve('no reply'), ms))])"""


def _execute(page: Any, code: str, timeout: float = 120) -> str:
    """Run ``code`` in the current notebook's kernel; its reply's status, or 'no reply'
    after ``timeout`` seconds (a kernel that hangs fails the test, not the whole run)."""
    return page.evaluate(EXECUTE, [code, timeout * 1000])


def _rows(scope: Any) -> Any:
    return scope.locator(".nbt-runs tbody tr")


def _names(scope: Any) -> list[str]:
    return scope.locator(".nbt-runs tbody td.nbt-run-name").all_inner_texts()


def _shoot(target: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"labext-{name}.png"
    target.screenshot(path=str(path))
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
    return path


def _filter(sidebar: Any, text: str) -> None:
    box = sidebar.locator("input.nbt-filter")
    box.fill(text)
    box.press("Enter")


# -- tests -------------------------------------------------------------------------------------


def test_the_sidebar_lists_filters_and_marks_a_bad_filter(page, tmp_path):
    sidebar = page.sidebar
    assert sorted(_names(sidebar)) == sorted(["lr-0.1", "lr-0.01", XSS])
    picker = sidebar.locator("select.nbt-experiment-picker")
    # The list comes in its own request, beside the table's.
    _wait_for(lambda: "lab-demo (3)" in picker.locator("option:checked").inner_text())
    _shoot(sidebar, tmp_path, "sidebar")
    _filter(sidebar, "metrics.acc > 0.85")
    _wait_for(lambda: _names(sidebar) == ["lr-0.1"])
    _filter(sidebar, "metrics.acc >> 1")
    token = sidebar.locator(".nbt-filter-error mark.nbt-filter-token")
    token.wait_for()
    assert token.inner_text() == ">>"
    assert _names(sidebar) == ["lr-0.1"]  # the rows stay
    _shoot(sidebar, tmp_path, "sidebar-bad-filter")
    _filter(sidebar, "")
    _wait_for(lambda: len(_names(sidebar)) == 3)


def test_open_a_run_then_open_cell_lands_on_its_highlighted_cell(page, tmp_path):
    p = page.page
    p.evaluate("() => window.jupyterapp.commands.execute('docmanager:open', {path: 'other.ipynb'})")
    p.locator(".jp-NotebookPanel", has_text="another notebook").wait_for()
    page.sidebar.locator("a.nbt-open-run", has_text=re.compile("^lr-0.01$")).click()
    view = p.locator(".nbt-run-view").filter(has=p.locator(".nbt-name", has_text="lr-0.01"))
    view.locator(".nbt-details-params").wait_for()
    assert "lr" in view.locator(".nbt-details-params").inner_text()
    view.locator(".nbt-curves .nbt-chart svg").first.wait_for()
    _shoot(p, tmp_path, "run-view")
    view.locator("button.nbt-open-cell").click()
    cell = p.locator(".jp-Cell.nbt-cell-highlight")
    cell.wait_for()
    assert "%%track --name lr-0.01" in cell.locator(".jp-InputArea-editor").inner_text()
    current = p.evaluate("() => window.jupyterapp.shell.currentWidget.context.path")
    assert current == "train.ipynb"
    box, viewport = cell.bounding_box(), p.viewport_size
    assert box and 0 <= box["y"] < viewport["height"], "the cell is not scrolled into view"
    note = view.locator(".nbt-open-cell-note")
    assert "the cell that made run lr-0.01" in note.inner_text()
    _shoot(p, tmp_path, "open-cell")


def test_open_cell_says_when_the_cell_was_changed(page):
    p = page.page
    p.evaluate(
        """() => {
        const nb = window.jupyterapp.shell.currentWidget.content;
        const cell = nb.widgets.find(c => c.model.sharedModel.getSource().includes('lr-0.1 '));
        cell.model.sharedModel.setSource(cell.model.sharedModel.getSource() + '\\n# edited');
    }"""
    )
    page.sidebar.locator("a.nbt-open-run", has_text=re.compile("^lr-0.1$")).click()
    view = p.locator(".nbt-run-view").filter(has=p.locator(".nbt-name", has_text="lr-0.1"))
    view.locator("button.nbt-open-cell").click()
    note = view.locator(".nbt-open-cell-note")
    _wait_for(lambda: "was changed since run lr-0.1" in (note.text_content() or ""))
    assert p.locator(".jp-Cell.nbt-cell-changed").count() == 1


def test_a_run_a_kernel_logs_appears_in_the_open_sidebar(page, tmp_path):
    p = page.page
    p.evaluate("() => window.jupyterapp.commands.execute('docmanager:open', {path: 'train.ipynb'})")
    p.wait_for_function(KERNEL_IDLE)
    code = (
        "with nbtrack.start_run(run_name='from-the-kernel'):\n    nbtrack.log_metric('acc', 0.77)\n"
    )
    assert _execute(p, code) == "ok"
    started = time.monotonic()
    page.sidebar.locator("td.nbt-run-name", has_text="from-the-kernel").wait_for(timeout=15_000)
    assert time.monotonic() - started < 10
    status = page.sidebar.locator("tr", has_text="from-the-kernel").locator(".nbt-badge")
    _wait_for(lambda: status.first.inner_text() == "FINISHED")
    _shoot(page.sidebar, tmp_path, "sidebar-live")


def test_the_status_bar_names_the_run_the_kernel_logs_to(page):
    """And the experiment picker counts the run as running while it is."""
    p = page.page
    assert _execute(p, "status_run = nbtrack.start_run(run_name='still-running')") == "ok"
    item = p.locator(".nbt-status-item")
    _wait_for(lambda: "still-running" in item.inner_text(), timeout=15)
    shown = page.sidebar.locator("select.nbt-experiment-picker option:checked")
    _wait_for(lambda: "lab-demo (5, 1 running)" in shown.inner_text(), timeout=15)
    assert _execute(p, "nbtrack.end_run(); nbtrack.flush()") == "ok"
    _wait_for(lambda: item.inner_text() == "", timeout=15)
    _wait_for(lambda: "lab-demo (5)" in shown.inner_text(), timeout=15)


def test_a_promotion_with_a_reason_from_the_registry_tab_reaches_the_audit_log(page, tmp_path):
    p = page.page
    p.evaluate("() => window.jupyterapp.commands.execute('docmanager:open', {path: 'train.ipynb'})")
    p.wait_for_function(KERNEL_IDLE)
    assert _execute(p, MODEL) == "ok"
    page.sidebar.locator("button.nbt-open-registry").click()
    panel = p.locator(".nbt-registry")
    version = panel.locator(".nbt-versions tr[data-version='1']")
    version.wait_for()
    version.locator("button.nbt-move[data-stage='Production']").click()
    prompt = panel.locator(".nbt-transition")
    prompt.locator(".nbt-check").first.wait_for()
    assert "nbt-pass" in prompt.locator(".nbt-check").first.get_attribute("class")
    prompt.locator("textarea.nbt-reason").fill(REASON)
    _shoot(panel, tmp_path, "registry-prompt")
    prompt.locator(".nbt-confirm").click()
    version.locator(".nbt-stage-Production").wait_for()
    latest = panel.locator(".nbt-audit tbody tr").first
    _wait_for(lambda: REASON in latest.inner_text())
    assert "Production" in latest.inner_text()
    _shoot(panel, tmp_path, "registry-audit")


def test_the_dark_theme_stays_legible(page, tmp_path):
    p = page.page
    p.evaluate(
        "() => window.jupyterapp.commands.execute('apputils:change-theme', "
        "{theme: 'JupyterLab Dark'})"
    )
    p.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
    time.sleep(1)
    sidebar = page.sidebar
    for selector in ("td.nbt-run-name", ".nbt-runs th", ".nbt-sidebar-head b", ".nbt-pager"):
        ratio = _contrast(p, sidebar.locator(selector).first)
        assert ratio >= 4.5, f"{selector}: contrast {ratio:.1f}"
    _shoot(sidebar, tmp_path, "sidebar-dark")
    page.sidebar.locator("a.nbt-open-run", has_text=re.compile("^lr-0.1$")).click()
    view = p.locator(".nbt-run-view").filter(has=p.locator(".nbt-name", has_text="lr-0.1"))
    view.locator(".nbt-details-params").wait_for()
    for selector in (".nbt-details-params td", ".nbt-subtitle", ".nbt-details-info td"):
        ratio = _contrast(p, view.locator(selector).first)
        assert ratio >= 4.5, f"{selector}: contrast {ratio:.1f}"
    _shoot(p, tmp_path, "run-view-dark")
    p.evaluate(
        "() => window.jupyterapp.commands.execute('apputils:change-theme', "
        "{theme: 'JupyterLab Light'})"
    )
    assert page.errors == []


CONTRAST = """el => {
  const rgb = c => c.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const background = node => {
    for (; node; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const a = lum(rgb(getComputedStyle(el).color)), b = lum(background(el));
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def _contrast(page: Any, locator: Any) -> float:
    return locator.evaluate(CONTRAST)


def test_a_tracked_cell_card_is_drawn_without_a_widget_until_a_button_is_pressed(page, tmp_path):
    p = page.page
    p.evaluate("() => window.jupyterapp.commands.execute('docmanager:open', {path: 'train.ipynb'})")
    p.wait_for_function(KERNEL_IDLE)
    p.evaluate(
        """async code => {
          const app = window.jupyterapp, book = app.shell.currentWidget.content;
          book.activeCellIndex = book.widgets.length - 1;
          await app.commands.execute('notebook:insert-cell-below');
          book.activeCell.model.sharedModel.setSource(code);
          await app.commands.execute('notebook:run-cell');
        }""",
        "%%track --name drawn-by-the-page --metrics acc\nacc = 0.88",
    )
    _wait_idle(p)
    # The extension's renderer is the output itself, the card drawn in it by card.js.
    output = p.locator(".jp-CodeCell", has_text="--name drawn-by-the-page").locator(
        ".jp-OutputArea-output.nbt-plain-card"
    )
    output.locator(".nbt-run-card .nbt-name", has_text="drawn-by-the-page").wait_for()
    assert output.locator(".lm-Panel").count() == 0  # drawn by card.js, no widget view
    assert "acc=0.88" in output.locator(".nbt-run-card").inner_text()
    _shoot(output, tmp_path, "plain-card")
    # A button asks the kernel for the card's widget, which replaces the drawing and
    # shows the comparison with the run before.
    output.locator("button[data-action=compare_previous]").click()
    compared = output.locator(".lm-Panel .nbt-run-card .nbt-detail .nbt-compare-params")
    compared.wait_for()
    assert output.locator(".nbt-run-card").count() == 1  # the widget's, the drawing gone
    assert "drawn-by-the-page" in compared.inner_text()
    _shoot(output, tmp_path, "plain-card-compared")


def _wait_for(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# -- Notebook 7 ---------------------------------------------------------------------------------


def test_notebook_7_loads_the_sidebar_and_opens_a_cell_from_its_link(lab, page, tmp_path):
    """The runs `page` made in JupyterLab, seen from Notebook 7's notebook page."""
    pytest.importorskip("notebook")
    with jupyter(lab.root, tmp_path / "home", "notebook") as served:
        url = f"{served.url}/notebooks/train.ipynb?token={served.token}"
        p = page.context.new_page()
        errors: list[str] = []
        p.on("pageerror", lambda e: errors.append(str(e)))
        p.set_default_timeout(60_000)
        p.goto(url)
        p.wait_for_function(
            "() => window.jupyterapp?.commands.hasCommand('nbtrack:show-experiments')",
            timeout=120_000,
        )
        p.evaluate("() => window.jupyterapp.commands.execute('nbtrack:show-experiments')")
        sidebar = p.locator("#nbtrack-experiments")
        sidebar.locator("td.nbt-run-name", has_text="lr-0.01").wait_for()
        _shoot(p, tmp_path, "notebook7-sidebar")
        run_id = sidebar.locator("tr", has_text="lr-0.01").first.get_attribute("data-run-id")
        cell_id = p.evaluate(
            """() => window.jupyterapp.shell.currentWidget.content.widgets
            .find(c => c.model.sharedModel.getSource().includes('lr-0.01')).model.id"""
        )
        p.goto(f"{url}&nbtrack-cell={cell_id}&nbtrack-run={run_id}")
        cell = p.locator(".jp-Cell.nbt-cell-highlight")
        cell.wait_for(timeout=120_000)
        assert "lr-0.01" in cell.inner_text()
        _shoot(p, tmp_path, "notebook7-open-cell")
        p.close()
        # Notebook 7 itself reports a settings schema it lacks in this isolated setup.
        assert [e for e in errors if "schema" not in e] == []
