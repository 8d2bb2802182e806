"""Experiments as MLflow's entities: creating, reading, searching and changing them."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from nbtrack.entities import Experiment, ViewType, experiment_from_row
from nbtrack.errors import InvalidParameterError
from nbtrack.store import Store
from nbtrack.tracking.runs import visible
from nbtrack.tracking.session import Session
from nbtrack.validation import check_experiment_name, check_tags


def create(
    session: Session,
    name: str,
    artifact_location: str | None = None,
    tags: dict[str, Any] | None = None,
) -> str:
    """Create an experiment and return its id.

    ``artifact_location`` is accepted for MLflow compatibility and ignored with a warning:
    nbtrack keeps every artifact inside its store, beside the run that logged it.
    """
    check_experiment_name(name)
    if artifact_location is not None:
        warnings.warn(
            f"create_experiment(artifact_location={artifact_location!r}) is ignored: nbtrack "
            "keeps artifacts inside the store.",
            stacklevel=3,
        )
    clean = check_tags(tags)
    return session.store.create_experiment(name, clean)


def get(session: Session, experiment_id: str) -> Experiment:
    store = session.store
    return entity(store, store.get_experiment(str(experiment_id)))


def get_by_name(session: Session, name: str) -> Experiment | None:
    store = session.store
    row = store.get_experiment_by_name(name)
    return entity(store, row) if row is not None else None


def search(
    session: Session,
    view_type: int = ViewType.ACTIVE_ONLY,
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
) -> list[Experiment]:
    """Experiments matching an MLflow experiment filter (``name``, ``tags.*``,
    ``experiment_id``, ``creation_time``, ``last_update_time``), newest first as in MLflow."""
    from nbtrack.search import EXPERIMENTS  # loads on the first search
    from nbtrack.search import search as matching

    store = session.store
    rows = [r for r in store.experiments() if visible(r["lifecycle_stage"], view_type)]
    found = matching(rows, filter_string, order_by, grammar=EXPERIMENTS)
    return [entity(store, r) for r in found]


def rename(session: Session, experiment_id: str, new_name: str) -> None:
    name = check_experiment_name(new_name)
    session.store.update_experiment(str(experiment_id), name=name)


def set_tag(session: Session, experiment_id: str | None, key: str, value: Any) -> None:
    """Tag an experiment (None: the session's current one)."""
    set_tags(session, experiment_id, {key: value})


def set_tags(session: Session, experiment_id: str | None, tags: dict[str, Any]) -> None:
    """Tag an experiment (None: the session's current one); every tag is checked first."""
    if not isinstance(tags, dict):
        raise InvalidParameterError(f"tags must be a dict, got {type(tags).__name__}.")
    clean = check_tags(tags)
    if experiment_id is None:
        experiment_id = session.experiment_id
    session.store.update_experiment(str(experiment_id), tags=clean)


def set_lifecycle(session: Session, experiment_id: str, stage: str) -> None:
    session.store.update_experiment(str(experiment_id), lifecycle_stage=stage)


def entity(store: Store, row: dict[str, Any]) -> Experiment:
    return experiment_from_row(row, (store.root / "runs").as_uri())
