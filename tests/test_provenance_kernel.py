"""Provenance in a real kernel: an out-of-order execution flagged stale with its reason, and
a clean run reproduced with ``%track reproduce RUN --execute`` in a fresh kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbtrack.capture.trace import read_session
from nbtrack.errors import NotFoundError
from nbtrack.store import Store
from test_kernel import Kernel, card, cell_record, runs_by_name

DATA = (
    "from sklearn.datasets import load_iris\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "X, y = load_iris(return_X_y=True)"
)
FIT = "model = LogisticRegression(C=C, max_iter=1000).fit(X, y)"
SCORE = "%%track --name {name} --metrics acc\nsolver = 'lbfgs'\nacc = model.score(X, y)"


HF_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"
API_KEY = "plain-api-key-4411"  # no credential shape: only its name gives it away
LLM_CELL = (
    "max_tokens = 256\n"
    'tokenizer = "bpe"\n'
    "key_dim = 64\n"
    f"hf_token = {HF_TOKEN!r}\n"
    f"api_key = {API_KEY!r}\n"
    "width = max_tokens * key_dim"
)
LLM_CELL_REDACTED = (
    "max_tokens = 256\n"
    'tokenizer = "bpe"\n'
    "key_dim = 64\n"
    "hf_token = '<redacted>'\n"
    "api_key = '<redacted>'\n"
    "width = max_tokens * key_dim"
)


@pytest.fixture
def nb(kernel_env: Path):
    kernel = Kernel(kernel_env)
    kernel.ok("%load_ext nbtrack\nimport nbtrack", cell_id="setup")
    yield kernel
    kernel.close()


def test_out_of_order_run_is_stale_and_a_clean_one_reproduces(nb: Kernel, kernel_env: Path):
    import nbformat  # here: importing it takes seconds, and collection needs no kernel

    nb.ok(DATA, cell_id="data")
    nb.ok("C = 1.0", cell_id="c-param")
    nb.ok(FIT, cell_id="c-fit")
    nb.ok("C = 0.01", cell_id="c-tweak")  # a cell further down changes C...
    refit = nb.ok(FIT, cell_id="c-fit")  # ...and the fit cell above it runs again
    tweak_count = refit.execution_count - 1
    stale = nb.ok(SCORE.format(name="stale-run"), cell_id="c-score")
    reason = (
        f"out of order: In[{refit.execution_count}] uses `C` from In[{tweak_count}], "
        "a cell further down the notebook"
    )
    assert f"STALE: {reason}" in card(stale)["text/plain"]
    assert "stale: out of order" in card(stale)["text/html"]

    store = kernel_env / ".nbtrack"
    row = runs_by_name(store)["stale-run"]
    assert row["stale"] == reason
    table = nb.ok("%track runs").result
    assert "out of order" in table["text/plain"] and "out of order" in table["text/html"]

    # Top to bottom again: a clean run, reproduced in a fresh kernel.
    nb.ok("C = 1.0", cell_id="c-param")
    nb.ok(FIT, cell_id="c-fit")
    clean = nb.ok(SCORE.format(name="clean-run"), cell_id="c-score")
    assert "STALE" not in card(clean)["text/plain"]
    original = runs_by_name(store)["clean-run"]
    assert "stale" not in original

    reproduced = nb.run("%track reproduce clean-run --execute", timeout=300)
    assert reproduced.status == "ok", reproduced.describe()
    report = reproduced.result["text/plain"]
    assert "metrics match" in report and "acc" in report

    with Store(store) as opened:  # the reproducing kernel has exited: its catalog is final
        rows = opened.runs()
    assert [r["run_name"] for r in rows].count("clean-run") == 2
    [new] = [r for r in rows if r["tags"].get("nbtrack.reproduces")]
    assert new["tags"]["nbtrack.reproduces"] == original["run_id"]
    assert new["tags"]["nbtrack.reproduction.matches"] == "true"
    assert new["run_name"] == "clean-run" and new["status"] == "FINISHED"
    assert new["metrics"]["acc"][0] == pytest.approx(original["metrics"]["acc"][0])
    assert new["params"] == original["params"] == {"solver": "lbfgs"}

    notebook = nbformat.read(kernel_env / f"reproduce-clean-run-{original['run_id'][:8]}.ipynb", 4)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    assert code[0] == "%load_ext nbtrack"
    assert notebook.cells[2].metadata["tags"] == ["parameters"]
    assert code[1] == "# Parameters of the original run\nsolver = 'lbfgs'"
    # The slice in the order it ran: no stale cells (the C = 0.01 tweak, the first fit).
    assert code[2:] == [DATA, "C = 1.0", FIT, SCORE.format(name="clean-run")]
    with Store(store) as opened:
        paths = [r["path"] for r in opened.records(new["run_id"]) if r["op"] == "artifact"]
    assert paths == ["reproduction.ipynb"]


def test_reproduce_without_execute_only_writes_the_notebook(nb: Kernel, kernel_env: Path):
    import nbformat

    nb.ok("base = 2", cell_id="a")
    nb.ok("%%track --name tiny --metrics out\nout = base ** 3", cell_id="b")
    shown = nb.ok("%track reproduce tiny --path repro.ipynb").result["text/plain"]
    assert "not executed" in shown
    notebook = nbformat.read(kernel_env / "repro.ipynb", 4)
    assert [c.source for c in notebook.cells[3:]] == [
        "base = 2",
        "%%track --name tiny --metrics out\nout = base ** 3",
    ]
    assert len(runs_by_name(kernel_env / ".nbtrack")) == 1  # nothing ran

    usage = nb.run("%track reproduce")
    assert (usage.status, usage.reply["ename"]) == ("error", "UsageError")


def test_a_run_without_a_trace_cannot_be_reproduced(tracking) -> None:
    with tracking.start_run(run_name="script") as run:
        tracking.log_metric("m", 1.0)
    with pytest.raises(NotFoundError, match="no execution trace"):
        tracking.reproduce(run.info.run_id)


def test_ordinary_params_survive_capture_trace_and_reproduce_and_secrets_do_not(
    nb: Kernel, kernel_env: Path
):
    import nbformat

    nb.ok(
        "%%track --name llm --param tokens_per_batch=512 --metrics width\n" + LLM_CELL,
        cell_id="llm",
    )
    store = kernel_env / ".nbtrack"
    row = runs_by_name(store)["llm"]
    assert row["params"] == {
        "max_tokens": "256",
        "tokenizer": "bpe",
        "key_dim": "64",
        "hf_token": "<redacted>",
        "api_key": "<redacted>",
        "tokens_per_batch": "512",
    }
    assert cell_record(store, row["run_id"])["source"].rstrip("\n") == LLM_CELL_REDACTED

    [trace_file] = (store / "traces").glob("*.jsonl")
    [traced] = [c["source"] for c in read_session(store, trace_file.stem) if "llm" in c["source"]]
    assert traced == "%%track --name llm --param tokens_per_batch=512 --metrics width\n" + (
        LLM_CELL_REDACTED
    )

    nb.ok("%track reproduce llm --path repro.ipynb")
    notebook = nbformat.read(kernel_env / "repro.ipynb", 4)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    assert code[1] == (
        "# Parameters of the original run\nkey_dim = 64\nmax_tokens = 256\ntokenizer = 'bpe'"
    )
    assert code[-1] == traced

    leaks = [
        p.relative_to(kernel_env)
        for p in kernel_env.rglob("*")
        if p.is_file()
        and (HF_TOKEN.encode() in p.read_bytes() or API_KEY.encode() in p.read_bytes())
    ]
    assert leaks == []
