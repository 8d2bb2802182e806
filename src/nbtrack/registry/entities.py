"""Registered models and model versions as the API returns them, shaped as MLflow's entities.

``dict(version)`` and ``dict(model)`` work as in MLflow (its docs pretty-print them so).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from nbtrack.errors import InvalidParameterError

STAGES = ("None", "Staging", "Production", "Archived")
REVIEWED_STAGES = ("Staging", "Production", "Archived")  # moves there need a reason
_BY_LOWER = {stage.lower(): stage for stage in STAGES}


def canonical_stage(stage: Any) -> str:
    """A stage name in MLflow's spelling (case-insensitive input), or an error listing them."""
    found = _BY_LOWER.get(str(stage).lower()) if isinstance(stage, str) else None
    if found is None:
        raise InvalidParameterError(
            f"Invalid stage {stage!r}: stages are {', '.join(STAGES)} (any case)."
        )
    return found


class _Iterable:
    """``dict(entity)`` gives its fields, as MLflow's entities do."""

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        for item in fields(self):  # type: ignore[arg-type]
            yield item.name, getattr(self, item.name)


@dataclass(frozen=True)
class ModelVersion(_Iterable):
    """One version of a registered model.

    Beyond MLflow's fields: ``created_by`` (who registered it), ``digest`` (SHA-256 over
    the package's recorded file sums), ``signature`` (the MLmodel's), and ``metrics`` /
    ``params``, the source run's values when the version was registered.
    """

    name: str
    version: int
    creation_timestamp: int
    last_updated_timestamp: int
    current_stage: str
    description: str | None
    user_id: str
    source: str
    run_id: str | None
    status: str = "READY"
    status_message: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    run_link: str | None = None
    aliases: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    created_by: str = ""
    digest: str | None = None
    signature: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return (
            f"<ModelVersion: name={self.name!r}, version={self.version}, "
            f"current_stage={self.current_stage!r}, aliases={self.aliases}, "
            f"run_id={self.run_id!r}>"
        )


@dataclass(frozen=True)
class RegisteredModel(_Iterable):
    """A registered model: its name, description, tags, aliases and latest version per stage."""

    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: str | None = None
    latest_versions: list[ModelVersion] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    policy: dict[str, Any] | None = None

    def __repr__(self) -> str:
        versions = [v.version for v in self.latest_versions]
        return f"<RegisteredModel: name={self.name!r}, latest_versions={versions}>"


def version_from_row(row: dict[str, Any], aliases: dict[str, int]) -> ModelVersion:
    return ModelVersion(
        name=row["name"],
        version=row["version"],
        creation_timestamp=row["creation_timestamp"],
        last_updated_timestamp=row["last_updated_timestamp"],
        current_stage=row["current_stage"],
        description=row.get("description"),
        user_id=row.get("created_by", ""),
        source=row["source"],
        run_id=row.get("run_id"),
        tags=dict(row.get("tags", {})),
        aliases=sorted(a for a, v in aliases.items() if v == row["version"]),
        metrics={k: p[0] for k, p in row.get("metrics", {}).items()},
        params=dict(row.get("params", {})),
        created_by=row.get("created_by", ""),
        digest=row.get("digest"),
        signature=row.get("signature"),
    )


def latest_per_stage(rows: list[dict[str, Any]], aliases: dict[str, int]) -> list[ModelVersion]:
    """The newest version in each stage, ordered by stage (MLflow's ``latest_versions``)."""
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        stage = row["current_stage"]
        if stage not in newest or row["version"] > newest[stage]["version"]:
            newest[stage] = row
    return [version_from_row(newest[s], aliases) for s in STAGES if s in newest]


def model_from_row(row: dict[str, Any], versions: list[dict[str, Any]]) -> RegisteredModel:
    aliases = dict(row.get("aliases", {}))
    return RegisteredModel(
        name=row["name"],
        creation_timestamp=row["creation_timestamp"],
        last_updated_timestamp=row["last_updated_timestamp"],
        description=row.get("description"),
        latest_versions=latest_per_stage(versions, aliases),
        tags=dict(row.get("tags", {})),
        aliases=aliases,
        policy=row.get("policy"),
    )
