"""The extension in a real ipykernel: ``%%track``, ``%track``, cell tracking, and the store on disk.

Every test starts its own kernel (about a second) in the ``kernel_env`` folder, so tests share
no kernel state and each begins with an empty store in ``<kernel_env>/.nbtrack``. What the
kernel wrote is then read back in this process with :class:`nbtrack.store.Store`, as a second
process on the same store would.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

from nbtrack.store import Store
from nbtrack.store.recovery import fold_run

ANSI = re.compile(r"\x1b\[[0-9;]*m")
OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error")


# -- driving a kernel --------------------------------------------------------------------


@dataclass
class Cell:
    """What one execute_request produced: the shell reply and the iopub outputs."""

    reply: dict[str, Any]
    execution_count: int | None  # In[n], from the kernel's execute_input broadcast
    outputs: list[dict[str, Any]]  # iopub messages of OUTPUT_TYPES, in order
    comms: list[dict[str, Any]]  # comm_open, comm_msg and comm_close messages, in order

    @property
    def status(self) -> str:
        return self.reply["status"]

    def contents(self, msg_type: str) -> list[dict[str, Any]]:
        return [m["content"] for m in self.outputs if m["msg_type"] == msg_type]

    @property
    def stdout(self) -> str:
        return "".join(c["text"] for c in self.contents("stream") if c["name"] == "stdout")

    @property
    def displays(self) -> list[dict[str, Any]]:
        """The ``data`` bundles of display_data outputs (run cards)."""
        return [c["data"] for c in self.contents("display_data")]

    @property
    def result(self) -> dict[str, Any] | None:
        """The execute_result's data bundle (the cell's last expression), if any."""
        results = self.contents("execute_result")
        assert len(results) <= 1, results
        return results[0]["data"] if results else None

    @property
    def traceback(self) -> str:
        return ANSI.sub("", "\n".join(self.reply.get("traceback", [])))

    def describe(self) -> str:
        if self.status == "ok":
            return f"ok, outputs: {self.outputs!r}"
        return f"{self.reply.get('ename')}: {self.reply.get('evalue')}\n{self.traceback}"


class Kernel:
    """A python3 kernel started in ``cwd``, driven with raw execute_requests.

    Messages are sent by hand (not ``KernelClient.execute``) so a request can carry
    ``metadata.cellId`` as JupyterLab and nbclient send it; ipykernel passes it on to
    IPython as the cell id that ``pre_run_cell`` sees.
    """

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        kwargs = {"env": env} if env is not None else {}
        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(cwd), **kwargs)
        self._iopub: dict[str, list[dict[str, Any]]] = {}

    def send(self, code: str, cell_id: str | None = None) -> str:
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        metadata = {"cellId": cell_id} if cell_id is not None else {}
        msg = self.kc.session.msg("execute_request", content, metadata=metadata)
        self.kc.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    def _next_iopub(self, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no message from the kernel in time")
        try:
            msg = self.kc.get_iopub_msg(timeout=remaining)
        except Empty:
            raise TimeoutError("no message from the kernel in time") from None
        parent = msg["parent_header"].get("msg_id")
        if parent is not None:
            self._iopub.setdefault(parent, []).append(msg)
        return msg

    def wait_for_stream(self, msg_id: str, timeout: float = 30) -> str:
        """Block until the request has printed something; return that text."""
        deadline = time.monotonic() + timeout
        seen = [m for m in self._iopub.get(msg_id, []) if m["msg_type"] == "stream"]
        while not seen:
            msg = self._next_iopub(deadline)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                seen.append(msg)
        return seen[0]["content"]["text"]

    def _until_idle(self, msg_id: str, deadline: float) -> None:
        def idle() -> bool:
            return any(
                m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
                for m in self._iopub.get(msg_id, [])
            )

        while not idle():
            self._next_iopub(deadline)

    def collect(self, msg_id: str, timeout: float = 60) -> Cell:
        """Every output of the request up to the kernel going idle, then its reply."""
        deadline = time.monotonic() + timeout

        self._until_idle(msg_id, deadline)
        while True:
            reply = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        messages = self._iopub.pop(msg_id)
        counts = [
            m["content"]["execution_count"] for m in messages if m["msg_type"] == "execute_input"
        ]
        outputs = [m for m in messages if m["msg_type"] in OUTPUT_TYPES]
        return Cell(reply["content"], counts[0] if counts else None, outputs, comms_in(messages))

    def comm(self, msg_type: str, content: dict[str, Any], timeout: float = 30) -> list[dict]:
        """Send a comm message as a page would; the comm messages the kernel sent back."""
        msg = self.kc.session.msg(msg_type, content)
        self.kc.shell_channel.send(msg)
        self._until_idle(msg["header"]["msg_id"], time.monotonic() + timeout)
        return comms_in(self._iopub.pop(msg["header"]["msg_id"]))

    def run(self, code: str, *, cell_id: str | None = None, timeout: float = 60) -> Cell:
        return self.collect(self.send(code, cell_id), timeout)

    def ok(self, code: str, **kwargs: Any) -> Cell:
        """Run a cell that must succeed."""
        cell = self.run(code, **kwargs)
        assert cell.status == "ok", f"{code!r} failed: {cell.describe()}"
        return cell

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def comms_in(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["msg_type"].startswith("comm_")]


@pytest.fixture
def kernel(kernel_env: Path) -> Iterator[Kernel]:
    started = Kernel(kernel_env)
    yield started
    started.close()


@pytest.fixture
def nb(kernel: Kernel) -> Kernel:
    """A kernel with the extension loaded and ``nbtrack`` imported in the user namespace."""
    kernel.ok("%load_ext nbtrack\nimport nbtrack")
    return kernel


# -- reading the store from this process -----------------------------------------------------


@contextmanager
def opened(path: Path) -> Iterator[Store]:
    assert (path / "catalog.snapshot").exists(), f"the kernel made no store in {path}"
    with Store(path) as store:
        yield store


def runs_by_name(path: Path, timeout: float = 5.0) -> dict[str, dict[str, Any]]:
    """The store's runs as another process sees them, once its catalog has caught up.

    The journals are written when a run ends; the kernel commits the catalog (the
    index this reads) from its background thread within about a second. So poll fresh
    Stores until every catalog row equals the row its journal folds to.
    """
    deadline = time.monotonic() + timeout
    while True:
        with opened(path) as store:
            rows = store.runs()
            caught_up = all(fold_run(store, r["run_id"]) == r for r in rows)
        if caught_up or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    names = [r["run_name"] for r in rows]
    assert len(set(names)) == len(names), f"run names repeat: {names}"
    return {r["run_name"]: r for r in rows}


def journal(path: Path, run_id: str, op: str) -> list[dict[str, Any]]:
    with opened(path) as store:
        return [r for r in store.records(run_id) if r["op"] == op]


def cell_record(path: Path, run_id: str) -> dict[str, Any]:
    records = journal(path, run_id, "cell")
    assert len(records) == 1, records
    return records[0]


def card(cell: Cell) -> dict[str, str]:
    """The one run card a %%track cell displays."""
    assert len(cell.displays) == 1, cell.outputs
    bundle = cell.displays[0]
    assert {"text/html", "text/plain"} <= set(bundle), bundle
    return bundle


# -- tests -------------------------------------------------------------------------------------


def test_load_ext_twice_is_harmless_and_track_prints_status(kernel: Kernel, kernel_env: Path):
    assert kernel.ok("%load_ext nbtrack").outputs == []
    second = kernel.ok("%load_ext nbtrack")
    assert second.contents("error") == []

    status = kernel.ok("%track").result["text/plain"]
    store_uri = (kernel_env / ".nbtrack").resolve().as_uri()
    assert f"store:      {store_uri}" in status
    assert "experiment: Default (id 0)" in status
    assert "active run: -" in status
    assert "track every cell: off" in status

    # Loading twice must not register the cell events twice: one run, one card.
    tracked = kernel.ok("%%track --name once\nvalue = 1")
    assert "once" in card(tracked)["text/plain"]
    assert list(runs_by_name(kernel_env / ".nbtrack")) == ["once"]

    kernel.ok("%track experiment churn")
    assert "experiment: churn (id 1)" in kernel.ok("%track").result["text/plain"]


TRACKED_BODY = """\
lr = 0.1
layers = [64, 32]
a, b = 1, 2
for step in range(5):
    nbtrack.log_metric("loss", 1 / (step + 1), step=step)
acc = 0.75
lr * 10"""


def test_tracked_cell_records_a_finished_run(nb: Kernel, kernel_env: Path):
    cell = nb.ok("%%track --name X --tag k=v --param p=1 --metrics acc\n" + TRACKED_BODY)

    # The cell behaves like an untracked one: its last expression is its result.
    assert cell.result == {"text/plain": "1.0"}
    assert cell.contents("execute_result")[0]["execution_count"] == cell.execution_count
    bundle = card(cell)
    for rendering in (bundle["text/html"], bundle["text/plain"]):
        assert "X" in rendering and "FINISHED" in rendering and "lr" in rendering

    store = kernel_env / ".nbtrack"
    runs = runs_by_name(store)
    assert list(runs) == ["X"]
    row = runs["X"]
    assert row["status"] == "FINISHED" and row["end_time"] >= row["start_time"]
    assert row["params"] == {"lr": "0.1", "layers": "[64, 32]", "a": "1", "b": "2", "p": "1"}
    assert set(row["metrics"]) == {"loss", "acc"}
    assert row["metrics"]["acc"][0] == 0.75
    assert row["tags"]["k"] == "v"
    assert row["tags"]["mlflow.runName"] == "X"
    assert row["tags"]["mlflow.source.type"] == "NOTEBOOK"
    with opened(store) as opened_store:
        steps, values, _ = opened_store.metric_history(row["run_id"], "loss")
    assert list(steps) == [0, 1, 2, 3, 4]
    assert list(values) == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])

    record = cell_record(store, row["run_id"])
    assert record["source"].rstrip("\n") == TRACKED_BODY
    details = nb.ok("nbtrack.run_details('X')").result["text/plain"]
    assert "status = FINISHED" in details and 'nbtrack.log_metric("loss"' in details
    # The cell's number is the In[n] the kernel announced for it.
    assert record["execution_count"] == cell.execution_count
    assert row["cell"]["execution_count"] == cell.execution_count
    assert f"execution_count={cell.execution_count}" in details


SECRETS = {"api_key": "s3cr3t", "db_password": "hunter2hunter2", "HF_TOKEN": "hf_tok_9f8e7d"}


def test_secret_literals_never_reach_the_store(nb: Kernel, kernel_env: Path):
    body = "\n".join(
        [
            f'api_key = "{SECRETS["api_key"]}"',
            f'db_password: str = "{SECRETS["db_password"]}"',
            f"HF_TOKEN = {SECRETS['HF_TOKEN']!r}",
            "batch = 32",
        ]
    )
    nb.ok("%%track --name secretive\n" + body)
    store = kernel_env / ".nbtrack"
    row = runs_by_name(store)["secretive"]
    assert row["status"] == "FINISHED"
    assert row["params"] == {
        "api_key": "<redacted>",
        "db_password": "<redacted>",
        "HF_TOKEN": "<redacted>",
        "batch": "32",
    }
    assert "batch = 32" in cell_record(store, row["run_id"])["source"]

    files = [p for p in store.rglob("*") if p.is_file()]
    assert any(p.name == "journal.jsonl" for p in files)
    leaks = {
        f"{p.relative_to(store)}: {name}"
        for p in files
        for name, secret in SECRETS.items()
        if secret.encode() in p.read_bytes()
    }
    assert not leaks, f"secret values written to the store: {sorted(leaks)}"
    shown = nb.ok("nbtrack.run_details('secretive')").result["text/plain"]
    assert not [s for s in SECRETS.values() if s in shown]


def test_secret_names_from_the_environment_and_set_secret_names_reach_the_kernel(
    kernel_env: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("NBTRACK_SECRET_NAMES", "vocab_size")
    monkeypatch.setenv("NBTRACK_NOT_SECRET_NAMES", "pwd")
    kernel = Kernel(kernel_env)  # a child process: it inherits the variables
    try:
        kernel.ok("%load_ext nbtrack\nimport nbtrack")
        kernel.ok("%%track --name env\nvocab_size = 32000\npwd = '/data'\nlr = 0.1")
        env = runs_by_name(kernel_env / ".nbtrack")["env"]
        assert env["params"] == {"vocab_size": "<redacted>", "pwd": "/data", "lr": "0.1"}
        kernel.ok("nbtrack.set_secret_names(secret=['seed'])")
        kernel.ok("%%track --name function\nseed = 7\nvocab_size = 100\nlr = 0.2")
        function = runs_by_name(kernel_env / ".nbtrack")["function"]
        assert function["params"] == {"seed": "<redacted>", "vocab_size": "<redacted>", "lr": "0.2"}
    finally:
        kernel.close()


def test_user_strings_are_escaped_in_run_card_and_tables(nb: Kernel):
    name = "<img src=x onerror=alert(1)>"
    cell = nb.ok(f"%%track --name '{name}' --tag 'note=<script>alert(2)</script>'\nq = '<b>q</b>'")
    bundle = card(cell)
    assert "&lt;img src=x" in bundle["text/html"]
    assert "<img src=x" not in bundle["text/html"] and "<b>q</b>" not in bundle["text/html"]
    assert name in bundle["text/plain"]

    table = nb.ok("%track runs").result
    assert "&lt;img src=x" in table["text/html"] and "&lt;script&gt;" in table["text/html"]
    assert "<img" not in table["text/html"] and "<script" not in table["text/html"]
    shown = nb.ok(f"%track show '{name}'").result
    assert "&lt;img src=x" in shown["text/html"]
    assert "<img" not in shown["text/html"] and "<script" not in shown["text/html"]


def test_failing_cell_records_a_failed_run_and_reraises(nb: Kernel, kernel_env: Path):
    cell = nb.run(
        "%%track --name boom --metrics acc\nlr = 0.1\nacc = 0.5\ny = 1 / 0\nprint('unreached')"
    )
    assert cell.status == "error"
    assert (cell.reply["ename"], cell.reply["evalue"]) == ("ZeroDivisionError", "division by zero")
    assert [e["ename"] for e in cell.contents("error")] == ["ZeroDivisionError"]
    assert "y = 1 / 0" in cell.traceback
    assert "unreached" not in cell.stdout
    assert "FAILED" in card(cell)["text/plain"]

    store = kernel_env / ".nbtrack"
    row = runs_by_name(store)["boom"]
    assert row["status"] == "FAILED" and row["end_time"] is not None
    assert row["error"] == "ZeroDivisionError: division by zero"
    assert row["params"] == {"lr": "0.1"}  # `acc` is a --metrics name, not a param
    assert "acc" not in row.get("metrics", {})  # the cell never finished computing it
    [traceback] = journal(store, row["run_id"], "traceback")
    assert "Traceback (most recent call last)" in traceback["text"]
    assert "y = 1 / 0" in traceback["text"]
    assert traceback["text"].rstrip().endswith("ZeroDivisionError: division by zero")
    shown = nb.ok("%track show boom").result["text/plain"]
    assert "y = 1 / 0" in shown and "ZeroDivisionError: division by zero" in shown

    # No run is left active, and the kernel carries on.
    assert nb.ok("print(nbtrack.active_run())").stdout == "None\n"
    # The frame of the user's code names the cell as the kernel numbered it.
    assert f"In[{cell.execution_count}], line 3" in cell.traceback


def test_interrupted_cell_records_a_killed_run(nb: Kernel, kernel_env: Path):
    msg_id = nb.send(
        "%%track --name sleepy\nimport time\nwait = 60\nprint('started', flush=True)\n"
        "time.sleep(wait)"
    )
    # An interrupt sent before the body runs can be lost (TESTING-JUPYTER.md): wait for it.
    assert nb.wait_for_stream(msg_id) == "started\n"
    started = time.monotonic()
    nb.km.interrupt_kernel()
    cell = nb.collect(msg_id, timeout=20)
    assert time.monotonic() - started < 15
    assert (cell.status, cell.reply["ename"]) == ("error", "KeyboardInterrupt")
    assert "KILLED" in card(cell)["text/plain"]

    row = runs_by_name(kernel_env / ".nbtrack")["sleepy"]
    assert row["status"] == "KILLED" and row["end_time"] is not None
    assert row["params"] == {"wait": "60"}
    assert nb.ok("print(nbtrack.active_run())").stdout == "None\n"


def _has_row(html: str, name: str) -> bool:
    return f"<td>{name}</td>" in html


def test_experiment_switch_and_runs_table_with_filters(nb: Kernel, kernel_env: Path):
    assert "experiment: exp-a" in nb.ok("%track experiment exp-a").stdout
    nb.ok("%%track --name good --metrics acc\nacc = 0.9")
    nb.ok("%%track --name poor --metrics acc\nacc = 0.2")
    nb.ok("%track experiment exp-b")
    nb.ok("%%track --name other-exp --metrics acc\nacc = 0.99")
    nb.ok("%track experiment exp-a")

    table = nb.ok("%track runs").result
    assert {"text/html", "text/plain"} <= set(table)
    for name in ("good", "poor"):
        assert _has_row(table["text/html"], name)
        assert re.search(rf"^\w+\s+{name}\s", table["text/plain"], re.M)
    assert "other-exp" not in table["text/html"] and "other-exp" not in table["text/plain"]

    filtered = nb.ok("%track runs metrics.acc > 0.5").result
    assert _has_row(filtered["text/html"], "good")
    assert not _has_row(filtered["text/html"], "poor")
    assert "poor" not in filtered["text/plain"] and "good" in filtered["text/plain"]

    bad = nb.run("%track runs metrics.acc >> 0.5")
    assert bad.status == "error"
    assert bad.reply["ename"] == "InvalidFilterError"
    assert "'>>'" in bad.reply["evalue"] and "metrics" in bad.reply["evalue"]
    unknown = nb.run("%track runs colour = 'red'")
    assert unknown.status == "error" and "colour" in unknown.reply["evalue"]

    # Bad %%track options are refused before anything runs or is recorded.
    for line, named in [("--bogus", "--bogus"), ("--name x --tag novalue", "novalue")]:
        refused = nb.run(f"%%track {line}\nran = True")
        assert (refused.status, refused.reply["ename"]) == ("error", "UsageError")
        assert named in refused.reply["evalue"]
    assert nb.ok("print('ran' in globals())").stdout == "False\n"

    with opened(kernel_env / ".nbtrack") as store:
        experiments = {e["name"]: e["experiment_id"] for e in store.experiments()}
        placed = {r["run_name"]: r["experiment_id"] for r in store.runs()}
    assert placed == {
        "good": experiments["exp-a"],
        "poor": experiments["exp-a"],
        "other-exp": experiments["exp-b"],
    }


def test_store_switch_moves_where_runs_go(nb: Kernel, kernel_env: Path):
    nb.ok("%track experiment exp-a")
    nb.ok("%%track --name first\nq = 1")

    switched = nb.ok("%track store elsewhere")
    assert (kernel_env / "elsewhere").resolve().as_uri() in switched.stdout
    nb.ok("%track experiment exp-b")
    nb.ok("%%track --name second\nq = 2")
    assert "second" in nb.ok("%track runs").result["text/plain"]
    assert "first" not in nb.ok("%track runs").result["text/plain"]

    assert list(runs_by_name(kernel_env / ".nbtrack")) == ["first"]
    with opened(kernel_env / "elsewhere") as store:
        [row] = store.runs()
        experiment = store.get_experiment(row["experiment_id"])
    assert (row["run_name"], experiment["name"]) == ("second", "exp-b")

    # Switching stores must not keep an experiment id that means nothing (or something
    # else) in the new store: status and a tracked cell work right after the switch.
    nb.ok("%track store third")
    status = nb.run("%track")
    assert status.status == "ok", status.describe()
    assert (kernel_env / "third").resolve().as_uri() in status.result["text/plain"]
    tracked = nb.run("%%track --name third-run\nq = 3")
    assert tracked.status == "ok", tracked.describe()
    assert list(runs_by_name(kernel_env / "third")) == ["third-run"]


TWO_POINTS = "nbtrack.log_metric('m', 2.0, step=1)\nnbtrack.log_metric('m', 3.0, step=2)"


def test_track_on_makes_cells_that_log_child_runs_of_one_session(nb: Kernel, kernel_env: Path):
    store = kernel_env / ".nbtrack"
    assert "track every cell: on" in nb.ok("%track on").result["text/plain"]
    plain = nb.ok("x = 1")
    one = nb.ok("nbtrack.log_metric('m', 1.0)")
    two = nb.ok(TWO_POINTS)

    rows = list(runs_by_name(store).values())
    children = [r for r in rows if "mlflow.parentRunId" in r["tags"]]
    assert len(children) == 2, [r["run_name"] for r in rows]
    [session_id] = {r["tags"]["mlflow.parentRunId"] for r in children}
    [session] = [r for r in rows if r["run_id"] == session_id]
    assert len(rows) == 3  # the session run and the two cells that logged; `x = 1` made none
    assert session["status"] == "RUNNING" and "mlflow.parentRunId" not in session["tags"]
    by_source = {cell_record(store, r["run_id"])["source"]: r for r in children}
    assert set(by_source) == {"nbtrack.log_metric('m', 1.0)", TWO_POINTS}
    assert by_source["nbtrack.log_metric('m', 1.0)"]["metrics"]["m"][0] == 1.0
    assert by_source[TWO_POINTS]["metrics"]["m"][:2] == [3.0, 2]
    assert all(r["status"] == "FINISHED" for r in children)

    failing = nb.run("nbtrack.log_metric('m', 4.0)\nraise ValueError('bad cell')")
    assert (failing.status, failing.reply["ename"]) == ("error", "ValueError")
    tracked = nb.ok("%%track --name tracked-child\nq = 1")
    assert "tracked-child" in card(tracked)["text/plain"]
    nb.ok("y = 2")  # logs nothing: no run

    rows = list(runs_by_name(store).values())
    children = [r for r in rows if r["tags"].get("mlflow.parentRunId") == session_id]
    assert len(rows) == 5 and len(children) == 4
    [failed] = [r for r in children if r["status"] == "FAILED"]
    assert cell_record(store, failed["run_id"])["source"].startswith("nbtrack.log_metric('m', 4.0)")
    assert runs_by_name(store)["tracked-child"]["status"] == "FINISHED"
    assert runs_by_name(store)["tracked-child"]["params"] == {"q": "1"}

    assert "track every cell: off" in nb.ok("%track off").result["text/plain"]
    session = runs_by_name(store)[session["run_name"]]
    assert session["status"] == "FINISHED" and session["end_time"] is not None

    # Tracking off, MLflow's semantics: logging with no active run starts a run that stays
    # active across cells until end_run(); it is nobody's child.
    nb.ok("nbtrack.log_metric('after', 1.0)")
    active = nb.ok("print(nbtrack.active_run().run_id)").stdout.strip()
    nb.ok("nbtrack.log_metric('after', 2.0, step=1)")
    rows = {r["run_id"]: r for r in runs_by_name(store).values()}
    assert len(rows) == 6
    assert rows[active]["status"] == "RUNNING" and "mlflow.parentRunId" not in rows[active]["tags"]
    nb.ok("nbtrack.end_run()")
    after = {r["run_id"]: r for r in runs_by_name(store).values()}[active]
    assert after["status"] == "FINISHED" and after["metrics"]["after"][:2] == [2.0, 1]
    with opened(store) as opened_store:
        assert list(opened_store.metric_history(active, "after")[0]) == [0, 1]

    # Each child's cell record carries the In[n] the kernel gave that cell.
    numbers = {cell_record(store, r["run_id"])["execution_count"] for r in children}
    expected = {one.execution_count, two.execution_count, failing.execution_count}
    expected.add(tracked.execution_count)
    assert plain.execution_count not in numbers
    assert numbers == expected


def test_track_off_ends_the_session_run_through_the_end_hooks(nb: Kernel, kernel_env: Path):
    # With system metrics on, the session run of %track on is measured like any run: %track
    # off must end it the one way runs end, so its totals land and sampling stops.
    store = kernel_env / ".nbtrack"
    nb.ok("import os; os.environ['NBTRACK_SYSTEM_SAMPLING_SECONDS'] = '0.05'")
    nb.ok("%track autolog on system")
    nb.ok("%track on")
    nb.ok("nbtrack.log_metric('m', 1.0)\nimport time; time.sleep(0.3)")
    nb.ok("%track off")
    [session] = [r for r in runs_by_name(store).values() if "nbtrack.session" in r["tags"]]
    assert session["status"] == "FINISHED"
    assert "system/wall_time_seconds" in session["metrics"]
    key = "system/process_memory_megabytes"
    with opened(store) as opened_store:
        sampled = len(opened_store.metric_history(session["run_id"], key)[0])
    nb.ok("import time; time.sleep(0.4); nbtrack.flush()")
    with opened(store) as opened_store:
        assert len(opened_store.metric_history(session["run_id"], key)[0]) == sampled


def test_nbtrack_errors_are_short_and_user_tracebacks_start_at_the_cell(nb: Kernel):
    refused = nb.run("nbtrack.search_runs(filter_string='metrics.x >< 1')")
    assert (refused.status, refused.reply["ename"]) == ("error", "InvalidFilterError")
    lines = refused.traceback.strip().splitlines()
    assert len(lines) < 10 and lines[-1].strip() == "^", lines
    assert "search.py" not in refused.traceback and "%tb" in refused.traceback

    failing = nb.run("%%track --name broken\ndef g():\n    raise ValueError('bad')\ng()")
    assert (failing.status, failing.reply["ename"]) == ("error", "ValueError")
    assert "run_cell_magic" not in failing.traceback
    assert "raise ValueError('bad')" in failing.traceback
    plain = nb.run("1 / 0")  # untracked cells keep IPython's traceback
    assert "1 / 0" in plain.traceback and plain.reply["ename"] == "ZeroDivisionError"


def test_notebook_path_comes_from_jpy_session_name(kernel_env: Path):
    path = "/some/path/nb.ipynb"
    kernel = Kernel(kernel_env, env={**os.environ, "JPY_SESSION_NAME": path})
    try:
        kernel.ok("%load_ext nbtrack\nimport nbtrack")
        kernel.ok("%%track --name from-notebook\nq = 1")
        kernel.ok("with nbtrack.start_run(run_name='api-run'):\n    nbtrack.log_param('r', 2)")
    finally:
        kernel.close()
    store = kernel_env / ".nbtrack"
    runs = runs_by_name(store)
    for name in ("from-notebook", "api-run"):
        assert runs[name]["tags"]["mlflow.source.name"] == path
        assert runs[name]["tags"]["mlflow.source.type"] == "NOTEBOOK"
    assert cell_record(store, runs["from-notebook"]["run_id"])["notebook"] == path
    assert runs["from-notebook"]["cell"]["notebook"] == path


def test_buffered_metrics_reach_disk_without_an_explicit_flush(nb: Kernel, kernel_env: Path):
    store = kernel_env / ".nbtrack"
    cell = nb.ok(
        "run = nbtrack.start_run(run_name='buffered')\n"
        "[nbtrack.log_metric('m', i, step=i) for i in range(1000)]\n"
        "print(run.run_id)"
    )
    run_id = cell.stdout.strip()

    def seen_from_another_process() -> tuple[str, list[int], Any]:
        with Store(store) as fresh:  # a new Store each time: what another process sees
            row = fresh.get_run(run_id)
            steps, _, _ = fresh.metric_history(run_id, "m")
        return row["status"], list(steps), row.get("metrics", {}).get("m")

    deadline = time.monotonic() + 2.0
    while True:
        status, steps, latest = seen_from_another_process()
        if (steps == list(range(1000)) and latest is not None) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == "RUNNING"
    assert steps == list(range(1000))
    assert latest is not None and latest[:2] == [999.0, 999]

    # While a cell is still running, the background timer writes what it has logged.
    msg_id = nb.send(
        "import time\nfor i in range(1000, 1500):\n    nbtrack.log_metric('m', i, step=i)\n"
        "print('logged', flush=True)\ntime.sleep(4)"
    )
    nb.wait_for_stream(msg_id)
    printed = time.monotonic()
    while True:
        _, steps, _ = seen_from_another_process()
        waited = time.monotonic() - printed
        if len(steps) == 1500 or waited > 2.0:
            break
        time.sleep(0.1)
    assert steps == list(range(1500))
    assert waited < 3.5  # seen while the cell still sleeps: no cell-end flush did this
    assert nb.collect(msg_id, timeout=20).status == "ok"

    nb.ok("nbtrack.end_run()")
    deadline = time.monotonic() + 2.0  # the catalog commit of the new status: within 1 s
    while True:
        status, steps, _ = seen_from_another_process()
        if status != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (status, len(steps)) == ("FINISHED", 1500)


def test_cell_id_from_the_frontend_is_recorded(nb: Kernel, kernel_env: Path):
    store = kernel_env / ".nbtrack"
    tracked_id, logging_id = f"c-{uuid.uuid4().hex[:12]}", f"c-{uuid.uuid4().hex[:12]}"
    nb.ok("%%track --name with-id\nq = 1", cell_id=tracked_id)
    nb.ok("%%track --name without-id\nq = 2")  # no cellId sent: none recorded, none stale
    nb.ok("%track on")
    nb.ok("nbtrack.log_metric('m', 1.0)", cell_id=logging_id)

    runs = runs_by_name(store)
    assert cell_record(store, runs["with-id"]["run_id"])["cell_id"] == tracked_id
    assert runs["with-id"]["cell"]["cell_id"] == tracked_id
    assert cell_record(store, runs["without-id"]["run_id"])["cell_id"] is None
    [child] = [r for r in runs.values() if r["tags"].get("mlflow.parentRunId")]
    assert cell_record(store, child["run_id"])["cell_id"] == logging_id


# -- run cards a page draws itself ---------------------------------------------------------------

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CARD_MIME = "application/vnd.nbtrack.run-card+json"


def answer_the_ask(kernel: Kernel, loaded: Cell, draws: list[str]) -> None:
    """Answer the kernel's question as nbtrack's JupyterLab extension does."""
    (asked,) = [
        m["content"]
        for m in loaded.comms
        if m["msg_type"] == "comm_open" and m["content"]["target_name"] == "nbtrack.frontend"
    ]
    assert kernel.comm("comm_msg", {"comm_id": asked["comm_id"], "data": {"draws": draws}}) == []


def widget_states(comms: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each widget a kernel opened (model id -> state), with the updates it sent after."""
    states: dict[str, dict[str, Any]] = {}
    for m in comms:
        content = m["content"]
        if m["msg_type"] == "comm_open" and content["target_name"] == "jupyter.widget":
            states[content["comm_id"]] = dict(content["data"]["state"])
        elif m["msg_type"] == "comm_msg" and content["comm_id"] in states:
            states[content["comm_id"]].update(content["data"].get("state", {}))
    return states


def test_a_page_that_draws_cards_gets_plain_cards_and_each_widget_on_demand(kernel: Kernel):
    loaded = kernel.ok("%load_ext nbtrack")
    unanswered = kernel.ok("%%track --name first\nx = 1")
    assert WIDGET_VIEW in card(unanswered) and CARD_MIME not in card(unanswered)

    answer_the_ask(kernel, loaded, [CARD_MIME])
    second = kernel.ok("%%track --name '<b>second</b>'\ny = 2")
    bundle = card(second)
    assert WIDGET_VIEW not in bundle and second.comms == []  # no widget, no comm
    plain = bundle[CARD_MIME]
    assert plain["state"]["run"]["name"] == "<b>second</b>"  # the page writes it as text
    assert "&lt;b&gt;second" in bundle["text/html"]
    assert {a["name"] for a in plain["state"]["actions"]} >= {"compare_previous", "register"}
    stepped = kernel.ok("%%track --name steps\nimport nbtrack\nnbtrack.log_metric('m', 1, step=3)")
    assert WIDGET_VIEW in card(stepped)  # curves need the widget

    # "Compare with previous" pressed on the plain card: the kernel makes the card's
    # widget, does it there, and answers with the widget's id.
    intent = {"kind": "action", "name": "compare_previous", "run_ids": [plain["run_id"]]}
    request = {"run_id": plain["run_id"], "store": plain["store"], "intent": intent}
    sent = kernel.comm(
        "comm_open", {"comm_id": uuid.uuid4().hex, "target_name": "nbtrack.card", "data": request}
    )
    (answer,) = [m["content"]["data"] for m in sent if m["msg_type"] == "comm_msg"
                 and "model_id" in m["content"]["data"]]  # fmt: skip
    widgets = widget_states(sent)
    opened = widgets[answer["model_id"]]
    assert opened["_anywidget_id"] == "nbtrack.widgets.card.RunCard"
    assert opened["run"]["run_id"] == plain["run_id"]
    comparison = widgets[opened["detail"].removeprefix("IPY_MODEL_")]
    assert comparison["_anywidget_id"] == "nbtrack.widgets.compare.CompareRuns"


def test_a_plain_card_names_its_store_by_a_key_not_a_path(kernel: Kernel, kernel_env: Path):
    loaded = kernel.ok("%load_ext nbtrack")
    answer_the_ask(kernel, loaded, [CARD_MIME])
    plain = card(kernel.ok("%%track --name keyed\nz = 3"))[CARD_MIME]
    assert str(kernel_env) not in str(plain)  # a shared notebook tells no local path
    request = {"run_id": plain["run_id"], "store": "0" * 16, "intent": {"kind": "action"}}
    sent = kernel.comm(
        "comm_open", {"comm_id": uuid.uuid4().hex, "target_name": "nbtrack.card", "data": request}
    )
    (answer,) = [m["content"]["data"] for m in sent if m["msg_type"] == "comm_msg"]
    assert "a store this kernel has not opened" in answer["error"]
    assert [m["msg_type"] for m in sent][-1] == "comm_close"
