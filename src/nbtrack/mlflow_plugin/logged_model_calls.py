"""MLflow 3's logged-model calls on an nbtrack store (see logged_models.py for where they
live), mixed into the plugin's tracking store."""

from __future__ import annotations

from typing import Any

from mlflow.entities import LifecycleStage, LoggedModelStatus
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT

from nbtrack.errors import InvalidParameterError, NotFoundError
from nbtrack.mlflow_plugin import checks, lifecycle, logged_models
from nbtrack.mlflow_plugin.errors import mlflow_errors, not_supported
from nbtrack.store import Store
from nbtrack.tracking import paging


class LoggedModelCalls:
    """The store's logged-model methods; the class mixing it in gives ``store``."""

    store: Store

    @mlflow_errors
    def create_logged_model(
        self,
        experiment_id=None,
        name=None,
        source_run_id=None,
        tags=None,
        params=None,
        model_type=None,
    ):
        store = self.store
        tag_dict = {t.key: t.value for t in tags or [] if t.key != lifecycle.JOIN_TAG}
        param_dict = {p.key: p.value for p in params or []}
        if source_run_id is None:
            raise not_supported("Logged models outside a run")
        if store.get_run(source_run_id).get("lifecycle_stage") != LifecycleStage.ACTIVE:
            raise InvalidParameterError(f"Run '{source_run_id}' is deleted; restore it first.")
        model = logged_models.create(
            store, experiment_id, name, source_run_id, tag_dict, param_dict, model_type
        )
        return logged_models.entity(store, model)

    @mlflow_errors
    def get_logged_model(self, model_id, allow_deleted=False):
        store = self.store
        return logged_models.entity(store, logged_models.get(store, model_id, allow_deleted))

    @mlflow_errors
    def finalize_logged_model(self, model_id, status):
        store = self.store
        value = LoggedModelStatus(status).value
        return logged_models.entity(store, logged_models.update(store, model_id, status=value))

    @mlflow_errors
    def set_logged_model_tags(self, model_id, tags):
        logged_models.update(self.store, model_id, tags=checks.tags(tags))

    @mlflow_errors
    def delete_logged_model_tag(self, model_id, key):
        store = self.store
        if key not in logged_models.get(store, model_id).get("tags", {}):
            raise NotFoundError(f"Logged model {model_id!r} has no tag {key!r}.")
        logged_models.update(store, model_id, untag=[key])

    @mlflow_errors
    def log_logged_model_params(self, model_id, params):
        logged_models.update(self.store, model_id, params=checks.params(params))

    @mlflow_errors
    def delete_logged_model(self, model_id):
        logged_models.update(self.store, model_id, lifecycle_stage=LifecycleStage.DELETED)

    @mlflow_errors
    def search_logged_models(
        self,
        experiment_ids,
        filter_string=None,
        datasets=None,
        max_results=None,
        order_by=None,
        page_token=None,
    ):
        if datasets:
            raise not_supported("Dataset filters on logged models")
        store = self.store
        clauses = [_order_clause(o) for o in order_by or []]
        ids = {str(i) for i in experiment_ids}
        found = logged_models.search_models(store, ids, filter_string, clauses)
        page = paging.page(found, max_results or SEARCH_MAX_RESULTS_DEFAULT, page_token)
        return PagedList([logged_models.entity(store, m) for m in page], page.token)


def _order_clause(order: Any) -> str:
    """MLflow's logged-model order (``{"field_name": ..., "ascending": ...}``) as a clause."""
    if isinstance(order, str):
        return order
    direction = "ASC" if order.get("ascending", True) else "DESC"
    return f"{order['field_name']} {direction}"
