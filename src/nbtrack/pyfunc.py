"""``mlflow.pyfunc``'s place: load any model package behind one ``predict``."""

from __future__ import annotations

from nbtrack.models.api import load_model
from nbtrack.models.mlmodel import PYFUNC_FLAVOR
from nbtrack.models.pyfunc_model import PyFuncModel

FLAVOR_NAME = PYFUNC_FLAVOR

__all__ = ["FLAVOR_NAME", "PyFuncModel", "load_model"]
