"""``MlflowClient``: MLflow's explicit client, over an nbtrack store.

Every method has MLflow's name and parameters; the registry calls that move a version
also take nbtrack's ``reason=`` (and ``force=``). Without a reason they still succeed,
with a :class:`~nbtrack.registry.MissingReasonWarning`, and the event records
"no reason given" — unless the model's policy has ``require_reason=True``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nbtrack import registry, search
from nbtrack.entities import Experiment, Metric, Param, Run, RunStatus, RunTag, ViewType
from nbtrack.errors import InvalidParameterError
from nbtrack.tracking import fluent
from nbtrack.validation import check_tags

if TYPE_CHECKING:
    from nbtrack.registry.entities import ModelVersion, RegisteredModel
    from nbtrack.store import Store
    from nbtrack.tracking.artifacts import FileInfo


class PagedList(list):
    """A page of results, as MLflow returns them; nbtrack returns everything at once."""

    def __init__(self, items: Sequence[Any], token: str | None = None) -> None:
        super().__init__(items)
        self.token = token


class MlflowClient:
    """MLflow's client API over the store at ``tracking_uri`` (the current store by default).

    Parameters
    ----------
    tracking_uri
        A folder or ``file:`` URI. The client switches the process's store to it, so
        give it only where MLflow code would.
    registry_uri
        Accepted for MLflow compatibility; the registry lives in the same store.
    """

    def __init__(self, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        if tracking_uri is not None:
            fluent.set_tracking_uri(tracking_uri)
        self._registry_uri = registry_uri

    @property
    def tracking_uri(self) -> str:
        return fluent.get_tracking_uri()

    def _store(self) -> Store:
        return fluent.current_store()

    # -- experiments ---------------------------------------------------------------------

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
    ) -> str:
        return fluent.create_experiment(name, artifact_location, tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return fluent.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return fluent.get_experiment_by_name(name)

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int | None = 1000,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        found = fluent.search_experiments(view_type)
        if filter_string:
            matches = search.compile_filter(filter_string, search.EXPERIMENTS)
            found = [e for e in found if matches(e._asdict())]
        return PagedList(found[:max_results] if max_results else found)

    def delete_experiment(self, experiment_id: str) -> None:
        fluent.delete_experiment(experiment_id)

    def restore_experiment(self, experiment_id: str) -> None:
        fluent.restore_experiment(experiment_id)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        from nbtrack.validation import check_experiment_name

        self._store().update_experiment(str(experiment_id), name=check_experiment_name(new_name))

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        self._store().update_experiment(str(experiment_id), tags=check_tags({key: value}))

    # -- runs ------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
    ) -> Run:
        """Create a RUNNING run that is not the active run (end it with set_terminated)."""
        from nbtrack.tracking.names import random_run_name

        clean = check_tags(tags)
        name = run_name or clean.get("mlflow.runName") or random_run_name()
        system = fluent._system_tags(name, clean.get("mlflow.parentRunId"), None)
        store = self._store()
        writer = store.create_run(
            str(experiment_id),
            run_name=name,
            user_id=clean.get("mlflow.user", system["mlflow.user"]),
            tags={**system, **clean},
            start_time=start_time,
        )
        return fluent.get_run(writer.run_id)

    def get_run(self, run_id: str) -> Run:
        return fluent.get_run(run_id)

    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str = "",
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        ids = [experiment_ids] if isinstance(experiment_ids, str) else experiment_ids
        return PagedList(
            fluent.search_runs(
                ids, filter_string, run_view_type, max_results, order_by, output_format="list"
            )
        )

    def log_param(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> Any:
        fluent.log_params({key: value}, run_id=run_id)
        return value

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
        synchronous: bool | None = None,
        **_ignored: Any,
    ) -> None:
        fluent.log_metric(key, value, step=step, timestamp=timestamp, run_id=run_id)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        synchronous: bool | None = None,
    ) -> None:
        if params:
            fluent.log_params({p.key: p.value for p in params}, run_id=run_id)
        for metric in metrics:
            fluent.log_metric(
                metric.key, metric.value, metric.step, timestamp=metric.timestamp, run_id=run_id
            )
        if tags:
            fluent.set_tags({t.key: t.value for t in tags}, run_id=run_id)

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> None:
        fluent.set_tags({key: value}, run_id=run_id)

    def delete_tag(self, run_id: str, key: str) -> None:
        fluent.delete_tag(key, run_id=run_id)

    def set_terminated(
        self, run_id: str, status: str | None = None, end_time: int | None = None
    ) -> None:
        status = status or RunStatus.FINISHED
        if not RunStatus.is_terminated(status):
            raise InvalidParameterError(
                f"set_terminated(status={status!r}): use FINISHED, FAILED or KILLED."
            )
        self._store().finish_run(run_id, status, end_time or int(time.time() * 1000))

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
        if status is not None:
            self.set_terminated(run_id, status)
        if name is not None:
            self._store().append(
                run_id,
                [
                    {"op": "set", "fields": {"run_name": name}},
                    {"op": "tags", "tags": {"mlflow.runName": name}},
                ],
            )

    def delete_run(self, run_id: str) -> None:
        fluent.delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        fluent.restore_run(run_id)

    def get_metric_history(self, run_id: str, key: str) -> Any:
        return fluent.get_metric_history(run_id, key)

    # -- artifacts ---------------------------------------------------------------------------

    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        fluent.log_artifact(local_path, artifact_path, run_id=run_id)

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        fluent.log_artifacts(local_dir, artifact_path, run_id=run_id)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        fluent.log_text(text, artifact_file, run_id=run_id)

    def log_dict(self, run_id: str, dictionary: dict[str, Any], artifact_file: str) -> None:
        fluent.log_dict(dictionary, artifact_file, run_id=run_id)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        from nbtrack.tracking.artifacts import list_artifacts

        return list_artifacts(self._store(), run_id, path)

    def download_artifacts(
        self, run_id: str, path: str, dst_path: str | os.PathLike[str] | None = None
    ) -> str:
        from nbtrack.tracking.artifacts import download_artifacts

        return download_artifacts(self._store(), run_id, path, dst_path)

    # -- registered models -------------------------------------------------------------------

    def create_registered_model(
        self,
        name: str,
        tags: dict[str, Any] | None = None,
        description: str | None = None,
        *,
        reason: str | None = None,
    ) -> RegisteredModel:
        return registry.create_registered_model(name, tags, description, reason=reason)

    def get_registered_model(self, name: str) -> RegisteredModel:
        return registry.get_registered_model(name)

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        return PagedList(registry.search_registered_models(filter_string, max_results, order_by))

    def rename_registered_model(
        self, name: str, new_name: str, *, reason: str | None = None
    ) -> RegisteredModel:
        return registry.rename_registered_model(name, new_name, reason=reason)

    def update_registered_model(
        self, name: str, description: str | None = None, *, reason: str | None = None
    ) -> RegisteredModel:
        return registry.update_registered_model(name, description, reason=reason)

    def delete_registered_model(self, name: str, *, reason: str | None = None) -> None:
        registry.delete_registered_model(name, reason=reason)

    def set_registered_model_tag(
        self, name: str, key: str, value: Any, *, reason: str | None = None
    ) -> None:
        registry.set_registered_model_tag(name, key, value, reason=reason)

    def delete_registered_model_tag(
        self, name: str, key: str, *, reason: str | None = None
    ) -> None:
        registry.delete_registered_model_tag(name, key, reason=reason)

    # -- model versions ----------------------------------------------------------------------

    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: dict[str, Any] | None = None,
        run_link: str | None = None,
        description: str | None = None,
        await_creation_for: int = 300,
        model_id: str | None = None,
        *,
        reason: str | None = None,
    ) -> ModelVersion:
        return registry.create_model_version(name, source, run_id, tags, description, reason=reason)

    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        return registry.get_model_version(name, version)

    def update_model_version(
        self,
        name: str,
        version: str | int,
        description: str | None = None,
        *,
        reason: str | None = None,
    ) -> ModelVersion:
        return registry.update_model_version(name, version, description, reason=reason)

    def delete_model_version(
        self, name: str, version: str | int, *, reason: str | None = None
    ) -> None:
        registry.delete_model_version(name, version, reason=reason)

    def transition_model_version_stage(
        self,
        name: str,
        version: str | int,
        stage: str,
        archive_existing_versions: bool = False,
        *,
        reason: str | None = None,
        force: bool = False,
    ) -> ModelVersion:
        """Move a version to a stage; the model's policy checks apply (see nbtrack.registry)."""
        return registry.stages.transition_mlflow_style(
            name, version, stage, archive_existing_versions, reason, force
        )

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[ModelVersion]:
        return registry.get_latest_versions(name, stages)

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = 10_000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        return PagedList(registry.search_model_versions(filter_string, max_results, order_by))

    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        row = registry.queries.lookup(name, str(registry.names.check_version(version)))
        return (self._store().artifact_dir(row["run_id"]) / row["artifact_path"]).as_uri()

    def copy_model_version(
        self, src_model_uri: str, dst_name: str, *, reason: str | None = None
    ) -> ModelVersion:
        return registry.copy_model_version(src_model_uri, dst_name, reason=reason)

    def set_model_version_tag(
        self,
        name: str,
        version: str | int | None = None,
        key: str | None = None,
        value: Any = None,
        stage: str | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        number = self._version_or_stage(name, version, stage)
        registry.set_model_version_tag(name, number, key, value, reason=reason)

    def delete_model_version_tag(
        self,
        name: str,
        version: str | int | None = None,
        key: str | None = None,
        stage: str | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        number = self._version_or_stage(name, version, stage)
        registry.delete_model_version_tag(name, number, key, reason=reason)

    def _version_or_stage(self, name: str, version: Any, stage: str | None) -> int:
        if (version is None) == (stage is None):
            raise InvalidParameterError("Pass exactly one of version or stage.")
        if version is not None:
            return registry.names.check_version(version)
        return registry.queries.lookup(name, stage)["version"]

    # -- aliases ---------------------------------------------------------------------------

    def set_registered_model_alias(
        self,
        name: str,
        alias: str,
        version: str | int,
        *,
        reason: str | None = None,
        force: bool = False,
    ) -> None:
        """Point an alias at a version; a protected alias is reviewed (see nbtrack.registry)."""
        registry.aliases.set_alias_mlflow_style(name, alias, version, reason, force)

    def delete_registered_model_alias(
        self, name: str, alias: str, *, reason: str | None = None
    ) -> None:
        registry.aliases.delete_alias_mlflow_style(name, alias, reason)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return registry.get_model_version_by_alias(name, alias)
