"""What every run of the process shares, whichever session starts it: the run context a
new run records about where it was started (the notebook or script, the environment,
git), as MLflow's run context providers do, and observers called as runs start and end.

Both live in the layers above tracking (``nbtrack.capture``, ``nbtrack.autologging``) and
are registered by the package (``nbtrack/__init__.py``) as ``"module:function"`` names,
imported on first use. A provider is called with the store and returns a
:class:`RunContext`; an observer as a session's own hooks are (session.py). One that
fails warns, and the run goes on without it.
"""

from __future__ import annotations

import pkgutil
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from nbtrack.store import Store
    from nbtrack.store.records import Record


class RunContext(NamedTuple):
    tags: dict[str, str]  # e.g. mlflow.source.name, mlflow.source.git.commit
    records: list[Record]  # journal records, e.g. the environment reference


Provider = Callable[["Store"], RunContext]

_providers: list[str | Provider] = []


def register(provider: str | Provider) -> None:
    """Add a provider (a callable, or its ``"module:function"`` name), once."""
    if provider not in _providers:
        _providers.append(provider)


def unregister(provider: str | Provider) -> None:
    if provider in _providers:
        _providers.remove(provider)


def collect(store: Store) -> RunContext:
    """Every provider's tags (later providers win) and records, for a run about to start."""
    tags: dict[str, str] = {}
    records: list[Any] = []
    for provider in list(_providers):
        try:
            context = _resolve(provider)(store)
        except Exception as error:  # context is provenance: it must never stop a run
            warnings.warn(f"nbtrack run context {provider!r} failed: {error!r}", stacklevel=3)
            continue
        tags.update(context.tags)
        records.extend(context.records)
    return RunContext(tags, records)


_start_observers: list[str | Callable[..., None]] = []
_end_observers: list[str | Callable[..., None]] = []


def observe(on_start: str | Callable[..., None], on_end: str | Callable[..., None]) -> None:
    """Call ``on_start(run, resumed)`` and ``on_end(run_id, status)`` for every run any
    session of this process starts and ends."""
    if on_start not in _start_observers:
        _start_observers.append(on_start)
        _end_observers.append(on_end)


def start_observers() -> list[Callable[..., None]]:
    return [_resolve(o) for o in _start_observers]


def end_observers() -> list[Callable[..., None]]:
    return [_resolve(o) for o in _end_observers]


_resolved: dict[str, Any] = {}


def _resolve(target: str | Callable[..., Any]) -> Callable[..., Any]:
    if not isinstance(target, str):
        return target
    found = _resolved.get(target)
    if found is None:
        found = _resolved[target] = pkgutil.resolve_name(target)
    return found


_status_notes: list[Callable[[], str | None]] = []


def add_status_note(note: Callable[[], str | None]) -> None:
    """Add a line to ``%track``'s status (e.g. background sync's queue), once."""
    if note not in _status_notes:
        _status_notes.append(note)


def remove_status_note(note: Callable[[], str | None]) -> None:
    if note in _status_notes:
        _status_notes.remove(note)


def status_notes() -> list[str]:
    """The notes' lines now; one that fails is left out."""
    lines = []
    for note in list(_status_notes):
        try:
            line = note()
        except Exception as error:  # a status line must never break %track
            line = f"{note!r} failed: {error!r}"
        if line:
            lines.append(line)
    return lines
