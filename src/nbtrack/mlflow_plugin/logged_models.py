"""MLflow 3's logged models, kept in the journal of the run that logged them.

``mlflow.<flavor>.log_model`` creates a LoggedModel and uploads its files to the model's
artifact location. Here that location is the run's artifacts under the model's name
(``runs/<run id>/artifacts/<name>/``), so each file's SHA-256 is in the run's journal and
``runs:/RUN/NAME``, nbtrack's registry and its panels find the model as they find one
nbtrack logged. A model's id names its run (``m-<run id><8 hex digits>``): finding it reads
one journal. Models logged outside any run are not supported.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

from mlflow.entities import LoggedModel, LoggedModelStatus

from nbtrack import search
from nbtrack.errors import InvalidParameterError, NotFoundError
from nbtrack.mlflow_plugin import uris
from nbtrack.search.grammars import TAGS, Grammar, integer, string
from nbtrack.store import Store
from nbtrack.store.artifacts import relative_path
from nbtrack.store.records import model_record
from nbtrack.tracking.names import random_run_name
from nbtrack.validation import check_key, check_param_value, check_tags

_MODEL_ID = re.compile(r"m-(?P<run_id>[0-9a-f]{32})[0-9a-f]{8}")
DELETED = "deleted"

LOGGED_MODELS = Grammar(
    subject="logged models",
    types={
        "attribute": "attributes",
        "attributes": "attributes",
        "tag": TAGS,
        "tags": TAGS,
        "param": "params",
        "params": "params",
    },
    attributes={
        "name": string("name", lists=True),
        "model_id": string("model_id", lists=True),
        "source_run_id": string("source_run_id", lists=True),
        "status": string("status"),
        "model_type": string("model_type"),
        "creation_timestamp": integer("creation_timestamp"),
        "last_updated_timestamp": integer("last_updated_timestamp"),
    },
    order_attributes={
        "name": string("name"),
        "model_id": string("model_id"),
        "creation_timestamp": integer("creation_timestamp"),
        "last_updated_timestamp": integer("last_updated_timestamp"),
    },
    default_order=(("creation_timestamp", False),),
    tie_breakers=(("model_id", True),),
)


def create(
    store: Store,
    experiment_id: str,
    name: str | None,
    run_id: str | None,
    tags: dict[str, str],
    params: dict[str, str],
    model_type: str | None,
) -> dict[str, Any]:
    """Record a PENDING model of run ``run_id`` and return its fields."""
    if run_id is None:
        raise InvalidParameterError(
            "nbtrack keeps each logged model in the run that logged it: start a run "
            "(mlflow.start_run()) before logging the model, or pass source_run_id."
        )
    run = store.get_run(run_id)
    name = relative_path(name, "model name") if name else random_run_name()
    now = int(time.time() * 1000)
    fields = {
        "experiment_id": str(experiment_id or run["experiment_id"]),
        "name": name,
        "source_run_id": run_id,
        "model_type": model_type,
        "status": LoggedModelStatus.PENDING.value,
        "tags": check_tags(tags),
        "params": {check_key(k, "param"): check_param_value(k, v) for k, v in params.items()},
        "creation_timestamp": now,
        "last_updated_timestamp": now,
    }
    model_id = f"m-{run_id}{uuid.uuid4().hex[:8]}"
    store.append(run_id, [model_record(model_id, **fields)])
    return {"model_id": model_id, **fields}


def get(store: Store, model_id: str, allow_deleted: bool = False) -> dict[str, Any]:
    """A logged model's fields, as its run's journal says now."""
    found = _MODEL_ID.fullmatch(model_id) if isinstance(model_id, str) else None
    model = None
    if found is not None and store.run_dir(found["run_id"]).exists():
        model = of_run(store, found["run_id"]).get(model_id)
    if model is None or (model.get("lifecycle_stage") == DELETED and not allow_deleted):
        raise NotFoundError(f"No logged model with ID {model_id!r} in {store.root}.")
    return model


def update(store: Store, model_id: str, **fields: Any) -> dict[str, Any]:
    """Change a model's fields (``tags`` merge; ``untag`` removes keys); its fields now."""
    model = get(store, model_id)
    fields["last_updated_timestamp"] = int(time.time() * 1000)
    store.append(model["source_run_id"], [model_record(model_id, **fields)])
    return get(store, model_id, allow_deleted=True)


def of_run(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    """The models a run's journal records (and models of other runs it output), by id."""
    return fold(store.records(run_id, "model"))


def fold(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    models: dict[str, dict[str, Any]] = {}
    for record in records:
        model = models.setdefault(record["model_id"], {"model_id": record["model_id"]})
        for key, value in record.items():
            if key == "tags":
                model.setdefault("tags", {}).update(value)
            elif key == "untag":
                for tag in value:
                    model.get("tags", {}).pop(tag, None)
            elif key != "op":
                model[key] = value
    return models


def search_models(
    store: Store,
    experiment_ids: set[str],
    filter_string: str | None,
    order_by: list[str] | None,
) -> list[dict[str, Any]]:
    """Live models of runs in ``experiment_ids`` matching an MLflow filter. It reads the
    journal of every run in those experiments: a scan, fine for a notebook's stores."""
    rows = [r for r in store.runs() if r["experiment_id"] in experiment_ids]
    found = [
        model
        for row in rows
        for model in of_run(store, row["run_id"]).values()
        if "name" in model and model.get("lifecycle_stage") != DELETED
    ]
    return search.search(found, filter_string, order_by, None, LOGGED_MODELS)


def entity(store: Store, model: dict[str, Any]) -> LoggedModel:
    return LoggedModel(
        experiment_id=model["experiment_id"],
        model_id=model["model_id"],
        name=model["name"],
        artifact_location=uris.artifact_uri(store, model["source_run_id"], model["name"]),
        creation_timestamp=model["creation_timestamp"],
        last_updated_timestamp=model["last_updated_timestamp"],
        model_type=model.get("model_type"),
        source_run_id=model["source_run_id"],
        status=LoggedModelStatus(model["status"]),
        status_message=model.get("status_message"),
        tags=dict(model.get("tags", {})),
        params=dict(model.get("params", {})),
    )
