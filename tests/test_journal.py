"""The journal: append-only JSON lines, exact non-finite floats, torn and corrupt records."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbtrack.store import records
from nbtrack.store.journal import (
    Journal,
    TornRecordWarning,
    decode_float,
    dumps,
    encode_float,
    read_records,
    repair_tail,
)
from nbtrack.store.records import latest_point, metric_columns, metric_records


def _read_quietly(path: Path, **kwargs) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean journal must not warn
        return list(read_records(path, **kwargs))


def test_append_and_read_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    records = [
        {"op": "create", "run": {"run_id": "abc", "tags": {"k": "v"}}},
        {"op": "params", "params": {"lr": "0.1", "名前": "値"}},
        {"op": "tags", "tags": {"a": "b"}},
    ]
    with Journal(path) as journal:
        journal.append(records[0])
        journal.append_many(records[1:])
        journal.append_many([])  # a no-op, not an empty line
        journal.sync()

    assert _read_quietly(path) == records
    assert path.read_bytes().count(b"\n") == 3
    assert path.read_bytes() == b"".join(dumps(r) for r in records)


def test_appends_never_rewrite_earlier_bytes(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.append({"op": "tags", "tags": {"a": "1"}})
    before = path.read_bytes()
    with Journal(path) as journal:  # a second opening appends, never truncates
        journal.append({"op": "tags", "tags": {"a": "2"}})
    after = path.read_bytes()
    assert after.startswith(before)
    assert [r["tags"]["a"] for r in _read_quietly(path)] == ["1", "2"]


def test_missing_journal_reads_as_empty(tmp_path: Path) -> None:
    assert _read_quietly(tmp_path / "absent.jsonl") == []
    repair_tail(tmp_path / "absent.jsonl")  # nothing to mend, no error
    assert not (tmp_path / "absent.jsonl").exists()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-308, 1.5])
def test_encode_float_round_trips(value: float) -> None:
    decoded = decode_float(encode_float(value))
    if math.isnan(value):
        assert math.isnan(decoded)
    else:
        assert decoded == value
        assert math.copysign(1, decoded) == math.copysign(1, value)


def _flat(points: list[tuple]) -> list:
    """Points as the flat buffer RunWriter keeps: key, value, step, time, key, ..."""
    return [item for point in points for item in point]


def test_nonfinite_metric_values_round_trip_exactly(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    values = [1.0, math.nan, math.inf, -math.inf, 2.5]
    points = [("loss", v, step, 1000.0 + step) for step, v in enumerate(values)]
    with Journal(path) as journal:
        journal.append_many(metric_records(_flat(points)))

    raw = path.read_bytes()
    assert b"null" not in raw  # orjson alone would have written null for NaN/inf
    (record,) = _read_quietly(path)
    steps, got, times = metric_columns(record)
    assert math.isnan(got[1])
    assert got[0] == 1.0 and got[2] == math.inf and got[3] == -math.inf and got[4] == 2.5
    assert steps.tolist() == [0, 1, 2, 3, 4]
    assert times.tolist() == [1000, 1001, 1002, 1003, 1004]
    assert record["n"] == 5
    assert record["latest"] == [2.5, 4, 1004]


def test_timestamps_are_truncated_to_milliseconds_as_mlflow_does() -> None:
    (record,) = metric_records(_flat([("m", 1.0, 0, 1000.9), ("m", 2.0, 1, 1001.2)]))
    assert metric_columns(record)[2].tolist() == [1000, 1001]


def test_huge_finite_values_are_kept_exactly(tmp_path: Path) -> None:
    points = [("m", 1e308, 0, 1.0), ("m", 1.7976931348623157e308, 1, 2.0)]
    (record,) = metric_records(_flat(points))
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.append_many([record])
    (back,) = _read_quietly(path)
    assert metric_columns(back)[1].tolist() == [1e308, 1.7976931348623157e308]


def test_records_group_points_by_key() -> None:
    points = [("a", 1.0, 0, 10.0), ("b", 2.0, 0, 10.0), ("a", 3.0, 1, 11.0)]
    records = {r["key"]: r for r in metric_records(_flat(points))}
    assert set(records) == {"a", "b"}
    steps, values, _ = metric_columns(records["a"])
    assert steps.tolist() == [0, 1] and values.tolist() == [1.0, 3.0]
    assert metric_columns(records["b"])[1].tolist() == [2.0]
    assert records["a"]["latest"] == [3.0, 1, 11] and records["b"]["latest"] == [2.0, 0, 10]


def test_latest_point_is_max_step_then_time_then_value() -> None:
    steps = np.array([5, 7, 7, 7, 3])
    times = np.array([900, 100, 200, 200, 999])
    values = np.array([50.0, 1.0, 2.0, 3.0, 99.0])
    assert latest_point(steps, values, times) == [3.0, 7, 200]


def test_latest_point_ranks_nan_as_zero_on_a_tie() -> None:
    steps, times = np.array([1, 1]), np.array([5, 5])
    assert latest_point(steps, np.array([math.nan, 0.5]), times) == [0.5, 1, 5]
    nan_wins = latest_point(steps, np.array([math.nan, -0.5]), times)
    assert math.isnan(nan_wins[0]) and nan_wins[1:] == [1, 5]


def test_torn_last_record_is_skipped_with_a_warning_and_repaired(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    good = [{"op": "tags", "tags": {"n": str(i)}} for i in range(3)]
    with Journal(path) as journal:
        journal.append_many(good)
    intact = path.read_bytes()
    with open(path, "ab") as handle:  # a crash mid-write: half a record, no newline
        handle.write(b'{"op":"tags","tags":{"n":"3')

    with pytest.warns(TornRecordWarning, match="line 4"):
        assert list(read_records(path)) == good
    assert path.read_bytes() != intact  # reading does not mend

    with pytest.warns(TornRecordWarning, match="removed"):
        repair_tail(path)
    assert path.read_bytes() == intact
    assert _read_quietly(path) == good

    # New records after the repair follow a complete line.
    with Journal(path) as journal:
        journal.append({"op": "tags", "tags": {"n": "4"}})
    assert [r["tags"]["n"] for r in _read_quietly(path)] == ["0", "1", "2", "4"]


def test_repair_tail_leaves_a_clean_journal_alone(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.append({"op": "tags", "tags": {}})
    before = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        repair_tail(path)
    assert path.read_bytes() == before


def test_repair_tail_of_a_single_torn_record_empties_the_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"op":"create","run":{"run_i')
    with pytest.warns(TornRecordWarning):
        repair_tail(path)
    assert path.read_bytes() == b""


def test_repair_tail_finds_a_newline_far_back(tmp_path: Path) -> None:
    # A torn record longer than the 64 KiB block repair_tail reads backwards in.
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.append({"op": "tags", "tags": {"a": "1"}})
    intact = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(b'{"op":"text","text":"' + b"x" * 200_000)
    with pytest.warns(TornRecordWarning):
        repair_tail(path)
    assert path.read_bytes() == intact


def test_corrupt_middle_line_is_skipped_and_later_lines_still_read(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    first, last = {"op": "tags", "tags": {"a": "1"}}, {"op": "tags", "tags": {"b": "2"}}
    path.write_bytes(dumps(first) + b'{"op":"tags","ta\x00\xff garbage\n' + dumps(last))
    with pytest.warns(TornRecordWarning, match="line 2.*not valid JSON"):
        assert list(read_records(path)) == [first, last]


def test_read_records_prefix_filters_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    records = metric_records(_flat([("loss", 1.0, 0, 1.0), ("acc", 0.5, 0, 1.0)]))
    with Journal(path) as journal:
        journal.append({"op": "params", "params": {"lr": "0.1"}})
        journal.append_many(records)
        journal.append({"op": "artifact", "path": "a.txt", "size": 1, "sha256": "0" * 64})

    loss = _read_quietly(path, prefix=b'{"op":"metrics","key":"loss",')
    assert [r["key"] for r in loss] == ["loss"]
    artifacts = _read_quietly(path, prefix=b'{"op":"artifact"')
    assert [r["path"] for r in artifacts] == ["a.txt"]
    assert len(_read_quietly(path, prefix=b'{"op":"metrics"')) == 2
    assert _read_quietly(path, prefix=b'{"op":"nothing"') == []


def test_prefix_filter_does_not_hide_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(dumps({"op": "params", "params": {}}) + b'{"op":"metr')
    with pytest.warns(TornRecordWarning):
        assert list(read_records(path, prefix=b'{"op":"metrics"')) == []


def test_large_batch_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    n = 200_000
    points = [("loss", 1.0 / (i + 1), i, 1_700_000_000_000.0 + i) for i in range(n)]
    points[12_345] = ("loss", math.nan, 12_345, 1_700_000_012_345.0)
    with Journal(path) as journal:
        journal.append_many(metric_records(_flat(points)))
        journal.sync()

    (record,) = _read_quietly(path)
    steps, values, times = metric_columns(record)
    assert len(values) == n == len(steps) == len(times) == record["n"]
    assert steps.tolist() == list(range(n))
    assert times[-1] == 1_700_000_000_000 + n - 1
    assert values[0] == 1.0 and values[-1] == 1.0 / n
    assert math.isnan(values[12_345])
    finite = [v for i, v in enumerate(values) if i != 12_345]
    assert finite == [1.0 / (i + 1) for i in range(n) if i != 12_345]


points_strategy = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0])),
        st.integers(min_value=-5, max_value=5),
        st.floats(min_value=0, max_value=2e12, allow_nan=False),
    ),
    min_size=1,
    max_size=80,
)


@given(points_strategy)
@settings(max_examples=300, deadline=None)
@pytest.mark.slow
def test_small_groups_pack_the_same_bytes_without_numpy(points) -> None:
    """A key's few points are packed with struct: the records equal numpy's, byte for byte."""
    fast = metric_records(_flat(points))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(records, "SMALL_GROUP", 0)
        slow = metric_records(_flat(points))
    assert orjson.dumps(fast) == orjson.dumps(slow)
