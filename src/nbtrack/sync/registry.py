"""Push the model registry: each event of ``registry.jsonl`` after the last one sent,
replayed through MLflow's registry calls, with the audit trail as tags a teammate reads
in MLflow's UI.

Models are matched by name, as experiments are. A version gets the server's next number
(teammates may have registered versions of the same model); the mapping is kept in the
sync state and each pushed version carries ``nbtrack.version`` (its number here) and
``nbtrack.event``. Every registration, stage move, rollback and alias move also becomes a
tag ``nbtrack.audit.<seq>`` on the version it concerns (the model, for a policy): one
line with when, who, from, to, why, the checks and the evidence.
"""

from __future__ import annotations

import datetime
import json
import warnings
from collections.abc import Callable
from typing import Any

from nbtrack.store import Store
from nbtrack.sync.report import SyncReport
from nbtrack.sync.server import Server
from nbtrack.sync.state import SyncState

AUDIT_PREFIX = "nbtrack.audit."
MAX_REGISTRY_TAG = 5000  # MLflow's limit for a model version tag value


def source_runs(store: Store) -> set[str]:
    """The runs registered versions come from (a push carries them with the registry)."""
    with store.registry.reading() as state:
        return {e["run_id"] for e in state.events if e["op"] == "version.create"}


class RegistryPusher:
    """Replays the registry events not yet on the server, in order."""

    def __init__(self, store: Store, server: Server, state: SyncState, report: SyncReport):
        self.store = store
        self.server = server
        self.state = state
        self.report = report

    def push(self) -> None:
        with self.store.registry.reading() as folded:
            events = [e for e in folded.events if e["seq"] > self.state.registry["seq"]]
        for event in events:
            _HANDLERS[event["op"]](self, event)
            audit = audit_line(event)
            if audit is not None:
                self._audit(event, audit)
            self.state.update(lambda data, seq=event["seq"]: _sent(data, seq))
            self.report.add(registry_events=1)

    # -- names and numbers ---------------------------------------------------------------

    def name(self, event: dict[str, Any]) -> str:
        return self.state.registry["models"].get(event["model_id"], event["model"])

    def version(self, event: dict[str, Any], number: int | None = None) -> str:
        key = f"{event['model_id']}/{event['version'] if number is None else number}"
        return self.state.registry["versions"][key]

    def _call(self, method: str, *args: Any, done_if: str, **kwargs: Any) -> Any:
        """A call that a push cut off after sending it may have made already: the server's
        ``done_if`` error code then means there is nothing left to do."""
        try:
            return self.server.call(method, *args, **kwargs)
        except Exception as error:
            if getattr(error, "error_code", "") == done_if:
                return None
            raise

    # -- models --------------------------------------------------------------------------

    def create_model(self, event: dict[str, Any]) -> None:
        name = event["model"]  # a model of that name on the server already is the same one
        self._call(
            "create_registered_model",
            name,
            tags=event.get("tags") or None,
            description=event.get("description"),
            done_if=_EXISTS,
        )
        self.state.update(
            lambda data: data["registry"]["models"].__setitem__(event["model_id"], name)
        )

    def rename_model(self, event: dict[str, Any]) -> None:
        old, new = event["from"], event["to"]
        self._call("rename_registered_model", old, new, done_if=_MISSING)
        self.state.update(
            lambda data: data["registry"]["models"].__setitem__(event["model_id"], new)
        )

    def update_model(self, event: dict[str, Any]) -> None:
        self.server.call("update_registered_model", self.name(event), event.get("description"))

    def delete_model(self, event: dict[str, Any]) -> None:
        self._call("delete_registered_model", self.name(event), done_if=_MISSING)

    def tag_model(self, event: dict[str, Any]) -> None:
        self.server.call("set_registered_model_tag", self.name(event), event["key"], event["value"])

    def untag_model(self, event: dict[str, Any]) -> None:
        self._call("delete_registered_model_tag", self.name(event), event["key"], done_if=_MISSING)

    def set_policy(self, event: dict[str, Any]) -> None:
        policy = json.dumps(event.get("policy"), sort_keys=True, default=str)
        self.server.call("set_registered_model_tag", self.name(event), "nbtrack.policy", policy)

    # -- versions ------------------------------------------------------------------------

    def create_version(self, event: dict[str, Any]) -> None:
        name, mark = self.name(event), f"{event['model_id']}:{event['seq']}"
        remote = None
        if self.state.registry["creating"] == event["seq"]:  # a cut-off push sent it
            remote = self._find_version(name, mark)
        if remote is None:
            self.state.update(lambda data: data["registry"].__setitem__("creating", event["seq"]))
            run_id = self.remote_run(event["run_id"])
            tags = {
                **(event.get("tags") or {}),
                "nbtrack.version": str(event["version"]),
                "nbtrack.event": mark,
            }
            remote = self.server.call(
                "create_model_version",
                name,
                f"runs:/{run_id}/{event['artifact_path']}",
                run_id=run_id,
                tags=tags,
                description=event.get("description"),
                await_creation_for=0,  # nothing to wait for: the package is on the server
            ).version
        key = f"{event['model_id']}/{event['version']}"

        def created(data: dict[str, Any]) -> None:
            data["registry"]["versions"][key] = str(remote)
            data["registry"]["creating"] = None

        self.state.update(created)

    def remote_run(self, run_id: str) -> str:
        remote = self.state.remote_id(run_id)
        if remote is None:  # a run pulled from the server keeps its id
            remote = self.store.get_run(run_id).get("remote", {}).get("run_id", run_id)
        return remote

    def _find_version(self, name: str, mark: str) -> str | None:
        for version in self.server.call("search_model_versions", f"name = '{_quoted(name)}'"):
            if version.tags.get("nbtrack.event") == mark:
                return version.version
        return None

    def update_version(self, event: dict[str, Any]) -> None:
        self.server.call(
            "update_model_version", self.name(event), self.version(event), event.get("description")
        )

    def stage(self, event: dict[str, Any]) -> None:
        self._move(self.name(event), self.version(event), event["to"])

    def rollback(self, event: dict[str, Any]) -> None:
        name = self.name(event)
        self._move(name, self.version(event), "Production")
        if event.get("from") is not None:
            self._move(name, self.version(event, event["from"]), "Archived")

    def _move(self, name: str, version: str, stage: str) -> None:
        # Stages are deprecated in MLflow (aliases replace them) but still what its UI
        # shows beside each version; nbtrack keeps both, so sync sends both, quietly.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.server.call(
                "transition_model_version_stage",
                name,
                version,
                stage,
                archive_existing_versions=False,
            )

    def tag_version(self, event: dict[str, Any]) -> None:
        self.server.call(
            "set_model_version_tag",
            self.name(event),
            self.version(event),
            event["key"],
            event["value"],
        )

    def untag_version(self, event: dict[str, Any]) -> None:
        name, version = self.name(event), self.version(event)
        self._call("delete_model_version_tag", name, version, event["key"], done_if=_MISSING)

    def delete_version(self, event: dict[str, Any]) -> None:
        self._call("delete_model_version", self.name(event), self.version(event), done_if=_MISSING)

    def set_alias(self, event: dict[str, Any]) -> None:
        self.server.call(
            "set_registered_model_alias", self.name(event), event["alias"], self.version(event)
        )

    def delete_alias(self, event: dict[str, Any]) -> None:
        self._call(
            "delete_registered_model_alias", self.name(event), event["alias"], done_if=_MISSING
        )

    # -- the audit trail -----------------------------------------------------------------

    def _audit(self, event: dict[str, Any], line: str) -> None:
        key = f"{AUDIT_PREFIX}{event['seq']:05d}"
        value = line[:MAX_REGISTRY_TAG]
        if "version" in event and event["op"] != "version.delete":
            self.server.call(
                "set_model_version_tag", self.name(event), self.version(event), key, value
            )
        elif event["op"] != "model.delete":
            self.server.call("set_registered_model_tag", self.name(event), key, value)


_MISSING, _EXISTS = "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS"
_AUDITED = {
    "version.create",
    "version.stage",
    "version.rollback",
    "alias.set",
    "alias.delete",
    "model.policy",
}


def audit_line(event: dict[str, Any]) -> str | None:
    """One readable line for an audited registry event: when, who, what, why, evidence."""
    op = event["op"]
    if op not in _AUDITED:
        return None
    when = datetime.datetime.fromtimestamp(event["time"] / 1000, datetime.timezone.utc)
    head = f"{when:%Y-%m-%d %H:%M:%S} UTC {event.get('who')}: "
    what = {
        "version.create": lambda: (
            f"registered version {event['version']} from run {event['run_id']}"
        ),
        "version.stage": lambda: f"version {event['version']} {event.get('from')} -> {event['to']}",
        "version.rollback": lambda: (
            f"rollback: version {event['version']} -> Production, version "
            f"{event.get('from')} -> Archived"
        ),
        "alias.set": lambda: (
            f"alias @{event['alias']} {_version_text(event.get('from'))} -> version "
            f"{event['version']}"
        ),
        "alias.delete": lambda: f"alias @{event['alias']} removed from version {event['version']}",
        "model.policy": lambda: "policy set",
    }[op]()
    parts = [head + what]
    if event.get("reason"):
        parts.append(f"why: {event['reason']}")
    if event.get("forced"):
        parts.append("FORCED past failed checks")
    if event.get("checks"):
        parts.append("checks: " + "; ".join(_check_text(c) for c in event["checks"]))
    if event.get("evidence"):
        parts.append("evidence: " + json.dumps(event["evidence"], sort_keys=True, default=str))
    if event.get("cause"):
        parts.append(f"caused by event {event['cause']}")
    return " | ".join(parts)


def _version_text(version: Any) -> str:
    return "(new)" if version is None else f"version {version}"


def _check_text(check: dict[str, Any]) -> str:
    mark = "passed" if check.get("passed") else "FAILED"
    actual = check.get("actual")
    return f"{check.get('check')} {mark}" + (f" (was {actual})" if actual is not None else "")


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")


def _sent(data: dict[str, Any], seq: int) -> None:
    data["registry"]["seq"] = seq


_HANDLERS: dict[str, Callable[[RegistryPusher, dict[str, Any]], None]] = {
    "model.create": RegistryPusher.create_model,
    "model.update": RegistryPusher.update_model,
    "model.rename": RegistryPusher.rename_model,
    "model.delete": RegistryPusher.delete_model,
    "model.tag": RegistryPusher.tag_model,
    "model.untag": RegistryPusher.untag_model,
    "model.policy": RegistryPusher.set_policy,
    "version.create": RegistryPusher.create_version,
    "version.update": RegistryPusher.update_version,
    "version.stage": RegistryPusher.stage,
    "version.rollback": RegistryPusher.rollback,
    "version.tag": RegistryPusher.tag_version,
    "version.untag": RegistryPusher.untag_version,
    "version.delete": RegistryPusher.delete_version,
    "alias.set": RegistryPusher.set_alias,
    "alias.delete": RegistryPusher.delete_alias,
}
