"""notebooks/compare-runs.ipynb in a real JupyterLab, driven by Playwright in headless Chromium.

The test starts ``jupyter lab`` on 127.0.0.1 in a temporary root holding a copy of the
notebook, opens it in Chromium with every request to anything but that server aborted,
runs all cells and watches the live run card while the last (training) cell runs. The
tests then work the panels as a user would. Screenshots go to each test's ``tmp_path``
and are copied to ``benchmarks/results/screenshots/`` (gitignored).

Skipped only when /usr/bin/chromium is missing (CI installs it in .ci/run).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "compare-runs.ipynb"
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "benchmarks" / "results" / "screenshots"
XSS = "<img src=x onerror=alert(1)>"
SGD_RUNS = ["sgd-lr-0.001", "sgd-lr-0.01", "sgd-lr-0.1"]
ALL_RUNS = [*SGD_RUNS, XSS, "mlp-live"]
CHROME_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Run All sent before the notebook's kernel is connected is silently dropped.
KERNEL_READY = """() => {
  const k = window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle'; }"""
KERNEL_STATUS = "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing")


# -- fixtures --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """``jupyter lab`` on loopback, isolated config, the notebook copied into its root."""
    root = tmp_path_factory.mktemp("labroot")
    home = tmp_path_factory.mktemp("labhome")
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)  # no "fetch news?" toast over the notebook
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        # The kernel imports this checkout's nbtrack, installed or not.
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    for variable in ("NBTRACK_DIR", "NBTRACK_TRACKING_URI", "NBTRACK_RUN_ID"):
        env.pop(variable, None)
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True", "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
    ]  # fmt: skip
    with open(home / "server.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError((home / "server.log").read_text()) from None
                time.sleep(0.25)
        yield SimpleNamespace(url=url, token=token, root=root)
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def opened(lab: SimpleNamespace, notebook: str, workspace: str) -> Iterator[SimpleNamespace]:
    """``notebook`` open in Chromium with every cell sent to run; the page's dialogs, errors
    and requests that tried to leave the server (blocked) are kept."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1800})
        blocked: list[str] = []

        def gate(route: Any) -> None:
            if route.request.url.startswith(lab.url):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        context.route("**/*", gate)
        page = context.new_page()
        page.set_default_timeout(60_000)
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{notebook}?token={lab.token}")
        page.wait_for_function(KERNEL_READY, timeout=90_000)
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        yield SimpleNamespace(page=page, dialogs=dialogs, errors=errors, blocked=blocked, lab=lab)
        context.close()
        browser.close()


@pytest.fixture(scope="module")
def session(lab: SimpleNamespace) -> Iterator[SimpleNamespace]:
    """The notebook opened and run; what the page showed while its last cell ran."""
    with opened(lab, NOTEBOOK.name, "compare") as session:
        session.live = _watch_live_cell(session.page)
        _wait_idle(session.page)
        yield session


def _watch_live_cell(page: Any) -> list[dict[str, Any]]:
    """Poll the live cell's card until that cell is done: its chart's point count, and
    whether the cell was still executing at that moment."""
    cell = page.locator(".jp-CodeCell").filter(has_text="%%track --name mlp-live")
    chart = cell.locator(".nbt-run-card .nbt-chart")
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        prompt = cell.locator(".jp-InputPrompt").inner_text()
        running = "*" in prompt
        if chart.count():
            points = chart.first.get_attribute("data-points")
            drawn = chart.first.locator("svg, canvas").count() > 0
            seen.append({"running": running, "points": int(points or 0), "drawn": drawn})
        if seen and not running:
            break
        time.sleep(0.25)
    return seen


def _wait_idle(page: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while (
        page.evaluate(KERNEL_STATUS) != "idle"
        or page.locator(".jp-InputPrompt", has_text="*").count()
    ):
        assert time.monotonic() < deadline, "the notebook did not finish"
        time.sleep(0.25)


def _shoot(target: Any, tmp_path: Path, name: str) -> Path:
    """Screenshot a page or locator into tmp_path, and copy it where people look."""
    path = tmp_path / f"{name}.png"
    target.screenshot(path=str(path))
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
    return path


def _output(page: Any, source_start: str) -> Any:
    """The output area of the code cell whose source starts with ``source_start``."""
    cell = page.locator(".jp-CodeCell").filter(has_text=source_start)
    return cell.first.locator(".jp-OutputArea")


def _table(page: Any) -> Any:
    return _output(page, "%track runs").locator(".nbt-table")


def _names(table: Any) -> list[str]:
    return table.locator("tbody td.nbt-run-name").all_inner_texts()


def _wait_names(table: Any, predicate: Any, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        names = _names(table)
        if predicate(names) or time.monotonic() > deadline:
            return names
        time.sleep(0.1)


# -- tests -------------------------------------------------------------------------------------


def test_live_chart_draws_and_gains_points_while_the_cell_runs(session, tmp_path):
    live = session.live
    while_running = [s for s in live if s["running"]]
    assert while_running, f"the live card never showed while the cell ran: {live}"
    assert any(s["drawn"] for s in while_running), "no svg/canvas in the live chart"
    counts = [s["points"] for s in while_running]
    assert counts[-1] > counts[0] > 0, f"points did not grow while running: {counts}"
    assert len(set(counts)) >= 3, f"expected several redraws while running: {counts}"
    card = _output(session.page, "%%track --name mlp-live").locator(".nbt-run-card")
    card.locator(".nbt-badge", has_text="FINISHED").wait_for()
    card.locator(".nbt-chart svg").first.wait_for()
    _shoot(card, tmp_path, "live-card")


def test_table_lists_the_runs(session, tmp_path):
    table = _table(session.page)
    names = _wait_names(table, lambda n: len(n) == len(ALL_RUNS))
    # mlp-live ran after the table was shown: the table picked it up by itself.
    assert sorted(names) == sorted(ALL_RUNS)
    assert table.locator(".nbt-total").inner_text() == "5 runs"
    _shoot(table, tmp_path, "table")


def test_sorting_changes_the_row_order(session, tmp_path):
    table = _table(session.page)
    header = table.locator("th.nbt-sortable", has_text="params.learning_rate")
    header.click()  # params sort ascending first, numbers by value
    ascending = _wait_names(table, lambda n: n[0] == "sgd-lr-0.001")
    assert ascending[:4] == ["sgd-lr-0.001", "mlp-live", "sgd-lr-0.01", "sgd-lr-0.1"]
    header.click()
    descending = _wait_names(table, lambda n: n[0] == XSS)
    assert descending == list(reversed(ascending))
    assert "▼" in header.inner_text()
    _shoot(table, tmp_path, "table-sorted")


def test_filter_box_changes_rows_and_shows_errors_inline(session, tmp_path):
    table = _table(session.page)
    box = table.locator("input.nbt-filter")
    box.fill("metrics.val_accuracy > 0.95")
    box.press("Enter")
    filtered = _wait_names(table, lambda n: len(n) < len(ALL_RUNS))
    assert sorted(filtered) == ["mlp-live", "sgd-lr-0.01", "sgd-lr-0.1"]

    box.fill("metrics.val_accuracy >> 0.9")
    box.press("Enter")
    error = table.locator(".nbt-filter-error")
    error.filter(has_text="'>>'").wait_for()
    assert "Invalid filter" in error.inner_text()
    assert sorted(_names(table)) == sorted(filtered)  # the table stays as it was
    _shoot(table, tmp_path, "table-filter-error")

    box.fill("")
    box.press("Enter")
    assert len(_wait_names(table, lambda n: len(n) == len(ALL_RUNS))) == len(ALL_RUNS)
    assert error.inner_text() == ""


def test_compare_two_selected_rows_shows_param_and_code_diff(session, tmp_path):
    table = _table(session.page)
    _wait_names(table, lambda n: len(n) == len(ALL_RUNS))
    for name in ("sgd-lr-0.01", "sgd-lr-0.1"):
        row = table.locator("tbody tr").filter(
            has=session.page.locator("td.nbt-run-name", has_text=re.compile(f"^{re.escape(name)}$"))
        )
        row.locator("input.nbt-select").check()
    compare = table.locator("button[data-action='compare']")
    assert compare.is_enabled()
    compare.click()
    panel = table.locator(".nbt-detail .nbt-compare")
    panel.wait_for()
    differing = panel.locator(".nbt-compare-params tr.nbt-differs")
    assert sorted(differing.locator("td:first-child").all_inner_texts()) == [
        "alpha",
        "learning_rate",
    ]
    lr = panel.locator(".nbt-compare-params tr", has_text="learning_rate")
    assert lr.locator("td").all_inner_texts()[1:] == ["0.01", "0.1"]
    diff = panel.locator(".nbt-code-diff")
    assert "sgd-lr-0.01 → sgd-lr-0.1" in diff.first.inner_text()
    assert diff.locator(".nbt-diff-del", has_text="learning_rate = 0.01").count() == 1
    assert diff.locator(".nbt-diff-add", has_text="learning_rate = 0.1").count() == 1
    assert diff.locator(".nbt-diff-add", has_text="alpha = 0.001").count() == 1
    panel.locator(".nbt-compare-charts .vega-embed svg").first.wait_for()
    _shoot(panel, tmp_path, "table-compare")


def test_charts_draw_in_curves_and_compare_panels(session, tmp_path):
    page = session.page
    curves = _output(page, "%track curves").locator(".nbt-curves")
    curves.locator(".vega-embed svg").first.wait_for()
    assert int(curves.locator(".nbt-chart").get_attribute("data-points")) == 3 * 2 * 20
    compare = _output(page, "%track compare").locator(".nbt-compare")
    assert compare.locator(".vega-embed svg").count() >= 3  # curves, parallel, scatter
    _shoot(curves, tmp_path, "curves")
    _shoot(compare, tmp_path, "compare")


def test_html_run_name_shows_as_text_and_runs_nothing(session, tmp_path):
    page = session.page
    table = _table(page)
    cell = table.locator("td.nbt-run-name", has_text=XSS)
    assert cell.count() == 1 and cell.inner_text() == XSS
    card = _output(page, '%%track --name "<img').locator(".nbt-run-card .nbt-name")
    assert card.inner_text() == XSS
    outputs = page.locator(".jp-OutputArea")
    assert outputs.locator("img[src='x']").count() == 0
    assert outputs.locator("script").count() == 0
    assert session.dialogs == [], session.dialogs  # no alert() ran
    assert session.errors == [], session.errors
    assert session.blocked == [], session.blocked  # nothing reached for a CDN
    _shoot(page, tmp_path, "notebook")
