"""notebooks/compare-runs.ipynb executed headless by nbclient, saved, and converted to HTML.

Every panel's output must carry the widget view *and* its static forms in one bundle,
the executed notebook (widget state included, as nbclient saves it by default) must stay
under 3 MB, and nbconvert's HTML of the notebook must show the tables and the charts
without any script.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from notebook_helpers import cell_starting, execute_notebook, outputs

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "compare-runs.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
XSS = "<img src=x onerror=alert(1)>"
RUNS = ["sgd-lr-0.001", "sgd-lr-0.01", "sgd-lr-0.1", XSS, "mlp-live"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The notebook run in a fresh folder and saved there, as ``nbconvert --execute`` would."""
    import nbformat  # here: importing it takes seconds, and collection needs no kernel

    workdir = tmp_path_factory.mktemp("compare-runs")
    nb = execute_notebook(NOTEBOOK, workdir, store_widget_state=True)
    saved = workdir / "compare-runs.executed.ipynb"
    nbformat.write(nb, saved)
    yield SimpleNamespace(nb=nb, saved=saved, workdir=workdir)


def panel_bundle(nb: Any, source_start: str) -> dict[str, Any]:
    """The one output of a cell that holds a widget view."""
    bundles = [
        o["data"] for o in cell_starting(nb, source_start).outputs if WIDGET in o.get("data", {})
    ]
    assert len(bundles) == 1, cell_starting(nb, source_start).outputs
    return bundles[0]


def widget_state(nb: Any) -> dict[str, Any]:
    return nb.metadata["widgets"][STATE]["state"]


def model_class(state: dict[str, Any]) -> str:
    return state["state"].get("_anywidget_id", state["model_name"])


def images_in(markup: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', markup)]


def test_notebook_runs_clean_and_saves_under_3_mb(executed):
    import nbformat

    nbformat.validate(executed.nb)
    errors = [o for c in executed.nb.cells if c.cell_type == "code" for o in c.outputs
              if o["output_type"] == "error"]  # fmt: skip
    assert errors == []
    size = executed.saved.stat().st_size
    assert size < 3_000_000, f"executed notebook is {size:,} bytes"


def test_vega_ships_once_in_the_widget_state(executed):
    states = widget_state(executed.nb)
    runtimes = [s for s in states.values() if len(s["state"].get("code", "")) > 500_000]
    assert len(runtimes) == 1
    bundle = runtimes[0]["state"]["code"]
    assert len(bundle) > 500_000 and "vegaEmbed" in bundle
    # Every chart panel refers to that one model instead of carrying vega itself.
    charts = [
        s for s in states.values() if model_class(s).endswith(("MetricCurves", "CompareRuns"))
    ]
    assert len(charts) >= 3
    runtime_id = next(k for k, s in states.items() if s is runtimes[0])
    for chart in charts:
        assert chart["state"]["runtime"] == f"IPY_MODEL_{runtime_id}"
        assert len(json.dumps(chart["state"])) < 200_000
    # The saved file holds the bundle's text once (its opening is distinctive enough).
    assert executed.saved.read_text().count(json.dumps(bundle[:300])[1:-1]) == 1


def test_each_panel_module_is_stored_once(executed):
    states = widget_state(executed.nb)
    modules = [s for s in states.values() if "digest" in s["state"]]
    codes = [s["state"]["code"] for s in modules]
    assert len(set(codes)) == len(codes)  # one model per module
    cards = [s for s in states.values() if model_class(s).endswith("RunCard")]
    assert len(cards) >= len(RUNS)
    card_module = {s["state"]["_module"] for s in cards}
    assert len(card_module) == 1
    card_code = states[card_module.pop().removeprefix("IPY_MODEL_")]["state"]["code"]
    assert "export default { render };" in card_code
    # The card module's text is in the saved file once, whatever the number of cards.
    assert executed.saved.read_text().count(json.dumps(card_code[-300:])[1:-1]) == 1


def test_each_track_cell_has_one_card_with_widget_and_static_forms(executed):
    for name in RUNS:
        quoted = f'"{name}"' if name == XSS else name
        source = f"%%track --name {quoted}"
        displays = outputs(cell_starting(executed.nb, source), "display_data")
        assert len(displays) == 1, (name, displays)
        data = displays[0]["data"]
        assert data[WIDGET]["model_id"] in widget_state(executed.nb)
        assert 'class="nbtrack-run-card"' in data["text/html"]
        assert data["text/plain"].startswith(f"[nbtrack] {name} | FINISHED |")
        # Every run logged per-epoch metrics, so each card also carries its curves.
        assert base64.b64decode(data["image/png"]).startswith(PNG_MAGIC)
        assert len(images_in(data["text/html"])) == 1
        assert "<script" not in data["text/html"]


def test_live_card_state_is_final(executed):
    data = panel_bundle(executed.nb, "%%track --name mlp-live")
    card = widget_state(executed.nb)[data[WIDGET]["model_id"]]["state"]
    assert card["run"]["status"] == "FINISHED"
    curves_id = card["curves"].removeprefix("IPY_MODEL_")
    curves = widget_state(executed.nb)[curves_id]["state"]
    assert curves["live"] is False
    assert curves["shown"] == ["batch_loss", "val_accuracy"]
    assert "batch_loss" in data["text/plain"] and "val_accuracy" in data["text/plain"]


def test_show_bundle_is_the_card_in_full_with_its_text_form(executed):
    data = panel_bundle(executed.nb, "%track show mlp-live")
    assert "status = FINISHED" in data["text/plain"] and "batch_loss" in data["text/plain"]
    assert "class='nbtrack-run'" in data["text/html"] and "<script" not in data["text/html"]
    card = widget_state(executed.nb)[data[WIDGET]["model_id"]]["state"]
    assert [m["key"] for m in card["details"]["metrics"]] == ["batch_loss", "val_accuracy"]
    assert card["details"]["params"] == [["batch_size", "32"], ["epochs", "18"],
                                         ["learning_rate", "0.005"]]  # fmt: skip


def test_run_table_bundle(executed):
    data = panel_bundle(executed.nb, "%track runs")
    markup, text = data["text/html"], data["text/plain"]
    for name in RUNS[:4]:  # mlp-live ran after the table
        assert f"<td>{escape(name)}</td>" in markup
        assert re.search(rf"^\w+\s+{re.escape(name)}\s", text, re.M), name
    assert "(4 runs)" in text
    assert "<script" not in markup and XSS not in markup
    state = widget_state(executed.nb)[data[WIDGET]["model_id"]]["state"]
    assert sorted(state["rows"][i]["cells"][0] for i in range(4)) == sorted(RUNS[:4])


def test_curves_bundle(executed):
    data = panel_bundle(executed.nb, "%track curves")
    assert base64.b64decode(data["image/png"]).startswith(PNG_MAGIC)
    assert len(images_in(data["text/html"])) == 1
    assert "3 runs · 2 metrics · 120 points" in data["text/plain"]
    for name in RUNS[:3]:
        assert re.search(
            rf"^{re.escape(name)}\s+val_accuracy\s+20\s+19\s", data["text/plain"], re.M
        )


def test_compare_bundle(executed):
    data = panel_bundle(executed.nb, "%track compare")
    markup, text = data["text/html"], data["text/plain"]
    assert len(images_in(markup)) == 3  # overlaid curves, parallel coordinates, scatter
    assert all(image.startswith(PNG_MAGIC) for image in images_in(markup))
    assert re.search(r"^learning_rate \*\s+0\.001\s+0\.01\s+0\.1$", text, re.M)
    assert re.search(r"^epochs\s+20\s+20\s+20$", text, re.M)  # same everywhere: no star
    assert "+learning_rate = 0.01" in text and "-learning_rate = 0.001" in text
    assert "+alpha = 0.001  # more regularization for the large step" in text
    assert "val_accuracy (higher is better)" in text and "train_loss (lower is better)" in text
    assert "background:#fff8c5" in markup  # differing params highlighted
    assert "★" in markup


def test_nbconvert_html_shows_tables_and_charts(executed, tmp_path):
    """nbconvert picks a widget view over everything else when the notebook stores widget
    state, and draws it with scripts from a CDN. Saved without it (as JupyterLab saves by
    default), the HTML shows the static forms: no script, no network."""
    import nbformat

    nb = copy.deepcopy(executed.nb)
    nb.metadata.pop("widgets")
    source = tmp_path / "compare-runs.ipynb"
    nbformat.write(nb, source)
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    page = source.with_suffix(".html").read_text()
    for name in RUNS[:4]:
        assert f"<td>{escape(name)}</td>" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and XSS not in page
    # Five run cards, the curves panel and three compare charts, all inline PNGs.
    assert len(images_in(page)) == 5 + 1 + 3
    assert "unpkg.com" not in page and "jupyter-widgets" not in page.split("<body")[1]


def escape(text: str) -> str:
    import html

    return html.escape(text)
