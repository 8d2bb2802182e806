"""MLflow's REST API for sync's hot path, over one prepared ``requests`` session.

MLflow's ``http_request`` resolves its request-header providers (whose Databricks
provider searches the import path for modules that are not installed), and ``requests``
the environment's proxies, CA bundle and netrc, on every request: ~4 ms of CPU a request,
four requests a pushed run, which background sync takes from the training loop beside
it. A :class:`Transport` resolves the same things once per connection and keeps them on
a ``requests.Session``: MLflow's request headers, its credentials and TLS settings
(``get_default_host_creds``: ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, ``_TOKEN``,
``_INSECURE_TLS``, ``_SERVER_CERT_PATH``, ``_CLIENT_CERT_PATH``, an auth plugin, AWS
SigV4) and its retry policy (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``_BACKOFF_FACTOR``,
``_BACKOFF_JITTER``, ``_TIMEOUT``; 408, 429 and 5xx retried): ~2 ms a request.
Credentials a session cannot carry (Databricks' SDK and OAuth) go through MLflow's
``http_request`` as before.
"""

from __future__ import annotations

import os
from typing import Any

RETRIED = frozenset({408, 429, 500, 502, 503, 504})  # MLflow's transient failures
JSON = {"Content-Type": "application/json"}


class Transport:
    """Requests to one tracking server, with MLflow's credentials, headers and retries."""

    def __init__(self, uri: str) -> None:
        from mlflow.utils.credentials import get_default_host_creds

        self.creds = get_default_host_creds(uri)
        self.host = self.creds.host.rstrip("/")
        self.session = None if _needs_mlflow(self.creds) else _session(self.creds)
        self.timeout = _setting("MLFLOW_HTTP_REQUEST_TIMEOUT", 120)
        self.redirects = _setting("MLFLOW_ALLOW_HTTP_REDIRECTS", True)

    def request(self, method: str, endpoint: str, body: bytes | None = None) -> Any:
        """The server's ``requests.Response``; transient failures retried, then raised."""
        headers = JSON if body is not None else None
        if self.session is None:
            from mlflow.utils.rest_utils import http_request

            return http_request(self.creds, endpoint, method, data=body, extra_headers=headers)
        return self.session.request(
            method,
            self.host + endpoint,
            data=body,
            headers=headers,
            timeout=self.timeout,
            allow_redirects=self.redirects,
        )


def _needs_mlflow(creds: Any) -> bool:
    return bool(
        getattr(creds, "use_databricks_sdk", False)
        or getattr(creds, "client_secret", None)
        or getattr(creds, "workspace_id", None)
    )


def _session(creds: Any) -> Any:
    import requests
    from mlflow.tracking.request_header.registry import resolve_request_headers
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.headers.update(resolve_request_headers())
    session.headers.update(_workspace_header())
    _authenticate(session, creds)
    session.verify = creds.verify
    session.cert = creds.client_cert_path
    # requests looks up proxies, a CA bundle and ~/.netrc in the environment on every
    # request (0.3 ms); here once, with the rest of the connection's settings.
    session.proxies = requests.utils.get_environ_proxies(creds.host)
    if session.verify is True:
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        session.verify = bundle or True
    if session.auth is None and "Authorization" not in session.headers:
        session.auth = requests.utils.get_netrc_auth(creds.host)
    session.trust_env = False
    adapter = HTTPAdapter(max_retries=_retry())
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _authenticate(session: Any, creds: Any) -> None:
    """MLflow's choice among its credentials: basic, else a token; SigV4 or an auth
    plugin (``MLFLOW_TRACKING_AUTH``) over either."""
    plugin = getattr(creds, "auth", None)
    if creds.username and creds.password and plugin not in _KUBERNETES:
        session.auth = (creds.username, creds.password)
    elif creds.token:
        session.headers["Authorization"] = f"Bearer {creds.token}"
    if getattr(creds, "aws_sigv4", False):
        from requests_auth_aws_sigv4 import AWSSigV4

        session.auth = AWSSigV4("execute-api")
    elif plugin:
        from mlflow.tracking.request_auth.registry import fetch_auth

        session.auth = fetch_auth(plugin)


def _retry() -> Any:
    """MLflow's retry policy, from its variables: every method, its transient codes."""
    from urllib3.util.retry import Retry

    retries = _setting("MLFLOW_HTTP_REQUEST_MAX_RETRIES", 7)
    return Retry(
        total=retries,
        connect=retries,
        read=retries,
        redirect=retries,
        status=retries,
        status_forcelist=RETRIED,
        backoff_factor=_setting("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", 2),
        backoff_jitter=_setting("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", 1.0),
        allowed_methods=None,  # POSTs too: every sync write can be sent again
        respect_retry_after_header=_setting("MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER", True),
    )


_KUBERNETES = {"kubernetes", "kubernetes-namespaced"}


def _setting(name: str, default: Any) -> Any:
    """MLflow's value of one of its environment variables (its parsing, its default)."""
    import mlflow.environment_variables as variables

    variable = getattr(variables, name, None)
    if variable is None:  # an MLflow older than the variable
        return default
    return variable.get()


def _workspace_header() -> dict[str, str]:
    try:  # MLflow 3's workspaces
        from mlflow.utils.rest_utils import WORKSPACE_HEADER_NAME
        from mlflow.utils.workspace_context import get_request_workspace
    except ImportError:
        return {}
    workspace = get_request_workspace()
    return {WORKSPACE_HEADER_NAME: workspace} if workspace else {}
