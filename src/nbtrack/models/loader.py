"""nbtrack's ``python_function`` loader module, as MLflow's pyfunc calls it.

Packages of models that are not scikit-learn estimators name this module as their
``loader_module``; ``mlflow.pyfunc.load_model`` imports it and calls
``_load_pyfunc(data_path)``, where ``data_path`` is the pickled model (the flavor's
``data``). The object it returns is the model itself: anything with a ``predict`` method.
"""

from __future__ import annotations

import os
from typing import Any

from nbtrack.models.package import MODEL_FILE


def _load_pyfunc(path: str, model_config: Any = None) -> Any:
    """Unpickle the model at ``path`` (the pickle itself, or the package directory)."""
    import cloudpickle

    file = path if os.path.isfile(path) else os.path.join(path, MODEL_FILE)
    with open(file, "rb") as handle:
        return cloudpickle.load(handle)
