"""Custom python models for the tests, in an importable module (the pickles refer to it)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from nbtrack.pyfunc import PythonModel


class AffineLogic:
    """y = x * scale (an artifact) + offset (a code_paths module) + shift (model config)
    + params["extra"]; mixed into nbtrack's PythonModel here and into MLflow's by the
    differential tests."""

    def load_context(self, context: Any) -> None:
        self.scale, self.offset, self.shift = 1.0, 0.0, 0.0
        if "weights" in context.artifacts:
            with open(context.artifacts["weights"]) as handle:
                self.scale = json.load(handle)["scale"]
        try:
            import nbtrack_test_offsets  # only there when the package has code_paths

            self.offset = nbtrack_test_offsets.OFFSET
        except ImportError:
            pass
        self.shift = (context.model_config or {}).get("shift", 0.0)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        extra = (params or {}).get("extra", 0.0)
        return pd.DataFrame({"y": model_input["x"] * self.scale + self.offset + self.shift + extra})


class Affine(AffineLogic, PythonModel):
    pass


class Doubler(PythonModel):
    """predict without a context, as MLflow 2.20+ allows."""

    def predict(self, model_input: pd.DataFrame, params: Any = None) -> Any:
        return model_input * 2


def double(model_input: pd.DataFrame) -> pd.DataFrame:
    return model_input * 2


class Unpicklable(PythonModel):
    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return model_input
