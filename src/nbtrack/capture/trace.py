"""The kernel's execution trace: every cell in the order it ran, each run's slice, staleness.

:class:`ExecutionTrace` keeps one entry per executed cell (execution count, cell id,
redacted source and its hash, and the names it defines and reads, see ``defuse``). When a
run starts inside a cell, :meth:`ExecutionTrace.run_record` computes

* the **slice**: the cells whose definitions the run's cell reads, found by following each
  read name back to the last cell that defined it before the reader, transitively;
* whether the run is **stale**, with reasons: a slice cell reads a name from a cell that
  sits *below* it in the notebook (out of order); a cell was run again after its names
  were used (re-executed after use); or a name the slice consumed was later changed by a
  cell outside the slice (redefined outside the slice).

Notebook positions come from the saved notebook when its cells carry the ids the
frontend sent, else from the order in which cells were first run. The session's whole
history is appended to ``<store>/traces/<session>.jsonl``; the run's journal gets the slice
(with sources) and the verdict, so a run can be reproduced from its record alone.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from nbtrack.capture.defuse import EMPTY, Analysis, analyze
from nbtrack.capture.redact import redact_source
from nbtrack.store.records import tags_record, trace_record
from nbtrack.validation import MAX_TAG_VALUE_LENGTH

TRACES = "traces"
STALE_TAG = "nbtrack.stale"  # the stale verdict's reason, on stale runs only
# Cell magics whose body is Python that runs in the user namespace.
PYTHON_CELL_MAGICS = frozenset({"track", "time", "timeit", "capture", "prun"})
# What IPython's input transformers rewrite: magics, shell escapes, help, prompts, and a
# cell indented as a whole.
_IPYTHON_SYNTAX = re.compile(r"[%!?]|^(>>>|\.\.\.|In \[)|\A\s", re.MULTILINE)
OUT_OF_ORDER = "out of order"
RE_EXECUTED = "re-executed after use"
REDEFINED = "redefined outside the slice"


class CellExecution(NamedTuple):
    """One executed cell, as the trace keeps it."""

    index: int  # position in the session's history
    execution_count: int | None  # In[n]
    cell_id: str | None
    source: str  # redacted
    hash: str  # of the redacted source
    analysis: Analysis

    @property
    def identity(self) -> str:
        """The same notebook cell across executions: its id, else its source."""
        return self.cell_id or f"source:{self.hash}"

    def entry(self) -> dict[str, Any]:
        return {
            "i": self.index,
            "n": self.execution_count,
            "cell_id": self.cell_id,
            "hash": self.hash,
            "source": self.source,
        }


class Reason(NamedTuple):
    kind: str  # OUT_OF_ORDER | RE_EXECUTED | REDEFINED
    text: str


class ExecutionTrace:
    """The cells one kernel session ran, and what a run started now depends on.

    Parameters
    ----------
    transform
        Turns IPython syntax into Python (``shell.transform_cell``) before analysis.
    """

    def __init__(self, transform: Callable[[str], str] | None = None) -> None:
        self.session = uuid.uuid4().hex
        self.history: list[CellExecution] = []
        self.current: CellExecution | None = None
        self._transform = transform
        self._definers: dict[str, list[int]] = {}  # name -> history indices, ascending
        self._first_seen: dict[str, int] = {}  # identity -> index of its first execution
        self._written: dict[Path, int] = {}  # store root -> history entries in its file

    # -- cells ------------------------------------------------------------------------------

    def start_cell(self, execution_count: int | None, cell_id: str | None, raw: str) -> None:
        """Note the cell that starts running (pre_run_cell)."""
        source = redact_source(raw)
        index = len(self.history)
        self.current = CellExecution(
            index,
            execution_count,
            cell_id,
            source,
            hashlib.sha256(source.encode()).hexdigest()[:16],
            analyze(self._python(raw)),
        )

    def finish_cell(self) -> None:
        """Add the running cell to the history (post_run_cell); a failed cell counts too,
        since it may have bound names before it raised."""
        cell, self.current = self.current, None
        if cell is None:
            return
        self.history.append(cell)
        self._first_seen.setdefault(cell.identity, cell.index)
        for name in cell.analysis.defs:
            self._definers.setdefault(name, []).append(cell.index)

    def _python(self, raw: str) -> str:
        text = raw.lstrip()
        if text.startswith("%%"):
            first, _, body = text.partition("\n")
            words = first[2:].split(maxsplit=1)
            if not words or words[0] not in PYTHON_CELL_MAGICS:
                return ""  # another language or an opaque magic: no Python names
            text = body
        if self._transform is None or not _IPYTHON_SYNTAX.search(text):
            return text  # plain Python: IPython's transformers would return it unchanged
        try:
            return self._transform(text)
        except Exception:  # IPython syntax it cannot transform: analyze what parses
            return text

    # -- a run's slice and verdict ---------------------------------------------------------------

    def run_record(self, positions: dict[str, int] | None = None) -> dict[str, Any] | None:
        """The journal record for a run starting in the current cell (None outside cells)."""
        if self.current is None:
            return None
        cells = [*self.history, self.current]
        members, edges = self._slice(cells)
        reasons = self._reasons(cells, members, edges, positions or {})
        texts = list(dict.fromkeys(r.text for r in reasons))
        return trace_record(
            session=self.session,
            cells=len(cells),
            slice=[cells[i].entry() for i in sorted(members)],
            stale=_summary(texts),
            reasons=texts,
            cwd=os.getcwd(),
            autolog=_autolog_integrations(),
        )

    def _slice(self, cells: list[CellExecution]) -> tuple[set[int], list[tuple[int, str, int]]]:
        """Cell indices the last cell depends on, and the (reader, name, definer) edges."""
        last = len(cells) - 1
        members, edges, pending = {last}, [], [last]
        while pending:
            reader = pending.pop()
            for name in sorted(cells[reader].analysis.uses):
                definer = self._last_definer(name, before=reader)
                if definer is None:
                    continue  # a name no traced cell defined (builtins, %run, the kernel)
                edges.append((reader, name, definer))
                if definer not in members:
                    members.add(definer)
                    pending.append(definer)
        return members, edges

    def _last_definer(self, name: str, before: int) -> int | None:
        indices = self._definers.get(name)
        if not indices:
            return None
        at = bisect.bisect_left(indices, before)
        return indices[at - 1] if at else None

    def _reasons(
        self,
        cells: list[CellExecution],
        members: set[int],
        edges: list[tuple[int, str, int]],
        positions: dict[str, int],
    ) -> list[Reason]:
        reasons = []
        last = len(cells) - 1
        for reader, name, definer in sorted(edges, key=lambda e: (e[2], e[0], e[1])):
            r, d = cells[reader], cells[definer]
            if r.identity == d.identity:
                reasons.append(
                    Reason(
                        RE_EXECUTED,
                        f"{RE_EXECUTED}: {_cell(r)} reads `{name}` from its own earlier run "
                        f"{_cell(d)}",
                    )
                )
                continue
            if self._below(d, r, positions):
                reasons.append(
                    Reason(
                        OUT_OF_ORDER,
                        f"{OUT_OF_ORDER}: {_cell(r)} uses `{name}` from {_cell(d)}, a cell "
                        "further down the notebook",
                    )
                )
            changed = self._changed_later(name, d, members, until=last)
            if changed is not None:
                if changed.identity == d.identity:
                    text = (
                        f"{RE_EXECUTED}: {_cell(d)} was run again as {_cell(changed)} after "
                        f"`{name}` was used"
                    )
                    reasons.append(Reason(RE_EXECUTED, text))
                else:
                    text = f"{REDEFINED}: `{name}` from {_cell(d)} was changed by {_cell(changed)}"
                    reasons.append(Reason(REDEFINED, text))
        return reasons

    def _below(self, definer: CellExecution, reader: CellExecution, saved: dict[str, int]):
        """True when the definer sits below the reader in the notebook."""
        if definer.identity in saved and reader.identity in saved:
            return saved[definer.identity] > saved[reader.identity]
        first = self._first_seen
        if definer.identity in first and reader.identity in first:
            return first[definer.identity] > first[reader.identity]
        return False  # the reader runs for the first time: it is the newest cell

    def _changed_later(
        self, name: str, definer: CellExecution, members: set[int], until: int
    ) -> CellExecution | None:
        """The first cell outside the slice that rebound ``name`` after ``definer`` (and
        before the run) to something that can differ; None if there is none."""
        indices = self._definers.get(name, [])
        start = bisect.bisect_right(indices, definer.index)
        signature = definer.analysis.defs.get(name)
        for index in indices[start:]:
            if index >= until:
                break
            if index in members:
                continue
            other = self.history[index]
            if signature is not None and other.analysis.defs.get(name) == signature:
                continue  # the same import or the same def again: nothing changed
            return other
        return None

    # -- storing --------------------------------------------------------------------------------

    def write_session(self, store_root: Path) -> None:
        """Append the cells this store's trace file lacks (the running one included)."""
        cells = [*self.history, *([self.current] if self.current is not None else [])]
        written = self._written.get(store_root, 0)
        if written >= len(cells):
            return
        path = Path(store_root) / TRACES / f"{self.session}.jsonl"
        lines = "".join(json.dumps(c.entry()) + "\n" for c in cells[written:])
        try:
            _append(path, lines.encode())
        except FileNotFoundError:  # the store's first traced run (or its folder was removed)
            path.parent.mkdir(parents=True, exist_ok=True)
            _append(path, lines.encode())
        self._written[store_root] = len(cells)

    def on_run_start(self, run: Any, resumed: bool) -> None:
        """The session's start hook: give a new run started in a cell its trace record,
        and a stale run the ``nbtrack.stale`` tag (the reason), so searches and every
        export of the run carry the verdict."""
        if resumed or self.current is None:
            return
        record = self.run_record(notebook_positions())
        if record is None:
            return
        self.write_session(run.store.root)
        records = [record]
        if record["stale"]:
            records.append(tags_record({STALE_TAG: record["stale"][:MAX_TAG_VALUE_LENGTH]}))
        run.store.append(run.run_id, records)


def _append(path: Path, data: bytes) -> None:
    # os-level, not open(): a run starts in every %%track cell, and the io stack's extra
    # system calls were a tenth of its cost.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _cell(cell: CellExecution) -> str:
    return f"In[{cell.execution_count}]" if cell.execution_count is not None else "a cell"


def _summary(texts: list[str]) -> str | None:
    if not texts:
        return None
    more = len(texts) - 1
    return texts[0] + (f" (and {more} more)" if more else "")


def _autolog_integrations() -> list[str]:
    module = sys.modules.get("nbtrack.autologging")
    return list(module.enabled_integrations()) if module is not None else []


_positions_cache: dict[str, tuple[int, dict[str, int]]] = {}


def notebook_positions(path: str | None = None) -> dict[str, int]:
    """``{cell_id: index}`` of the saved notebook (cached by modification time); {} if none."""
    if path is None:
        from nbtrack.capture.notebook import notebook_path

        path = notebook_path()
    if not path:
        return {}
    try:
        mtime = os.stat(path).st_mtime_ns
        cached = _positions_cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        with open(path, encoding="utf-8") as handle:
            cells = json.load(handle).get("cells", [])
    except (OSError, ValueError):
        return {}
    positions = {c["id"]: i for i, c in enumerate(cells) if isinstance(c, dict) and c.get("id")}
    _positions_cache[path] = (mtime, positions)
    return positions


def read_session(store_root: Path, session: str) -> list[dict[str, Any]]:
    """The cells of a traced session, as written to its file."""
    path = Path(store_root) / TRACES / f"{session}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


__all__ = ["EMPTY", "CellExecution", "ExecutionTrace", "notebook_positions", "read_session"]
