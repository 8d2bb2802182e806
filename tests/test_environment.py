"""Environment capture: what it holds, that secrets never reach the store, git state, and
that runs reference one stored copy per session."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import numpy
import pytest

from nbtrack.capture import environment
from nbtrack.capture.redact import REDACTED

SECRETS = {
    "MY_API_TOKEN": "tok-9f8e7d6c5b4a",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-1234567890",
    "DB_PASSWORD": "hunter2hunter2",
}


@pytest.fixture(autouse=True)
def fresh_capture(monkeypatch):
    """Each test captures anew (the capture is per process otherwise), with none of the
    allow-listed variables set unless the test sets them."""
    for name in environment.ALLOWED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    environment._reset()
    yield
    environment._reset()


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    _git(folder, "init", "-q", "-b", "trunk")
    _git(folder, "config", "user.email", "t@example.com")
    _git(folder, "config", "user.name", "t")
    (folder / "train.py").write_text("print('hi')\n")
    _git(folder, "add", "train.py")
    _git(folder, "commit", "-q", "-m", "first")
    _git(
        folder, "remote", "add", "origin", "https://alice:ghp_SeCrEtToKeN@example.com/team/repo.git"
    )
    return folder


def test_allow_listed_variables_are_redacted_by_their_words_and_values(monkeypatch):
    listed = {
        "TOKENIZERS_PARALLELISM": ("false", "false"),  # Hugging Face's; no token in it
        "KEY_DIM": ("64", "64"),
        "HF_TOKEN": ("hf_plain", REDACTED),
        "DATABASE_URL": ("postgres://ann:hunter2@db/runs", "postgres://ann:<redacted>@db/runs"),
        "SERVICE_CONFIG": ("sk-" + "T3BlbkFJ" * 6, REDACTED),
    }
    for name, (value, _) in listed.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NBTRACK_ENV_ALLOWLIST", ",".join(listed))
    variables = environment.allowed_variables()
    assert {name: variables[name] for name in listed} == {
        name: stored for name, (_, stored) in listed.items()
    }


def test_capture_holds_python_platform_packages_and_no_secret_values(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("HARMLESS_SETTING", "blue")
    monkeypatch.setenv("NBTRACK_ENV_ALLOWLIST", "HARMLESS_SETTING,MY_API_TOKEN")

    captured = environment.capture()

    assert captured["python"]["version"].count(".") == 2
    assert captured["platform"]["platform"] == platform.platform()  # without its `uname -p`
    assert f"numpy=={numpy.__version__}" in captured["packages"]
    assert captured["packages"] == sorted(captured["packages"])
    assert len(captured["packages_digest"]) == 64
    # Only allow-listed variables, and a secret-looking name is redacted even when listed.
    assert captured["variables"] == {
        "HARMLESS_SETTING": "blue",
        "MY_API_TOKEN": REDACTED,
        "OMP_NUM_THREADS": "3",
    }
    text = json.dumps(captured)
    assert not [value for value in SECRETS.values() if value in text]
    assert captured["git"] is None  # tmp_path is no repository


def test_git_state_commit_branch_dirty_and_remote_without_credentials(repo: Path):
    state = environment.git_state(repo)
    assert state["commit"] == _git(repo, "rev-parse", "HEAD")
    assert state["branch"] == "trunk"
    assert state["dirty"] is False and state["diff_digest"] is None
    assert state["remote"] == "https://example.com/team/repo.git"
    assert Path(state["root"]).resolve() == repo.resolve()

    (repo / "train.py").write_text("print('changed')\n")
    dirty = environment.git_state(repo)
    assert dirty["dirty"] is True and len(dirty["diff_digest"]) == 64
    (repo / "train.py").write_text("print('changed again')\n")
    assert environment.git_state(repo)["diff_digest"] != dirty["diff_digest"]


def test_no_git_is_no_git_state(repo: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(repo))  # no git executable there
    assert environment.git_state(repo) is None


def test_runs_reference_one_stored_environment_and_carry_git_tags(tracking, repo, monkeypatch):
    monkeypatch.chdir(repo)
    monkeypatch.setenv("DB_PASSWORD", SECRETS["DB_PASSWORD"])
    monkeypatch.setenv("NBTRACK_ENV_ALLOWLIST", "DB_PASSWORD")
    with tracking.start_run() as first:
        pass
    with tracking.start_run() as second:
        pass
    store = first.store
    rows = [store.get_run(r.run_id) for r in (first, second)]
    digest = rows[0]["environment"]
    assert rows[1]["environment"] == digest
    files = list((store.root / "environments").iterdir())
    assert [f.name for f in files] == [f"{digest}.json"]
    stored = environment.load(store.root, digest)
    assert stored["git"]["commit"] == _git(repo, "rev-parse", "HEAD")
    assert stored["variables"] == {"DB_PASSWORD": REDACTED}
    tags = rows[0]["tags"]
    assert tags["mlflow.source.git.commit"] == stored["git"]["commit"]
    assert tags["mlflow.source.git.branch"] == "trunk"
    assert tags["mlflow.source.git.repoURL"] == "https://example.com/team/repo.git"
    leaked = [
        path
        for path in store.root.rglob("*")
        if path.is_file()
        and (
            b"ghp_SeCrEtToKeN" in path.read_bytes()
            or SECRETS["DB_PASSWORD"].encode() in path.read_bytes()
        )
    ]
    assert leaked == []


def test_a_failing_capture_warns_and_the_run_still_starts(tracking, monkeypatch):
    def broken():
        raise OSError("disk on fire")

    environment._reset()  # captured and stored by an earlier test otherwise
    monkeypatch.setattr(environment, "session_environment", broken)
    with pytest.warns(UserWarning, match="disk on fire"), tracking.start_run() as run:
        tracking.log_param("p", 1)
    row = run.store.get_run(run.info.run_id)
    assert row["status"] == "FINISHED" and "environment" not in row


def test_distribution_names_come_from_dist_info_folders(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "My_Package-1.2.3.dist-info").mkdir(parents=True)
    (site / "other.pkg-0.1+local.dist-info").mkdir()
    monkeypatch.setattr("sys.path", [str(site)])
    assert environment.installed_distributions() == ["my-package==1.2.3", "other-pkg==0.1+local"]
