"""Tests for nbtrack.search: MLflow's run-search filter grammar and order_by over rows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from nbtrack.errors import InvalidFilterError, InvalidParameterError
from nbtrack.search import (
    EXPERIMENTS,
    MODEL_VERSIONS,
    REGISTERED_MODELS,
    compile_filter,
    compile_order_by,
    order_clause,
    parse_filter,
    search,
)

NAN = float("nan")
INF = float("inf")
MAX = 1.7976931348623157e308  # what MLflow's SQL store writes for +inf


def _row(
    name: str,
    *,
    start: int = 100,
    end: int | None = None,
    status: str = "RUNNING",
    metrics: dict[str, float] | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    **attributes: object,
) -> dict:
    """A catalog row; the run_id sorts like the name (ASCII names)."""
    row = {
        "run_id": name.encode().hex().ljust(32, "0"),
        "experiment_id": "0",
        "run_name": name,
        "status": status,
        "start_time": start,
        "end_time": end,
        "lifecycle_stage": "active",
        "user_id": "alice",
        "artifact_uri": f"file:///x/runs/{name}/artifacts",
        "params": dict(params or {}),
        "tags": {"mlflow.runName": name, **(tags or {})},
        "metrics": {key: [value, 0, 1] for key, value in (metrics or {}).items()},
    }
    row.update(attributes)
    return row


def _names(rows) -> list[str]:
    return [row["run_name"] for row in rows]


def _matching(filter_string: str, rows: list[dict]) -> set[str]:
    predicate = compile_filter(filter_string)
    return {row["run_name"] for row in rows if predicate(row)}


def _error(call, *args) -> str:
    with pytest.raises(InvalidFilterError) as info:
        call(*args)
    return str(info.value)


def _assert_points_at(message: str, text: str, column: int) -> None:
    """The message names ``column`` and echoes ``text`` with a caret under it."""
    head, echoed, caret = message.split("\n")
    assert f" at column {column}: " in head
    assert echoed == "  " + text
    assert caret == "  " + " " * (column - 1) + "^"


# --- filters: metrics ---------------------------------------------------------------------

METRIC_ROWS = [
    _row("low", metrics={"acc": 0.5, "loss": 2.0}),
    _row("mid", metrics={"acc": 0.75}),
    _row("high", metrics={"acc": 1.0}),
    _row("neg", metrics={"acc": -1.0}),
    _row("nan", metrics={"acc": NAN}),
    _row("inf", metrics={"acc": INF}),
    _row("ninf", metrics={"acc": -INF}),
    _row("max", metrics={"acc": MAX}),
    _row("none", metrics={"loss": 1.0}),
]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("metrics.acc = 0.75", {"mid"}),
        ("metrics.acc != 0.75", {"low", "high", "neg", "nan", "inf", "ninf", "max"}),
        ("metrics.acc < 0.75", {"low", "neg", "ninf"}),
        ("metrics.acc <= 0.75", {"low", "mid", "neg", "ninf"}),
        ("metrics.acc > 0.75", {"high", "inf", "max"}),
        ("metrics.acc >= 0.75", {"mid", "high", "inf", "max"}),
        ("metrics.acc = 1", {"high"}),
        ("metrics.acc > -1", {"low", "mid", "high", "inf", "max"}),
        ("metrics.acc>=-1", {"low", "mid", "high", "neg", "inf", "max"}),
        ("metrics.acc < .6", {"low", "neg", "ninf"}),
        ("metrics.acc = 1.", {"high"}),
        ("metrics.acc = 75e-2", {"mid"}),
        ("metrics.acc < 1E0", {"low", "mid", "neg", "ninf"}),
        ("metric.acc = 0.5", {"low"}),
        ("metrics.`acc` = 0.5", {"low"}),
        ('metrics."acc" = 0.5', {"low"}),
        ("`metrics`.acc = 0.5", {"low"}),
    ],
)
def test_metric_comparators(filter_string, expected):
    assert _matching(filter_string, METRIC_ROWS) == expected


@pytest.mark.parametrize("op", ["=", "<", "<=", ">", ">="])
def test_nan_metric_fails_every_comparator_but_not_equal(op):
    # MLflow's sqlite store keeps NaN as value 0 with is_nan=1 and requires is_nan = 0
    # for every comparator except "!="; checked against real mlflow 3 on sqlite.
    for value in ("0", "-1e309", "1e309"):
        assert "nan" not in _matching(f"metrics.acc {op} {value}", METRIC_ROWS)
    assert "nan" in _matching("metrics.acc != 0", METRIC_ROWS)


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        # +/-inf are stored as +/-max double, so they equal max and exceed 1e308.
        ("metrics.acc > 1e308", {"inf", "max"}),
        ("metrics.acc = 1.7976931348623157e308", {"inf", "max"}),
        ("metrics.acc != 1.7976931348623157e308", {"low", "mid", "high", "neg", "nan", "ninf"}),
        ("metrics.acc <= -1.7976931348623157e308", {"ninf"}),
        ("metrics.acc = -1.7976931348623157e308", {"ninf"}),
        # 1e309 is a real infinity in the query; a stored (clamped) inf is below it.
        ("metrics.acc = 1e309", set()),
        ("metrics.acc >= 1e309", set()),
        ("metrics.acc < 1e309", {"low", "mid", "high", "neg", "inf", "ninf", "max"}),
        ("metrics.acc > -1e309", {"low", "mid", "high", "neg", "inf", "ninf", "max"}),
    ],
)
def test_infinite_metrics_compare_like_mlflows_clamped_values(filter_string, expected):
    # Verified against real mlflow 3 on sqlite (log_metric of inf, -inf and max).
    assert _matching(filter_string, METRIC_ROWS) == expected


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_missing_metric_matches_no_comparator(op):
    assert "none" not in _matching(f"metrics.acc {op} 0", METRIC_ROWS)
    assert _matching(f"metrics.nothing {op} 0", METRIC_ROWS) == set()


def test_rows_without_metrics_params_or_tags_match_nothing_but_is_null():
    bare = {"run_id": "1" * 32, "run_name": "bare", "start_time": 1}
    empty = {**bare, "run_name": "empty", "metrics": None, "params": {}, "tags": None}
    rows = [bare, empty]
    assert _matching("metrics.acc != 1", rows) == set()
    assert _matching("params.lr != 'x'", rows) == set()
    assert _matching("tags.team LIKE '%'", rows) == set()
    assert _matching("params.lr IS NULL and tags.team IS NULL", rows) == {"bare", "empty"}
    assert _matching("attributes.status != 'x'", rows) == set()


# --- filters: params and tags -------------------------------------------------------------

PARAM_ROWS = [
    _row("abc", params={"model": "abc", "lr": "0.1"}, tags={"team": "ml"}),
    _row("Abc", params={"model": "Abc"}, tags={"team": "ML"}),
    _row("axc", params={"model": "a.c"}, tags={"team": "a_b"}),
    _row("nl", params={"model": "a\nc"}, tags={"team": "a%b"}),
    _row("empty", params={"model": ""}, tags={"team": ""}),
    _row("quote", params={"model": "it's"}),
    _row("doubled", params={"model": "it''s"}),
    _row("ecole", params={"model": "école"}),
    _row("ECOLE", params={"model": "ÉCOLE"}),
    _row("bare"),
]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("params.model = 'abc'", {"abc"}),
        ('params.model = "abc"', {"abc"}),  # MLflow strips double quotes from values too
        ("params.model != 'abc'", set(_names(PARAM_ROWS)) - {"abc", "bare"}),
        ("params.model = ''", {"empty"}),
        ("params.model != ''", set(_names(PARAM_ROWS)) - {"empty", "bare"}),
        ("params.lr = '0.1'", {"abc"}),
        ("params.lr IS NULL", set(_names(PARAM_ROWS)) - {"abc"}),
        ("params.lr is not null", {"abc"}),
        ("params.model IS  NOT   NULL", set(_names(PARAM_ROWS)) - {"bare"}),
        ("param.model = 'Abc'", {"Abc"}),
        ("parameter.model = 'Abc'", {"Abc"}),
        ("parameters.model = 'Abc'", {"Abc"}),
        ("params.`model` = 'Abc'", {"Abc"}),
        ("params.\"model\" = 'Abc'", {"Abc"}),
        ("tags.team = 'ml'", {"abc"}),
        ("tag.team != 'ml'", {"Abc", "axc", "nl", "empty"}),
        ("tags.team IS NULL", {"quote", "doubled", "ecole", "ECOLE", "bare"}),
    ],
)
def test_param_and_tag_comparators(filter_string, expected):
    assert _matching(filter_string, PARAM_ROWS) == expected


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        # LIKE is case-sensitive: MLflow runs "PRAGMA case_sensitive_like = true" on sqlite.
        ("params.model LIKE 'abc'", {"abc"}),
        ("params.model like 'A%'", {"Abc"}),
        ("params.model LIKE 'a%'", {"abc", "axc", "nl"}),
        ("params.model LIKE '%c'", {"abc", "Abc", "axc", "nl"}),
        ("params.model LIKE 'a_c'", {"abc", "axc", "nl"}),  # _ and % match a newline too
        ("params.model LIKE 'a.c'", {"axc"}),  # regex characters are literal
        ("params.model LIKE '%'", set(_names(PARAM_ROWS)) - {"bare"}),
        ("params.model LIKE ''", {"empty"}),
        ("params.model LIKE 'it_s'", {"quote"}),
        ("params.model LIKE 'it%s'", {"quote", "doubled"}),
        ("tags.team LIKE 'a_b'", {"axc", "nl"}),
        ("tags.team LIKE 'a%b'", {"axc", "nl"}),
        ("tags.team LIKE '%\\%'", set()),  # no ESCAPE clause: the backslash is literal
        # ILIKE is lower(x) LIKE lower(y); sqlite's lower() folds ASCII letters only.
        ("params.model ILIKE 'ABC'", {"abc", "Abc"}),
        ("params.model ilike 'a%'", {"abc", "Abc", "axc", "nl"}),
        ("params.model ILIKE 'école'", {"ecole"}),
        ("params.model ILIKE 'ÉCOLE'", {"ECOLE"}),
        ("tags.team ILIKE 'ml'", {"abc", "Abc"}),
    ],
)
def test_like_and_ilike(filter_string, expected):
    # The ILIKE non-ASCII and newline cases were checked against real mlflow on sqlite.
    assert _matching(filter_string, PARAM_ROWS) == expected


def test_quoted_values_are_taken_verbatim_like_mlflow():
    # MLflow strips the outer quotes and does not unescape: 'it''s' means it''s.
    # Checked against real mlflow 3 on sqlite.
    assert _matching("params.model = 'it''s'", PARAM_ROWS) == {"doubled"}
    assert _matching("params.model = 'it\\'s'", PARAM_ROWS) == set()
    assert _matching('params.model = "it\'s"', PARAM_ROWS) == {"quote"}


def test_keys_may_be_dotted_backticked_or_double_quoted():
    rows = [
        _row("child", tags={"mlflow.parentRunId": "p1"}, metrics={"my-metric": 2.0}),
        _row("other", tags={"mlflow.parentRunId": "p2"}, params={"my param": "v"}),
        _row("dotted", params={"a.b.c": "x"}, tags={"é": "1"}),
    ]
    assert _matching("tags.mlflow.parentRunId = 'p1'", rows) == {"child"}
    assert _matching("tags.`mlflow.parentRunId` != 'p1'", rows) == {"other"}
    assert _matching("tags.\"mlflow.parentRunId\" LIKE 'p%'", rows) == {"child", "other"}
    assert _matching("metrics.`my-metric` > 1", rows) == {"child"}
    assert _matching("params.\"my param\" = 'v'", rows) == {"other"}
    assert _matching("params.a.b.c = 'x'", rows) == {"dotted"}
    assert _matching("tags.é = '1'", rows) == {"dotted"}
    assert _matching("params.1abc IS NULL", rows) == {"child", "other", "dotted"}


# --- filters: attributes -------------------------------------------------------------------

ATTR_ROWS = [
    _row("rf-1", start=100, end=150, status="FINISHED"),
    _row("rf-2", start=200, end=None, status="RUNNING", user_id="bob"),
    _row("gb-1", start=300, end=350, status="FAILED"),
    _row("gb-2", start=400, end=None, status="KILLED", artifact_uri="s3://b/gb-2"),
]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("attributes.status = 'FINISHED'", {"rf-1"}),
        ("attributes.status = 'finished'", set()),
        ("attributes.status != 'FINISHED'", {"rf-2", "gb-1", "gb-2"}),
        ("attributes.status LIKE 'F%'", {"rf-1", "gb-1"}),
        ("attributes.status ILIKE 'f%'", {"rf-1", "gb-1"}),
        ("status = 'RUNNING'", {"rf-2"}),  # MLflow reads a bare name as an attribute
        ("attr.status = 'KILLED'", {"gb-2"}),
        ("attribute.status = 'KILLED'", {"gb-2"}),
        ("run.status = 'KILLED'", {"gb-2"}),
        ("attributes.run_name = 'rf-1'", {"rf-1"}),
        ("attributes.run_name LIKE 'rf%'", {"rf-1", "rf-2"}),
        ("attributes.`run name` = 'gb-1'", {"gb-1"}),
        ("attributes.\"Run Name\" ILIKE 'GB-%'", {"gb-1", "gb-2"}),
        ("run_name != 'gb-1'", {"rf-1", "rf-2", "gb-2"}),
        ("attributes.user_id = 'bob'", {"rf-2"}),
        ("attributes.artifact_uri LIKE 's3://%'", {"gb-2"}),
        ("attributes.start_time = 200", {"rf-2"}),
        ("attributes.start_time != 200", {"rf-1", "gb-1", "gb-2"}),
        ("attributes.start_time < 200", {"rf-1"}),
        ("attributes.start_time <= 200", {"rf-1", "rf-2"}),
        ("attributes.start_time > 200", {"gb-1", "gb-2"}),
        ("attributes.start_time >= 200.5", {"gb-1", "gb-2"}),
        ("attributes.start_time = 300.0", {"gb-1"}),
        ("attributes.created > 300", {"gb-2"}),
        ("attributes.Created <= 100", {"rf-1"}),
        ("start_time = 100", {"rf-1"}),
        # A NULL end_time (a running run) matches no comparator, not even "!=".
        ("attributes.end_time > 0", {"rf-1", "gb-1"}),
        ("attributes.end_time != 0", {"rf-1", "gb-1"}),
        ("attributes.end_time < 10000", {"rf-1", "gb-1"}),
    ],
)
def test_attribute_comparators(filter_string, expected):
    assert _matching(filter_string, ATTR_ROWS) == expected


def test_run_name_filters_through_the_run_name_tag_like_mlflow():
    # MLflow's store filters attributes.run_name on the mlflow.runName tag.
    renamed = _row("old", tags={"mlflow.runName": "new"})
    untagged = _row("plain")
    del untagged["tags"]["mlflow.runName"]
    rows = [renamed, untagged]
    assert _matching("attributes.run_name = 'new'", rows) == {"old"}
    assert _matching("attributes.run_name = 'old'", rows) == set()
    # Without the tag (not a state MLflow produces) the run_name field is used.
    assert _matching("attributes.run_name = 'plain'", rows) == {"plain"}


def test_run_id_in_and_not_in():
    ids = {row["run_name"]: row["run_id"] for row in ATTR_ROWS}
    in_two = f"attributes.run_id IN ('{ids['rf-1']}', \"{ids['gb-2']}\")"
    assert _matching(in_two, ATTR_ROWS) == {"rf-1", "gb-2"}
    assert _matching(f"attributes.run_id in ('{ids['rf-1']}',)", ATTR_ROWS) == {"rf-1"}
    not_in = f"attributes.run_id NOT IN ('{ids['rf-1']}', '{ids['gb-2']}')"
    assert _matching(not_in, ATTR_ROWS) == {"rf-2", "gb-1"}
    assert _matching(f"run_id not  in ( '{ids['rf-2']}' )", ATTR_ROWS) == {"rf-1", "gb-1", "gb-2"}
    assert _matching("attributes.run_id IN ('nope')", ATTR_ROWS) == set()
    assert _matching(f"attributes.run_id = '{ids['gb-1']}'", ATTR_ROWS) == {"gb-1"}


# --- filters: AND chains, caching, API -------------------------------------------------------


@pytest.mark.parametrize(
    "filter_string",
    [
        "metrics.acc > 0.5 and params.model = 'rf' AND tags.team != 'b'",
        "metrics.acc > 0.5 AND params.model = 'rf' and tags.team != 'b'",
        "metrics.acc>0.5 And params.model='rf' aNd tags.team!='b'",
        "  metrics.acc > 0.5\n\tand params.model = 'rf'  and  tags.team != 'b'  ",
    ],
)
def test_and_chains_any_case(filter_string):
    rows = [
        _row("yes", metrics={"acc": 0.9}, params={"model": "rf"}, tags={"team": "a"}),
        _row("low", metrics={"acc": 0.1}, params={"model": "rf"}, tags={"team": "a"}),
        _row("gb", metrics={"acc": 0.9}, params={"model": "gb"}, tags={"team": "a"}),
        _row("team-b", metrics={"acc": 0.9}, params={"model": "rf"}, tags={"team": "b"}),
        _row("no-team", metrics={"acc": 0.9}, params={"model": "rf"}),
    ]
    assert _matching(filter_string, rows) == {"yes"}


def test_four_clause_chain():
    rows = [_row(f"r{i}", start=i, metrics={"a": float(i)}) for i in range(10)]
    text = "metrics.a > 2 and metrics.a < 8 and attributes.start_time != 5 and status = 'RUNNING'"
    assert _matching(text, rows) == {"r3", "r4", "r6", "r7"}


@pytest.mark.parametrize("blank", [None, "", "   ", "\n\t"])
def test_blank_filters_accept_every_row(blank):
    predicate = compile_filter(blank)
    assert all(predicate(row) for row in PARAM_ROWS)
    assert len(search(PARAM_ROWS, blank)) == len(PARAM_ROWS)


def test_compiled_filters_are_cached_and_return_bools():
    text = "metrics.acc > 0.5 and params.model = 'rf'"
    assert compile_filter(text) is compile_filter(text)
    assert compile_order_by(["metrics.acc DESC"]) is compile_order_by(("metrics.acc DESC",))
    row = _row("x", metrics={"acc": 0.9}, params={"model": "rf", "t": "ab"})
    assert compile_filter(text)(row) is True
    assert compile_filter("params.t LIKE 'a%'")(row) is True
    assert compile_filter("params.t LIKE 'b%'")(row) is False
    assert compile_filter("metrics.nothing > 0")(row) is False


def test_filter_string_must_be_a_string():
    assert "filter_string must be a string, got int" in _error(compile_filter, 5)


# --- filter errors ---------------------------------------------------------------------------


def test_error_message_shows_column_and_caret():
    message = _error(compile_filter, "metrics.acc > 'high'")
    assert message == (
        "Invalid filter at column 15: metrics compare to numbers, got the string 'high'\n"
        "  metrics.acc > 'high'\n"
        "                ^"
    )


@pytest.mark.parametrize(
    ("filter_string", "column", "message"),
    [
        ("foo.x = 1", 1, "unknown identifier type 'foo'; use metrics., params., tags. or attr"),
        ("METRICS.acc > 1", 1, "unknown identifier type 'METRICS'"),  # case-sensitive in MLflow
        ("metrics. > 1", 9, "missing key after 'metrics.'"),
        ("metrics.`` > 1", 9, "missing key after 'metrics.'"),
        ("metrics > 1", 1, "'metrics' needs a key: write metrics.<key>"),
        (
            "attributes.lifecycle_stage = 'active'",
            12,
            "unknown attribute 'lifecycle_stage'; valid attributes are artifact_uri, created, "
            "end_time, run_id, run_name, start_time, status, user_id",
        ),
        ("experiment_id = '0'", 1, "unknown attribute 'experiment_id'"),
        (
            "params.lr > '0.1'",
            11,
            "comparator '>' does not apply to params; use one of =, !=, LIKE, ILIKE, IS NULL, "
            "IS NOT NULL",
        ),
        (
            "metrics.acc LIKE '0.9%'",
            13,
            "comparator 'LIKE' does not apply to metrics; use one of =, !=, <, <=, >, >=",
        ),
        (
            "attributes.start_time ILIKE 1",
            23,
            "comparator 'ILIKE' does not apply to attribute start_time; use one of =, !=, <,",
        ),
        (
            "attributes.status < 'b'",
            19,
            "comparator '<' does not apply to attribute status; use one of =, !=, LIKE, ILIKE",
        ),
        ("params.a <> 'x'", 10, "comparator '<>' does not apply to params"),
        ("params.a == 'x'", 10, "comparator '==' does not apply to params"),
        ("metrics.a => 1", 11, "comparator '=>' does not apply to metrics"),
        ("params.a not like 'x%'", 10, "comparator 'NOT LIKE' does not apply to params"),
        ("params.a RLIKE 'x'", 10, "comparator 'RLIKE' does not apply to params"),
        (
            "params.lr = 0.1",
            13,
            "params compare to quoted strings, got the number 0.1; write '0.1'",
        ),
        ("tags.team = ml", 13, "tags compare to quoted strings, got 'ml'"),
        ("tags.team = `ml`", 13, "tags compare to quoted strings, got `ml`"),
        ('metrics.a > "1"', 13, 'metrics compare to numbers, got the string "1"'),
        ("metrics.a > 0x10", 13, "metrics compare to numbers, got '0x10'"),
        ("metrics.a > +1", 13, "metrics compare to numbers, got '+'"),
        ("metrics.a > 1.e3", 13, "metrics compare to numbers, got '1.e3'"),
        ("attributes.start_time = '5'", 25, "attribute start_time compares to numbers, got the"),
        ("attributes.status = 1", 21, "attribute status compares to quoted strings, got the num"),
        ("attributes.run_id = ('a', 'b')", 21, "attribute run_id compares to quoted strings"),
        ("params.a = 'x", 12, "unterminated string: this ' is never closed"),
        ('params.a = "x', 12, 'unterminated string: this " is never closed'),
        ("metrics.`a b > 1", 9, "unterminated name: this ` is never closed"),
        ("metrics.a >", 12, "missing value after >"),
        ("metrics.a > and params.b = 'x'", 13, "missing value after >"),
        ("params.b = ", 12, "missing value after ="),
        ("metrics.a", 10, "missing comparator after metrics.a"),
        ("= 1", 1, "expected an identifier such as metrics.acc, got '='"),
        (
            "metrics.my-metric > 1",
            11,
            "expected a comparator after metrics.my, got '-' (quote keys holding spaces or "
            "symbols: `my-key`)",
        ),
        ("params.my param = 'x'", 11, "expected a comparator after params.my, got 'param'"),
        (
            "metrics.a > 1 params.b = 'x'",
            15,
            "expected AND or the end of the filter, got 'params.b'",
        ),
        ("metrics.a > 1;", 14, "expected AND or the end of the filter, got ';'"),
        ("metrics.a > 1 OR metrics.b > 1", 15, "OR is not supported"),
        ("metrics.a > 1 and", 15, "empty clause after AND"),
        ("and metrics.a > 1", 1, "empty clause before AND"),
        ("metrics.a > 1 AND and metrics.b > 1", 19, "empty clause before AND"),
        ("or metrics.a > 1", 1, "OR is not supported"),
        ("(metrics.a > 1)", 1, "parentheses are not supported; join clauses with AND"),
        ("metrics.a > 1 and (metrics.b > 1)", 19, "parentheses are not supported"),
        ("attributes.status IN ('a')", 19, "IN works only on attributes.run_id, not on attribu"),
        ("params.a NOT IN ('a')", 10, "NOT IN works only on attributes.run_id, not on params"),
        ("metrics.a in ('a')", 11, "IN works only on attributes.run_id, not on metrics"),
        ("attributes.run_id IN 'a'", 22, "IN needs a parenthesized list of quoted strings"),
        ("attributes.run_id IN ()", 23, "the IN list is empty"),
        ("attributes.run_id IN (1, 2)", 23, "IN lists hold quoted strings, got '1'"),
        ("attributes.run_id IN ('a' 'b')", 27, "expected ',' or ')' in the IN list, got 'b'"),
        ("attributes.run_id IN ('a', ", 22, "the IN list is never closed"),
        ("attributes.run_id IN ('a',,)", 27, "IN lists hold quoted strings, got ','"),
        ("metrics.acc IS NULL", 13, "IS NULL works only on params and tags, not on metrics"),
        ("end_time IS NOT NULL", 10, "IS NOT NULL works only on params and tags, not on attrib"),
        ("params.a IS NUL", 10, "incomplete comparator; expected IS NULL or IS NOT NULL"),
        ("params.a NOT 'x'", 10, "incomplete comparator; expected NOT IN"),
        ("dataset.name = 'x'", 1, "dataset filters are not supported"),
        ("datasets.digest = 'x'", 1, "dataset filters are not supported"),
    ],
)
def test_invalid_filters(filter_string, column, message):
    text = _error(compile_filter, filter_string)
    assert text.startswith(f"Invalid filter at column {column}: {message}")
    _assert_points_at(text, filter_string, column)


def test_caret_stays_aligned_across_tabs_and_newlines():
    text = _error(compile_filter, "metrics.a > 1\n\tand metrics.b > 'x'")
    _assert_points_at(text, "metrics.a > 1  and metrics.b > 'x'", 32)


def test_invalid_filter_error_is_a_value_error_with_mlflow_code():
    with pytest.raises(ValueError, match=r"column 1: unknown identifier type") as info:
        search([], "nope.x = 1")
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


# --- order_by ---------------------------------------------------------------------------------

ORDER_ROWS = [
    _row("a", start=100, end=150, status="FINISHED", metrics={"m": 1.0}, params={"p": "b"}),
    _row("b", start=200, metrics={"m": NAN}, params={"p": "a"}, tags={"t": "x"}),
    _row("c", start=300, end=350, status="FAILED", tags={"t": "y"}),
    _row("d", start=400, metrics={"m": INF}, params={"p": "B"}, tags={"t": "x"}),
    _row("e", start=500, end=550, status="FINISHED", metrics={"m": MAX}, params={"p": "a"}),
    _row("f", start=600, metrics={"m": -INF}, params={"p": "é"}),
    _row("g", start=100, metrics={"m": 1.0}, params={"p": "b"}),
]


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        # Default: start_time DESC, then run_id (a before g at start_time 100).
        (None, "fedcbag"),
        ([], "fedcbag"),
        # Values, then NaN, then missing, in both directions; inf ties with max and the
        # tie goes to start_time DESC (e before d). Verified against mlflow 3 on sqlite.
        (["metrics.m"], "fagedbc"),
        (["metrics.m ASC"], "fagedbc"),
        (["metrics.m DESC"], "edagfbc"),
        (["metric.m desc"], "edagfbc"),
        (["metrics.`m` Desc"], "edagfbc"),
        (["metrics.nothing"], "fedcbag"),
        # Strings order by code point (SQLite BINARY); missing last either way.
        (["params.p"], "debagfc"),
        (["params.p DESC"], "fagebdc"),
        (["tags.t"], "dbcfeag"),
        (["tags.t DESC"], "cdbfeag"),
        (["tags.t", "params.p DESC"], "bdcfage"),
        (["attributes.start_time"], "agbcdef"),
        (["attributes.start_time DESC"], "fedcbag"),
        (["created ASC"], "agbcdef"),
        # A NULL end_time sorts last in both directions.
        (["attributes.end_time"], "acefdbg"),
        (["attributes.end_time DESC"], "ecafdbg"),
        (["attributes.status", "metrics.m"], "caefgdb"),
        (["attributes.run_name DESC"], "gfedcba"),
        (["attributes.run_id"], "abcdefg"),
        (["run_id DESC"], "gfedcba"),
        (["metrics.m", "attributes.start_time ASC"], "fagdebc"),
    ],
)
def test_order_by(order_by, expected):
    assert "".join(_names(search(ORDER_ROWS, order_by=order_by))) == expected


def test_order_by_string_values_are_not_numbers():
    rows = [_row(name, params={"lr": name}) for name in ("10", "9", "1e3", "-1")]
    assert _names(search(rows, order_by=["params.lr"])) == ["-1", "10", "1e3", "9"]


def test_order_by_falls_back_to_tie_breakers_and_handles_sparse_rows():
    rows = [
        _row("x", start=5, params={"k": "same"}),
        _row("y", start=7, params={"k": "same"}),
        _row("w", start=5, params={"k": "same"}),
        {"run_id": "0" * 32, "run_name": "sparse"},  # no start_time, no params
    ]
    assert _names(search(rows, order_by=["params.k"])) == ["y", "w", "x", "sparse"]
    assert _names(search(rows)) == ["y", "w", "x", "sparse"]


def test_order_by_returns_a_new_list_of_the_same_rows():
    rows = list(ORDER_ROWS)
    ordered = compile_order_by(["metrics.m"])(iter(rows))
    assert rows == ORDER_ROWS
    assert isinstance(ordered, list)
    assert all(any(row is original for original in rows) for row in ordered)


@pytest.mark.parametrize(
    ("clause", "column", "message"),
    [
        ("metrics.acc up", 13, "expected ASC or DESC, got 'up'"),
        ("metrics.acc DESC NULLS LAST", 18, "unexpected 'NULLS' after DESC"),
        ("metrics.a b DESC", 11, "expected ASC or DESC, got 'b'"),
        ("metrics.a, metrics.b", 10, "expected ASC or DESC, got ','"),
        ("", 1, "empty clause; expected e.g. 'metrics.acc DESC'"),
        ("   ", 4, "empty clause"),
        ("attributes.lifecycle_stage", 12, "unknown attribute 'lifecycle_stage'"),
        # MLflow's order_by knows the alias created but not "run name".
        ("attributes.`run name`", 12, "unknown attribute 'run name'"),
        ("foo.bar DESC", 1, "unknown identifier type 'foo'"),
        ("metrics. DESC", 9, "missing key after 'metrics.'"),
        ("dataset.name", 1, "dataset filters are not supported"),
    ],
)
def test_invalid_order_by(clause, column, message):
    text = _error(compile_order_by, [clause])
    assert text.startswith(f"Invalid order_by clause {clause!r} at column {column}: {message}")
    _assert_points_at(text, clause, column)


@pytest.mark.parametrize(
    ("order_by", "message"),
    [
        (["metrics.a", "metric.a DESC"], "'metric.a DESC' at column 1: metrics.a is already"),
        (["attributes.start_time", "created DESC"], "'created DESC' at column 1: attributes.st"),
        (["params.`p`", 'params."p"'], "at column 1: params.p is already ordered by 'params.`p`'"),
    ],
)
def test_order_by_rejects_duplicate_fields(order_by, message):
    # Real MLflow raises "`order_by` contains duplicate fields" for these.
    assert message in _error(compile_order_by, order_by)


def test_order_by_must_be_a_list_of_strings():
    assert "order_by must be a list of clauses, e.g. ['metrics.a']" in _error(
        compile_order_by, "metrics.a"
    )
    assert "order_by clauses must be strings, got int" in _error(compile_order_by, [1])


# --- search and max_results ---------------------------------------------------------------------


def test_search_filters_orders_and_truncates():
    result = search(iter(ORDER_ROWS), "metrics.m >= 1", ["metrics.m DESC"], max_results=3)
    assert _names(result) == ["e", "d", "a"]
    assert result[0] is ORDER_ROWS[4]
    assert _names(search(ORDER_ROWS, "metrics.m >= 1", max_results=100)) == ["e", "d", "a", "g"]
    assert _names(search(ORDER_ROWS, max_results=1)) == ["f"]
    assert search([], "metrics.m > 0", ["params.p"]) == []


@pytest.mark.parametrize("bad", [0, -1, 1.5, "3", True])
def test_max_results_must_be_a_positive_integer(bad):
    with pytest.raises(InvalidParameterError, match="It must be a positive integer") as info:
        search(ORDER_ROWS, max_results=bad)
    assert not isinstance(info.value, InvalidFilterError)
    assert f"Invalid value {bad!r} for parameter 'max_results'" in str(info.value)


def test_search_module_imports_nothing_heavy():
    # It is on the import path of `import nbtrack`: stdlib and nbtrack only.
    package = Path(__file__).parents[1] / "src" / "nbtrack" / "search"
    trees = [ast.parse(source.read_text()) for source in package.glob("*.py")]
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    nbtrack = {
        node.module
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module.startswith("nbtrack")
    }
    # The ground floor: nbtrack.search imports only nbtrack.errors and itself.
    assert {m for m in nbtrack if not m.startswith("nbtrack.search")} == {"nbtrack.errors"}
    assert imported <= {
        "__future__",
        "collections",
        "dataclasses",
        "functools",
        "nbtrack",
        "operator",
        "re",
        "typing",
    }


def test_ten_thousand_rows_filter_and_order():
    # Speed is measured in benchmarks/, never asserted here; this checks the result at scale.
    rows = [
        _row(
            f"r{i}",
            start=i * 7 % 1000,
            metrics={"acc": (i * 37 % 100) / 100} if i % 10 else {},
            params={"model": ("rf", "gb", "lr")[i % 3]},
        )
        for i in range(10_000)
    ]
    expected = [
        r for r in rows if r["metrics"].get("acc", [0])[0] > 0.5 and r["params"]["model"] == "rf"
    ]
    result = search(rows, "metrics.acc > 0.5 and params.model = 'rf'", ["metrics.acc DESC"])
    accs = [row["metrics"]["acc"][0] for row in result]
    assert accs == sorted(accs, reverse=True)
    assert {r["run_id"] for r in result} == {r["run_id"] for r in expected}


# --- the other grammars: model versions, registered models, experiments ----------------------


def _version(name: str, version: int, **fields: object) -> dict:
    row = {
        "name": name,
        "version": version,
        "run_id": f"run{version}",
        "source": f"runs:/run{version}/model",
        "current_stage": "None",
        "creation_timestamp": version,
        "last_updated_timestamp": version,
        "tags": {},
    }
    row.update(fields)
    return row


VERSION_ROWS = [
    _version("churn", 1, current_stage="Archived", tags={"validation": "passed"}),
    _version("churn", 2, current_stage="Production", last_updated_timestamp=9),
    _version("fraud", 1, tags={"validation": "FAILED"}),
    _version("Churn-EU", 3, run_id="run1"),
]


def _versions(rows) -> list[tuple[str, int]]:
    return [(row["name"], row["version"]) for row in rows]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("name = 'churn'", [("churn", 2), ("churn", 1)]),
        ("attribute.name ILIKE 'CHURN%'", [("churn", 2), ("Churn-EU", 3), ("churn", 1)]),
        ("name IN ('fraud', 'Churn-EU')", [("Churn-EU", 3), ("fraud", 1)]),
        ("run_id NOT IN ('run2')", [("Churn-EU", 3), ("churn", 1), ("fraud", 1)]),
        ("version_number >= 2", [("churn", 2), ("Churn-EU", 3)]),
        ("version_number = '1'", [("churn", 1), ("fraud", 1)]),
        ("source_path LIKE '%run3%'", [("Churn-EU", 3)]),
        ("current_stage IN ('Production', 'Archived')", [("churn", 2), ("churn", 1)]),
        ("tags.validation ILIKE 'failed' and version_number < 2", [("fraud", 1)]),
        ("tag.validation != 'passed'", [("fraud", 1)]),
    ],
)
def test_model_version_filters_in_mlflows_default_order(filter_string, expected):
    # MLflow's sqlite store: last update first, then name, then the newest version.
    assert _versions(search(VERSION_ROWS, filter_string, grammar=MODEL_VERSIONS)) == expected


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (["name"], [("Churn-EU", 3), ("churn", 2), ("churn", 1), ("fraud", 1)]),
        (
            ["version_number", "name DESC"],
            [("fraud", 1), ("churn", 1), ("churn", 2), ("Churn-EU", 3)],
        ),
        (["creation_timestamp DESC"], [("Churn-EU", 3), ("churn", 2), ("churn", 1), ("fraud", 1)]),
    ],
)
def test_model_version_order_by_breaks_ties_by_name_then_newest(order_by, expected):
    assert _versions(search(VERSION_ROWS, order_by=order_by, grammar=MODEL_VERSIONS)) == expected


@pytest.mark.parametrize(
    ("grammar", "filter_string", "column", "message"),
    [
        (
            MODEL_VERSIONS,
            "colour = 'red'",
            1,
            "unknown attribute 'colour'; valid attributes are current_stage, name, run_id, "
            "source_path, version_number (or write tags.colour)",
        ),
        (
            MODEL_VERSIONS,
            "attributes.name = 'x'",
            1,
            "unknown identifier type 'attributes'; use attribute. or tags. (lower case)",
        ),
        (MODEL_VERSIONS, "metrics.acc > 1", 1, "unknown identifier type 'metrics'"),
        (MODEL_VERSIONS, "dataset.name = 'x'", 1, "unknown identifier type 'dataset'"),
        (
            MODEL_VERSIONS,
            "source_path IN ('x')",
            13,
            "IN works only on current_stage, name and run_id, not on attribute source_path",
        ),
        (
            MODEL_VERSIONS,
            "tags.a IS NULL",
            8,
            "comparator 'IS NULL' does not apply to tags; use one of =, !=, LIKE, ILIKE",
        ),
        (
            MODEL_VERSIONS,
            "version_number = 1.5",
            18,
            "attribute version_number compares to integers, got 1.5",
        ),
        (
            MODEL_VERSIONS,
            "version_number = 'one'",
            18,
            "attribute version_number compares to integers, got 'one'",
        ),
        (
            MODEL_VERSIONS,
            "version_number LIKE '1'",
            16,
            "comparator 'LIKE' does not apply to attribute version_number; use one of =, !=, <,",
        ),
        (MODEL_VERSIONS, "name > 'a'", 6, "comparator '>' does not apply to attribute name"),
        (
            REGISTERED_MODELS,
            "version_number = 1",
            1,
            "unknown attribute 'version_number'; valid attributes are name (or write "
            "tags.version_number)",
        ),
        (
            EXPERIMENTS,
            "experiment_id LIKE '1%'",
            15,
            "comparator 'LIKE' does not apply to attribute experiment_id; use one of =, !=, IN",
        ),
        (
            EXPERIMENTS,
            "creation_time > '5'",
            17,
            "attribute creation_time compares to integers, got the string '5'",
        ),
        (
            EXPERIMENTS,
            "status = 'x'",
            1,
            "unknown attribute 'status'; valid attributes are creation_time, experiment_id, "
            "last_update_time, name (or write tags.status)",
        ),
    ],
)
def test_other_grammars_name_the_bad_key_and_the_allowed_ones(
    grammar, filter_string, column, message
):
    text = _error(compile_filter, filter_string, grammar)
    assert text.startswith(f"Invalid filter at column {column}: {message}")
    _assert_points_at(text, filter_string, column)


@pytest.mark.parametrize(
    ("grammar", "clause", "column", "message"),
    [
        (
            MODEL_VERSIONS,
            "tags.a DESC",
            1,
            "model versions cannot be ordered by tags; order by creation_timestamp, "
            "last_updated_timestamp, name, version_number",
        ),
        (
            MODEL_VERSIONS,
            "current_stage",
            1,
            "unknown attribute 'current_stage'; valid attributes are creation_timestamp, "
            "last_updated_timestamp, name, version_number",
        ),
        (MODEL_VERSIONS, "", 1, "empty clause; expected e.g. 'name DESC'"),
        (REGISTERED_MODELS, "version_number", 1, "unknown attribute 'version_number'"),
    ],
)
def test_other_grammars_order_by_only_their_attributes(grammar, clause, column, message):
    text = _error(compile_order_by, [clause], grammar)
    assert text.startswith(f"Invalid order_by clause {clause!r} at column {column}: {message}")


def test_registered_models_order_by_name_and_timestamps():
    rows = [
        {"name": "b", "creation_timestamp": 1, "last_updated_timestamp": 5, "tags": {}},
        {"name": "a", "creation_timestamp": 2, "last_updated_timestamp": 5, "tags": {"t": "x"}},
        {"name": "c", "creation_timestamp": 3, "last_updated_timestamp": 4, "tags": {}},
    ]
    names = lambda found: [row["name"] for row in found]  # noqa: E731
    assert names(search(rows, grammar=REGISTERED_MODELS)) == ["a", "b", "c"]
    assert names(search(rows, order_by=["timestamp DESC"], grammar=REGISTERED_MODELS)) == [
        "a",
        "b",
        "c",
    ]
    by_creation = search(rows, order_by=["creation_timestamp DESC"], grammar=REGISTERED_MODELS)
    assert names(by_creation) == ["c", "a", "b"]
    assert names(search(rows, "tags.t = 'x'", grammar=REGISTERED_MODELS)) == ["a"]
    # "timestamp" is MLflow's sqlite name for the last update: ordering by both repeats it.
    assert "is already ordered by 'timestamp'" in _error(
        compile_order_by, ["timestamp", "last_updated_timestamp DESC"], REGISTERED_MODELS
    )


def test_experiments_filter_and_order_as_mlflows_sqlite_store():
    rows = [
        {
            "experiment_id": str(i),
            "name": f"exp{i}",
            "creation_time": 100 - i % 3,
            "last_update_time": 200,
            "tags": {"team": "a"} if i % 2 else {},
        }
        for i in range(12)
    ]
    found = search(rows, "tags.team IS NULL and creation_time >= 99", grammar=EXPERIMENTS)
    # Newest first, then by id as a number (10 after 9), as MLflow's INTEGER column.
    assert [row["experiment_id"] for row in found] == ["0", "6", "4", "10"]
    found = search(
        rows, "experiment_id IN ('1', '11')", ["experiment_id DESC"], grammar=EXPERIMENTS
    )
    assert [row["name"] for row in found] == ["exp11", "exp1"]
    assert order_clause("attribute.last_update_time DESC", EXPERIMENTS) == (
        "attributes",
        "last_update_time",
        False,
    )


def test_parse_filter_names_what_each_clause_reads():
    row = _row("r", metrics={"acc": 0.5}, params={"lr": "0.1"})
    clauses = parse_filter("metrics.acc > 0.4 and params.lr = '0.1' and run_name = 'r'")
    assert [(c.ident.text, c.op, c.ident.value_in(row)) for c in clauses] == [
        ("metrics.acc", ">", 0.5),
        ("params.lr", "=", "0.1"),
        ("run_name", "=", "r"),
    ]
    assert parse_filter("  ") == []
    version = parse_filter("version_number >= '2'", MODEL_VERSIONS)[0]
    assert (version.ident.key, version.value, version.ident.value_in(_version("m", 3))) == (
        "version_number",
        2,
        3,
    )


# --- cross-checks against real MLflow (sqlite store) ---------------------------------------

CROSS_RUNS = [
    # name, start_time, metrics, params, tags, terminal status (None stays RUNNING)
    (
        "r1",
        100,
        {"a": 1.0, "b": 2.0},
        {"s": "Abc"},
        {"team": "a", "mlflow.parentRunId": "p"},
        "FINISHED",
    ),
    ("r2", 200, {"a": NAN}, {"s": "abc"}, {"team": "B"}, None),
    ("r3", 300, {"a": INF}, {"s": "it's"}, {}, "FAILED"),
    ("r4", 400, {"a": -INF, "b": NAN}, {"s": "ÉCOLE"}, {"team": "a_b"}, None),
    ("r5", 500, {}, {"s": "a\nb"}, {"team": "a%b"}, "FINISHED"),
    ("r6", 600, {"a": 0.0}, {"s": "it''s"}, {"team": ""}, None),
    ("r7", 700, {"a": MAX}, {"s": "école"}, {}, "KILLED"),
    ("r8", 100, {"a": 1.0}, {}, {"team": "ab"}, None),
]


# mlflow's own SQLAlchemy models emit a deprecation warning; it is not ours to fix.
_mlflow_warnings = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """The same runs in a real MLflow sqlite store and as nbtrack rows."""
    from mlflow.tracking import MlflowClient

    tmp = tmp_path_factory.mktemp("mlflow")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp}/m.db")
    experiment_id = client.create_experiment("x", artifact_location=(tmp / "art").as_uri())
    rows, names = [], {}
    for name, start, metrics, params, tags, status in CROSS_RUNS:
        run_id = client.create_run(experiment_id, start_time=start, tags=tags, run_name=name)
        run_id = run_id.info.run_id
        for key, value in metrics.items():
            client.log_metric(run_id, key, value, timestamp=1, step=0)
        for key, value in params.items():
            client.log_param(run_id, key, value)
        if status:
            client.set_terminated(run_id, status=status, end_time=start + 5)
        names[run_id] = name
        row = _row(name, start=start, status=status or "RUNNING", metrics=metrics)
        row.update(run_id=run_id, params=params, end_time=start + 5 if status else None)
        row["tags"].update(tags)
        rows.append(row)
    return client, experiment_id, rows, names


CROSS_FILTERS = [
    "metrics.a != 1",
    "metrics.a = 0",
    "metrics.a > 1e308",
    "metrics.a = 1.7976931348623157e308",
    "metrics.a < 1e309",
    "metrics.b != 2 and metrics.a <= 1",
    "params.s LIKE 'a%'",
    "params.s ILIKE 'a%'",
    "params.s ILIKE 'école'",
    "params.s LIKE 'a_b'",
    "params.s = 'it''s'",
    'params.s = "it\'s"',
    "params.s IS NULL",
    "tags.team LIKE 'a_b' AND tags.team != 'ab'",
    "tags.team = ''",
    "tags.mlflow.parentRunId = 'p'",
    "attributes.run_name LIKE 'r%' and attributes.start_time > 100",
    "attributes.end_time != 0",
    "attributes.status ILIKE 'f%'",
    "attributes.run_id NOT IN ('{r1}', '{r3}')",
]
CROSS_ORDERS = [
    ["metrics.a"],
    ["metrics.a DESC"],
    ["metrics.b DESC", "params.s"],
    ["params.s DESC"],
    ["tags.team"],
    ["attributes.end_time DESC"],
    ["attributes.status", "attributes.start_time ASC"],
]


@pytest.mark.slow  # builds a real MLflow store
@_mlflow_warnings
def test_filters_match_real_mlflow(mlflow_store):
    client, experiment_id, rows, names = mlflow_store
    ids = {name: run_id for run_id, name in names.items()}
    for template in CROSS_FILTERS:
        text = template.format(**ids) if "{" in template else template
        expected = [names[r.info.run_id] for r in client.search_runs([experiment_id], text)]
        assert _names(search(rows, text)) == expected, text


@_mlflow_warnings
@pytest.mark.slow
def test_order_by_matches_real_mlflow(mlflow_store):
    client, experiment_id, rows, names = mlflow_store
    for order_by in CROSS_ORDERS:
        runs = client.search_runs([experiment_id], order_by=order_by)
        assert _names(search(rows, order_by=order_by)) == [names[r.info.run_id] for r in runs]


@pytest.mark.slow  # builds a real MLflow store
@_mlflow_warnings
def test_invalid_filters_are_invalid_in_real_mlflow_too(mlflow_store):
    from mlflow.exceptions import MlflowException

    client, experiment_id, _, _ = mlflow_store
    for text in ["metrics.a > 'x'", "params.s = 1", "metrics.a IS NULL", "params.s <> 'x'"]:
        with pytest.raises(MlflowException):
            client.search_runs([experiment_id], text)
        with pytest.raises(InvalidFilterError):
            compile_filter(text)
