"""``MlflowClient``: MLflow's explicit client over an nbtrack store, registry included.

Every method has MLflow's name and parameters; the registry calls that move a version
also take nbtrack's ``reason=`` (and ``force=``). Without a reason they still succeed,
with a :class:`~nbtrack.registry.MissingReasonWarning`, and the event records
"no reason given" — unless the model's policy has ``require_reason=True``. Every call
acts on the client's own store, whatever the fluent API's is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from nbtrack import registry
from nbtrack.errors import InvalidParameterError
from nbtrack.registry.queries import using_store
from nbtrack.tracking.client import TrackingClient
from nbtrack.tracking.paging import PagedList, page

if TYPE_CHECKING:
    from nbtrack.registry.entities import ModelVersion, RegisteredModel

Method = TypeVar("Method", bound=Callable[..., Any])


def _on_client_store(method: Method) -> Method:
    """Run a registry call with the registry acting on the client's store."""

    @functools.wraps(method)
    def on_store(self: MlflowClient, *args: Any, **kwargs: Any) -> Any:
        with using_store(self.store):
            return method(self, *args, **kwargs)

    return on_store  # type: ignore[return-value]


class MlflowClient(TrackingClient):
    """MLflow's client API over the store at ``tracking_uri`` (see
    :class:`~nbtrack.tracking.client.TrackingClient`), with the model registry's calls.
    """

    # -- registered models -------------------------------------------------------------------

    @_on_client_store
    def create_registered_model(
        self,
        name: str,
        tags: dict[str, Any] | None = None,
        description: str | None = None,
        *,
        reason: str | None = None,
    ) -> RegisteredModel:
        return registry.create_registered_model(name, tags, description, reason=reason)

    @_on_client_store
    def get_registered_model(self, name: str) -> RegisteredModel:
        return registry.get_registered_model(name)

    @_on_client_store
    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        found = registry.search_registered_models(filter_string, None, order_by)
        return page(found, max_results, page_token)

    @_on_client_store
    def rename_registered_model(
        self, name: str, new_name: str, *, reason: str | None = None
    ) -> RegisteredModel:
        return registry.rename_registered_model(name, new_name, reason=reason)

    @_on_client_store
    def update_registered_model(
        self, name: str, description: str | None = None, *, reason: str | None = None
    ) -> RegisteredModel:
        return registry.update_registered_model(name, description, reason=reason)

    @_on_client_store
    def delete_registered_model(self, name: str, *, reason: str | None = None) -> None:
        registry.delete_registered_model(name, reason=reason)

    @_on_client_store
    def set_registered_model_tag(
        self, name: str, key: str, value: Any, *, reason: str | None = None
    ) -> None:
        registry.set_registered_model_tag(name, key, value, reason=reason)

    @_on_client_store
    def delete_registered_model_tag(
        self, name: str, key: str, *, reason: str | None = None
    ) -> None:
        registry.delete_registered_model_tag(name, key, reason=reason)

    # -- model versions ----------------------------------------------------------------------

    @_on_client_store
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

    @_on_client_store
    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        return registry.get_model_version(name, version)

    @_on_client_store
    def update_model_version(
        self,
        name: str,
        version: str | int,
        description: str | None = None,
        *,
        reason: str | None = None,
    ) -> ModelVersion:
        return registry.update_model_version(name, version, description, reason=reason)

    @_on_client_store
    def delete_model_version(
        self, name: str, version: str | int, *, reason: str | None = None
    ) -> None:
        registry.delete_model_version(name, version, reason=reason)

    @_on_client_store
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

    @_on_client_store
    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[ModelVersion]:
        return registry.get_latest_versions(name, stages)

    @_on_client_store
    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = 10_000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        found = registry.search_model_versions(filter_string, None, order_by)
        return page(found, max_results, page_token)

    @_on_client_store
    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        row = registry.queries.lookup(name, str(registry.names.check_version(version)))
        return (self.store.artifact_dir(row["run_id"]) / row["artifact_path"]).as_uri()

    @_on_client_store
    def copy_model_version(
        self, src_model_uri: str, dst_name: str, *, reason: str | None = None
    ) -> ModelVersion:
        return registry.copy_model_version(src_model_uri, dst_name, reason=reason)

    @_on_client_store
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

    @_on_client_store
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

    @_on_client_store
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

    @_on_client_store
    def delete_registered_model_alias(
        self, name: str, alias: str, *, reason: str | None = None
    ) -> None:
        registry.aliases.delete_alias_mlflow_style(name, alias, reason)

    @_on_client_store
    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return registry.get_model_version_by_alias(name, alias)
