"""What each MLflow search accepts: identifier types, attributes, comparators and default order.

One parser reads every filter; a :class:`Grammar` says which keys a caller allows. The four
here are MLflow's (3.x, sqlite store): runs, model versions, registered models and
experiments. Where nbtrack accepts more than MLflow, the attribute says so beside it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

Row = Mapping[str, Any]

# Identifier kinds; each but ATTRIBUTES is also the row field holding that kind's values.
METRICS, PARAMS, TAGS, ATTRIBUTES = "metrics", "params", "tags", "attributes"
# What an attribute's values are: STRING, NUMBER (an int or a float) or INTEGER.
STRING, NUMBER, INTEGER = "string", "number", "integer"

NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE")
LIST_OPS = ("IN", "NOT IN")
NULL_OPS = ("IS NULL", "IS NOT NULL")


class Attribute(NamedTuple):
    """One attribute a search knows: its name, where a row holds it, what it compares with."""

    name: str  # the canonical name (aliases map to the same Attribute)
    get: Callable[[Row], Any]  # its value in a row; None when the row has none
    ops: tuple[str, ...]  # the comparators it takes
    type: str = STRING  # STRING, NUMBER or INTEGER
    quoted: bool = False  # an INTEGER also given as a quoted string ('3'), cast as MLflow does
    field: str | None = None  # the row field ``get`` reads, if it reads just one

    @property
    def numeric(self) -> bool:
        return self.type != STRING


def _field(name: str) -> Callable[[Row], Any]:
    return operator.methodcaller("get", name)


def string(name: str, row_field: str | None = None, *, lists: bool = False) -> Attribute:
    """A string attribute: =, !=, LIKE, ILIKE, and IN / NOT IN with ``lists``."""
    field = row_field or name
    return Attribute(name, _field(field), STRING_OPS + LIST_OPS * lists, field=field)


def integer(name: str, row_field: str | None = None, *, quoted: bool = False) -> Attribute:
    """An integer attribute (a version number, a time in ms): the six numeric comparators."""
    field = row_field or name
    return Attribute(name, _field(field), NUMERIC_OPS, INTEGER, quoted, field)


def number(name: str) -> Attribute:
    """A numeric attribute compared with any number (a run's times in ms)."""
    return Attribute(name, _field(name), NUMERIC_OPS, NUMBER, field=name)


@dataclass(frozen=True, eq=False)  # compared (and cached) by identity
class Grammar:
    """The keys one search allows, and how its results are ordered.

    ``types`` maps each spelling before the dot (``metrics``, ``tag``...) to its kind;
    a name without a dot is an attribute. ``attributes`` and ``order_attributes`` map
    each accepted spelling (aliases included) to its :class:`Attribute`. Results are
    ordered by the ``order_by`` clauses, or ``default_order`` when there are none, then
    by each of ``tie_breakers`` not ordered already; both hold (attribute, ascending).
    """

    subject: str  # what is searched, for messages: "runs", "model versions"
    types: Mapping[str, str]
    attributes: Mapping[str, Attribute]
    order_attributes: Mapping[str, Attribute]
    order_kinds: tuple[str, ...] = (ATTRIBUTES,)
    null_kinds: tuple[str, ...] = ()  # the kinds that take IS NULL / IS NOT NULL
    default_order: tuple[tuple[str, bool], ...] = ()
    tie_breakers: tuple[tuple[str, bool], ...] = ()
    refused_types: Mapping[str, str] = field(default_factory=dict)  # spelling -> why not

    def kinds(self) -> list[str]:
        return list(dict.fromkeys(self.types.values()))

    def type_names(self) -> str:
        """The spellings to suggest, e.g. ``metrics., params., tags. or attributes.``."""
        names = [
            kind if kind in self.types else next(s for s, k in self.types.items() if k == kind)
            for kind in self.kinds()
        ]
        return _listed([f"{name}." for name in names], "or")

    def attribute_names(self, order: bool = False) -> str:
        # MLflow's alternate spellings ("Created", "run name") are accepted, not advertised.
        found = self.order_attributes if order else self.attributes
        return ", ".join(sorted(n for n in found if n.isidentifier() and n[0].islower()))

    def keyed(self, name: str, order: bool = False) -> str:
        """``name`` as a key of each other kind: ``metrics.acc, params.acc or tags.acc``."""
        kinds = [
            k for k in self.kinds() if k != ATTRIBUTES and (not order or k in self.order_kinds)
        ]
        key = name if name.isidentifier() else f"`{name}`"
        return _listed([f"{kind}.{key}" for kind in kinds], "or") if kinds else ""

    def list_attributes(self) -> str:
        """The attributes that take IN, as written in a filter: ``attributes.run_id``."""
        prefix = f"{ATTRIBUTES}." if ATTRIBUTES in self.types else ""
        names = sorted({a.name for a in self.attributes.values() if "IN" in a.ops})
        return _listed([prefix + name for name in names], "and")


def _listed(words: list[str], last: str) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


# --- runs ---------------------------------------------------------------------------------

_RUN_NAME_TAG = "mlflow.runName"


def _run_name_for_filter(row: Row) -> Any:
    # MLflow filters run_name through the mlflow.runName tag, not the runs.name column...
    name = (row.get(TAGS) or {}).get(_RUN_NAME_TAG)
    return row.get("run_name") if name is None else name


def _run_name_for_order(row: Row) -> Any:
    # ... but orders by the runs.name column.
    name = row.get("run_name")
    return (row.get(TAGS) or {}).get(_RUN_NAME_TAG) if name is None else name


_RUN_TYPES = {
    "metric": METRICS,
    "metrics": METRICS,
    "parameter": PARAMS,
    "parameters": PARAMS,
    "param": PARAMS,
    "params": PARAMS,
    "tag": TAGS,
    "tags": TAGS,
    "attribute": ATTRIBUTES,
    "attributes": ATTRIBUTES,
    "attr": ATTRIBUTES,
    "run": ATTRIBUTES,
}
_START = number("start_time")
_RUN_ATTRIBUTES = {
    "artifact_uri": string("artifact_uri"),
    "run_id": string("run_id", lists=True),
    "status": string("status"),
    "user_id": string("user_id"),
    "start_time": _START,
    "end_time": number("end_time"),
    # MLflow's aliases: order_by knows only "created"; filters also know "run name".
    "created": _START,
    "Created": _START,
}
_RUN_NAME = Attribute("run_name", _run_name_for_filter, STRING_OPS)
_DATASETS = "dataset filters are not supported"

RUNS = Grammar(
    subject="runs",
    types=_RUN_TYPES,
    attributes={
        **_RUN_ATTRIBUTES,
        "run_name": _RUN_NAME,
        "run name": _RUN_NAME,
        "Run name": _RUN_NAME,
        "Run Name": _RUN_NAME,
    },
    order_attributes={
        **_RUN_ATTRIBUTES,
        "run_name": Attribute("run_name", _run_name_for_order, STRING_OPS),
    },
    order_kinds=(METRICS, PARAMS, TAGS, ATTRIBUTES),
    null_kinds=(PARAMS, TAGS),
    tie_breakers=(("start_time", False), ("run_id", True)),
    refused_types={"dataset": _DATASETS, "datasets": _DATASETS},
)

# --- the model registry and experiments --------------------------------------------------------
# MLflow spells these types "attribute", "tag" and "tags" only (not "attributes").

_REGISTRY_TYPES = {"attribute": ATTRIBUTES, "tag": TAGS, "tags": TAGS}
_CREATED = integer("creation_timestamp")
_UPDATED = integer("last_updated_timestamp")

MODEL_VERSIONS = Grammar(
    subject="model versions",
    types=_REGISTRY_TYPES,
    attributes={
        "name": string("name", lists=True),
        "run_id": string("run_id", lists=True),
        "source_path": string("source_path", "source"),
        # MLflow's sqlite store casts '3' to 3 and refuses 3.0.
        "version_number": integer("version_number", "version", quoted=True),
        # nbtrack only: MLflow filters no stage (stages are deprecated there).
        "current_stage": string("current_stage", lists=True),
    },
    order_attributes={
        "name": string("name"),
        "version_number": integer("version_number", "version"),
        "creation_timestamp": _CREATED,
        "last_updated_timestamp": _UPDATED,
    },
    default_order=(("last_updated_timestamp", False), ("name", True), ("version_number", False)),
    tie_breakers=(("name", True), ("version_number", False)),
)

REGISTERED_MODELS = Grammar(
    subject="registered models",
    types=_REGISTRY_TYPES,
    attributes={"name": string("name", lists=True)},
    order_attributes={
        "name": string("name"),
        "last_updated_timestamp": _UPDATED,
        "timestamp": _UPDATED,  # MLflow's sqlite store's name for it
        # nbtrack (and MLflow's file store) only: the sqlite store refuses it.
        "creation_timestamp": _CREATED,
    },
    tie_breakers=(("name", True),),
)

# Experiment ids are strings of digits; MLflow's INTEGER column orders them as numbers.
_EXPERIMENT_ID = Attribute(
    "experiment_id", _field("experiment_id"), ("=", "!=", *LIST_OPS), field="experiment_id"
)
_EXPERIMENT_ORDER_ID = Attribute("experiment_id", lambda row: int(row["experiment_id"]), ())

EXPERIMENTS = Grammar(
    subject="experiments",
    types=_REGISTRY_TYPES,
    attributes={
        "name": string("name"),
        "experiment_id": _EXPERIMENT_ID,
        "creation_time": integer("creation_time"),
        "last_update_time": integer("last_update_time"),
    },
    order_attributes={
        "name": string("name"),
        "experiment_id": _EXPERIMENT_ORDER_ID,
        "creation_time": integer("creation_time"),
        "last_update_time": integer("last_update_time"),
    },
    null_kinds=(TAGS,),
    default_order=(("creation_time", False), ("experiment_id", True)),
    tie_breakers=(("experiment_id", False),),
)
