"""Every validation rule, with its exact message; a rejected call changes nothing on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from nbtrack.errors import InvalidParameterError
from nbtrack.validation import (
    MAX_EXPERIMENT_NAME_LENGTH,
    MAX_KEY_LENGTH,
    MAX_PARAM_VALUE_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    check_experiment_name,
    check_key,
    check_param_value,
    check_tag_value,
    metric_step,
    metric_timestamp,
    metric_value,
)

KEY_RULE = (
    "keys are 1 to 250 characters of letters, digits, '_', '-', '.', '/' and spaces, and must "
    "not look like a path that resolves elsewhere ('..', '//', leading '/')."
)
BAD_KEYS = ["", "a:b", "a*b", "..", "a/../b", "/a", "a//b", "./a", "a/", ".", "a\tb", "a\nb"]
GOOD_KEYS = ["lr", "a b", "a.b", "a/b", "val/loss.1", "a-b_c", "é", "名前", "ß/ü x", "x" * 250]


def test_limits_are_mlflows() -> None:
    assert MAX_KEY_LENGTH == 250
    assert MAX_PARAM_VALUE_LENGTH == 6000
    assert MAX_TAG_VALUE_LENGTH == 8000
    assert MAX_EXPERIMENT_NAME_LENGTH == 500


# -- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize("kind", ["metric", "param", "tag"])
def test_bad_keys_are_refused_with_the_rule(kind: str, key: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        check_key(key, kind)
    assert str(caught.value) == f"Invalid {kind} key {key!r}: {KEY_RULE}"
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_too_long_key_is_shown_shortened() -> None:
    key = "k" * 251
    with pytest.raises(InvalidParameterError) as caught:
        check_key(key, "metric")
    assert str(caught.value) == f"Invalid metric key {'k' * 57 + '...'!r}: {KEY_RULE}"


def test_non_string_key() -> None:
    with pytest.raises(InvalidParameterError) as caught:
        check_key(3, "param")
    assert str(caught.value) == "Invalid param key 3: keys are strings, got int."
    with pytest.raises(InvalidParameterError, match="got NoneType"):
        check_key(None, "tag")


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_good_keys_are_accepted(key: str) -> None:
    assert check_key(key, "metric") == key


# -- values --------------------------------------------------------------------------------------


def test_param_value_limit() -> None:
    assert check_param_value("k", "x" * 6000) == "x" * 6000
    assert check_param_value("k", 0.1) == "0.1"
    assert check_param_value("k", None) == "None"
    with pytest.raises(InvalidParameterError) as caught:
        check_param_value("big", "x" * 6001)
    assert str(caught.value) == (
        "Param 'big' has a value of 6001 characters; param values may have at most 6000. "
        "Log long text with log_text() instead."
    )


def test_tag_value_limit() -> None:
    assert check_tag_value("k", "x" * 8000) == "x" * 8000
    assert check_tag_value("k", 3) == "3"
    with pytest.raises(InvalidParameterError) as caught:
        check_tag_value("note", "x" * 8001)
    assert str(caught.value) == (
        "Tag 'note' has a value of 8001 characters; tag values may have at most 8000. "
        "Log long text with log_text() instead."
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1.0), (0.5, 0.5), (np.float32(0.5), 0.5), (np.int64(3), 3.0), (np.bool_(True), None)],
)
def test_metric_values_accepted(value, expected) -> None:
    if expected is None:  # numpy bools are not numbers.Real: refused like Python bools
        with pytest.raises(InvalidParameterError):
            metric_value("m", value)
        return
    got = metric_value("m", value)
    assert got == expected and type(got) is float


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (True, "True (bool)"),
        ("0.5", "'0.5' (str)"),
        (None, "None (NoneType)"),
        (1j, "1j (complex)"),
    ],
)
def test_metric_values_refused(value, shown: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        metric_value("acc", value)
    assert str(caught.value) == (
        f"Metric 'acc' got {shown}; metric values must be real numbers (int, float or a "
        "numpy number; NaN and infinities are allowed)."
    )


def test_metric_steps() -> None:
    assert metric_step("m", 3) == 3
    assert metric_step("m", np.int64(4)) == 4 and type(metric_step("m", np.int64(4))) is int
    assert metric_step("m", -1) == -1  # MLflow allows negative steps
    for bad, shown in [(1.5, "1.5"), (2.0, "2.0"), (True, "True"), ("3", "'3'")]:
        with pytest.raises(InvalidParameterError) as caught:
            metric_step("m", bad)
        assert str(caught.value) == (
            f"Metric 'm' got step={shown}; steps must be integers (e.g. the epoch number)."
        )


def test_metric_timestamps() -> None:
    assert metric_timestamp("m", 0) == 0
    assert metric_timestamp("m", np.int64(1_700_000_000_000)) == 1_700_000_000_000
    for bad, shown in [(-1, "-1"), (1.5, "1.5"), ("1", "'1'")]:
        with pytest.raises(InvalidParameterError) as caught:
            metric_timestamp("m", bad)
        assert str(caught.value) == (
            f"Metric 'm' got timestamp={shown}; timestamps are non-negative integers of "
            "milliseconds since the epoch."
        )


def test_experiment_names() -> None:
    assert check_experiment_name("churn") == "churn"
    assert check_experiment_name("x" * 500) == "x" * 500
    for bad in ["", "   ", None, 3]:
        with pytest.raises(InvalidParameterError) as caught:
            check_experiment_name(bad)
        assert str(caught.value) == f"Invalid experiment name {bad!r}: names are non-empty strings."
    with pytest.raises(InvalidParameterError) as caught:
        check_experiment_name("x" * 501)
    assert str(caught.value) == "Experiment name of 501 characters is too long; the limit is 500."


# -- through the API: the store is left exactly as it was ---------------------------------------


def _tree(tracking) -> dict[str, bytes]:
    tracking.flush()
    root = Path(unquote(urlparse(tracking.get_tracking_uri()).path))
    return {
        p.relative_to(root).as_posix(): (b"<dir>" if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.name != "store.lock"
    }


REJECTED_CALLS: list[tuple[str, Callable, str]] = [
    ("metric key", lambda t: t.log_metric("a:b", 1.0), "Invalid metric key 'a:b'"),
    ("metric value", lambda t: t.log_metric("m", "1"), "Metric 'm' got '1' (str)"),
    ("metric bool", lambda t: t.log_metric("m", True), "Metric 'm' got True (bool)"),
    ("metric step", lambda t: t.log_metric("m", 1.0, step=1.5), "step=1.5"),
    ("metric time", lambda t: t.log_metric("m", 1.0, timestamp=-5), "timestamp=-5"),
    ("metrics batch", lambda t: t.log_metrics({"ok": 1.0, "bad": None}), "Metric 'bad'"),
    ("metrics key", lambda t: t.log_metrics({"ok": 1.0, "/abs": 2.0}), "Invalid metric key"),
    ("param key", lambda t: t.log_param("a/../b", 1), "Invalid param key 'a/../b'"),
    (
        "param value",
        lambda t: t.log_param("big", "x" * 6001),
        "Param 'big' has a value of 6001 characters; param values may have at most 6000",
    ),
    (
        "params batch",
        lambda t: t.log_params({"ok": 1, "big": "x" * 6001}),
        "Param 'big' has a value of 6001",
    ),
    ("tag key", lambda t: t.set_tag("a*b", "v"), "Invalid tag key 'a*b'"),
    (
        "tag value",
        lambda t: t.set_tag("note", "x" * 8001),
        "Tag 'note' has a value of 8001 characters; tag values may have at most 8000",
    ),
    ("tags batch", lambda t: t.set_tags({"ok": "1", "a//b": "2"}), "Invalid tag key 'a//b'"),
    ("experiment empty", lambda t: t.create_experiment(""), "Invalid experiment name ''"),
    (
        "experiment long",
        lambda t: t.create_experiment("x" * 501),
        "Experiment name of 501 characters is too long; the limit is 500.",
    ),
    ("set experiment", lambda t: t.set_experiment(""), "Invalid experiment name ''"),
    ("experiment tag", lambda t: t.create_experiment("e", tags={"..": "v"}), "Invalid tag key"),
]


@pytest.mark.parametrize(
    ("call", "message"), [c[1:] for c in REJECTED_CALLS], ids=[c[0] for c in REJECTED_CALLS]
)
def test_rejected_call_in_a_run_changes_nothing(tracking, call, message: str) -> None:
    with tracking.start_run() as run:
        tracking.log_param("existing", 1)
        tracking.log_metric("m", 1.0)
        before = _tree(tracking)
        with pytest.raises(InvalidParameterError, match=_escape(message)):
            call(tracking)
        assert run.writer.points == []
        assert _tree(tracking) == before
        assert tracking.active_run().info.run_id == run.info.run_id
    data = tracking.get_run(run.info.run_id).data
    assert data.params == {"existing": "1"}
    assert data.metrics == {"m": 1.0}


@pytest.mark.parametrize(
    ("call", "message"), [c[1:] for c in REJECTED_CALLS], ids=[c[0] for c in REJECTED_CALLS]
)
def test_rejected_call_without_a_run_starts_none(tracking, call, message: str) -> None:
    before = _tree(tracking)
    with pytest.raises(InvalidParameterError, match=_escape(message)):
        call(tracking)
    assert tracking.active_run() is None
    assert _tree(tracking) == before


def test_limits_are_inclusive_through_the_api(tracking) -> None:
    with tracking.start_run() as run:
        tracking.log_param("p", "x" * 6000)
        tracking.set_tag("t", "y" * 8000)
        tracking.log_metric("k" * 250, 1.0, step=np.int64(2))
        tracking.log_metric("名前 a/b.c", 2.0)
    data = tracking.get_run(run.info.run_id).data
    assert data.params["p"] == "x" * 6000
    assert data.tags["t"] == "y" * 8000
    assert data.metrics == {"k" * 250: 1.0, "名前 a/b.c": 2.0}
    assert tracking.create_experiment("e" * 500)


def _escape(text: str) -> str:
    import re

    return re.escape(text)
