"""A tracking server as sync sees it: MLflow's client, the server's version, a count of
requests, and MLflow's errors turned into :class:`~nbtrack.errors.SyncError`.

Credentials come only from MLflow's own environment variables (``MLFLOW_TRACKING_USERNAME``
/ ``PASSWORD``, ``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_TRACKING_INSECURE_TLS``,
``MLFLOW_TRACKING_SERVER_CERT_PATH``), read by MLflow's code when a connection opens; a
password written into the URI is accepted but cut from every name sync prints or stores.
408, 429 and 5xx answers are retried with backoff (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``). A pushed run's own writes (create, ``log_batch``,
end) go through :class:`~nbtrack.sync.transport.Transport`; everything else through
``MlflowClient``.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from nbtrack.errors import InvalidParameterError, SyncError
from nbtrack.sync.transport import Transport

MIN_SERVER_VERSION = (2, 9)  # registered-model aliases (2.3), dataset inputs (2.4)

# MLflow's limits for one log_batch request (mlflow/utils/validation.py).
MAX_BATCH_ENTRIES = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_BYTES = 1_000_000
LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"
CREATE_RUN = "/api/2.0/mlflow/runs/create"
UPDATE_RUN = "/api/2.0/mlflow/runs/update"


def display_uri(uri: str) -> str:
    """The server URI without user or password: what sync prints, logs and stores."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameterError(
            f"Sync needs an MLflow tracking server URI (http://HOST:PORT or https://...), got "
            f"{scrub(uri)!r}."
        )
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def scrub(text: str) -> str:
    """``text`` with any ``user:password@`` of a URL in it removed."""
    return re.sub(r"(\w+://)[^/@\s]*@", r"\1", text)


class Server:
    """One tracking server, through ``mlflow.tracking.MlflowClient``.

    Every call goes through :meth:`call`, which counts requests (``requests``) and turns
    MLflow's exceptions into :class:`SyncError` naming the server and what to do.
    """

    def __init__(self, uri: str) -> None:
        self.name = display_uri(uri)
        self.uri = uri.rstrip("/")
        mlflow = import_mlflow()
        self.client = mlflow.tracking.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.transport = Transport(self.uri)
        self.requests = 0
        self._count = threading.Lock()
        self.version: str | None = None
        self._repos: dict[str, Any] = {}

    def counted(self, n: int = 1) -> None:
        with self._count:
            self.requests += n

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``MlflowClient.<method>(*args, **kwargs)``, counted, errors translated."""
        self.counted()
        with self.errors(method):
            return getattr(self.client, method)(*args, **kwargs)

    def check(self) -> str:
        """The server's MLflow version; a SyncError if unreachable, failing or too old."""
        self.counted()
        with self.errors("version"):
            response = self.transport.request("GET", "/version")
        if response.status_code == 404:  # servers before 2.x have no /version
            raise self.too_old("older than 2.0")
        if response.status_code in (401, 403):
            raise SyncError(_credentials_message(self.name, response.status_code))
        if response.status_code != 200:
            raise SyncError(_failing_message(self.name, f"HTTP {response.status_code}"))
        version = response.text.strip()
        if _parse_version(version) < MIN_SERVER_VERSION:
            raise self.too_old(version)
        self.version = version
        # The version endpoint needs no login on MLflow's basic-auth app: ask for
        # something that does, so wrong credentials fail here, before anything is written.
        self.call("search_experiments", max_results=1)
        return version

    def too_old(self, version: str) -> SyncError:
        wanted = ".".join(map(str, MIN_SERVER_VERSION))
        return SyncError(
            f"The MLflow tracking server at {self.name} runs MLflow {version}; nbtrack sync "
            f"needs MLflow {wanted} or newer there (registered-model aliases, dataset inputs). "
            f"Upgrade the server (pip install -U mlflow, then restart `mlflow server`); "
            "nothing was changed locally."
        )

    def create_run(
        self, experiment_id: str, start_time: int | None, tags: dict[str, str], name: str | None
    ) -> Any:
        """A new run on the server (an ``mlflow.entities.Run``), as MlflowClient creates it:
        the run's user taken from its ``mlflow.user`` tag."""
        from mlflow.entities import Run
        from mlflow.protos.service_pb2 import CreateRun
        from mlflow.utils.proto_json_utils import parse_dict

        body = {
            "experiment_id": str(experiment_id),
            "user_id": tags.get("mlflow.user", "unknown"),
            "start_time": start_time if start_time is not None else int(time.time() * 1000),
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
            "run_name": name,
        }
        answer = CreateRun.Response()
        parse_dict(self.post(CREATE_RUN, body, "create_run"), answer)
        return Run.from_proto(answer.run)

    def log_batch(self, run_id: str, batch: Any) -> None:
        """One ``log_batch`` request (a :class:`~nbtrack.sync.batches.Batch`). The body is
        encoded here, with orjson: MlflowClient's protobuf round trip costs ~90 ms of the
        caller's CPU per 1,000 points, which a background sync would take from the
        training loop."""
        body = {
            "run_id": run_id,
            "metrics": batch.metrics,
            "params": [{"key": k, "value": v} for k, v in batch.params],
            "tags": [{"key": k, "value": v} for k, v in batch.tags],
        }
        self.post(LOG_BATCH, body, "log_batch")

    def update_run(self, run_id: str, status: str, end_time: int | None, name: str | None) -> None:
        """Status, end time and name in one request (MlflowClient's calls each read the run
        first, and print its URL)."""
        body = {"run_id": run_id, "run_uuid": run_id, "status": status, "end_time": end_time}
        if name is not None:
            body["run_name"] = name
        self.post(UPDATE_RUN, body, "update_run")

    def post(self, endpoint: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        """One POST of MLflow's REST API through :attr:`transport`: its JSON answer, or
        MLflow's own exception for a refusal, translated."""
        from mlflow.utils.rest_utils import verify_rest_response

        self.counted()
        with self.errors(what):
            response = self.transport.request("POST", endpoint, orjson.dumps(body))
            verify_rest_response(response, endpoint)
            return orjson.loads(response.content or b"{}")

    def artifact_repo(self, artifact_uri: str) -> Any:
        """MLflow's artifact repository for a run's artifact URI (the server's proxy,
        ``mlflow-artifacts:/``, or the artifact root it reports)."""
        repo = self._repos.get(artifact_uri)
        if repo is None:
            from mlflow.store.artifact.artifact_repository_registry import (
                get_artifact_repository,
            )

            repo = get_artifact_repository(artifact_uri, tracking_uri=self.uri)
            self._repos[artifact_uri] = repo
        return repo

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Turn what MLflow's client raises into a SyncError that says what to do."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except SyncError:
            raise
        except MlflowException as error:
            raise translate(self.name, what, error) from None
        except OSError as error:  # requests' ConnectionError, RetryError and friends
            translated = translate(self.name, what, error)
            if translated is error:
                translated = SyncError(_unreachable_message(self.name, scrub(str(error))))
            raise translated from None


def translate(name: str, what: str, error: Any) -> Exception:
    """A SyncError for what MLflow's client or requests raised; a refusal of bad input
    stays MLflow's own exception."""
    text = scrub(str(error))
    code = getattr(error, "error_code", "")
    status = _http_status(text)
    if status == 401 or code == "UNAUTHENTICATED":
        return SyncError(_credentials_message(name, 401))
    if status == 403 or code == "PERMISSION_DENIED":
        return SyncError(_credentials_message(name, 403))
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return SyncError(_untrusted_message(name, _reason(text)))
    if any(s in text for s in ("Connection refused", "NewConnectionError", "Name or service")):
        return SyncError(_unreachable_message(name, _reason(text)))
    if "Max retries exceeded" in text or "error responses" in text or "Read timed out" in text:
        return SyncError(_failing_message(name, _reason(text)))
    if code in ("TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR") or "failed with error code 5" in text:
        return SyncError(_failing_message(name, _reason(text)))
    if "ENDPOINT_NOT_FOUND" in text:  # a call this server's MLflow does not know
        wanted = ".".join(map(str, MIN_SERVER_VERSION))
        return SyncError(
            f"The MLflow tracking server at {name} does not know {what}: upgrade it to "
            f"MLflow {wanted} or newer; nothing local was changed."
        )
    return error


# How MLflow's client, requests and urllib3 spell a response's status in an error's text;
# a bare "401" may be part of the server's port or a run id.
_STATUS = re.compile(r"error code (\d{3})\b|\b(\d{3}) (?:Client|Server) Error|too many (\d{3}) ")


def _http_status(text: str) -> int | None:
    found = _STATUS.search(text)
    return int(next(group for group in found.groups() if group)) if found else None


def _reason(text: str) -> str:
    caused = re.search(r"Caused by (\w+)\((.*?)\)\)?$", text)
    if "too many" in text:
        found = re.search(r"too many (\d+) error responses", text)
        return f"HTTP {found.group(1)} after every retry" if found else "repeated errors"
    if caused:
        return caused.group(1)
    return text[:200]


def _unreachable_message(name: str, reason: str) -> str:
    return (
        f"Cannot reach the MLflow tracking server at {name} ({_reason(reason)}). Check the "
        "address and that `mlflow server` runs there (and your network or VPN), then sync "
        "again: nothing local was changed, and a push resumes where it stopped."
    )


def _untrusted_message(name: str, reason: str) -> str:
    return (
        f"The MLflow tracking server at {name} presented a TLS certificate this machine "
        f"does not trust ({reason}). Set MLFLOW_TRACKING_SERVER_CERT_PATH to the CA bundle "
        "that signed it (or MLFLOW_TRACKING_INSECURE_TLS=true to skip the check, on a "
        "network you trust), then sync again; nothing local was changed."
    )


def _failing_message(name: str, reason: str) -> str:
    return (
        f"The MLflow tracking server at {name} keeps failing ({reason}). Look at the "
        "server's log, or try again later: what was pushed is recorded, and the next push "
        "resumes where this one stopped, with nothing sent twice."
    )


def _credentials_message(name: str, status: int) -> str:
    if status == 403:
        return (
            f"The MLflow tracking server at {name} refused access (HTTP 403): the account "
            "in MLFLOW_TRACKING_USERNAME lacks permission on what sync writes. Ask the "
            "server's admin for EDIT permission; nothing local was changed."
        )
    return (
        f"The MLflow tracking server at {name} refused the credentials (HTTP 401). Set "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) "
        "to an account on that server, then sync again; nothing local was changed."
    )


def _parse_version(text: str) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", text)[:2]
    return tuple(int(n) for n in numbers) if numbers else (0,)


def import_mlflow() -> Any:
    """MLflow, or a SyncError saying how to install it."""
    try:
        import mlflow.tracking
    except ImportError:
        raise SyncError(
            "nbtrack sync talks to the server through MLflow's client, which is not "
            "installed: pip install 'nbtrack[mlflow]'."
        ) from None
    return mlflow
