"""nbtrack's catalog rows and journal records as MLflow's own entity classes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlflow.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    ExperimentTag,
    InputTag,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunOutputs,
    RunTag,
)
from mlflow.entities.model_registry import (
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelAlias,
    RegisteredModelTag,
)

from nbtrack.registry import entities as registry_entities


def run(
    row: dict[str, Any],
    artifact_uri: str,
    inputs: Iterable[dict[str, Any]] = (),
    outputs: RunOutputs | None = None,
) -> Run:
    """A run from its catalog row, its input records and its model outputs."""
    return Run(
        run_info(row, artifact_uri),
        run_data(row),
        RunInputs([dataset_input(r) for r in inputs], []),
        outputs if outputs is not None else RunOutputs([]),
    )


def run_info(row: dict[str, Any], artifact_uri: str) -> RunInfo:
    return RunInfo(
        run_id=row["run_id"],
        experiment_id=row["experiment_id"],
        user_id=row.get("user_id", ""),
        status=row["status"],
        start_time=row["start_time"],
        end_time=row.get("end_time"),
        lifecycle_stage=row.get("lifecycle_stage", "active"),
        artifact_uri=artifact_uri,
        run_name=row.get("run_name", ""),
    )


def run_data(row: dict[str, Any]) -> RunData:
    """Latest metric values (the catalog keeps MLflow's latest point per key), params, tags."""
    return RunData(
        metrics=[Metric(k, p[0], p[2], p[1]) for k, p in row.get("metrics", {}).items()],
        params=[Param(k, v) for k, v in row.get("params", {}).items()],
        tags=[RunTag(k, v) for k, v in row.get("tags", {}).items()],
    )


def dataset_input(record: dict[str, Any]) -> DatasetInput:
    """A journal ``input`` record as MLflow's ``DatasetInput``."""
    return DatasetInput(
        Dataset(**record["dataset"]), [InputTag(k, v) for k, v in record["tags"].items()]
    )


def experiment(row: dict[str, Any], artifact_location: str) -> Experiment:
    return Experiment(
        experiment_id=row["experiment_id"],
        name=row["name"],
        artifact_location=artifact_location,
        lifecycle_stage=row.get("lifecycle_stage", "active"),
        tags=[ExperimentTag(k, v) for k, v in row.get("tags", {}).items()],
        creation_time=row.get("creation_time"),
        last_update_time=row.get("last_update_time"),
    )


def model_version(version: registry_entities.ModelVersion) -> ModelVersion:
    """nbtrack's registry version as MLflow's (the source run's metrics kept as MLflow's)."""
    return ModelVersion(
        name=version.name,
        version=version.version,  # an int, as MLflow's sqlite store gives it
        creation_timestamp=version.creation_timestamp,
        last_updated_timestamp=version.last_updated_timestamp,
        description=version.description,
        user_id=version.user_id,
        current_stage=version.current_stage,
        source=version.source,
        run_id=version.run_id,
        status=version.status,
        status_message=version.status_message,
        tags=[ModelVersionTag(k, v) for k, v in version.tags.items()],
        run_link=version.run_link,
        aliases=list(version.aliases),
    )


def registered_model(model: registry_entities.RegisteredModel) -> RegisteredModel:
    return RegisteredModel(
        name=model.name,
        creation_timestamp=model.creation_timestamp,
        last_updated_timestamp=model.last_updated_timestamp,
        description=model.description,
        latest_versions=[model_version(v) for v in model.latest_versions],
        tags=[RegisteredModelTag(k, v) for k, v in model.tags.items()],
        aliases=[RegisteredModelAlias(a, v) for a, v in sorted(model.aliases.items())],
    )
