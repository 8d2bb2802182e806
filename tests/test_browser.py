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
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from server_helpers import jupyter

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


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """``jupyter lab`` on loopback, isolated config, the notebook copied into its root."""
    root = tmp_path_factory.mktemp("labroot")
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    with jupyter(root, tmp_path_factory.mktemp("labhome"), "lab") as server:
        yield server


@contextlib.contextmanager
def kept_page(base_url: str, height: int) -> Iterator[SimpleNamespace]:
    """A Chromium page, 1,400 px wide, kept to ``base_url``: requests that try to leave it
    are aborted and kept (``blocked``), as are the page's errors (``errors``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": height})
        blocked: list[str] = []

        def gate(route: Any) -> None:
            if route.request.url.startswith(base_url):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        context.route("**/*", gate)
        page = context.new_page()
        page.set_default_timeout(60_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield SimpleNamespace(page=page, blocked=blocked, errors=errors)
        context.close()
        browser.close()


@contextlib.contextmanager
def opened(lab: SimpleNamespace, notebook: str, workspace: str) -> Iterator[SimpleNamespace]:
    """``notebook`` open in Chromium with every cell sent to run; the page's dialogs, errors
    and requests that tried to leave the server (blocked) are kept."""
    with kept_page(lab.url, 1800) as kept:
        page = kept.page
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{notebook}?token={lab.token}")
        page.wait_for_function(KERNEL_READY, timeout=90_000)
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        yield SimpleNamespace(
            page=page, dialogs=dialogs, errors=kept.errors, blocked=kept.blocked, lab=lab
        )


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
    duration = cell.locator(".nbt-run-card .nbt-duration")
    badge = cell.locator(".nbt-run-card .nbt-card-line .nbt-badge")
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        prompt = cell.locator(".jp-InputPrompt").inner_text()
        running = "*" in prompt
        if chart.count():
            points = chart.first.get_attribute("data-points")
            drawn = chart.first.locator("svg, canvas").count() > 0
            took = duration.first.inner_text() if duration.count() else ""
            status = badge.first.inner_text() if badge.count() else ""
            seen.append(
                {
                    "running": running,
                    "points": int(points or 0),
                    "drawn": drawn,
                    "took": took if status == "RUNNING" else "",
                }
            )
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
    # The RUNNING card's duration ticks: the time so far, never "-".
    took = [s["took"] for s in while_running if s["took"]]
    assert took and all(re.fullmatch(r"\d+s|\d+m\d\ds", t) for t in took), took
    assert len(set(took)) >= 2, f"the duration did not tick: {took}"
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


# -- issue 11: how the panels read ---------------------------------------------------------------

RUN_COLOURS = """(root) => {
  // run name -> colour, from every swatch and chart legend under root
  const out = {};
  const add = (name, color) => { (out[name] ??= new Set()).add(color); };
  for (const el of root.querySelectorAll('.nbt-run-name, .nbt-name, th')) {
    const swatch = el.querySelector(':scope > .nbt-swatch');
    if (swatch) add(el.textContent.trim(), getComputedStyle(swatch).backgroundColor);
  }
  for (const item of root.querySelectorAll('.role-legend-entry .role-scope > g')) {
    const label = item.querySelector('.role-legend-label text');
    const symbol = item.querySelector('.role-legend-symbol path');
    if (!label || !symbol) continue;
    const style = getComputedStyle(symbol);  // lines are stroked, points filled
    add(label.textContent, style.stroke === 'none' ? style.fill : style.stroke);
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v]]));
}"""


def _colours(target: Any) -> dict[str, list[str]]:
    return target.evaluate(RUN_COLOURS)


def test_a_run_has_one_colour_in_card_table_curves_and_compare(session, tmp_path):
    page = session.page
    card = _colours(_output(page, "%%track --name sgd-lr-0.1").locator(".nbt-run-card").first)
    table = _colours(_table(page).first)
    curves_panel = _output(page, "%track curves").locator(".nbt-curves")
    curves_panel.locator(".role-legend-symbol path").first.wait_for(state="attached")
    curves = _colours(curves_panel.first)
    compare = _colours(_output(page, "%track compare").locator(".nbt-compare").first)
    for name in SGD_RUNS:
        seen = {
            "card": _colours(
                _output(page, f"%%track --name {name}").locator(".nbt-run-card").first
            ).get(name),
            "table": table.get(name),
            "curves": curves.get(name),
            "compare": compare.get(name),
        }
        assert all(v and len(v) == 1 for v in seen.values()), seen
        assert len({v[0] for v in seen.values()}) == 1, f"{name} changes colour: {seen}"
    assert card["sgd-lr-0.1"] == table["sgd-lr-0.1"]


def test_a_wall_time_axis_over_seconds_reads_as_clock_time(session, tmp_path):
    curves = _output(session.page, "%track curves").locator(".nbt-curves")
    curves.locator("select.nbt-x-axis").select_option("wall")
    axis = curves.locator("[aria-label^='X-axis titled \\'wall time\\''] .role-axis-label text")
    axis.first.wait_for(state="attached")
    labels = axis.all_text_contents()
    assert len(labels) >= 2 and all(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in labels), labels
    _shoot(curves, tmp_path, "curves-wall")
    curves.locator("select.nbt-x-axis").select_option("step")
    steps = curves.locator("[aria-label^='X-axis titled \\'step\\''] .role-axis-label text")
    steps.first.wait_for(state="attached")
    assert all(re.fullmatch(r"\d+", t) for t in steps.all_text_contents())


def test_log_y_and_smoothing_in_the_curves_panel(session, tmp_path):
    curves = _output(session.page, "%track curves").locator(".nbt-curves")
    curves.locator("input.nbt-log-y").check()
    titles = curves.locator(".role-title-text")
    titles.filter(has_text="train_loss (log y)").wait_for(state="attached")
    assert "val_accuracy" in titles.all_text_contents()  # bounded: left linear
    assert "val_accuracy" in curves.locator(".nbt-log-skipped").inner_text()
    _slide(curves.locator("input.nbt-smoothing"), "0.8")
    curves.locator(".nbt-muted", has_text="0.80").wait_for()
    legend = curves.locator(".role-legend-symbol path").first
    assert float(legend.evaluate("p => getComputedStyle(p).opacity")) == 1.0
    assert float(legend.evaluate("p => getComputedStyle(p).strokeOpacity")) == 1.0
    _shoot(curves, tmp_path, "curves-log-smoothed")
    curves.locator("input.nbt-log-y").uncheck()
    _slide(curves.locator("input.nbt-smoothing"), "0")
    curves.locator(".nbt-muted", has_text="0.00").wait_for()


def _slide(slider: Any, value: str) -> None:
    """Move a range input as a drag would (Playwright cannot fill() one)."""
    slider.evaluate(
        "(e, v) => { e.value = v; e.dispatchEvent(new Event('change', {bubbles: true})); }", value
    )


def test_parallel_coordinates_name_each_run(session, tmp_path):
    compare = _output(session.page, "%track compare").locator(".nbt-compare")
    parallel = compare.locator(".nbt-pc_spec")
    legend = parallel.locator(".role-legend-label text").all_text_contents()
    assert sorted(legend) == sorted(SGD_RUNS)
    assert parallel.locator("text", has_text="not set").count() >= 1  # alpha: one run set it
    _shoot(parallel, tmp_path, "parallel")


def test_table_keeps_names_pinned_and_metrics_on_screen_at_1400px(session, tmp_path):
    page = session.page
    assert page.viewport_size["width"] == 1400
    assert page.locator(".jp-FileBrowser").first.is_visible(), "the file browser is not open"
    table = _table(page)
    _wait_names(table, lambda n: len(n) == len(ALL_RUNS))
    grid = table.locator(".nbt-grid")
    edge = grid.bounding_box()
    first_metric = table.locator("th[data-column^='metrics.']").first
    box = first_metric.bounding_box()
    assert box["x"] + box["width"] <= edge["x"] + edge["width"], "first metric off-screen"
    name = table.locator("td.nbt-run-name").first
    before = name.bounding_box()["x"]
    grid.evaluate("g => { g.scrollLeft = g.scrollWidth; }")
    page.wait_for_timeout(200)
    assert grid.evaluate("g => g.scrollLeft") > 0, "nothing to scroll: widen the test data"
    assert abs(name.bounding_box()["x"] - before) < 1.5  # pinned
    _shoot(table, tmp_path, "table-scrolled")
    grid.evaluate("g => { g.scrollLeft = 0; }")


def test_column_chooser_searches_and_keeps_names_on_one_line(session, tmp_path):
    table = _table(session.page)
    chooser = table.locator("details.nbt-columns")
    chooser.locator("summary").click()
    popup = chooser.locator(".nbt-column-popup")
    popup.wait_for()
    assert popup.bounding_box()["width"] >= 300
    choices = popup.locator(".nbt-column-choice")
    heights = {round(b["height"]) for b in (c.bounding_box() for c in choices.all())}
    assert max(heights) < 2 * min(heights), f"a column name wrapped: {heights}"
    popup.locator("input.nbt-column-search").fill("accur")
    shown = [c for c in choices.all() if c.is_visible()]
    assert [c.inner_text() for c in shown] == ["val_accuracy"]
    _shoot(table, tmp_path, "table-columns")
    popup.locator("input.nbt-column-search").fill("")
    assert len([c for c in choices.all() if c.is_visible()]) == choices.count()
    table.locator(".nbt-total").click()  # a click elsewhere closes it
    assert not popup.is_visible()


def test_filter_error_marks_the_token_in_a_monospace_echo(session, tmp_path):
    table = _table(session.page)
    box = table.locator("input.nbt-filter")
    box.fill("metrics.val_accuracy > 0.5 and params.alpha = 0.001")
    box.press("Enter")
    echo = table.locator(".nbt-filter-echo")
    echo.wait_for()
    assert "mono" in echo.evaluate("e => getComputedStyle(e).fontFamily").lower()
    token = echo.locator(".nbt-filter-token")
    assert token.inner_text() == "0.001"
    caret = echo.locator(".nbt-filter-caret")
    assert abs(caret.bounding_box()["x"] - token.bounding_box()["x"]) < 1.5
    _shoot(table, tmp_path, "table-filter-caret")
    box.fill("")
    box.press("Enter")
    assert len(_wait_names(table, lambda n: len(n) == len(ALL_RUNS))) == len(ALL_RUNS)


def test_status_messages_fade(session, tmp_path):
    table = _table(session.page)
    _wait_names(table, lambda n: len(n) == len(ALL_RUNS))
    row = table.locator("tbody tr").filter(
        has=session.page.locator("td.nbt-run-name", has_text=XSS)
    )
    page_box = table.locator("input.nbt-select-page")
    page_box.check()  # then unchecked: nothing selected from earlier tests
    page_box.uncheck()
    table.locator(".nbt-actions", has_text="0 selected").wait_for()
    row.locator("input.nbt-select").check()
    table.locator(".nbt-actions", has_text="1 selected").wait_for()
    table.locator("button[data-action='delete']").click()
    message = table.locator(".nbt-actions .nbt-message")
    message.filter(has_text="Deleted 1 run").wait_for()
    table.locator("select.nbt-view").select_option("deleted")
    _wait_names(table, lambda n: n == [XSS])
    table.locator("input.nbt-select").first.check()
    table.locator("button[data-action='restore']").click()
    message.filter(has_text="Restored 1 run.").wait_for()
    started = time.monotonic()
    session.page.wait_for_function(
        "(el) => el.textContent === ''", arg=message.element_handle(), timeout=15_000
    )
    assert 3 < time.monotonic() - started < 12
    table.locator("select.nbt-view").select_option("active")
    assert len(_wait_names(table, lambda n: len(n) == len(ALL_RUNS))) == len(ALL_RUNS)


def test_run_details_show_the_run_in_full(session, tmp_path):
    card = _output(session.page, "%track show").locator(".nbt-run-card")
    card.locator(".nbt-details").wait_for()
    assert card.locator(".nbt-name").inner_text() == "mlp-live"
    metrics = card.locator(".nbt-details-metrics tbody tr")
    assert metrics.locator("td:first-child").all_text_contents() == ["batch_loss", "val_accuracy"]
    assert card.locator(".nbt-spark polyline").count() == 2
    params = card.locator(".nbt-details-params td:first-child").all_text_contents()
    assert params == ["batch_size", "epochs", "learning_rate"]
    blocks = card.locator(".nbt-details-block").all_text_contents()
    assert any('nbtrack.log_metric("batch_loss"' in b for b in blocks), blocks
    _shoot(card, tmp_path, "details")
