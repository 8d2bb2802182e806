"""The runs table held as columns, so search and the snapshot never build a dict per run.

A row is a dict (see rows.RunRow). :class:`RunColumns` keeps the same rows as:

- one *field column* per top-level field: a code per row (-1 where the row lacks the
  field) into the field's distinct values, or, for a field that is the row's id with a
  fixed prefix and suffix (``run_id``, ``artifact_uri``), just which rows have it;
- one *sparse column* per param, tag and metric key: the rows that have the key, in
  ascending order, beside their value codes (params, tags) or their latest point as
  three arrays (metrics: value, step, timestamp).

A ``RunColumns`` never changes once built: :meth:`RunColumns.replaced` returns a new
one with some rows replaced or added, sharing the distinct values (which only grow).
:meth:`RunColumns.encode` and :func:`decode` turn it into a JSON-able description plus
numpy arrays and back, for the catalog's snapshot file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np
import orjson

from nbtrack.store.rows import copy_value, from_disk, to_disk

PARAMS, TAGS, METRICS = "params", "tags", "metrics"
SPARSE_FIELDS = (PARAMS, TAGS, METRICS)
_ABSENT = object()
_METRIC_DTYPES = ("<f8", "<i8", "<i8")  # value, step, timestamp


# -- distinct values -----------------------------------------------------------------------


def _value_key(value: Any) -> Any:
    """A hashable key that only equal JSON values share (str, the common case, as itself)."""
    kind = type(value)
    if kind is str:
        return value
    if kind in (int, float, bool) or value is None:
        return (kind, value)
    return (kind, repr(value))  # dicts and lists; equal reprs mean equal values


# Values of these types can be their own lookup keys as long as one column mixes at
# most one of the numeric ones: 1, 1.0 and True are equal as dict keys, and dicts and
# lists cannot be keys at all.
_PLAIN = frozenset({str, type(None)})
_NUMERIC = frozenset({int, float, bool})


def _plain_keys(kinds: set[type]) -> bool:
    return kinds <= _PLAIN | _NUMERIC and len(kinds & _NUMERIC) <= 1


class Values:
    """The distinct values of one column, in order of first use; append-only, so codes
    given out stay valid for every ``RunColumns`` that shares it.

    ``make`` builds the list on first use (values decoded from a snapshot, or derived
    from the run ids), ``count`` says how long it will be; values appended before that
    wait beside it. :meth:`code` finds a value's code exhaustively (a lookup over every
    value, built once: what a snapshot needs, so it holds each value once) or cheaply
    (only among the values appended so far, so a search over a just-read snapshot plus
    a few changed runs looks up no snapshot values; a value may then appear twice,
    which changes nothing that reads it).
    """

    __slots__ = (
        "__weakref__",
        "_count",
        "_extra",
        "_floats",
        "_items",
        "_kinds",
        "_lookup",
        "_make",
        "_objects",
        "_recent",
        "_types",
        "_types_upto",
    )

    def __init__(
        self,
        items: list | None = None,
        make: Callable[[], list] | None = None,
        count: int | None = None,
        floats: np.ndarray | None = None,
    ):
        self._items = items if items is not None or make is not None else []
        self._make = make
        self._count = count
        self._extra: list = []  # appended while the list is not made yet
        self._lookup: dict[Any, int] | None = None  # every value, once built
        self._recent: dict[Any, int] = {}  # values appended by cheap lookups
        self._kinds: set[type] | None = None  # the values' types while they are their own keys
        self._objects: np.ndarray | None = None
        self._floats = floats
        self._types: set[type] = set()  # the types of the first _types_upto values
        self._types_upto = 0

    @property
    def items(self) -> list:
        if self._items is None:
            made = self._make() if self._make is not None else []
            self._items, self._extra = made + self._extra, []
        return self._items

    def __len__(self) -> int:
        if self._items is None and self._count is not None:
            return self._count + len(self._extra)
        return len(self.items)

    def objects(self) -> np.ndarray:
        """The values as an object array, with None after them (for code -1)."""
        items = self.items
        if self._objects is None or len(self._objects) != len(items) + 1:
            self._objects = np.fromiter([*items, None], dtype=object, count=len(items) + 1)
        return self._objects

    def mark_types(self, types: set[type], count: int) -> None:
        """Say what types the first ``count`` values have (known when decoded)."""
        self._types, self._types_upto = set(types), count

    def types(self) -> set[type]:
        """The types of the values (each value looked at once)."""
        if self._items is None and self._types_upto == self._count:
            return self._types | set(map(type, self._extra))  # without making the list
        items = self.items
        if self._types_upto < len(items):
            self._types |= set(map(type, items[self._types_upto :]))
            self._types_upto = len(items)
        return self._types

    def all_text(self) -> bool:
        """True if every value is a string."""
        return self.types() <= {str}

    def floats(self) -> np.ndarray:
        """The values as floats (NaN for what is not a number), with NaN after them;
        extended as values are appended (decoded numbers are never made into a list)."""
        known = 0 if self._floats is None else len(self._floats) - 1
        if known < len(self):
            if self._items is None and known >= self._count:
                added = self._extra[known - self._count :]
            else:
                added = self.items[known:]
            numbers = [float(v) if type(v) in (int, float) else math.nan for v in added]
            before = self._floats[:-1] if self._floats is not None else np.zeros(0)
            self._floats = np.concatenate([before, np.array(numbers, dtype=float), [math.nan]])
        return self._floats

    def code(self, value: Any, exhaustive: bool = True) -> int:
        """The code of ``value``, appending it if it is not found (see the class)."""
        if self._lookup is None and not exhaustive:
            key = _value_key(value)
            code = self._recent.get(key)
            if code is None:
                code = self._recent[key] = self._append(value)
            return code
        if self._lookup is None:
            self._build_lookup()
        kinds = self._kinds
        if kinds is not None and type(value) not in kinds:
            if _plain_keys(kinds | {type(value)}):
                kinds.add(type(value))
            else:
                self._kinds = kinds = None
                self._lookup = {_value_key(v): i for i, v in enumerate(self.items)}
        lookup = self._lookup
        key = value if kinds is not None else _value_key(value)
        code = lookup.get(key)
        if code is None:
            code = lookup[key] = self._append(value)
        return code

    def codes_of(self, values: list, exhaustive: bool = True) -> list[int]:
        """:meth:`code` of each of ``values``, in one pass (the way a snapshot's worth of
        rows is coded without a call per value)."""
        if exhaustive and self._lookup is None:
            self._build_lookup()
        types = set(map(type, values))
        if self._lookup is not None:
            kinds = self._kinds
            if kinds is None or not _plain_keys(kinds | types):
                return [self.code(v, exhaustive) for v in values]
            kinds |= types
            table, keys = self._lookup, values
        else:
            table = self._recent
            keys = values if types <= {str} else list(map(_value_key, values))
        get = table.get
        codes = [get(k) for k in keys]
        if None in codes:  # values not seen before: appended in order, each once
            for i, key in enumerate(keys):
                if codes[i] is None:
                    code = get(key)
                    if code is None:
                        code = table[key] = self._append(values[i])
                    codes[i] = code
        return codes

    def _append(self, value: Any) -> int:
        code = len(self)
        if self._items is None:
            self._extra.append(value)
        else:
            self._items.append(value)
        return code

    def _build_lookup(self) -> None:
        items = self.items
        kinds = set(map(type, items))
        if _plain_keys(kinds):  # the common case, at C speed
            self._kinds, self._lookup = kinds, dict(zip(items, range(len(items)), strict=True))
        else:
            self._kinds, self._lookup = None, {_value_key(v): i for i, v in enumerate(items)}


# -- field columns --------------------------------------------------------------------------


class Coded:
    """A top-level field: a code per row into its distinct values (-1: no such field)."""

    __slots__ = ("codes", "values")

    def __init__(self, codes: np.ndarray, values: Values) -> None:
        self.codes = codes
        self.values = values

    def coded(self, ids: list[str]) -> Coded:
        return self

    def value(self, i: int, ids: list[str]) -> Any:
        code = int(self.codes[i])
        return copy_value(self.values.items[code]) if code >= 0 else _ABSENT

    def replaced(
        self, ids: list[str], n0: int, positions: list[int], new: list, exhaustive: bool
    ) -> FieldColumn:
        codes = np.full(len(ids), -1, np.int32)
        codes[:n0] = self.codes[:n0]
        codes[positions] = -1
        have = [(p, v) for p, v in zip(positions, new, strict=True) if v is not _ABSENT]
        if have:
            where, values = zip(*have, strict=True)
            codes[list(where)] = self.values.codes_of(list(values), exhaustive)
        return Coded(codes, self.values)


class Templated:
    """A field that is ``prefix + run id + suffix`` wherever a row has it."""

    __slots__ = ("_coded", "prefix", "present", "suffix")

    def __init__(self, present: np.ndarray, prefix: str, suffix: str) -> None:
        self.present = present
        self.prefix = prefix
        self.suffix = suffix
        self._coded: Coded | None = None

    @classmethod
    def fits(cls, run_id: str, value: Any) -> Templated | None:
        """A template that ``value`` follows for ``run_id``, if it follows one."""
        if type(value) is not str or not run_id:
            return None
        at = value.find(run_id)
        if at < 0:
            return None
        return cls(np.zeros(0, bool), value[:at], value[at + len(run_id) :])

    def follows(self, run_id: str, value: Any) -> bool:
        return value is _ABSENT or value == f"{self.prefix}{run_id}{self.suffix}"

    def coded(self, ids: list[str]) -> Coded:
        """The same column with codes, built on first use (search reads codes)."""
        if self._coded is None:
            n = len(self.present)
            codes = np.where(self.present, np.arange(n, dtype=np.int32), -1).astype(np.int32)
            prefix, suffix = self.prefix, self.suffix
            made = Values(make=lambda: [f"{prefix}{i}{suffix}" for i in ids[:n]], count=n)
            self._coded = Coded(codes, made)
        return self._coded

    def value(self, i: int, ids: list[str]) -> Any:
        return f"{self.prefix}{ids[i]}{self.suffix}" if self.present[i] else _ABSENT

    def replaced(
        self, ids: list[str], n0: int, positions: list[int], new: list, exhaustive: bool
    ) -> FieldColumn:
        if all(self.follows(ids[p], v) for p, v in zip(positions, new, strict=True)):
            present = np.zeros(len(ids), bool)
            present[:n0] = self.present[:n0]
            present[positions] = [v is not _ABSENT for v in new]
            return Templated(present, self.prefix, self.suffix)
        return self.coded(ids).replaced(ids, n0, positions, new, exhaustive)


FieldColumn = Coded | Templated


def _new_field(ids: list[str], n0: int, positions: list[int], new: list) -> FieldColumn:
    """A column for a field no row had: templated if every value fits one template."""
    pairs = list(zip(positions, new, strict=True))
    first = next((p, v) for p, v in pairs if v is not _ABSENT)
    template = Templated.fits(ids[first[0]], first[1])
    if template is not None and all(template.follows(ids[p], v) for p, v in pairs):
        template.present = np.zeros(n0, bool)
        return template.replaced(ids, n0, positions, new, True)
    return Coded(np.full(n0, -1, np.int32), Values()).replaced(ids, n0, positions, new, True)


# -- sparse columns (params, tags, metrics) -------------------------------------------------


class Sparse:
    """Per key: the rows that have it (ascending) and its payload arrays; ``present``
    marks the rows that have the field at all (possibly empty)."""

    __slots__ = ("keys", "present", "values")

    def __init__(
        self, present: np.ndarray, keys: dict[str, tuple[np.ndarray, ...]], values: Values | None
    ) -> None:
        self.present = present
        self.keys = keys
        self.values = values  # params and tags: the distinct values; metrics: None

    @property
    def is_metrics(self) -> bool:
        return self.values is None

    def entry(self, key: str, i: int) -> Any:
        """The value of ``key`` in row ``i``, or _ABSENT."""
        columns = self.keys.get(key)
        if columns is None:
            return _ABSENT
        rows = columns[0]
        # A scalar of the array's own type: with a Python int numpy would convert the
        # whole array first.
        at = int(rows.searchsorted(rows.dtype.type(i)))
        if at >= len(rows) or rows[at] != i:
            return _ABSENT
        return self._payload(columns, at)

    def _payload(self, columns: tuple[np.ndarray, ...], at: int) -> Any:
        if self.values is None:
            return [float(columns[1][at]), int(columns[2][at]), int(columns[3][at])]
        return self.values.items[int(columns[1][at])]

    def row(self, i: int) -> dict[str, Any]:
        found = {}
        for key in self.keys:
            value = self.entry(key, i)
            if value is not _ABSENT:
                found[key] = value
        return found

    def rows_at(self, chosen: np.ndarray) -> list[dict[str, Any] | None]:
        """The dicts of rows ``chosen`` (None where a row lacks the field): one lookup of
        all of them per key, not one per key and row."""
        dicts: list[dict | None] = [{} if p else None for p in self.present[chosen].tolist()]
        for key, columns in self.keys.items():
            rows = columns[0]
            at = rows.searchsorted(chosen.astype(rows.dtype, copy=False))
            inside = np.flatnonzero(at < len(rows))
            where = inside[rows[at[inside]] == chosen[inside]]
            if not len(where):
                continue
            positions = at[where]
            if self.values is None:
                payload = map(list, zip(*(c[positions].tolist() for c in columns[1:]), strict=True))
            else:
                items = self.values.items
                payload = (items[c] for c in columns[1][positions].tolist())
            for j, value in zip(where.tolist(), payload, strict=True):
                dicts[j][key] = value  # type: ignore[index]
        return dicts

    def all_rows(self) -> list[dict[str, Any] | None]:
        """Every row's dict (None where the row lacks the field), built in one pass."""
        dicts: list[dict | None] = [{} if p else None for p in self.present.tolist()]
        for key, columns in self.keys.items():
            rows = columns[0].tolist()
            if self.values is None:
                payload = map(list, zip(*(c.tolist() for c in columns[1:]), strict=True))
            else:
                items = self.values.items
                payload = (items[c] for c in columns[1].tolist())
            for r, value in zip(rows, payload, strict=True):
                dicts[r][key] = value  # type: ignore[index]
        return dicts

    def replaced(
        self,
        n: int,
        n0: int,
        positions: list[int],
        new: list,
        dropped: np.ndarray | None,
        exhaustive: bool,
    ) -> Sparse:
        present = np.zeros(n, bool)
        present[:n0] = self.present[:n0]
        present[positions] = [v is not _ABSENT for v in new]
        added = self._added(positions, new, exhaustive)
        keys = {}
        for key in dict.fromkeys([*self.keys, *added]):
            columns = self.keys.get(key)
            if columns is not None and dropped is not None:
                keep = ~dropped[columns[0]]
                if not keep.all():
                    columns = tuple(c[keep] for c in columns)
            if key in added:
                columns = _concat_sorted(columns, added[key])
            if columns is not None and len(columns[0]):
                keys[key] = columns
        return Sparse(present, keys, self.values)

    def _added(
        self, positions: list[int], new: list, exhaustive: bool
    ) -> dict[str, tuple[np.ndarray, ...]]:
        slots: dict[str, tuple[list[int], list]] = {}  # key: its rows, its values
        get = slots.get
        for position, entries in zip(positions, new, strict=True):
            if entries is _ABSENT:
                continue
            for key, value in entries.items():
                slot = get(key)
                if slot is None:
                    slot = slots[key] = ([], [])
                slot[0].append(position)
                slot[1].append(value)
        added = {}
        for key, (key_rows, values) in slots.items():
            if self.values is None:
                parts = zip(*values, strict=True)  # value, step, time
                arrays = [np.array(c, dtype=d) for c, d in zip(parts, _METRIC_DTYPES, strict=True)]
            else:
                arrays = [np.array(self.values.codes_of(values, exhaustive), dtype=np.int32)]
            added[key] = (np.array(key_rows, dtype=np.int32), *arrays)
        return added


def _concat_sorted(
    old: tuple[np.ndarray, ...] | None, new: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, ...]:
    if old is None or not len(old[0]):
        columns = new
    else:
        columns = tuple(np.concatenate(pair) for pair in zip(old, new, strict=True))
    rows = columns[0]
    if len(rows) > 1 and not (rows[1:] > rows[:-1]).all():
        order = np.argsort(rows, kind="stable")
        columns = tuple(c[order] for c in columns)
    return columns


def _empty_sparse(metrics: bool) -> Sparse:
    return Sparse(np.zeros(0, bool), {}, None if metrics else Values())


def _sparse_value(name: str, value: Any) -> Any:
    """``value`` if it goes in the sparse columns of ``name``, else _ABSENT: params and
    tags dicts, and metrics dicts of [value, step, timestamp] points."""
    if type(value) is not dict:
        return _ABSENT
    if name == METRICS and not all(
        type(p) is list
        and len(p) == 3
        and type(p[1]) is int
        and type(p[2]) is int
        and type(p[0]) in (float, int)
        for p in value.values()
    ):
        return _ABSENT
    return value


# -- the table ------------------------------------------------------------------------------


class RunColumns:
    """Rows keyed by id, as columns (see the module docstring). Build with
    :func:`from_rows` or :func:`decode`; derive with :meth:`replaced`."""

    def __init__(
        self,
        ids: list[str],
        fields: dict[str, FieldColumn],
        sparse: dict[str, Sparse],
        index: dict[str, int] | None = None,
        added: dict[str, int] | None = None,
    ) -> None:
        self.ids = ids
        self.fields = fields
        self.sparse = sparse
        self._index = index  # every id, built when first needed
        self._added = added or {}  # ids that replaced() added, while _index is not built
        self._id_objects: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def id_objects(self) -> np.ndarray:
        """The ids as an object array (to take some of them at once)."""
        if self._id_objects is None:
            self._id_objects = np.fromiter(self.ids, dtype=object, count=len(self.ids))
        return self._id_objects

    @property
    def index(self) -> dict[str, int]:
        """Row number by id."""
        if self._index is None:
            self._index = {run_id: i for i, run_id in enumerate(self.ids)}
        return self._index

    def field(self, name: str) -> Coded | None:
        """A field's codes and values (None if no row has it)."""
        column = self.fields.get(name)
        return None if column is None else column.coded(self.ids)

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a new dict (nested values are copies)."""
        ids = self.ids
        found = {}
        for name, column in self.fields.items():
            value = column.value(i, ids)
            if value is not _ABSENT:
                found[name] = value
        for name, sparse in self.sparse.items():
            if sparse.present[i]:
                found[name] = sparse.row(i)
        return found

    def get(self, run_id: str) -> dict[str, Any] | None:
        i = self.index.get(run_id)
        return None if i is None else self.row(i)

    def rows_at(self, chosen: np.ndarray) -> list[dict[str, Any]]:
        """Rows ``chosen`` (indices) as new dicts, as :meth:`row` makes them one by one."""
        out: list[dict[str, Any]] = [{} for _ in range(len(chosen))]
        ids, where = self.ids, chosen.tolist()
        for name, column in self.fields.items():
            for row, i in zip(out, where, strict=True):
                value = column.value(i, ids)
                if value is not _ABSENT:
                    row[name] = value
        for name, sparse in self.sparse.items():
            for row, entries in zip(out, sparse.rows_at(chosen), strict=True):
                if entries is not None:
                    row[name] = entries
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Every row as a new dict, in row order; cheaper than :meth:`row` one by one."""
        out: list[dict[str, Any]] = [{} for _ in self.ids]
        for name, column in self.fields.items():
            coded = column.coded(self.ids)
            items = coded.values.items
            copy = copy_value if any(type(v) in (dict, list) for v in items) else None
            for row, code in zip(out, coded.codes.tolist(), strict=True):
                if code >= 0:
                    row[name] = copy(items[code]) if copy else items[code]
        for name, sparse in self.sparse.items():
            for row, entries in zip(out, sparse.all_rows(), strict=True):
                if entries is not None:
                    row[name] = entries
        return out

    def replaced(
        self,
        changed: Mapping[str, Mapping[str, Any]],
        exhaustive: bool = True,
        new: Collection[str] = (),
    ) -> RunColumns:
        """A table with the rows of ``changed`` (id: full row) replacing or added to these.

        ``exhaustive`` (for a snapshot) keeps each distinct value once; without it, new
        values are only looked up among those added so far (see :class:`Values`). Ids in
        ``new`` are known not to be among these rows (unless this method added them), so
        finding them needs no index of every id.
        """
        if not changed:
            return self
        n0 = len(self.ids)
        ids = list(self.ids)
        index = dict(self._index) if self._index is not None else None
        added = dict(self._added) if index is None else {}
        positions = []
        for run_id in changed:
            position = self._position(run_id, new)
            if position is None:
                position = len(ids)
                ids.append(run_id)
                (added if index is None else index)[run_id] = position
            positions.append(position)
        rows = list(changed.values())
        dropped = None
        if any(p < n0 for p in positions):
            dropped = np.zeros(n0, bool)
            dropped[[p for p in positions if p < n0]] = True
        in_sparse = {
            name: [_sparse_value(name, row.get(name, _ABSENT)) for row in rows]
            for name in SPARSE_FIELDS
        }
        names = dict.fromkeys([*self.fields, *(k for row in rows for k in row)])
        fields = {}
        for name in names:
            values = [row.get(name, _ABSENT) for row in rows]
            if name in in_sparse:  # a params/tags/metrics dict goes to the sparse columns
                values = [
                    _ABSENT if held is not _ABSENT else v
                    for v, held in zip(values, in_sparse[name], strict=True)
                ]
            column = self.fields.get(name)
            if column is not None:
                fields[name] = column.replaced(ids, n0, positions, values, exhaustive)
            elif any(v is not _ABSENT for v in values):
                fields[name] = _new_field(ids, n0, positions, values)
        sparse = {}
        for name, values in in_sparse.items():
            old = self.sparse.get(name) or _empty_sparse(name == METRICS)
            sparse[name] = old.replaced(len(ids), n0, positions, values, dropped, exhaustive)
        return RunColumns(ids, fields, sparse, index, added)

    def _position(self, run_id: str, new: Collection[str]) -> int | None:
        if self._index is None:
            position = self._added.get(run_id)
            if position is not None or run_id in new:
                return position
        return self.index.get(run_id)

    # -- the snapshot's form --------------------------------------------------------------------

    def encode(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        """A JSON-able description; the arrays it refers to (by number) go to ``arrays``."""

        def ref(array: np.ndarray) -> int:
            arrays.append(np.ascontiguousarray(array))
            return len(arrays) - 1

        fields: dict[str, Any] = {}
        for name, column in self.fields.items():
            if isinstance(column, Templated):
                fields[name] = {
                    "template": [column.prefix, column.suffix],
                    "present": ref(column.present.astype(np.uint8)),
                }
            else:
                items = column.values.items
                if name == METRICS:  # rows whose metrics are not points keep them whole
                    items = Values([_metrics_to_disk(v) for v in items])
                else:
                    items = column.values
                codes = _small_ints(column.codes, ref)
                fields[name] = {"values": _encode_values(items, ref), "codes": codes}
        sparse = {}
        n = len(self.ids)
        for name, part in self.sparse.items():
            keys = {}
            for key, (rows, *payload) in part.keys.items():
                # A key every row has (the usual case) needs no list of rows.
                where = "all" if len(rows) == n else _small_ints(rows, ref)
                if part.values is None:
                    keys[key] = [where, *(ref(c) for c in payload)]
                else:
                    keys[key] = [where, _small_ints(payload[0], ref)]
            sparse[name] = {"present": ref(part.present.astype(np.uint8)), "keys": keys}
            if part.values is not None:
                sparse[name]["values"] = _encode_values(part.values, ref)
        return {"ids": self.ids, "fields": fields, "sparse": sparse}


def from_rows(rows: Mapping[str, Mapping[str, Any]]) -> RunColumns:
    """Columns holding ``rows`` (id: row)."""
    return empty().replaced(rows)


def empty() -> RunColumns:
    return RunColumns([], {}, {name: _empty_sparse(name == METRICS) for name in SPARSE_FIELDS})


def _encode_values(values: Values, ref: Callable[[np.ndarray], int]) -> dict[str, Any]:
    """Distinct values for the snapshot: integers (and None) as arrays, anything else as
    JSON; each is decoded only when first used. (Integers beyond 64 bits fail here, as
    they fail in the change log: orjson writes neither.)"""
    items, types = values.items, values.types()
    if types and types <= {int, type(None)}:
        numbers = np.array([0 if v is None else v for v in items], dtype="<i8")
        spec = {"count": len(items), "ints": ref(numbers)}
        if type(None) in types:
            spec["none"] = ref(np.array([v is None for v in items], dtype=np.uint8))
        return spec
    spec = {"count": len(items), "json": ref(np.frombuffer(orjson.dumps(items), np.uint8))}
    if types <= {str}:
        spec["text"] = True  # spares a reader checking every value
    return spec


def _small_ints(values: np.ndarray, ref: Callable[[np.ndarray], int]) -> list:
    """Non-negative-or--1 integers in the smallest integer type that holds them."""
    low, high = (int(values.min()), int(values.max())) if len(values) else (0, 0)
    for dtype in ("<i1", "<i2", "<i4"):
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            break
    return [ref(values.astype(dtype)), dtype]


def _read_ints(spec: list, array: Callable[[int, str], np.ndarray]) -> np.ndarray:
    number, dtype = spec
    _expect(dtype in ("<i1", "<i2", "<i4"), f"integer type {dtype!r}")
    return array(number, dtype).astype(np.int32)


def _decode_values(
    spec: dict[str, Any], array: Callable[[int, str], np.ndarray], name: str
) -> Values:
    count = spec["count"]
    if "ints" in spec:
        numbers = array(spec["ints"], "<i8")
        none = array(spec["none"], "u1").astype(bool) if "none" in spec else None
        _expect(len(numbers) == count and (none is None or len(none) == count), f"{name}: values")

        def make() -> list:
            items = numbers.tolist()
            if none is not None:
                for i in np.flatnonzero(none).tolist():
                    items[i] = None
            return items

        floats = numbers.astype(float)
        if none is not None:
            floats[none] = math.nan
        values = Values(make=make, count=count, floats=np.append(floats, math.nan))
        values.mark_types({int} if none is None else {int, type(None)}, count)
        return values
    raw = array(spec["json"], "u1")

    def parse() -> list:
        items = orjson.loads(raw.tobytes())
        if name == METRICS:
            items = [from_disk({METRICS: v})[METRICS] for v in items]
        _expect(isinstance(items, list) and len(items) == count, f"{name}: values")
        return items

    values = Values(make=parse, count=count)
    if spec.get("text"):
        values.mark_types({str}, count)
    return values


def decode(description: dict[str, Any], array: Callable[[int, str], np.ndarray]) -> RunColumns:
    """Undo :meth:`RunColumns.encode`; ``array(number, dtype)`` returns an encoded array."""
    ids = description["ids"]
    fields: dict[str, FieldColumn] = {}
    counts: dict[int, int] = {}  # id(Values): how many distinct values it holds
    for name, spec in description["fields"].items():
        if "template" in spec:
            prefix, suffix = spec["template"]
            fields[name] = Templated(array(spec["present"], "u1").astype(bool), prefix, suffix)
        else:
            values = _decode_values(spec["values"], array, name)
            counts[id(values)] = spec["values"]["count"]
            fields[name] = Coded(_read_ints(spec["codes"], array), values)
    sparse = {}
    n = len(ids)
    for name in SPARSE_FIELDS:
        spec = description["sparse"][name]
        keys = {}
        for key, (where, *payload) in spec["keys"].items():
            rows = np.arange(n, dtype=np.int32) if where == "all" else _read_ints(where, array)
            if name == METRICS:
                dtypes = _METRIC_DTYPES
                keys[key] = (rows, *(array(p, d) for p, d in zip(payload, dtypes, strict=True)))
            else:
                keys[key] = (rows, _read_ints(payload[0], array))
        values = None
        if name != METRICS:
            values = _decode_values(spec["values"], array, name)
            counts[id(values)] = spec["values"]["count"]
        sparse[name] = Sparse(array(spec["present"], "u1").astype(bool), keys, values)
    columns = RunColumns(ids, fields, sparse)
    _check(columns, counts)
    return columns


def _check(columns: RunColumns, counts: dict[int, int]) -> None:
    """Refuse arrays that do not fit the table: a damaged file must not be half-read."""
    n = len(columns.ids)
    for name, column in columns.fields.items():
        if isinstance(column, Templated):
            _expect(len(column.present) == n, f"field {name}: {len(column.present)} rows")
        else:
            codes = column.codes
            _expect(len(codes) == n, f"field {name}: {len(codes)} rows, not {n}")
            if n:
                top = counts[id(column.values)]
                _expect(codes.min() >= -1 and codes.max() < top, f"field {name}: bad codes")
    for name, part in columns.sparse.items():
        _expect(len(part.present) == n, f"{name}: {len(part.present)} rows, not {n}")
        for key, arrays in part.keys.items():
            rows = arrays[0]
            _expect(all(len(a) == len(rows) for a in arrays), f"{name}.{key}: ragged")
            if len(rows):
                _expect(rows[0] >= 0 and rows[-1] < n, f"{name}.{key}: rows out of range")
                _expect(bool((rows[1:] > rows[:-1]).all()), f"{name}.{key}: rows unsorted")
                if part.values is not None:
                    codes, top = arrays[1], counts[id(part.values)]
                    _expect(codes.min() >= 0 and codes.max() < top, f"{name}.{key}: bad codes")


class ColumnsError(ValueError):
    """Encoded columns that do not describe a table (a damaged snapshot)."""


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise ColumnsError(what)


def _metrics_to_disk(value: Any) -> Any:
    points = value.values() if type(value) is dict else ()
    if all(type(p) is list and p and type(p[0]) is float for p in points):
        return to_disk({METRICS: value})[METRICS]
    return value
