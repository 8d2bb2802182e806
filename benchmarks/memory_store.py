"""The floor for bench_plugin.py: an MLflow tracking store that keeps everything in dicts.

It does what any store must do for the benchmark's calls and nothing more (no checks, no
disk), so timing ``mlflow.*`` calls against it measures MLflow's own layers: the fluent
API, the client, entity construction and, for searches, MLflow's ``SearchUtils`` and the
DataFrame. Registered at run time for a ``memory:`` tracking URI (:func:`register`).
"""

from __future__ import annotations

import time
import uuid

from mlflow.entities import (
    Experiment,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunStatus,
    RunTag,
    ViewType,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.search_utils import SearchExperimentsUtils, SearchUtils

SCHEME = "memory"


class MemoryStore(AbstractStore):
    def __init__(self, store_uri: str | None = None, artifact_uri: str | None = None) -> None:
        super().__init__()
        now = int(time.time() * 1000)
        self.experiments = {"0": Experiment("0", "Default", "memory://0", "active", [], now, now)}
        self.infos: dict[str, RunInfo] = {}
        self.params: dict[str, dict[str, str]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.latest: dict[str, dict[str, Metric]] = {}
        self.history: dict[tuple[str, str], list[Metric]] = {}

    # experiments
    def create_experiment(self, name, artifact_location=None, tags=None):
        experiment_id = str(len(self.experiments))
        now = int(time.time() * 1000)
        self.experiments[experiment_id] = Experiment(
            experiment_id, name, f"memory://{experiment_id}", "active", tags or [], now, now
        )
        return experiment_id

    def get_experiment(self, experiment_id):
        return self.experiments[str(experiment_id)]

    def get_experiment_by_name(self, experiment_name):
        return next((e for e in self.experiments.values() if e.name == experiment_name), None)

    def search_experiments(
        self, view_type=ViewType.ACTIVE_ONLY, max_results=1000, filter_string=None,
        order_by=None, page_token=None,
    ):  # fmt: skip
        found = SearchExperimentsUtils.filter(list(self.experiments.values()), filter_string)
        return PagedList(found[:max_results], None)

    def delete_experiment(self, experiment_id):
        raise NotImplementedError

    def restore_experiment(self, experiment_id):
        raise NotImplementedError

    def rename_experiment(self, experiment_id, new_name):
        raise NotImplementedError

    # runs
    def create_run(self, experiment_id, user_id, start_time, tags, run_name):
        run_id = uuid.uuid4().hex
        tag_dict = {t.key: t.value for t in tags}
        tag_dict.setdefault("mlflow.runName", run_name or run_id[:8])
        self.infos[run_id] = RunInfo(
            run_id, str(experiment_id), user_id, "RUNNING", start_time, None, "active",
            f"memory://{run_id}/artifacts", tag_dict["mlflow.runName"],
        )  # fmt: skip
        self.params[run_id], self.tags[run_id], self.latest[run_id] = {}, tag_dict, {}
        return self.get_run(run_id)

    def get_run(self, run_id):
        info = self.infos.get(run_id)
        if info is None:
            raise MlflowException(f"Run {run_id} not found", RESOURCE_DOES_NOT_EXIST)
        data = RunData(
            metrics=list(self.latest[run_id].values()),
            params=[Param(k, v) for k, v in self.params[run_id].items()],
            tags=[RunTag(k, v) for k, v in self.tags[run_id].items()],
        )
        return Run(info, data, RunInputs([]))

    def update_run_info(self, run_id, run_status, end_time, run_name):
        old = self.infos[run_id]
        status = run_status if isinstance(run_status, str) else RunStatus.to_string(run_status)
        self.infos[run_id] = RunInfo(
            run_id, old.experiment_id, old.user_id, status, old.start_time, end_time,
            old.lifecycle_stage, old.artifact_uri, run_name or old.run_name,
        )  # fmt: skip
        return self.infos[run_id]

    def delete_run(self, run_id):
        raise NotImplementedError

    def restore_run(self, run_id):
        raise NotImplementedError

    # logging
    def log_metric(self, run_id, metric):
        self.history.setdefault((run_id, metric.key), []).append(metric)
        latest = self.latest[run_id].get(metric.key)
        if latest is None or (metric.step, metric.timestamp) >= (latest.step, latest.timestamp):
            self.latest[run_id][metric.key] = metric

    def log_param(self, run_id, param):
        self.params[run_id][param.key] = param.value

    def set_tag(self, run_id, tag):
        self.tags[run_id][tag.key] = tag.value

    def log_batch(self, run_id, metrics, params, tags):
        for metric in metrics:
            self.log_metric(run_id, metric)
        for param in params:
            self.log_param(run_id, param)
        for tag in tags:
            self.set_tag(run_id, tag)

    def log_inputs(self, run_id, datasets=None, models=None):
        pass

    def link_traces_to_run(self, trace_ids, run_id):
        raise NotImplementedError

    # reading
    def get_metric_history(self, run_id, metric_key, max_results=None, page_token=None):
        return PagedList(list(self.history.get((run_id, metric_key), [])), None)

    def _search_runs(
        self, experiment_ids, filter_string, run_view_type, max_results, order_by, page_token
    ):
        stages = LifecycleStage.view_type_to_stages(run_view_type)
        ids = {str(i) for i in experiment_ids}
        runs = [
            self.get_run(run_id)
            for run_id, info in self.infos.items()
            if info.experiment_id in ids and info.lifecycle_stage in stages
        ]
        found = SearchUtils.sort(SearchUtils.filter(runs, filter_string), order_by)
        return SearchUtils.paginate(found, page_token, max_results)


def register() -> None:
    """Make ``memory:`` tracking URIs build a :class:`MemoryStore` (one per URI)."""
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    _tracking_store_registry.register(SCHEME, MemoryStore)
