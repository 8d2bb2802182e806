"""The execution trace without a kernel: def/use analysis, slices, and each stale reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbtrack.capture.defuse import analyze
from nbtrack.capture.trace import (
    OUT_OF_ORDER,
    RE_EXECUTED,
    REDEFINED,
    ExecutionTrace,
    notebook_positions,
    read_session,
)


@pytest.mark.parametrize(
    ("code", "defs", "uses"),
    [
        ("x = y + 1\nz = x * 2", {"x", "z"}, {"y"}),
        ("x += 1", {"x"}, {"x"}),
        ("import numpy as np\nfrom a.b import c as d", {"np", "d"}, set()),
        ("def f(a, b=c):\n    q = a + g\n    return q + b", {"f"}, {"c", "g"}),
        ("model.fit(X, y)", {"model"}, {"model", "X", "y"}),
        ("df['a'] = df['b'] * k", {"df"}, {"df", "k"}),
        ("res = [i * w for i in items if i > t]", {"res"}, {"items", "t", "w"}),
        ("for i in range(n):\n    total = total + i", {"i", "total"}, {"n", "total"}),
        ("with open(p) as fh:\n    data = fh.read()", {"fh", "data"}, {"p"}),
        ("if (m := compute(v)):\n    print(m)", {"m"}, {"compute", "v"}),
        ("try:\n    r = f()\nexcept E as e:\n    r = e", {"r", "e"}, {"f", "E"}),
        ("class A(Base):\n    def m(self):\n        return G", {"A"}, {"Base", "G"}),
        ("print(len(acc))", set(), {"acc"}),  # builtins depend on no cell
        ("x = (", set(), set()),  # a syntax error: nothing known
    ],
)
def test_defs_and_uses(code: str, defs: set[str], uses: set[str]) -> None:
    analysis = analyze(code)
    assert set(analysis.defs) == defs
    assert analysis.uses == uses


def test_imports_and_defs_have_signatures_assignments_do_not() -> None:
    assert analyze("import numpy as np").defs["np"] == analyze("import numpy as np").defs["np"]
    assert analyze("import numpy as np").defs["np"] != analyze("import jax.numpy as np").defs["np"]
    assert (
        analyze("def f():\n    return 1").defs["f"] != analyze("def f():\n    return 2").defs["f"]
    )
    assert analyze("x = 1").defs["x"] is None


def _run(cells: list[tuple[str | None, str]], transform=None) -> dict:
    """Execute cells into a trace (the last one is running) and return the run record."""
    trace = ExecutionTrace(transform)
    for count, (cell_id, source) in enumerate(cells[:-1], 1):
        trace.start_cell(count, cell_id, source)
        trace.finish_cell()
    trace.start_cell(len(cells), cells[-1][0], cells[-1][1])
    return trace.run_record()


def _counts(record: dict) -> list[int]:
    return [cell["n"] for cell in record["slice"]]


def test_a_clean_run_has_its_transitive_slice_in_order_and_is_not_stale() -> None:
    record = _run(
        [
            ("imports", "import numpy as np"),
            ("unrelated", "note = 'hello'"),
            ("data", "x = np.arange(3)"),
            ("feature", "y = x * 2"),
            ("run", "%%track --name r\nz = y.sum()"),
        ]
    )
    assert _counts(record) == [1, 3, 4, 5]
    assert record["slice"][-1]["source"] == "%%track --name r\nz = y.sum()"
    assert record["stale"] is None and record["reasons"] == []
    assert record["cells"] == 5


def test_out_of_order_execution_is_stale() -> None:
    record = _run(
        [
            ("c1", "a = 1"),
            ("c2", "b = a * 2"),
            ("c3", "a = 10"),
            ("c2", "b = a * 2"),  # run again, now reading `a` from the cell below it
            ("c4", "%%track\nres = b + 1"),
        ]
    )
    assert _counts(record) == [3, 4, 5]
    assert record["reasons"] == [
        f"{OUT_OF_ORDER}: In[4] uses `a` from In[3], a cell further down the notebook"
    ]
    assert record["stale"] == record["reasons"][0]


def test_saved_notebook_positions_decide_what_is_further_down() -> None:
    cells = [("c3", "a = 10"), ("c2", "b = a * 2"), ("c4", "%%track\nres = b")]
    assert _run(cells)["reasons"] == []  # first run order: c3 came first, so it is above
    trace = ExecutionTrace()
    for count, (cell_id, source) in enumerate(cells[:-1], 1):
        trace.start_cell(count, cell_id, source)
        trace.finish_cell()
    trace.start_cell(3, "c4", cells[-1][1])
    # ...but in the saved notebook c2 sits above c3.
    record = trace.run_record(positions={"c2": 0, "c3": 1, "c4": 2})
    assert [r.split(":")[0] for r in record["reasons"]] == [OUT_OF_ORDER]


def test_a_cell_re_executed_after_its_names_were_used_is_stale() -> None:
    record = _run(
        [
            ("load", "df = load()"),
            ("prep", "X = prep(df)"),
            ("load", "df = load()"),
            ("run", "%%track\nres = fit(X)"),
        ]
    )
    assert _counts(record) == [1, 2, 4]
    assert record["reasons"] == [f"{RE_EXECUTED}: In[1] was run again as In[3] after `df` was used"]


def test_a_name_changed_by_a_cell_outside_the_slice_is_stale() -> None:
    record = _run(
        [("c1", "x = 1"), ("c2", "y = x * 2"), ("c3", "x = 5"), ("c4", "%%track\nres = y + 1")]
    )
    assert _counts(record) == [1, 2, 4]
    assert record["reasons"] == [f"{REDEFINED}: `x` from In[1] was changed by In[3]"]


def test_a_cell_reading_its_own_earlier_run_is_stale() -> None:
    record = _run([("c1", "x = 0"), ("c2", "%%track\nx = x + 1"), ("c2", "%%track\nx = x + 1")])
    assert _counts(record) == [1, 2, 3]
    assert record["reasons"] == [f"{RE_EXECUTED}: In[3] reads `x` from its own earlier run In[2]"]


def test_importing_again_or_redefining_the_same_function_changes_nothing() -> None:
    record = _run(
        [
            ("imports", "import numpy as np"),
            ("helpers", "def double(v):\n    return 2 * v"),
            ("data", "X = double(np.ones(3))"),
            ("imports", "import numpy as np"),
            ("helpers", "def double(v):\n    return 2 * v"),
            ("run", "%%track\nres = X.sum()"),
        ]
    )
    assert record["stale"] is None


def test_ipython_syntax_is_transformed_before_analysis() -> None:
    from IPython.core.inputtransformer2 import TransformerManager

    record = _run(
        [
            ("a", "%matplotlib inline\nimport numpy as np"),
            ("b", "!echo hi\nv = np.ones(2)"),
            ("c", "%%track\nw = v"),
        ],
        transform=TransformerManager().transform_cell,
    )
    assert _counts(record) == [1, 2, 3]


def test_sources_are_redacted_and_the_session_file_grows_incrementally(tmp_path: Path) -> None:
    trace = ExecutionTrace()
    trace.start_cell(1, "k", 'api_key = "sk-live-123456"\nclient = connect(api_key)')
    trace.finish_cell()
    trace.start_cell(2, "r", "%%track\nout = client.query()")
    record = trace.run_record()
    assert "sk-live-123456" not in json.dumps(record)
    assert "<redacted>" in record["slice"][0]["source"]

    trace.write_session(tmp_path)
    trace.finish_cell()
    trace.start_cell(3, "s", "more = 1")
    trace.write_session(tmp_path)
    trace.write_session(tmp_path)  # nothing new: nothing appended
    cells = read_session(tmp_path, trace.session)
    assert [c["n"] for c in cells] == [1, 2, 3]
    assert "sk-live-123456" not in (tmp_path / "traces" / f"{trace.session}.jsonl").read_text()


def test_a_tracked_cells_secrets_are_redacted_in_its_magic_line_and_its_body(tmp_path) -> None:
    trace = ExecutionTrace()
    cell = (
        "%%track --name login --param api_key=sk-magic-line\n"
        'session = login(user="ann", password="hunter2")\n'
        'headers = {"X-Api-Key": "sk-dict-value"}\n'
        "lr = 0.1"
    )
    trace.start_cell(1, "t", cell)
    record = trace.run_record()
    trace.finish_cell()
    trace.write_session(tmp_path)
    written = (tmp_path / "traces" / f"{trace.session}.jsonl").read_text()
    for secret in ("sk-magic-line", "hunter2", "sk-dict-value"):
        assert secret not in json.dumps(record) and secret not in written
    assert record["slice"][0]["source"] == (
        "%%track --name login --param api_key=<redacted>\n"
        "session = login(user=\"ann\", password='<redacted>')\n"
        "headers = {\"X-Api-Key\": '<redacted>'}\n"
        "lr = 0.1"
    )


def test_notebook_positions_read_cell_ids_from_the_saved_file(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": [{"id": "x"}, {"id": "y"}, {"cell_type": "code"}]}))
    assert notebook_positions(str(path)) == {"x": 0, "y": 1}
    assert notebook_positions(str(tmp_path / "missing.ipynb")) == {}


def test_a_run_started_in_a_cell_gets_the_trace_record_and_a_stale_row(tracking) -> None:
    trace = ExecutionTrace()
    tracking.tracking.fluent.default_session().run_start_hooks.append(trace.on_run_start)
    try:
        for count, (cell_id, source) in enumerate(
            [("c1", "x = 1"), ("c2", "y = x * 2"), ("c3", "x = 5")], 1
        ):
            trace.start_cell(count, cell_id, source)
            trace.finish_cell()
        trace.start_cell(
            4, "c4", "with nbtrack.start_run() as run:\n    nbtrack.log_metric('y', y)"
        )
        with tracking.start_run() as run:
            pass
        trace.finish_cell()
        with tracking.start_run() as outside:  # started outside any cell: no trace
            pass
    finally:
        tracking.tracking.fluent.default_session().run_start_hooks.remove(trace.on_run_start)
    store = run.store
    [record] = [r for r in store.records(run.info.run_id) if r["op"] == "trace"]
    assert [c["n"] for c in record["slice"]] == [1, 2, 4]
    assert store.get_run(run.info.run_id)["stale"].startswith(REDEFINED)
    assert not [r for r in store.records(outside.info.run_id) if r["op"] == "trace"]
    assert [c["n"] for c in read_session(store.root, trace.session)] == [1, 2, 3, 4]
