"""Property test: random valid run filters find the same runs in nbtrack and in real MLflow.

The same runs are logged once to a real MLflow (sqlite store) and once to an nbtrack store,
through each one's MlflowClient. Hypothesis then builds filters from a small grammar —
metrics, params, tags and attributes, keys that exist and keys that do not, every
comparator, numbers (negative, tiny, huge; never NaN), strings with quotes, ``%`` and ``_``,
AND-joined — and optional order_by clauses, and both sides must return the same runs in
the same order (compared by run name: ids differ between the sides).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient

import nbtrack
from store_helpers import fluent_store

pytestmark = [
    pytest.mark.slow,  # many random filters against a real MLflow
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated"  # MLflow's SQLAlchemy usage
    ),
]

NAN, INF, MAX = float("nan"), float("inf"), 1.7976931348623157e308

# name, start_time, status (RUNNING ones have no end_time), metrics, params, tags
RUNS = [
    ("r0", 1000, "FINISHED", {"m1": 0.5, "m2": -3.0}, {"p1": "rf", "p2": "0.1"}, {"t1": "vision"}),
    ("r1", 2000, "FAILED", {"m1": -0.25, "m2": 1e10}, {"p1": "RF", "p2": "10"}, {"t1": "Vision"}),
    ("r2", 3000, "RUNNING", {"m1": 0.0}, {"p1": "it's", "p2": "-1"}, {"t1": "a%b", "t2": ""}),
    ("r3", 4000, "KILLED", {"m1": NAN, "m2": 7}, {"p1": 'say "hi"'}, {"t1": "a_b", "x.y": "v1"}),
    ("r4", 5000, "FINISHED", {"m1": INF}, {"p1": "gbm 50%", "p2": "0.10"}, {"t2": "x"}),
    ("r5", 6000, "FINISHED", {"m1": -INF, "m2": 0.5}, {"p1": "école"}, {"t1": "ÉCOLE", "t2": "é"}),
    ("r6", 7000, "RUNNING", {}, {}, {}),
    ("r7", 8000, "FINISHED", {"m1": MAX, "m2": -0.0}, {"p1": "a\nb"}, {"t1": "vision", "t2": "y"}),
    ("r8", 9000, "FAILED", {"m1": 3, "m2": 3}, {"p1": "rf", "p2": "abc"}, {"t1": "'quoted'"}),
    (
        "r9",
        10000,
        "FINISHED",
        {"m1": 1e-7, "m2": -1e-7},
        {"p1": "Rf_1", "p2": "1e3"},
        {"x.y": "v2"},
    ),
    ("r10", 11000, "KILLED", {"m2": 42.5}, {"p1": "ÉLAN", "p2": "%"}, {"t1": "_"}),
    ("r11", 12000, "FINISHED", {"m1": 0.5}, {"p1": "rf%"}, {"t1": "vision", "x.y": "v1"}),
]
END = 500  # a terminated run ends this long after its start


def log_runs(client: Any, experiment_id: str) -> dict[str, str]:
    """The runs above, logged through ``client`` (MLflow's or nbtrack's); ids by name."""
    ids = {}
    for name, start, status, metrics, params, tags in RUNS:
        run_id = client.create_run(experiment_id, start, tags, run_name=name).info.run_id
        for key, value in metrics.items():
            client.log_metric(run_id, key, value, timestamp=1, step=0)
        for key, value in params.items():
            client.log_param(run_id, key, value)
        if status != "RUNNING":
            client.set_terminated(run_id, status, end_time=start + END)
        ids[run_id] = name
    return ids


class Side:
    """One side's search: run names, in the order its search_runs returns them."""

    def __init__(self, client: Any, experiment_id: str, names: dict[str, str]) -> None:
        self.client, self.experiment_id, self.names = client, experiment_id, names

    def search(self, filter_string: str, order_by: list[str] | None) -> list[str]:
        runs = self.client.search_runs([self.experiment_id], filter_string, order_by=order_by)
        return [self.names[run.info.run_id] for run in runs]


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Side, Side]]:
    """The runs in a real MLflow sqlite store and in an nbtrack store, logged once."""
    root = tmp_path_factory.mktemp("search-properties")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    ml_client = MlflowClient(tracking_uri=uri)
    ml_experiment = ml_client.create_experiment("x", artifact_location=(root / "art").as_uri())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ml = Side(ml_client, ml_experiment, log_runs(ml_client, ml_experiment))
    with fluent_store(root):
        nb_client = nbtrack.MlflowClient()
        nb_experiment = nb_client.create_experiment("x")
        nb = Side(nb_client, nb_experiment, log_runs(nb_client, nb_experiment))
        nbtrack.flush()
        yield ml, nb


# --- the grammar the filters are drawn from -------------------------------------------------

STRING_OPS = ["=", "!=", "LIKE", "ILIKE", "like", "ilike"]
NUMERIC_OPS = ["=", "!=", "<", "<=", ">", ">="]
CASES = [str, str.upper, str.lower, str.swapcase]
TIMES = sorted({t for _, start, *_ in RUNS for t in (start, start + END)})


def _held(position: int, key: str) -> list[Any]:
    """The values the runs hold under ``key`` (metrics: 3, params: 4, tags: 5), NaN-free."""
    found = {run[position][key] for run in RUNS if key in run[position]}
    return sorted(v for v in found if v == v and v not in (INF, -INF))


# Each key (as written in a filter) with the values that clauses on it mostly compare with.
METRIC_KEYS = {key: _held(3, key) for key in ("m1", "m2", "absent")}
PARAM_KEYS = {key: _held(4, key) for key in ("p1", "p2", "absent")}
TAG_KEYS = {key: _held(5, key.strip("`")) for key in ("t1", "t2", "x.y", "`x.y`", "absent")}
ATTRIBUTE_KEYS = {
    "run_name": [name for name, *_ in RUNS],
    "`Run name`": [name for name, *_ in RUNS],
    "status": ["FINISHED", "FAILED", "KILLED", "RUNNING"],
}


def _number(value: float | int) -> str:
    """A literal both grammars read: MLflow's tokenizer has no '+' in exponents."""
    return str(value) if isinstance(value, int) else repr(value).replace("e+", "e")


def _quoted(text: str) -> str:
    """A string literal both grammars read. Neither unescapes: '' stays two quotes."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "'" + text.replace("'", "''") + "'"


def numbers(held: list[float]) -> st.SearchStrategy[float | int]:
    """Mostly the values held (so comparisons tie and split), else any finite number."""
    return st.one_of(
        *([st.sampled_from(held)] * 2 if held else []),
        st.integers(-100, 100),
        st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False),
    )


def texts(held: list[str]) -> st.SearchStrategy[str]:
    """Mostly the values held, in any letter case, else short text of awkward characters."""
    cased = st.builds(
        lambda text, case: case(text), st.sampled_from(held or [""]), st.sampled_from(CASES)
    )
    return st.one_of(
        *([cased, cased] if held else []),
        st.text(alphabet="aAbBrRfFvV %_'\"éÉ0.-", max_size=6),
    )


@st.composite
def patterns(draw: st.DrawFn, held: list[str]) -> str:
    """LIKE patterns: a value with wildcards around or inside it."""
    base = draw(texts(held))
    cut = draw(st.integers(0, len(base)))
    return draw(
        st.sampled_from(
            [base, f"{base[:cut]}%", f"%{base[cut:]}", f"%{base[:cut]}_{base[cut + 1 :]}%"]
        )
    )


def _string_clause(draw: st.DrawFn, subject: str, held: list[str], nulls: bool) -> str:
    ops = STRING_OPS + (["IS NULL", "IS NOT NULL", "is null"] if nulls else [])
    op = draw(st.sampled_from(ops))
    if op.upper().startswith("IS"):
        return f"{subject} {op}"
    value = draw(patterns(held) if "LIKE" in op.upper() else texts(held))
    return f"{subject} {op} {_quoted(value)}"


@st.composite
def clauses(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["metric", "param", "tag", "string attribute", "time"]))
    if kind == "metric":
        prefix = draw(st.sampled_from(["metrics.", "metric."]))
        key = draw(st.sampled_from(sorted(METRIC_KEYS)))
        op = draw(st.sampled_from(NUMERIC_OPS))
        return f"{prefix}{key} {op} {_number(draw(numbers(METRIC_KEYS[key])))}"
    if kind == "param":
        prefix = draw(st.sampled_from(["params.", "param.", "parameters."]))
        key = draw(st.sampled_from(sorted(PARAM_KEYS)))
        return _string_clause(draw, prefix + key, PARAM_KEYS[key], nulls=True)
    if kind == "tag":
        prefix = draw(st.sampled_from(["tags.", "tag."]))
        key = draw(st.sampled_from(sorted(TAG_KEYS)))
        return _string_clause(draw, prefix + key, TAG_KEYS[key], nulls=True)
    if kind == "string attribute":
        prefix = draw(st.sampled_from(["attributes.", "attr.", "run.", ""]))
        key = draw(st.sampled_from(sorted(ATTRIBUTE_KEYS)))
        return _string_clause(draw, prefix + key, ATTRIBUTE_KEYS[key], nulls=False)
    subject = draw(st.sampled_from(["attributes.start_time", "end_time", "attributes.created"]))
    value = draw(st.one_of(st.sampled_from(TIMES), st.integers(-10, 20_000)))
    return f"{subject} {draw(st.sampled_from(NUMERIC_OPS))} {value}"


filters = st.tuples(
    st.sampled_from([" and ", " AND "]), st.lists(clauses(), min_size=1, max_size=3)
).map(lambda chosen: chosen[0].join(chosen[1]))
ORDER_FIELDS = [
    "metrics.m1",
    "metrics.m2",
    "metrics.absent",
    "params.p1",
    "params.p2",
    "tags.t1",
    "tags.`x.y`",
    "attributes.run_name",
    "attributes.status",
    "attributes.start_time",
    "attributes.end_time",
]
order_bys = st.one_of(
    st.none(),
    st.lists(
        st.tuples(st.sampled_from(ORDER_FIELDS), st.sampled_from(["", " ASC", " DESC"])),
        min_size=1,
        max_size=2,
        unique_by=lambda clause: clause[0],
    ).map(lambda chosen: [field + direction for field, direction in chosen]),
)


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(filter_string=filters, order_by=order_bys)
def test_random_filters_find_the_same_runs_as_mlflow(
    sides: tuple[Side, Side], filter_string: str, order_by: list[str] | None
) -> None:
    ml, nb = sides
    assert nb.search(filter_string, order_by) == ml.search(filter_string, order_by)
