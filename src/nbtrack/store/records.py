"""The records a run's journal holds, and how each one changes the run's catalog row.

Every record is a dict with an ``op``:

===========  =================================================================
create       the run's first row: ids, name, times, status, user, system tags
params       ``params``: {key: value}, values are immutable once logged
tags         ``tags``: {key: value}
untag        ``key``: a tag removed
metrics      ``key``, ``n`` and the packed columns ``step``, ``value``, ``time`` (ms)
artifact     ``path``, ``size``, ``sha256`` of a file under the run's artifacts
set          ``fields``: top-level row fields changed (status, end_time, lifecycle, ...)
cell         the notebook cell that made the run: source, execution_count, cell_id, notebook
traceback    ``text`` of the error that failed the run
input        ``dataset`` (name, digest, source_type, source, schema, profile) and input
             ``tags``, as MLflow's log_input; ``n``: the run's distinct inputs so far
environment  ``digest`` of the session's environment file (``environments/<digest>.json``)
trace        the cells executed before the run: ``session``, ``cells`` (how many), the
             ``slice`` the run depends on (cells with source), ``stale`` (a reason or None)
model        a model logged in the run as MLflow 3 records one (its LoggedModel): ``model_id``
             and the fields set or changed (``name``, ``status``, ``tags`` merged, ``untag``,
             ``params``, ``output_step``...); later records of a model_id update earlier ones
===========  =================================================================
"""

from __future__ import annotations

import base64
import struct
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from nbtrack.store.journal import decode_float, encode_float
from nbtrack.store.rows import Patch, nan_as_zero

if TYPE_CHECKING:
    import numpy as np

    MetricColumns = tuple[np.ndarray, np.ndarray, np.ndarray]

# A run's metric buffer is one flat list, four items a point: key, value, step, timestamp
# (ms, a float until flushed). Appending a 4-tuple with list.extend is cheaper than
# appending a tuple object, and creates nothing the garbage collector must track.
POINT_WIDTH = 4


Record = dict[str, Any]  # one journal line; build it with the constructors below


class CellRecord(TypedDict):
    op: Literal["cell"]
    source: str  # redacted
    execution_count: int
    cell_id: str | None
    notebook: str | None


class InputRecord(TypedDict):
    op: Literal["input"]
    dataset: dict[str, Any]  # name, digest, source_type, source, schema, profile
    tags: dict[str, str]
    n: int


class ArtifactRecord(TypedDict):
    op: Literal["artifact"]
    path: str
    size: int
    sha256: str


# The constructors put ``op`` first: readers select records by the line's first bytes.


def create_record(row: dict[str, Any]) -> Record:
    return {"op": "create", "run": row}


def params_record(params: dict[str, str]) -> Record:
    return {"op": "params", "params": params}


def tags_record(tags: dict[str, str]) -> Record:
    return {"op": "tags", "tags": tags}


def untag_record(key: str) -> Record:
    return {"op": "untag", "key": key}


def fields_record(**fields: Any) -> Record:
    """Top-level row fields: status, end_time, lifecycle_stage, run_name, error..."""
    return {"op": "set", "fields": fields}


def artifact_record(path: str, size: int, sha256: str) -> ArtifactRecord:
    return {"op": "artifact", "path": path, "size": size, "sha256": sha256}


def cell_record(
    source: str, execution_count: int, cell_id: str | None, notebook: str | None
) -> CellRecord:
    return {
        "op": "cell",
        "source": source,
        "execution_count": execution_count,
        "cell_id": cell_id,
        "notebook": notebook,
    }


def traceback_record(text: str) -> Record:
    return {"op": "traceback", "text": text}


def input_record(dataset: dict[str, Any], tags: dict[str, str], n: int) -> InputRecord:
    return {"op": "input", "dataset": dataset, "tags": tags, "n": n}


def environment_record(digest: str) -> Record:
    return {"op": "environment", "digest": digest}


def trace_record(**fields: Any) -> Record:
    """session, cells, slice, stale, reasons, cwd, autolog (see capture/trace.py)."""
    return {"op": "trace", **fields}


def model_record(model_id: str, **fields: Any) -> Record:
    """A logged model's fields, new or changed (the MLflow plugin's LoggedModel)."""
    return {"op": "model", "model_id": model_id, **fields}


def line_prefix(op: str) -> bytes:
    """The bytes every journal line of kind ``op`` starts with."""
    return b'{"op":"' + op.encode("ascii") + b'"'


def to_patch(record: dict[str, Any]) -> Patch | None:
    """The catalog patch a journal record implies, or None if the catalog ignores it."""
    op = record.get("op")  # a damaged record without one changes nothing
    if op == "create":
        run = dict(record["run"])
        return {"set": run, "tags": run.pop("tags", {})}
    if op == "params":
        return {"params": record["params"]}
    if op == "tags":
        return {"tags": record["tags"]}
    if op == "untag":
        return {"untag": [record["key"]]}
    if op == "set":
        return {"set": record["fields"]}
    if op == "metrics":
        value, step, time = record["latest"]
        return {"metrics": {record["key"]: [decode_float(value), step, time]}}
    if op == "cell":
        return {"set": {"cell": {k: v for k, v in record.items() if k not in ("op", "source")}}}
    # Provenance (autolog and capture): the catalog keeps a count, a digest and a reason;
    # the datasets, the environment and the cell slice stay in the journal and the store.
    if op == "input":
        return {"set": {"inputs": record["n"]}}
    if op == "environment":
        return {"set": {"environment": record["digest"]}}
    if op == "trace":
        return {"set": {"stale": record["stale"]}} if record.get("stale") else None
    if op == "model":  # the models stay in the journal; the row says there are some
        return {"set": {"logged_models": True}}
    return None


def metric_records(buffer: list) -> list[dict[str, Any]]:
    """Encode a flat buffer of points as one record per metric key.

    Columns are packed little-endian (``step``, ``time``: int64; ``value``: float64) and
    base64-encoded, so NaN and infinities survive, and a million points cost one
    memcpy to read back instead of a million float parses. numpy does the packing (struct,
    for a key's few points).
    Each record also names its ``latest`` point, so folding a journal never unpacks.
    """
    keys = buffer[0::POINT_WIDTH]
    values, steps, times = buffer[1::POINT_WIDTH], buffer[2::POINT_WIDTH], buffer[3::POINT_WIDTH]
    if len(set(keys)) == 1:  # the usual batch: one metric in a loop
        groups = {keys[0]: (values, steps, times)}
    else:
        groups = _group_by_key(keys, values, steps, times)
    records = []
    for key, (key_values, key_steps, key_times) in groups.items():
        if len(key_values) <= SMALL_GROUP:
            records.append(_small_record(key, key_values, key_steps, key_times))
            continue
        import numpy as np

        columns = (
            np.asarray(key_steps, dtype="<i8"),
            np.asarray(key_values, dtype="<f8"),
            np.asarray(key_times, dtype="<f8").astype("<i8"),  # ms, truncated as MLflow does
        )
        value, step, time = latest_point(*columns)
        records.append(
            {
                "op": "metrics",
                "key": key,
                "n": len(key_values),
                "latest": [encode_float(value), step, time],
                "step": _pack(columns[0]),
                "value": _pack(columns[1]),
                "time": _pack(columns[2]),
            }
        )
    return records


# Up to this many points of one key are packed without numpy, whose per-array overhead
# dominates small batches (a run's handful of final metrics); the bytes are the same.
SMALL_GROUP = 32


def _small_record(key: str, values: list, steps: list, times: list) -> dict[str, Any]:
    """:func:`metric_records`' record for one key's few points, packed with ``struct``."""
    count = len(values)
    steps = [int(s) for s in steps]
    times = [int(float(t)) for t in times]  # ms, truncated as numpy's astype does
    ranked = [(s, t, nan_as_zero(v)) for s, t, v in zip(steps, times, values, strict=True)]
    at = max(range(count), key=ranked.__getitem__)  # the first of equal maxima, as argmax
    return {
        "op": "metrics",
        "key": key,
        "n": count,
        "latest": [encode_float(float(values[at])), int(steps[at]), times[at]],
        "step": _encode(struct.pack(f"<{count}q", *steps)),
        "value": _encode(struct.pack(f"<{count}d", *values)),
        "time": _encode(struct.pack(f"<{count}q", *times)),
    }


def metric_columns(record: dict[str, Any]) -> MetricColumns:
    """The (steps, values, timestamps) columns of a metrics record, as numpy arrays."""
    return (
        _unpack(record["step"], "<i8"),
        _unpack(record["value"], "<f8"),
        _unpack(record["time"], "<i8"),
    )


def latest_point(steps: Any, values: Any, times: Any) -> list:
    """The point MLflow would call latest: max by (step, time, value), as [value, step, time].

    As in MLflow, a NaN value ranks as 0 in that order.
    """
    import numpy as np

    candidates = np.flatnonzero(steps == steps.max())
    if len(candidates) > 1:
        candidates = candidates[times[candidates] == times[candidates].max()]
    if len(candidates) > 1:
        ranked = np.nan_to_num(values[candidates], nan=0.0, posinf=np.inf, neginf=-np.inf)
        candidates = candidates[[int(np.argmax(ranked))]]
    at = int(candidates[0])
    return [float(values[at]), int(steps[at]), int(times[at])]


def _group_by_key(keys: list, values: list, steps: list, times: list) -> dict[str, tuple]:
    groups: dict[str, tuple[list, list, list]] = {}
    for key, value, step, time in zip(keys, values, steps, times, strict=True):
        group = groups.get(key)
        if group is None:
            group = groups[key] = ([], [], [])
        group[0].append(value)
        group[1].append(step)
        group[2].append(time)
    return groups


def _pack(column: Any) -> str:
    return _encode(column.tobytes())


def _encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unpack(text: str, dtype: str) -> Any:
    import numpy as np

    return np.frombuffer(base64.b64decode(text), dtype=dtype)
