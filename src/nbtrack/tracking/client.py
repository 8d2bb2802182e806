"""MLflow's explicit client for experiments, runs and artifacts over one nbtrack store
(``MlflowClient`` adds the registry's calls: ``nbtrack.registry.client``)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nbtrack.entities import (
    Experiment,
    Metric,
    MetricHistory,
    Param,
    Run,
    RunStatus,
    RunTag,
    ViewType,
    run_from_row,
)
from nbtrack.errors import InvalidParameterError
from nbtrack.tracking import artifacts, experiments, fluent, media, runs, tables
from nbtrack.tracking.names import random_run_name
from nbtrack.tracking.paging import PagedList, page
from nbtrack.tracking.session import Session
from nbtrack.validation import (
    check_key,
    check_param_value,
    check_tags,
    metric_step,
    metric_timestamp,
    metric_value,
)

if TYPE_CHECKING:
    import pandas as pd

    from nbtrack.entities import FileInfo
    from nbtrack.store import Store


class TrackingClient:
    """MLflow's client API for experiments, runs and artifacts over the store at
    ``tracking_uri``.

    Parameters
    ----------
    tracking_uri
        A folder or ``file:`` URI; by default the fluent API's store when the client is
        made. The client keeps to its store: it never changes where the fluent API writes.
    registry_uri
        Accepted for MLflow compatibility; the registry lives in the same store.
    """

    def __init__(self, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        if tracking_uri is None:
            tracking_uri = fluent.default_session().store_path
        self._session = Session(tracking_uri)
        self._registry_uri = registry_uri

    @property
    def tracking_uri(self) -> str:
        return self._session.tracking_uri

    @property
    def store(self) -> Store:
        """The store this client reads and writes."""
        return self._session.store

    # -- experiments ---------------------------------------------------------------------

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
    ) -> str:
        return experiments.create(self._session, name, artifact_location, tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return experiments.get(self._session, experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return experiments.get_by_name(self._session, name)

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int | None = 1000,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        found = experiments.search(self._session, view_type, filter_string, order_by)
        return page(found, max_results, page_token)

    def delete_experiment(self, experiment_id: str) -> None:
        experiments.set_lifecycle(self._session, experiment_id, "deleted")

    def restore_experiment(self, experiment_id: str) -> None:
        experiments.set_lifecycle(self._session, experiment_id, "active")

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        experiments.rename(self._session, experiment_id, new_name)

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        experiments.set_tag(self._session, experiment_id, key, value)

    # -- runs ------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
    ) -> Run:
        """Create a RUNNING run that is not the active run (end it with set_terminated)."""
        clean = check_tags(tags)
        name = run_name or clean.get("mlflow.runName") or random_run_name()
        writer = self._session.create_run(
            str(experiment_id), name, clean, clean.get("mlflow.parentRunId"), None, start_time
        )
        return runs.get_run(self.store, writer.run_id)

    def get_run(self, run_id: str) -> Run:
        return runs.get_run(self.store, run_id)

    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str = "",
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        store = self.store
        ids = runs.experiment_ids(store, experiment_ids, None) or set()
        found = runs.search_hits(store, ids, filter_string, run_view_type, None, order_by)
        paged = page(found, max_results, page_token)
        return PagedList([run_from_row(r) for r in paged], paged.token)

    def log_param(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> Any:
        self.store.log_params(run_id, {check_key(key, "param"): check_param_value(key, value)})
        return value

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
        synchronous: bool | None = None,
        dataset_name: str | None = None,
        dataset_digest: str | None = None,
        model_id: str | None = None,
    ) -> None:
        self.store.log_points(run_id, _point(key, value, step, timestamp))

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        synchronous: bool | None = None,
    ) -> None:
        """Log metrics, params and tags together; all are checked before any is written."""
        clean_params = {
            check_key(p.key, "param"): check_param_value(p.key, p.value) for p in params
        }
        clean_tags = check_tags({t.key: t.value for t in tags})
        points = [v for m in metrics for v in _point(m.key, m.value, m.step, m.timestamp)]
        store = self.store
        if clean_params:
            store.log_params(run_id, clean_params)
        if points:
            self.store.log_points(run_id, points)
        if clean_tags:
            store.set_tags(run_id, clean_tags)

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> None:
        self.store.set_tags(run_id, check_tags({key: value}))

    def delete_tag(self, run_id: str, key: str) -> None:
        self.store.delete_tag(run_id, key)

    def set_terminated(
        self, run_id: str, status: str | None = None, end_time: int | None = None
    ) -> None:
        status = status or RunStatus.FINISHED
        if not RunStatus.is_terminated(status):
            raise InvalidParameterError(
                f"set_terminated(status={status!r}): use FINISHED, FAILED or KILLED."
            )
        self.store.finish_run(run_id, status, end_time or int(time.time() * 1000))

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
        if status is not None:
            self.set_terminated(run_id, status)
        if name is not None:
            self.store.rename_run(run_id, name)

    def delete_run(self, run_id: str) -> None:
        self.store.set_lifecycle(run_id, "deleted")

    def restore_run(self, run_id: str) -> None:
        self.store.set_lifecycle(run_id, "active")

    def get_parent_run(self, run_id: str) -> Run | None:
        return runs.parent_run(self.store, run_id)

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory:
        return runs.metric_history(self.store, run_id, key)

    # -- artifacts ---------------------------------------------------------------------------

    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        artifacts.add(self.store, run_id, artifacts.file_entries(local_path, artifact_path))

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        artifacts.add(self.store, run_id, artifacts.folder_entries(local_dir, artifact_path))

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        artifacts.add(self.store, run_id, artifacts.text_entries(text, artifact_file))

    def log_dict(self, run_id: str, dictionary: dict[str, Any], artifact_file: str) -> None:
        artifacts.add(self.store, run_id, artifacts.dict_entries(dictionary, artifact_file))

    def log_figure(
        self,
        run_id: str,
        figure: Any,
        artifact_file: str,
        *,
        save_kwargs: dict[str, Any] | None = None,
    ) -> None:
        artifacts.add(self.store, run_id, media.figure_entries(figure, artifact_file, save_kwargs))

    def log_image(
        self,
        run_id: str,
        image: Any,
        artifact_file: str | None = None,
        key: str | None = None,
        step: int | None = None,
        timestamp: int | None = None,
        synchronous: bool | None = None,
    ) -> None:
        entries = media.image_entries(image, artifact_file, key, step, timestamp)
        media.add_images(self.store, run_id, entries, series=key is not None)

    def log_table(self, run_id: str, data: Any, artifact_file: str) -> None:
        tables.log(self.store, run_id, tables.prepare(data, artifact_file))

    def load_table(
        self,
        experiment_id: str,
        artifact_file: str,
        run_ids: list[str] | None = None,
        extra_columns: list[str] | None = None,
    ) -> pd.DataFrame:
        return tables.load(self.store, experiment_id, artifact_file, run_ids, extra_columns)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        return artifacts.list_artifacts(self.store, run_id, path)

    def download_artifacts(
        self, run_id: str, path: str, dst_path: str | os.PathLike[str] | None = None
    ) -> str:
        return artifacts.download_artifacts(self.store, run_id, path, dst_path)


def _point(key: str, value: Any, step: int | None, timestamp: int | None) -> tuple:
    """One checked metric point, as the session's buffers hold it."""
    return (
        check_key(key, "metric"),
        metric_value(key, value),
        0 if step is None else metric_step(key, step),
        time.time() * 1000 if timestamp is None else metric_timestamp(key, timestamp),
    )
