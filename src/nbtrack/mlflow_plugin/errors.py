"""nbtrack's errors as MLflow's: the same message, MLflow's exception type and error code.

MLflow code catches ``MlflowException`` and reads ``error_code`` (``set_experiment`` and
``register_model`` look for ``RESOURCE_ALREADY_EXISTS``), so every call the plugin serves
raises MLflow's type; the nbtrack error stays attached as ``__cause__``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from mlflow.exceptions import MlflowException, MlflowNotImplementedException
from mlflow.protos import databricks_pb2

from nbtrack.errors import NbtrackError, RunStateError

Function = TypeVar("Function", bound=Callable[..., Any])

# MLflow's stores call a broken lifecycle rule (logging to a deleted run, a run in a
# deleted experiment) an invalid parameter; nbtrack's own code says BAD_REQUEST.
_CODES: dict[type[NbtrackError], str] = {RunStateError: "INVALID_PARAMETER_VALUE"}


def as_mlflow(error: NbtrackError) -> MlflowException:
    """``error`` as an ``MlflowException`` with the matching MLflow error code."""
    code = next((c for kind, c in _CODES.items() if isinstance(error, kind)), error.error_code)
    value = getattr(databricks_pb2, code, databricks_pb2.INTERNAL_ERROR)
    converted = MlflowException(str(error), error_code=value)
    converted.__cause__ = error
    return converted


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise nbtrack's errors inside the block as MLflow's."""
    try:
        yield
    except NbtrackError as error:
        raise as_mlflow(error) from error


def mlflow_errors(function: Function) -> Function:
    """Decorate a method so that nbtrack's errors leave it as MLflow's."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except NbtrackError as error:
            raise as_mlflow(error) from error

    return wrapper  # type: ignore[return-value]


def already_exists(message: str) -> MlflowException:
    return MlflowException(message, error_code=databricks_pb2.RESOURCE_ALREADY_EXISTS)


def not_found(message: str) -> MlflowException:
    return MlflowException(message, error_code=databricks_pb2.RESOURCE_DOES_NOT_EXIST)


def invalid(message: str) -> MlflowException:
    return MlflowException(message, error_code=databricks_pb2.INVALID_PARAMETER_VALUE)


def not_supported(what: str) -> MlflowNotImplementedException:
    """MLflow's "not implemented" error for something an nbtrack store does not hold."""
    return MlflowNotImplementedException(
        f"{what} are not supported by nbtrack's MLflow plugin: an nbtrack store holds "
        "experiments, runs (params, metrics, tags, datasets, artifacts), the models logged "
        "in runs and the model registry. Use a sqlite: or http: tracking URI for this."
    )


def refuse(cls: type, unsupported: dict[str, tuple[str, ...]]) -> None:
    """Give ``cls`` a method for each name in ``unsupported`` (what -> method names) that
    raises :func:`not_supported` naming what is missing, in place of MLflow's bare
    ``NotImplementedError``."""
    for what, names in unsupported.items():
        for name in names:
            setattr(cls, name, _refusing(what))


def _refusing(what: str) -> Callable[..., Any]:
    def method(self: object, *args: Any, **kwargs: Any) -> Any:
        raise not_supported(what)

    return method
