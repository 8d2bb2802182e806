"""The model registry: versions, stages, aliases, gated promotions, and why each move happened.

::

    import nbtrack
    from nbtrack import registry

    registry.set_policy("churn", production=["metrics.val_auc >= 0.85", "beats:metrics.val_auc"],
                        aliases={"champion": ["beats:metrics.val_auc"]}, distinct_approver=True)
    version = nbtrack.register_model(f"runs:/{run_id}/model", "churn")
    registry.promote("churn", version.version, "Production", reason="beats v3 on val_auc")
    registry.set_alias("churn", "champion", version.version, reason="wins the A/B test")
    registry.rollback("churn", reason="v4 mislabels new customers")
    registry.history("churn")            # every event: who, when, from, to, why, checks

Every change is an event appended to the store's ``registry.jsonl`` (never rewritten).
Moves to Staging, Production or Archived, and moves of aliases the policy protects, need
a reason; a move that fails its model's policy is refused with each failed check and its
actual value, unless forced with a reason (and then recorded as forced). ``MlflowClient``
calls without a reason still work: they warn and record "no reason given", unless the
policy has ``require_reason=True``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbtrack.registry.aliases import delete_alias, set_alias
from nbtrack.registry.changes import (
    copy_model_version,
    create_model_version,
    create_registered_model,
    delete_model_version,
    delete_model_version_tag,
    delete_registered_model,
    delete_registered_model_tag,
    register_model,
    rename_registered_model,
    set_model_version_tag,
    set_policy,
    set_registered_model_tag,
    update_model_version,
    update_registered_model,
)
from nbtrack.registry.entities import STAGES, ModelVersion, RegisteredModel
from nbtrack.registry.gates import CheckResult, TransitionRefused
from nbtrack.registry.history import history
from nbtrack.registry.names import NO_REASON, MissingReasonWarning, identity
from nbtrack.registry.queries import (
    acting_store,
    check_alias_move,
    check_transition,
    get_latest_versions,
    get_model_version,
    get_model_version_by_alias,
    get_policy,
    get_registered_model,
    search_model_versions,
    search_registered_models,
)
from nbtrack.registry.stages import promote, rollback

if TYPE_CHECKING:
    from nbtrack.render import StaticView

__all__ = [
    "NO_REASON",
    "STAGES",
    "CheckResult",
    "MissingReasonWarning",
    "ModelVersion",
    "RegisteredModel",
    "TransitionRefused",
    "check_alias_move",
    "check_transition",
    "copy_model_version",
    "create_model_version",
    "create_registered_model",
    "delete_alias",
    "delete_model_version",
    "delete_model_version_tag",
    "delete_registered_model",
    "delete_registered_model_tag",
    "get_latest_versions",
    "get_model_version",
    "get_model_version_by_alias",
    "get_policy",
    "get_registered_model",
    "history",
    "identity",
    "promote",
    "register_model",
    "rename_registered_model",
    "rollback",
    "search_model_versions",
    "search_registered_models",
    "set_alias",
    "set_model_version_tag",
    "set_policy",
    "set_registered_model_tag",
    "show",
    "update_model_version",
    "update_registered_model",
]


def show(name: str | None = None) -> StaticView:
    """``%track registry [NAME]``: models, versions, stages, aliases and the audit log."""
    from nbtrack.registry.render import registry_view

    with acting_store().registry.reading() as state:
        return registry_view(state, name)
