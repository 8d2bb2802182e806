"""The objects the API returns, named and shaped as MLflow's ``mlflow.entities``.

They are named tuples: immutable, cheap to create by the thousand, and quick to define
(``import nbtrack`` stays fast). ``from nbtrack.entities import Run, Metric, ViewType``
works as ``from mlflow.entities import ...`` does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, NamedTuple, overload

from nbtrack.errors import InvalidParameterError

__all__ = [
    "Dataset",
    "DatasetInput",
    "DatasetRecord",
    "Experiment",
    "ExperimentTag",
    "FileInfo",
    "InputTag",
    "LifecycleStage",
    "Metric",
    "MetricHistory",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunInputs",
    "RunStatus",
    "RunTag",
    "SourceType",
    "ViewType",
]


class RunStatus:
    """Run statuses as MLflow spells them."""

    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    _ALL = (RUNNING, SCHEDULED, FINISHED, FAILED, KILLED)

    @staticmethod
    def is_terminated(status: str) -> bool:
        return status in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED)

    @staticmethod
    def all_status() -> tuple[str, ...]:
        return RunStatus._ALL

    # MLflow's statuses are numbers spelled out by these two; nbtrack's are the spelling
    # already, so ``end_run(RunStatus.to_string(RunStatus.FAILED))`` runs unchanged.
    @staticmethod
    def to_string(status: str) -> str:
        return _member(RunStatus._ALL, status, "run status")

    @staticmethod
    def from_string(status: str) -> str:
        return _member(RunStatus._ALL, status, "run status")


class ViewType:
    """Which runs or experiments a search sees, by lifecycle stage."""

    ACTIVE_ONLY = 1
    DELETED_ONLY = 2
    ALL = 3
    _NAMES: ClassVar[dict[str, int]] = {"ACTIVE_ONLY": 1, "DELETED_ONLY": 2, "ALL": 3}

    @staticmethod
    def from_string(view_str: str) -> int:
        name = _member(tuple(ViewType._NAMES), str(view_str).upper(), "view type")
        return ViewType._NAMES[name]

    @staticmethod
    def to_string(view_type: int) -> str:
        names = {number: name for name, number in ViewType._NAMES.items()}
        return names[_member(tuple(names), view_type, "view type")]


class LifecycleStage:
    ACTIVE = "active"
    DELETED = "deleted"

    @staticmethod
    def view_type_to_stages(view_type: int = ViewType.ALL) -> list[str]:
        """The stages a search with ``view_type`` sees (as MLflow's)."""
        stages = []
        if view_type in (ViewType.ACTIVE_ONLY, ViewType.ALL):
            stages.append(LifecycleStage.ACTIVE)
        if view_type in (ViewType.DELETED_ONLY, ViewType.ALL):
            stages.append(LifecycleStage.DELETED)
        return stages


class SourceType:
    """Where a run was started: the values of the ``mlflow.source.type`` tag."""

    NOTEBOOK = "NOTEBOOK"
    JOB = "JOB"
    PROJECT = "PROJECT"
    LOCAL = "LOCAL"
    RECIPE = "RECIPE"
    UNKNOWN = "UNKNOWN"


def _member(allowed: tuple, value: Any, what: str) -> Any:
    if value not in allowed:
        raise InvalidParameterError(
            f"{value!r} is not a {what}; use one of {', '.join(map(str, allowed))}."
        )
    return value


class Metric(NamedTuple):
    key: str
    value: float
    timestamp: int
    step: int


class Param(NamedTuple):
    key: str
    value: str


class RunTag(NamedTuple):
    key: str
    value: str


class ExperimentTag(NamedTuple):
    key: str
    value: str


class FileInfo(NamedTuple):
    """An artifact file or folder, as MLflow's ``FileInfo`` (``file_size`` None for folders)."""

    path: str
    is_dir: bool
    file_size: int | None


class RunInfo(NamedTuple):
    run_id: str
    experiment_id: str
    run_name: str
    user_id: str
    status: str
    start_time: int
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: str

    @property
    def run_uuid(self) -> str:
        return self.run_id


class RunData(NamedTuple):
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


class DatasetRecord(NamedTuple):
    """A logged dataset as MLflow's ``mlflow.entities.Dataset``: every field a string."""

    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = None
    profile: str | None = None


Dataset = DatasetRecord  # MLflow's name for it: ``mlflow.entities.Dataset``


class InputTag(NamedTuple):
    key: str
    value: str


class DatasetInput(NamedTuple):
    """One entry of ``run.inputs.dataset_inputs``: the dataset and its input tags."""

    dataset: DatasetRecord
    tags: list[InputTag]


class RunInputs(NamedTuple):
    dataset_inputs: tuple[DatasetInput, ...] = ()


def inputs_from_records(records: list[dict[str, Any]]) -> RunInputs:
    """``run.inputs`` from a run's input records."""
    return RunInputs(
        tuple(
            DatasetInput(
                DatasetRecord(**r["dataset"]), [InputTag(k, v) for k, v in r["tags"].items()]
            )
            for r in records
        )
    )


class Run(NamedTuple):
    """A run as MLflow returns it: ``info``, ``data`` (latest metric values) and ``inputs``."""

    info: RunInfo
    data: RunData
    inputs: RunInputs = RunInputs()

    # MLflow's entities keep these as private attributes, and code in the wild (MLflow's
    # own examples among it) reads them.
    @property
    def _info(self) -> RunInfo:
        return self.info

    @property
    def _data(self) -> RunData:
        return self.data

    def to_dictionary(self) -> dict[str, Any]:
        return {
            "info": self.info._asdict(),
            "data": {
                "metrics": dict(self.data.metrics),
                "params": dict(self.data.params),
                "tags": dict(self.data.tags),
            },
        }


class Experiment(NamedTuple):
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    tags: dict[str, str]
    creation_time: int | None = None
    last_update_time: int | None = None


class MetricHistory(Sequence[Metric]):
    """A metric's history: a sequence of :class:`Metric` held as three numpy columns.

    It behaves like the list MLflow returns, but a million points cost 24 MB instead
    of a million objects; ``steps``, ``values`` and ``timestamps`` are the columns
    (numpy arrays), ready for plotting.
    """

    def __init__(self, key: str, steps: Any, values: Any, timestamps: Any) -> None:
        self.key = key
        self.steps = steps
        self.values = values
        self.timestamps = timestamps

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> Metric: ...
    @overload
    def __getitem__(self, index: slice) -> list[Metric]: ...
    def __getitem__(self, index: int | slice) -> Metric | list[Metric]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return Metric(
            self.key, float(self.values[index]), int(self.timestamps[index]), int(self.steps[index])
        )

    def __iter__(self) -> Iterator[Metric]:
        key = self.key
        columns = (self.steps.tolist(), self.values.tolist(), self.timestamps.tolist())
        for step, value, timestamp in zip(*columns, strict=True):
            yield Metric(key, value, timestamp, step)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MetricHistory):
            return self.key == other.key and list(self) == list(other)
        return isinstance(other, list) and list(self) == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<MetricHistory {self.key!r}: {len(self)} points>"


def run_from_row(row: dict[str, Any]) -> Run:
    """Build a :class:`Run` from a catalog row."""
    info = RunInfo(
        run_id=row["run_id"],
        experiment_id=row["experiment_id"],
        run_name=row.get("run_name", ""),
        user_id=row.get("user_id", ""),
        status=row["status"],
        start_time=row["start_time"],
        end_time=row.get("end_time"),
        artifact_uri=row.get("artifact_uri", ""),
        lifecycle_stage=row.get("lifecycle_stage", LifecycleStage.ACTIVE),
    )
    data = RunData(
        metrics={k: point[0] for k, point in row.get("metrics", {}).items()},
        params=dict(row.get("params", {})),
        tags=dict(row.get("tags", {})),
    )
    return Run(info, data)


def experiment_from_row(row: dict[str, Any], artifact_location: str) -> Experiment:
    return Experiment(
        experiment_id=row["experiment_id"],
        name=row["name"],
        artifact_location=artifact_location,
        lifecycle_stage=row.get("lifecycle_stage", LifecycleStage.ACTIVE),
        tags=dict(row.get("tags", {})),
        creation_time=row.get("creation_time"),
        last_update_time=row.get("last_update_time"),
    )
