"""MLflow's model registry store over nbtrack's registry (``nbtrack:`` registry URIs).

Each call runs nbtrack's own registry call on this store (``registry.queries.using_store``):
versions are registered from their verified packages, and stage transitions and alias moves
go through the model's policy as nbtrack's ``MlflowClient`` calls do — gates checked, an
audit event recorded, and a move that needs a reason and has none (MLflow's calls cannot
pass one) warns and records "no reason given", unless the policy requires a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry.abstract_store import AbstractStore

from nbtrack import registry
from nbtrack.errors import NbtrackError
from nbtrack.mlflow_plugin import entities, logged_models, uris
from nbtrack.mlflow_plugin.errors import already_exists, as_mlflow, refuse
from nbtrack.registry import aliases, stages
from nbtrack.registry.queries import using_store
from nbtrack.store import Store
from nbtrack.tracking import paging
from nbtrack.tracking.session import open_store

Result = TypeVar("Result")


class NbtrackRegistryStore(AbstractStore):
    """MLflow's registry ``AbstractStore`` on the nbtrack store an ``nbtrack:`` URI names."""

    def __init__(self, store_uri: str | None = None, tracking_uri: str | None = None) -> None:
        super().__init__(store_uri, tracking_uri)
        self.path: Path = uris.store_path(store_uri or f"{uris.TRACKING_SCHEME}:")

    @property
    def store(self) -> Store:
        return open_store(self.path)

    def _on_store(self, call: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
        """``call`` acting on this store, its errors as MLflow's."""
        try:
            with using_store(self.store):
                return call(*args, **kwargs)
        except NbtrackError as error:
            raise as_mlflow(error) from error

    # -- registered models --------------------------------------------------------------------

    def create_registered_model(self, name, tags=None, description=None, deployment_job_id=None):
        tag_dict = {t.key: t.value for t in tags or []}

        def create() -> Any:
            with self.store.registry.reading() as state:
                if state.model(name) is not None:
                    raise already_exists(f"Registered model {name!r} already exists.")
            return registry.create_registered_model(name, tag_dict, description)

        return entities.registered_model(self._on_store(create))

    def update_registered_model(self, name, description, deployment_job_id=None):
        model = self._on_store(registry.update_registered_model, name, description)
        return entities.registered_model(model)

    def rename_registered_model(self, name, new_name):
        model = self._on_store(registry.rename_registered_model, name, new_name)
        return entities.registered_model(model)

    def delete_registered_model(self, name):
        self._on_store(registry.delete_registered_model, name)

    def get_registered_model(self, name):
        return entities.registered_model(self._on_store(registry.get_registered_model, name))

    def search_registered_models(
        self, filter_string=None, max_results=None, order_by=None, page_token=None
    ):
        filter_string = _without_prompt_clause(filter_string)
        found = self._on_store(registry.search_registered_models, filter_string, None, order_by)
        page = self._on_store(paging.page, found, max_results, page_token)
        return PagedList([entities.registered_model(m) for m in page], page.token)

    def get_latest_versions(self, name, stages=None):
        found = self._on_store(registry.get_latest_versions, name, stages)
        return [entities.model_version(v) for v in found]

    def set_registered_model_tag(self, name, tag):
        self._on_store(registry.set_registered_model_tag, name, tag.key, tag.value)

    def delete_registered_model_tag(self, name, key):
        self._on_store(registry.delete_registered_model_tag, name, key)

    # -- model versions -------------------------------------------------------------------------

    def create_model_version(
        self,
        name,
        source,
        run_id=None,
        tags=None,
        run_link=None,
        description=None,
        local_model_path=None,
        model_id=None,
    ):
        """Register the package ``source`` names: a run's artifacts (a ``runs:/`` URI or the
        plugin's artifact URI), a logged model (``models:/m-...``) or another version."""
        tag_dict = {t.key: t.value for t in tags or []}
        uri = self._on_store(self._package_uri, source, model_id)
        version = self._on_store(
            registry.create_model_version, name, uri, run_id, tag_dict, description
        )
        return entities.model_version(version)

    def _package_uri(self, source: str, model_id: str | None) -> str:
        if isinstance(source, str) and source.startswith(f"{uris.ARTIFACT_SCHEME}:"):
            location = uris.parse_artifact_uri(source)
            return f"runs:/{location.run_id}/{location.path}"
        logged = model_id or _logged_model_id(source)
        if logged is not None:
            model = logged_models.get(self.store, logged)
            return f"runs:/{model['source_run_id']}/{model['name']}"
        return source

    def update_model_version(self, name, version, description):
        found = self._on_store(registry.update_model_version, name, version, description)
        return entities.model_version(found)

    def transition_model_version_stage(self, name, version, stage, archive_existing_versions):
        moved = self._on_store(
            stages.transition_mlflow_style,
            name,
            version,
            stage,
            archive_existing_versions,
            None,
            False,
        )
        return entities.model_version(
            self._on_store(registry.get_model_version, name, moved.version)
        )

    def delete_model_version(self, name, version):
        self._on_store(registry.delete_model_version, name, version)

    def get_model_version(self, name, version):
        return entities.model_version(self._on_store(registry.get_model_version, name, version))

    def get_model_version_download_uri(self, name, version):
        row = self._on_store(registry.queries.lookup, name, str(version))
        return uris.artifact_uri(self.store, row["run_id"], row["artifact_path"])

    def search_model_versions(
        self, filter_string=None, max_results=None, order_by=None, page_token=None
    ):
        found = self._on_store(registry.search_model_versions, filter_string, None, order_by)
        page = self._on_store(paging.page, found, max_results, page_token)
        return PagedList([entities.model_version(v) for v in page], page.token)

    def set_model_version_tag(self, name, version, tag):
        self._on_store(registry.set_model_version_tag, name, version, tag.key, tag.value)

    def delete_model_version_tag(self, name, version, key):
        self._on_store(registry.delete_model_version_tag, name, version, key)

    # -- aliases ----------------------------------------------------------------------------------

    def set_registered_model_alias(self, name, alias, version):
        self._on_store(aliases.set_alias_mlflow_style, name, alias, version, None, False)

    def delete_registered_model_alias(self, name, alias):
        self._on_store(aliases.delete_alias_mlflow_style, name, alias, None)

    def get_model_version_by_alias(self, name, alias):
        found = self._on_store(registry.get_model_version_by_alias, name, alias)
        return entities.model_version(found)


# MLflow's client adds this clause to every registered-model search to leave prompts out;
# its sqlite store drops it and leaves them out another way. nbtrack holds no prompts.
_PROMPT_CLAUSE = "tag.`mlflow.prompt.is_prompt` != 'true'"


def _without_prompt_clause(filter_string: str | None) -> str | None:
    if filter_string == _PROMPT_CLAUSE:
        return None
    suffix = f" AND {_PROMPT_CLAUSE}"
    if filter_string and filter_string.endswith(suffix):
        return filter_string[: -len(suffix)]
    return filter_string


def _logged_model_id(source: Any) -> str | None:
    """The logged model a ``models:/<model id>`` source names, if it names one."""
    if not isinstance(source, str) or not source.startswith("models:/"):
        return None
    path = urlparse(source).path.strip("/")
    return path if path.startswith("m-") and "/" not in path and "@" not in path else None


_UNSUPPORTED = {
    "Prompts": (
        "create_prompt", "search_prompts", "delete_prompt", "set_prompt_tag",
        "delete_prompt_tag", "get_prompt", "create_prompt_version", "get_prompt_version",
        "delete_prompt_version", "get_prompt_version_by_alias", "set_prompt_alias",
        "delete_prompt_alias", "search_prompt_versions", "set_prompt_version_tag",
        "delete_prompt_version_tag", "link_prompt_version_to_model",
        "link_prompt_version_to_run", "link_prompts_to_trace",
    ),
    "Webhooks": (
        "create_webhook", "get_webhook", "list_webhooks", "update_webhook", "delete_webhook",
        "test_webhook",
    ),
}  # fmt: skip


refuse(NbtrackRegistryStore, _UNSUPPORTED)
