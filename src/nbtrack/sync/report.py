"""What a push or pull did, as returned to Python and printed by the CLI and ``%track``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SyncReport:
    """Counts of one push or pull. ``values`` are params, tags and metric points sent
    (push) or received (pull); ``requests`` the HTTP requests made (MLflow's retries not
    counted)."""

    server: str
    action: str  # "push" or "pull"
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    values: int = 0
    artifacts: int = 0
    registry_events: int = 0
    requests: int = 0
    seconds: float = 0.0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def add_conflict(self, conflict: dict[str, Any]) -> None:
        with self._lock:
            self.conflicts.append(conflict)

    def __str__(self) -> str:
        done = "pushed to" if self.action == "push" else "pulled from"
        made = "created" if self.action == "push" else "new"
        text = (
            f"{done} {self.server}: {self.created} runs {made}, {self.updated} updated, "
            f"{self.unchanged} unchanged; {self.values:,} values, {self.artifacts} artifacts, "
            f"{self.registry_events} registry events; {self.requests} requests, "
            f"{self.seconds:.1f} s"
        )
        if self.conflicts:
            text += (
                f"\n{len(self.conflicts)} conflicts merged (one value kept, the other "
                f"recorded): nbtrack sync status {self.server} lists them"
            )
        return text

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))
