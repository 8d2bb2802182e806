"""The runs table as columns (store/columns.py) and search over them (store/query.py) against
the rows they hold: random rows, filters and orderings give the same runs, in the same
order, as nbtrack.search does row by row, and the same DataFrame."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbtrack import search
from nbtrack.store import columns, query
from nbtrack.tracking.frames import hits_dataframe, runs_dataframe

MAX = 1.7976931348623157e308
NUMBERS = [math.nan, math.inf, -math.inf, MAX, -MAX, 0.0, -0.0, 0.5, 1.0, 2.0, 1e300, -3.25]
TEXT = ["a", "b", "A", "ab", "a_b", "a%b", "10", "9", "", "x y", "é"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _run_id(i: int) -> str:
    # Few distinct leading characters, so ids share prefixes as real ones do not.
    return f"{i % 3:x}" * 4 + f"{i:028x}"


@st.composite
def rows(draw) -> dict[str, dict[str, Any]]:
    count = draw(st.integers(0, 14))
    table = {}
    for i in range(count):
        run_id = _run_id(draw(st.integers(0, 10**6)))
        row: dict[str, Any] = {"run_id": run_id, "experiment_id": draw(st.sampled_from("01"))}
        if draw(st.booleans()):
            row["artifact_uri"] = f"file:///s/runs/{run_id}/artifacts"
        for name, values in [
            ("run_name", ["r", "R", "r-1", "r_2", None]),
            ("status", ["RUNNING", "FINISHED", "FAILED"]),
            ("start_time", [1000, 1001, 1001, 2000, None]),
            ("end_time", [None, 1500, 2500]),
            ("lifecycle_stage", ["active", "active", "deleted"]),
            ("user_id", ["u", "v"]),
        ]:
            if draw(st.integers(0, 5)):  # sometimes the row lacks the field
                row[name] = draw(st.sampled_from(values))
        if draw(st.integers(0, 4)):
            row["params"] = draw(
                st.dictionaries(st.sampled_from(["p", "q"]), st.sampled_from(TEXT))
            )
        if draw(st.integers(0, 4)):
            tags = draw(
                st.dictionaries(st.sampled_from(["t", "mlflow.runName"]), st.sampled_from(TEXT))
            )
            row["tags"] = tags
        if draw(st.integers(0, 4)):
            row["metrics"] = {
                key: [draw(st.sampled_from(NUMBERS)), draw(st.integers(0, 3)), 5]
                for key in draw(st.lists(st.sampled_from(["m", "n"]), unique=True))
            }
        table[run_id] = row
        del i
    return table


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@st.composite
def clauses(draw) -> str:
    kind = draw(st.sampled_from(["metric", "entry", "string_attr", "number_attr", "run_id"]))
    if kind == "metric":
        key = draw(st.sampled_from(["m", "n"]))
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
        value = draw(
            st.sampled_from(["0", "0.5", "1", "-1e400", "1e400", "1.7976931348623157e308", "-3.25"])
        )
        return f"metrics.{key} {op} {value}"
    if kind == "entry":
        field = draw(st.sampled_from(["params.p", "params.q", "tags.t", "tags.`mlflow.runName`"]))
        op = draw(st.sampled_from(["=", "!=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"]))
        if op.startswith("IS"):
            return f"{field} {op}"
        pattern = draw(st.sampled_from([*TEXT, "a%", "%b", "_", "%", "A%"]))
        return f"{field} {op} {_quoted(pattern)}"
    if kind == "string_attr":
        field = draw(
            st.sampled_from(
                [
                    "attributes.run_name",
                    "`run name`",
                    "attributes.status",
                    "attributes.user_id",
                    "attributes.artifact_uri",
                ]
            )
        )
        op = draw(st.sampled_from(["=", "!=", "LIKE", "ILIKE"]))
        pattern = draw(st.sampled_from(["r", "R", "r%", "%1", "FINISHED", "u", "file:%", "%"]))
        return f"{field} {op} {_quoted(pattern)}"
    if kind == "number_attr":
        field = draw(st.sampled_from(["attributes.start_time", "attributes.end_time", "created"]))
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
        return f"{field} {op} {draw(st.sampled_from(['1000', '1001', '1500.5', '0']))}"
    op = draw(st.sampled_from(["=", "!=", "IN", "NOT IN", "LIKE"]))
    wanted = draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    ids = [_quoted(_run_id(i)) for i in wanted] + ["'nope'"]
    if op in ("IN", "NOT IN"):
        return f"attributes.run_id {op} ({', '.join(ids)})"
    return f"attributes.run_id {op} {ids[0] if op != 'LIKE' else _quoted('000%')}"


@st.composite
def filters(draw) -> str:
    return " and ".join(draw(st.lists(clauses(), max_size=3)))


ORDER_TERMS = [
    "metrics.m",
    "metrics.n",
    "params.p",
    "tags.t",
    "tags.`mlflow.runName`",
    "attributes.start_time",
    "attributes.end_time",
    "attributes.run_name",
    "attributes.status",
    "attributes.run_id",
]


@st.composite
def orderings(draw) -> list[str]:
    terms = draw(st.lists(st.sampled_from(ORDER_TERMS), unique=True, max_size=3))
    return [f"{term} {draw(st.sampled_from(['ASC', 'DESC']))}" for term in terms]


def _by_rows(table, experiment_ids, view, filter_string, order_by, max_results) -> list[str]:
    wanted = [
        row
        for row in table.values()
        if (experiment_ids is None or row["experiment_id"] in experiment_ids)
        and (
            view == "all"
            or (row.get("lifecycle_stage", "active") == "active") == (view == "active")
        )
    ]
    return [r["run_id"] for r in search.search(wanted, filter_string, order_by, max_results)]


def _canonical(row: dict[str, Any]) -> bytes:
    """A row as bytes in which NaN equals NaN and key order does not matter."""

    def fix(value: Any) -> Any:
        if isinstance(value, float) and value != value:
            return "NaN!"
        if isinstance(value, float) and math.isinf(value):
            return f"{value}!"
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    return orjson.dumps(fix(row), option=orjson.OPT_SORT_KEYS)


@pytest.mark.slow  # many property examples
@SETTINGS
@given(
    table=rows(),
    filter_string=filters(),
    order_by=orderings(),
    experiments=st.sampled_from([None, ["0"], ["1", "0"]]),
    view=st.sampled_from(query.VIEWS),
    max_results=st.sampled_from([None, 1, 3]),
)
def test_search_over_columns_finds_what_row_search_finds(
    table, filter_string, order_by, experiments, view, max_results
) -> None:
    expected = _by_rows(table, experiments, view, filter_string, order_by, max_results)
    hits = query.search(
        columns.from_rows(table), experiments, view, filter_string, order_by, max_results
    )
    assert hits.run_ids() == expected, (filter_string, order_by)
    assert [r["run_id"] for r in hits.rows()] == expected


@pytest.mark.slow  # many property examples
@SETTINGS
@given(table=rows(), filter_string=filters())
def test_hits_dataframe_equals_the_rows_dataframe(table, filter_string) -> None:
    hits = query.search(columns.from_rows(table), None, "all", filter_string, None, None)
    expected = runs_dataframe([table[i] for i in hits.run_ids()])
    pd.testing.assert_frame_equal(hits_dataframe(hits), expected)


@pytest.mark.slow  # many property examples
@SETTINGS
@given(first=rows(), later=rows(), data=st.data())
def test_columns_hold_their_rows_through_replacing_and_the_snapshot_form(
    first, later, data
) -> None:
    # Later rows replace some earlier ones (same ids) and add others.
    reused = data.draw(st.lists(st.sampled_from(sorted(first)), unique=True)) if first else []
    changed = {
        run_id: {**row, "run_id": run_id}
        for run_id, row in zip(reused, later.values(), strict=False)
    }
    changed.update({k: v for k, v in later.items() if k not in changed and k not in first})
    expected = {**first, **changed}

    built = columns.from_rows(first).replaced(changed)
    assert sorted(built.ids) == sorted(expected)
    for run_id, row in expected.items():
        assert _canonical(built.get(run_id)) == _canonical(row)
    assert [_canonical(r) for r in built.rows()] == [_canonical(expected[i]) for i in built.ids]

    arrays: list[np.ndarray] = []
    description = orjson.loads(orjson.dumps(built.encode(arrays)))
    decoded = columns.decode(description, lambda n, dtype: arrays[n].astype(dtype))
    assert [_canonical(r) for r in decoded.rows()] == [_canonical(expected[i]) for i in built.ids]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=rows(), later=rows(), data=st.data())
def test_rows_at_some_indices_are_the_rows_one_by_one(first, later, data) -> None:
    table = columns.from_rows(first).replaced(later)
    n = len(table.ids)
    chosen = data.draw(st.lists(st.integers(0, n - 1), max_size=30)) if n else []
    picked = table.rows_at(np.array(chosen, dtype=np.int64))
    assert [_canonical(r) for r in picked] == [_canonical(table.row(i)) for i in chosen]


def test_row_copies_do_not_share_nested_values() -> None:
    table = columns.from_rows({"r": {"run_id": "r", "process": {"pid": 1}, "params": {"p": "1"}}})
    row = table.get("r")
    row["process"]["pid"] = 2
    row["params"]["p"] = "2"
    assert table.get("r") == {"run_id": "r", "process": {"pid": 1}, "params": {"p": "1"}}


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1, 2, 3], "ints"),
        ([1, None, 2**40], "ints"),
        (["a", "b"], "json"),
        ([1, 1.0, True], "json"),  # equal as keys, different as values: all kept apart
        ([{"a": 1}, [1, 2], None], "json"),
    ],
)
def test_distinct_values_round_trip_with_their_types(values, kind) -> None:
    table = columns.from_rows({f"r{i}": {"v": v} for i, v in enumerate(values)})
    arrays: list[np.ndarray] = []
    description = orjson.loads(orjson.dumps(table.encode(arrays)))
    assert kind in description["fields"]["v"]["values"]
    decoded = columns.decode(description, lambda n, dtype: arrays[n].astype(dtype))
    got = [decoded.get(f"r{i}")["v"] for i in range(len(values))]
    assert got == values
    assert [type(v) for v in got] == [type(v) for v in values]
