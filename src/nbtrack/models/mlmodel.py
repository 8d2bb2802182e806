"""The ``MLmodel`` file: a package's flavors, signature and provenance, as YAML."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from nbtrack.errors import InvalidParameterError
from nbtrack.models.signature import ModelSignature, Schema

MLMODEL_FILE = "MLmodel"
PYFUNC_FLAVOR = "python_function"
SKLEARN_FLAVOR = "sklearn"


class Model:
    """What an ``MLmodel`` file says, with MLflow's field names.

    Unknown top-level keys (from newer MLflow versions) are kept and written back.
    """

    def __init__(
        self,
        flavors: dict[str, dict[str, Any]] | None = None,
        signature: ModelSignature | None = None,
        saved_input_example_info: dict[str, Any] | None = None,
        run_id: str | None = None,
        artifact_path: str | None = None,
        utc_time_created: str | None = None,
        model_uuid: str | None = None,
        model_size_bytes: int | None = None,
        **extra: Any,
    ) -> None:
        self.flavors = dict(flavors or {})
        self.signature = signature
        self.saved_input_example_info = saved_input_example_info
        self.run_id = run_id
        self.artifact_path = artifact_path
        self.utc_time_created = utc_time_created or str(
            datetime.now(timezone.utc).replace(tzinfo=None)
        )
        self.model_uuid = model_uuid
        self.model_size_bytes = model_size_bytes
        self.extra = extra

    def add_flavor(self, name: str, **conf: Any) -> Model:
        self.flavors[name] = conf
        return self

    def get_input_schema(self) -> Schema | None:
        return self.signature.inputs if self.signature is not None else None

    def get_output_schema(self) -> Schema | None:
        return self.signature.outputs if self.signature is not None else None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            **self.extra,
            "flavors": self.flavors,
            "model_uuid": self.model_uuid,
            "utc_time_created": self.utc_time_created,
        }
        optional = {
            "run_id": self.run_id,
            "artifact_path": self.artifact_path,
            "saved_input_example_info": self.saved_input_example_info,
            "model_size_bytes": self.model_size_bytes,
            "signature": self.signature.to_dict() if self.signature is not None else None,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        return data

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), default_flow_style=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Model:
        data = dict(data)
        signature = data.pop("signature", None)
        if isinstance(signature, dict):
            data["signature"] = ModelSignature.from_dict(signature)
        return cls(**data)

    @classmethod
    def from_yaml(cls, text: str | bytes, where: str = MLMODEL_FILE) -> Model:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise InvalidParameterError(f"{where} is not valid YAML: {error}") from None
        if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
            raise InvalidParameterError(f"{where} has no 'flavors' mapping; it is not an MLmodel.")
        return cls.from_dict(data)

    def __repr__(self) -> str:
        return f"<Model flavors={sorted(self.flavors)} run_id={self.run_id}>"
