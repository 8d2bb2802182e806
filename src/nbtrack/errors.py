"""The exceptions nbtrack raises, one hierarchy for the whole package.

::

    NbtrackError (alias MlflowException)
    ├── InvalidParameterError      bad key, value or argument; nothing was written  (ValueError)
    │   ├── InvalidFilterError     a search filter or order_by that does not parse
    │   └── SchemaEnforcementError model input that breaks its signature (nbtrack.models)
    ├── NotFoundError              unknown run, experiment, artifact, model  (LookupError)
    ├── RunStateError              an active-run rule was broken (second run, no run, run ended)
    ├── StoreError                 the store on disk is unusable (lock timeout, bad schema)
    │   ├── StoreReadOnlyError     a write to a store this process may only read
    │   └── StoreWriteError        a write failed (disk full); says what is safe  (OSError)
    ├── SyncError                  a tracking server refused or could not be reached (sync)
    ├── ModelIntegrityError        a model file changed since it was logged (nbtrack.models)
    └── TransitionRefused          a stage move failed its policy's checks (nbtrack.registry)

Each carries an MLflow-style ``error_code`` so code written against MLflow's
``MlflowException.error_code`` keeps working.
"""

from __future__ import annotations

INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
BAD_REQUEST = "BAD_REQUEST"
INTERNAL_ERROR = "INTERNAL_ERROR"


class NbtrackError(Exception):
    """Base class of every error nbtrack raises on purpose."""

    error_code = INTERNAL_ERROR

    def __init__(self, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if error_code is not None:
            self.error_code = error_code

    @classmethod
    def invalid_parameter_value(cls, message: str) -> NbtrackError:
        """MLflow's shorthand: ``raise MlflowException.invalid_parameter_value("...")``."""
        return cls(message, INVALID_PARAMETER_VALUE)


class InvalidParameterError(NbtrackError, ValueError):
    """An argument broke a rule; the message names the key or value and the rule."""

    error_code = INVALID_PARAMETER_VALUE


class InvalidFilterError(InvalidParameterError):
    """A search filter or order_by clause that does not parse or type-check.

    ``text`` is the filter as written and ``span`` the (start, end) of the offending token
    in it, so a panel can mark the token itself rather than draw a caret under it.
    """

    def __init__(
        self,
        message: str,
        error_code: str | None = None,
        *,
        text: str | None = None,
        span: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(message, error_code)
        self.text = text
        self.span = span


class NotFoundError(NbtrackError, LookupError):
    """A run, experiment or artifact that does not exist in this store."""

    error_code = RESOURCE_DOES_NOT_EXIST


class RunStateError(NbtrackError):
    """The call does not fit the current run state, e.g. a second active run."""

    error_code = BAD_REQUEST


class StoreError(NbtrackError):
    """The store on disk cannot be used as asked (lock timeout, unknown schema)."""


class StoreReadOnlyError(StoreError):
    """A write to a store this process cannot write to (a read-only mount, an archived
    or shared store); reading it works. The message names the store's path."""


class StoreWriteError(StoreError, OSError):
    """Writing to the store failed: the disk is full, over quota, or failing.

    Nothing already on disk was damaged. The message names the store, what could not
    be written and what is safe; ``what`` holds the second part alone (e.g. "run 1a2b…'s
    journal"), and ``errno`` the operating system's code (``errno.ENOSPC`` for a full disk).
    """

    def __init__(self, message: str, what: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.what = what
        self.errno = errno


class SyncError(NbtrackError):
    """A push or pull could not finish: the server is unreachable, failing, refuses the
    credentials or is too old. The message names the server (never its credentials) and
    what to do; what was not synced is left for the next push or pull."""


MlflowException = NbtrackError
