"""MLflow's tracking store over an nbtrack store: what ``nbtrack:`` tracking URIs give MLflow.

Every call keeps MLflow's semantics (its entity classes, error codes, param immutability,
``mlflow.runName`` renames, page tokens) on nbtrack's store: runs are journals, searches
read the catalog with nbtrack's grammar, and ``log_metric`` puts the point in the run's
buffer when this process has the run open (as it has every run MLflow starts here), so a
call costs MLflow's client overhead and almost nothing more. Buffered points are written
within a second, at the run's end and at exit, and every read this store serves writes
them first, so MLflow code never sees them missing.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

from mlflow.entities import (
    LifecycleStage,
    LoggedModelOutput,
    Metric,
    RunOutputs,
    RunStatus,
)
from mlflow.entities.dataset_summary import _DatasetSummary
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.store.tracking.gateway import GatewayStoreMixin
from mlflow.store.tracking.mcp_server_registry import MCPServerRegistryMixin
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from nbtrack.entities import ViewType
from nbtrack.errors import InvalidParameterError, NbtrackError, NotFoundError
from nbtrack.mlflow_plugin import checks, entities, lifecycle, logged_models, uris
from nbtrack.mlflow_plugin.errors import (
    already_exists,
    as_mlflow,
    mlflow_errors,
    not_supported,
    refuse,
)
from nbtrack.mlflow_plugin.logged_model_calls import LoggedModelCalls
from nbtrack.store import Store
from nbtrack.store.records import POINT_WIDTH, model_record
from nbtrack.tracking import experiments, paging, runs
from nbtrack.tracking.names import random_run_name
from nbtrack.tracking.session import Session, open_store
from nbtrack.validation import (
    check_experiment_name,
    check_key,
    check_param_value,
    check_tag_value,
    metric_step,
    metric_timestamp,
    metric_value,
)

LOGGED_MODELS_TAG = "mlflow.log-model.history"


class NbtrackTrackingStore(LoggedModelCalls, AbstractStore):
    """MLflow's ``AbstractStore`` on the nbtrack store an ``nbtrack:`` URI names.

    MLflow builds one per tracking URI (``store_uri``); ``artifact_uri`` is ignored, as
    nbtrack keeps every artifact inside its store, beside its run.
    """

    def __init__(self, store_uri: str | None = None, artifact_uri: str | None = None) -> None:
        super().__init__()
        self.path: Path = uris.store_path(store_uri or f"{uris.TRACKING_SCHEME}:")
        self._session = Session(self.path)  # experiments and inputs, on this store
        self._metric_keys: set[str] = set()  # validated already: log_metric skips the regex
        self._history: tuple[str, str, list[Metric]] | None = None  # the page being read

    @property
    def store(self) -> Store:
        """The process's one Store for the folder (reopened if it was closed)."""
        return open_store(self.path)

    # -- experiments -----------------------------------------------------------------------

    @mlflow_errors
    def create_experiment(self, name, artifact_location=None, tags=None):
        name = check_experiment_name(name)
        existing = self.store.get_experiment_by_name(name)
        if existing is not None:
            state = " (deleted: restore it or pick another name)" * (
                existing["lifecycle_stage"] == LifecycleStage.DELETED
            )
            raise already_exists(
                f"Experiment '{name}' already exists{state} in {self.path} with id "
                f"'{existing['experiment_id']}'."
            )
        tag_dict = {t.key: t.value for t in tags or []}
        return experiments.create(self._session, name, artifact_location, tag_dict)

    @mlflow_errors
    def get_experiment(self, experiment_id):
        row = self.store.get_experiment(str(experiment_id))
        return entities.experiment(row, uris.experiment_location(self.store))

    @mlflow_errors
    def get_experiment_by_name(self, experiment_name):
        row = self.store.get_experiment_by_name(experiment_name)
        if row is None:
            return None
        return entities.experiment(row, uris.experiment_location(self.store))

    @mlflow_errors
    def search_experiments(
        self,
        view_type=ViewType.ACTIVE_ONLY,
        max_results=SEARCH_MAX_RESULTS_DEFAULT,
        filter_string=None,
        order_by=None,
        page_token=None,
    ):
        checks.max_results(max_results)
        found = experiments.search(self._session, view_type, filter_string, order_by)
        page = paging.page(found, max_results, page_token)
        location = uris.experiment_location(self.store)
        rows = [{**e._asdict(), "tags": e.tags} for e in page]
        return PagedList([entities.experiment(r, location) for r in rows], page.token)

    @mlflow_errors
    def delete_experiment(self, experiment_id):
        """Delete an experiment and its runs, as MLflow's sqlite store does."""
        self._set_experiment_lifecycle(str(experiment_id), LifecycleStage.DELETED)

    @mlflow_errors
    def restore_experiment(self, experiment_id):
        """Restore an experiment and its runs, as MLflow's sqlite store does."""
        self._set_experiment_lifecycle(str(experiment_id), LifecycleStage.ACTIVE)

    def _set_experiment_lifecycle(self, experiment_id: str, stage: str) -> None:
        store = self.store
        if experiment_id == "0" and stage == LifecycleStage.DELETED:
            raise InvalidParameterError("The default experiment (id 0) cannot be deleted.")
        store.get_experiment(experiment_id)
        experiments.set_lifecycle(self._session, experiment_id, stage)
        for row in store.runs():
            if row["experiment_id"] == experiment_id and row["lifecycle_stage"] != stage:
                store.set_lifecycle(row["run_id"], stage)

    @mlflow_errors
    def rename_experiment(self, experiment_id, new_name):
        self._check_experiment_active(str(experiment_id))
        experiments.rename(self._session, str(experiment_id), new_name)

    @mlflow_errors
    def set_experiment_tag(self, experiment_id, tag):
        self._check_experiment_active(str(experiment_id))
        experiments.set_tag(self._session, str(experiment_id), tag.key, tag.value)

    @mlflow_errors
    def delete_experiment_tag(self, experiment_id, key):
        row = self._check_experiment_active(str(experiment_id))
        if key not in row.get("tags", {}):
            raise NotFoundError(f"Experiment {experiment_id} has no tag {key!r}.")
        self.store.update_experiment(str(experiment_id), untag=[key])

    def _check_experiment_active(self, experiment_id: str) -> dict[str, Any]:
        row = self.store.get_experiment(experiment_id)
        if row["lifecycle_stage"] != LifecycleStage.ACTIVE:
            raise InvalidParameterError(
                f"Experiment {experiment_id} is deleted; restore it (restore_experiment) first."
            )
        return row

    # -- runs --------------------------------------------------------------------------------

    @mlflow_errors
    def create_run(self, experiment_id, user_id, start_time, tags, run_name):
        tag_dict = checks.tags(tags or [])
        named = tag_dict.get(lifecycle.RUN_NAME_TAG)
        if run_name and named and run_name != named:
            raise InvalidParameterError(
                f"run_name={run_name!r} and the tag mlflow.runName={named!r} disagree: pass "
                "one of them, or the same name to both."
            )
        name = run_name or named or random_run_name()
        tag_dict[lifecycle.RUN_NAME_TAG] = name
        store = self.store
        start_time = start_time if start_time is not None else int(time.time() * 1000)
        run_id = lifecycle.create(store, str(experiment_id), user_id, tag_dict, name, start_time)
        if lifecycle.JOIN_TAG in (t.key for t in tags or []):
            return self._run(store, run_id)  # it may have joined a %%track cell's run
        row = {
            "run_id": run_id,
            "experiment_id": str(experiment_id),
            "run_name": name,
            "user_id": user_id,
            "status": "RUNNING",
            "start_time": start_time,
            "tags": tag_dict,
        }  # what the store now holds: built here rather than read back
        return entities.run(row, uris.artifact_uri(store, run_id))

    @mlflow_errors
    def get_run(self, run_id):
        store = self.store
        _write_buffered(store, run_id)
        return self._run(store, run_id)

    def _run(self, store: Store, run_id: str) -> Any:
        row = store.get_run(run_id)
        inputs = store.records(run_id, "input") if row.get("inputs") else ()
        outputs = _outputs(store, run_id) if row.get("logged_models") else None
        return entities.run(row, uris.artifact_uri(store, run_id), inputs, outputs)

    @mlflow_errors
    def update_run_info(self, run_id, run_status, end_time, run_name):
        store = self.store
        row = self._active_row(store, run_id)
        status = _status_name(run_status) if run_status is not None else row["status"]
        if status == "RUNNING" and row["status"] != status:
            lifecycle.resume(store, run_id)
            end_time = None
        elif RunStatus.is_terminated(RunStatus.from_string(status)):
            lifecycle.finish(store, run_id, status, end_time)
        elif status != row["status"]:
            store.set_fields(run_id, status=status)
        if run_name:
            store.rename_run(run_id, run_name)
        changed = {"status": status, "end_time": end_time, "run_name": run_name or row["run_name"]}
        return entities.run_info({**row, **changed}, uris.artifact_uri(store, run_id))

    @mlflow_errors
    def delete_run(self, run_id):
        self.store.set_lifecycle(run_id, LifecycleStage.DELETED)

    @mlflow_errors
    def restore_run(self, run_id):
        self.store.set_lifecycle(run_id, LifecycleStage.ACTIVE)

    def _active_row(self, store: Store, run_id: str) -> dict[str, Any]:
        row = store.get_run(run_id)
        if row.get("lifecycle_stage") != LifecycleStage.ACTIVE:
            raise InvalidParameterError(
                f"Run '{run_id}' is deleted; restore it (restore_run) before changing it."
            )
        return row

    # -- logging -------------------------------------------------------------------------------

    def log_metric(self, run_id, metric):
        """The hot path: checks, then a list extend when this process has the run open."""
        try:
            point = self._point(metric)
            store = self.store
            writer = store.writer(run_id)
            if writer is not None and metric.model_id is None:
                writer.points.extend(point)  # a deleted run's buffer refuses it
            else:
                self._log_points(store, run_id, [metric], list(point))
        except NbtrackError as error:
            raise as_mlflow(error) from error

    def _point(self, metric: Metric) -> tuple:
        """One checked point, as nbtrack's buffers hold it (key, value, step, time)."""
        key = metric.key
        if key not in self._metric_keys:
            self._metric_keys.add(check_key(key, "metric"))
        value, step, timestamp = metric.value, metric.step, metric.timestamp
        if type(value) is not float:
            value = metric_value(key, value)
        if type(step) is not int:
            step = metric_step(key, step)
        if type(timestamp) is not int or timestamp < 0:
            timestamp = metric_timestamp(key, timestamp)
        return (key, value, step, timestamp)

    def _log_points(self, store: Store, run_id: str, metrics: list, points: list) -> None:
        """Points for a run not open here (or tied to a logged model): to its journal now.
        A point tied to a model that repeats one the run has (``log_model`` re-logs the
        run's metrics for its model) is not logged twice, as MLflow's sqlite store keeps it
        once."""
        self._active_row(store, run_id)
        if any(m.model_id is not None for m in metrics):
            points = _without_repeats(store, run_id, metrics, points)
        if points:
            store.log_points(run_id, points)

    @mlflow_errors
    def log_param(self, run_id, param):
        key = check_key(param.key, "param")
        self.store.log_params(run_id, {key: check_param_value(key, param.value)})

    @mlflow_errors
    def set_tag(self, run_id, tag):
        self._set_tags(self.store, run_id, checks.tags([tag]))

    def _set_tags(self, store: Store, run_id: str, tags: dict[str, str]) -> None:
        name = tags.pop(lifecycle.RUN_NAME_TAG, None)
        if tags:
            store.set_tags(run_id, tags)
        if name is not None:
            store.rename_run(run_id, name)

    @mlflow_errors
    def delete_tag(self, run_id, key):
        store = self.store
        self._active_row(store, run_id)
        store.delete_tag(run_id, key)

    @mlflow_errors
    def log_batch(self, run_id, metrics, params, tags):
        """Everything is checked before anything is written; then params (an attempt to
        change one refuses the whole batch), metrics and tags, as MLflow's sqlite store."""
        metrics, params, tags = list(metrics or []), list(params or []), list(tags or [])
        checks.batch_limits(metrics, params, tags)
        points = [item for metric in metrics for item in self._point(metric)]
        param_dict = checks.params(params)
        tag_dict = checks.tags(tags)
        store = self.store
        if param_dict:
            store.log_params(run_id, param_dict)  # checks the run is there and active
        else:
            _check_run(store, run_id)
        writer = store.writer(run_id)
        if points and writer is not None and not any(m.model_id for m in metrics):
            writer.points.extend(points)
        elif points:
            self._log_points(store, run_id, metrics, points)
        if tag_dict:
            self._set_tags(store, run_id, tag_dict)

    @mlflow_errors
    def log_inputs(self, run_id, datasets=None, models=None):
        """Record dataset inputs (logging one again is a no-op); model inputs are not kept."""
        store = self.store
        self._active_row(store, run_id)
        checked = [checks.dataset(d) for d in datasets or []]
        for fields, input_tags in checked:
            self._session.add_input(store, run_id, fields, input_tags)

    @mlflow_errors
    def log_outputs(self, run_id, models):
        store = self.store
        self._active_row(store, run_id)
        for output in models:
            logged_models.get(store, output.model_id)
        records = [model_record(o.model_id, output_step=int(o.step)) for o in models]
        if records:
            store.append(run_id, records)

    @mlflow_errors
    def record_logged_model(self, run_id, mlflow_model):
        """MLflow's ``mlflow.log-model.history`` tag: each model logged, as JSON."""
        store = self.store
        row = self._active_row(store, run_id)
        history = json.loads(row.get("tags", {}).get(LOGGED_MODELS_TAG, "[]"))
        value = json.dumps([*history, mlflow_model.get_tags_dict()])
        store.set_tags(run_id, {LOGGED_MODELS_TAG: check_tag_value(LOGGED_MODELS_TAG, value)})

    # -- reading --------------------------------------------------------------------------------

    @mlflow_errors
    def get_metric_history(self, run_id, metric_key, max_results=None, page_token=None):
        """Every point of a metric in logged order, in pages of ``max_results``. A sequence
        of pages reads the journal once: later pages slice what the first one read."""
        cached = self._history
        if page_token is not None and cached is not None and cached[:2] == (run_id, metric_key):
            history = cached[2]
        else:
            history = self._read_history(run_id, metric_key)
        page = paging.page(history, max_results, page_token)
        self._history = (run_id, metric_key, history) if page.token else None
        return PagedList(list(page), page.token)

    def _read_history(self, run_id: str, key: str) -> list[Metric]:
        steps, values, times = self.store.metric_history(run_id, key)
        keys = itertools.repeat(key, len(steps))
        return list(map(Metric, keys, values.tolist(), times.tolist(), steps.tolist()))

    @mlflow_errors
    def _search_runs(
        self, experiment_ids, filter_string, run_view_type, max_results, order_by, page_token
    ):
        checks.max_results(max_results)
        store = self.store
        store.flush(durable=False)  # buffered points count in filters and orders
        ids = {str(i) for i in experiment_ids or []}
        found = runs.search_hits(store, ids, filter_string, run_view_type, None, order_by)
        page = paging.page(found, max_results, page_token)
        return [self._searched_run(store, row) for row in page], page.token

    def _searched_run(self, store: Store, row: dict[str, Any]) -> Any:
        run_id = row["run_id"]
        if not row.get("inputs") and not row.get("logged_models"):
            return entities.run(row, uris.artifact_uri(store, run_id))
        return self._run(store, run_id)

    @mlflow_errors
    def _search_datasets(self, experiment_ids):
        """The datasets the experiments' runs took as inputs (name, digest, context), at
        most 1,000, as MLflow's sqlite store lists them for its UI's dataset filter."""
        store = self.store
        ids = {str(i) for i in experiment_ids}
        found: dict[tuple, None] = {}
        for row in store.runs():
            if row["experiment_id"] in ids and row.get("inputs"):
                for record in store.records(row["run_id"], "input"):
                    dataset, context = record["dataset"], record["tags"].get(MLFLOW_DATASET_CONTEXT)
                    summary = (row["experiment_id"], dataset["name"], dataset["digest"], context)
                    found[summary] = None
        return [_DatasetSummary(*summary) for summary in itertools.islice(found, 1000)]

    # -- what an nbtrack store does not hold ----------------------------------------------------

    def link_traces_to_run(self, trace_ids, run_id):
        raise not_supported("Traces")

    def query_trace_metrics(self, experiment_ids, view_type, metric_name, aggregations, **_):
        """No data points: the store holds no traces. MLflow's UI opens an experiment on
        charts of its traces' metrics, which stay loading, their requests retried, when
        this fails."""
        return PagedList([], None)


# Everything MLflow's tracing, GenAI evaluation and scorer APIs ask of a store: each raises
# MLflow's not-implemented error naming what is missing, instead of a bare NotImplementedError.
_UNSUPPORTED = {
    "Traces": (
        "start_trace", "log_spans", "get_trace_info", "get_trace", "batch_get_traces",
        "batch_get_trace_infos", "search_traces", "set_trace_tag", "delete_trace_tag",
        "_delete_traces", "unlink_traces_from_run", "link_prompts_to_trace",
        "create_assessment", "get_assessment", "update_assessment", "delete_assessment",
    ),
    "Evaluation datasets": (
        "create_dataset", "get_dataset", "delete_dataset", "search_datasets",
        "upsert_dataset_records", "delete_dataset_records", "set_dataset_tags",
        "delete_dataset_tag", "add_dataset_to_experiments", "remove_dataset_from_experiments",
        "get_dataset_experiment_ids", "_load_dataset_records",
    ),
    "Scorers": ("register_scorer", "list_scorers", "get_scorer", "list_scorer_versions",
                "delete_scorer", "upsert_online_scoring_config", "get_online_scoring_configs",
                "get_active_online_scorers", "get_online_trace_details",
                "find_completed_sessions"),
    "Review queues and label schemas": (
        "create_review_queue", "get_review_queue", "get_review_queue_by_name",
        "list_review_queues", "update_review_queue", "delete_review_queue",
        "get_or_create_user_queue", "add_items_to_review_queue", "list_review_queue_items",
        "remove_items_from_review_queue", "set_review_queue_item_status",
        "create_label_schema", "get_label_schema", "get_label_schema_by_name",
        "list_label_schemas", "update_label_schema", "delete_label_schema",
    ),
    "Issues": ("create_issue", "get_issue", "update_issue", "search_issues"),
    "Trace archives and analyses": ("archive_traces", "calculate_trace_filter_correlation"),
}  # fmt: skip

# MLflow's AI Gateway and MCP server registry: every method their mixins give the store.
_UNSUPPORTED_MIXINS = {
    "AI Gateway endpoints, secrets and budgets": GatewayStoreMixin,
    "MCP servers": MCPServerRegistryMixin,
}

refuse(NbtrackTrackingStore, _UNSUPPORTED)
refuse(
    NbtrackTrackingStore,
    {
        what: tuple(name for name in vars(mixin) if not name.startswith("_"))
        for what, mixin in _UNSUPPORTED_MIXINS.items()
    },
)


def _status_name(status: Any) -> str:
    return status if isinstance(status, str) else RunStatus.to_string(status)


# -- helpers -------------------------------------------------------------------------------------


def _check_run(store: Store, run_id: str) -> None:
    """Raise unless the run exists (cheaply when this process has it open)."""
    if store.writer(run_id) is None:
        store.get_run(run_id)


def _write_buffered(store: Store, run_id: str) -> None:
    """Write a run's buffered points, so a read sees every point logged before it."""
    writer = store.writer(run_id)
    if writer is not None and writer.points:
        writer.flush()


def _outputs(store: Store, run_id: str) -> RunOutputs:
    models = logged_models.of_run(store, run_id).values()
    return RunOutputs(
        [LoggedModelOutput(m["model_id"], m["output_step"]) for m in models if "output_step" in m]
    )


def _without_repeats(store: Store, run_id: str, metrics: list, points: list) -> list:
    """``points`` less those tied to a logged model that repeat a point the run has."""
    kept = []
    for index, metric in enumerate(metrics):
        point = points[index * POINT_WIDTH : (index + 1) * POINT_WIDTH]
        if metric.model_id is not None:
            steps, values, times = store.metric_history(run_id, metric.key)
            logged = set(zip(steps.tolist(), values.tolist(), times.tolist(), strict=True))
            if (point[2], point[1], point[3]) in logged:
                continue
        kept.extend(point)
    return kept
