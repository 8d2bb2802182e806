"""The fluent API keeps MLflow's semantics: runs, logging, search, experiments, artifacts."""

from __future__ import annotations

import getpass
import json
import math
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pytest
import yaml

from nbtrack import Metric, Run, ViewType
from nbtrack.errors import InvalidParameterError, NotFoundError, RunStateError
from nbtrack.store import Store


def _store_dir(tracking) -> Path:
    return Path(unquote(urlparse(tracking.get_tracking_uri()).path))


def _artifacts(tracking, run_id: str) -> Path:
    return Path(unquote(urlparse(tracking.get_run(run_id).info.artifact_uri).path))


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- starting and ending runs ---------------------------------------------------------------


def test_start_run_context_manager_finishes_the_run(tracking) -> None:
    before = _now_ms()
    with tracking.start_run(run_name="ok") as run:
        assert tracking.active_run().info.run_id == run.info.run_id
        assert run.info.status == "RUNNING"
    after = _now_ms()
    assert tracking.active_run() is None
    info = tracking.get_run(run.info.run_id).info
    assert info.status == "FINISHED"
    assert info.run_name == "ok"
    assert before <= info.start_time <= info.end_time <= after
    assert info.lifecycle_stage == "active"
    assert info.experiment_id == "0"


def test_exception_in_the_block_fails_the_run_and_propagates(tracking) -> None:
    with pytest.raises(ZeroDivisionError), tracking.start_run() as run:
        1 / 0  # noqa: B018
    assert tracking.get_run(run.info.run_id).info.status == "FAILED"
    assert tracking.active_run() is None


def test_keyboard_interrupt_kills_the_run(tracking) -> None:
    with pytest.raises(KeyboardInterrupt), tracking.start_run() as run:
        raise KeyboardInterrupt
    assert tracking.get_run(run.info.run_id).info.status == "KILLED"
    assert tracking.active_run() is None


def test_second_start_run_without_nested_names_the_active_run(tracking) -> None:
    with tracking.start_run() as run:
        with pytest.raises(
            RunStateError, match=f"Run with UUID {run.info.run_id} is already active"
        ):
            tracking.start_run()
        assert tracking.active_run().info.run_id == run.info.run_id  # still the same run
    assert len(tracking.search_runs(output_format="list")) == 1  # no second run was created


def test_nested_runs_record_their_parent(tracking) -> None:
    with tracking.start_run(run_name="parent") as parent:
        with tracking.start_run(run_name="child-1", nested=True) as child:
            assert tracking.active_run().info.run_id == child.info.run_id
            assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert tracking.active_run().info.run_id == parent.info.run_id
        with tracking.start_run(run_name="child-2", nested=True):
            pass
    with tracking.start_run(run_name="unrelated"):
        pass

    assert "mlflow.parentRunId" not in tracking.get_run(parent.info.run_id).data.tags
    children = tracking.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        output_format="list",
    )
    assert sorted(r.info.run_name for r in children) == ["child-1", "child-2"]
    assert all(r.info.status == "FINISHED" for r in children)


def test_exception_in_a_nested_block_fails_only_the_child(tracking) -> None:
    with tracking.start_run() as parent:
        with pytest.raises(ValueError), tracking.start_run(nested=True) as child:
            raise ValueError("boom")
        assert tracking.active_run().info.run_id == parent.info.run_id
    assert tracking.get_run(child.info.run_id).info.status == "FAILED"
    assert tracking.get_run(parent.info.run_id).info.status == "FINISHED"


def test_end_run_active_run_and_last_active_run(tracking) -> None:
    assert tracking.active_run() is None
    assert tracking.last_active_run() is None
    run = tracking.start_run(run_name="manual")
    assert tracking.active_run().info.run_id == run.info.run_id
    assert tracking.last_active_run().info.run_id == run.info.run_id
    tracking.end_run()
    assert tracking.active_run() is None
    last = tracking.last_active_run()
    assert isinstance(last, Run)
    assert last.info.run_id == run.info.run_id and last.info.status == "FINISHED"

    tracking.start_run()
    tracking.end_run(status="KILLED")
    assert tracking.last_active_run().info.status == "KILLED"
    tracking.end_run()  # no active run: a no-op, as in MLflow
    with pytest.raises(InvalidParameterError, match="end_run"):
        tracking.end_run(status="RUNNING")


@pytest.mark.parametrize(
    "log",
    [
        lambda t: t.log_param("p", 1),
        lambda t: t.log_metric("m", 1.0),
        lambda t: t.set_tag("t", "v"),
        lambda t: t.log_params({"p": 1}),
        lambda t: t.log_metrics({"m": 1.0}),
        lambda t: t.set_tags({"t": "v"}),
    ],
)
def test_logging_without_an_active_run_starts_one_that_stays_active(tracking, log) -> None:
    assert tracking.active_run() is None
    log(tracking)
    run = tracking.active_run()
    assert run is not None
    assert run.info.status == "RUNNING"
    log(tracking)  # the same run again, not a second one
    assert tracking.active_run().info.run_id == run.info.run_id
    tracking.end_run()
    assert len(tracking.search_runs(output_format="list")) == 1


def test_system_tags_and_description(tracking) -> None:
    with tracking.start_run(run_name="named", description="what this tries") as run:
        pass
    tags = tracking.get_run(run.info.run_id).data.tags
    assert tags["mlflow.runName"] == "named"
    assert tags["mlflow.user"] and tags["mlflow.user"] == run.info.user_id
    assert tags["mlflow.source.type"] == "LOCAL"  # pytest is not a notebook
    assert tags["mlflow.source.name"]
    assert tags["mlflow.note.content"] == "what this tries"


def test_the_user_is_the_configured_identity_else_the_os_user(tracking, monkeypatch) -> None:
    monkeypatch.delenv("NBTRACK_USER", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "mlflow-user")  # MLflow's variable
    with tracking.start_run() as from_mlflow:
        pass
    monkeypatch.setenv("NBTRACK_USER", "  alice ")  # nbtrack's wins
    with tracking.start_run() as configured:
        pass
    monkeypatch.delenv("NBTRACK_USER")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    with tracking.start_run() as default:
        pass
    users = [tracking.get_run(r.info.run_id).info.user_id for r in (from_mlflow, configured)]
    assert users == ["mlflow-user", "alice"]
    assert tracking.get_run(default.info.run_id).data.tags["mlflow.user"] == getpass.getuser()


def test_unnamed_runs_get_a_readable_name(tracking) -> None:
    with tracking.start_run() as run:
        pass
    name = tracking.get_run(run.info.run_id).info.run_name
    assert name and name.count("-") == 2
    assert tracking.get_run(run.info.run_id).data.tags["mlflow.runName"] == name


def test_start_run_with_user_tags_and_run_name_tag(tracking) -> None:
    with tracking.start_run(tags={"team": "a", "mlflow.runName": "from-tag"}) as run:
        pass
    got = tracking.get_run(run.info.run_id)
    assert got.info.run_name == "from-tag"
    assert got.data.tags["team"] == "a"


# -- metrics ---------------------------------------------------------------------------------


def test_log_metric_defaults_step_zero_and_millisecond_timestamps(tracking) -> None:
    with tracking.start_run() as run:
        before = _now_ms()
        tracking.log_metric("loss", 0.5)
        after = _now_ms()
        tracking.log_metric("loss", 0.4, step=3, timestamp=1_600_000_000_123)
    (first, second) = tracking.get_metric_history(run.info.run_id, "loss")
    assert first.step == 0 and first.value == 0.5
    assert before <= first.timestamp <= after
    assert isinstance(first.timestamp, int)
    assert second == Metric("loss", 0.4, 1_600_000_000_123, 3)
    assert tracking.get_run(run.info.run_id).data.metrics == {"loss": 0.4}


def test_numpy_scalars_are_accepted(tracking) -> None:
    with tracking.start_run() as run:
        tracking.log_metric("f32", np.float32(0.25), step=np.int64(2))
        tracking.log_metric("i64", np.int64(7))
        tracking.log_metric("f64", np.float64(1.5), step=np.int32(1))
        tracking.log_metrics({"batch": np.float32(2.5)}, step=np.int64(4))
    data = tracking.get_run(run.info.run_id).data.metrics
    assert data == {"f32": 0.25, "i64": 7.0, "f64": 1.5, "batch": 2.5}
    assert all(type(v) is float for v in data.values())
    (point,) = tracking.get_metric_history(run.info.run_id, "f32")
    assert point.step == 2 and type(point.step) is int


@pytest.mark.parametrize("value", [True, False, "0.5", None, [1.0], 1 + 2j])
def test_non_numeric_metric_values_are_rejected(tracking, value) -> None:
    with tracking.start_run() as run:
        with pytest.raises(InvalidParameterError, match="metric values must be real numbers"):
            tracking.log_metric("m", value)
        assert run.writer.points == []
    assert tracking.get_metric_history(run.info.run_id, "m") == []


def test_nan_and_infinities_are_kept(tracking) -> None:
    with tracking.start_run() as run:
        tracking.log_metric("nan", float("nan"))
        tracking.log_metric("inf", float("inf"), step=0)
        tracking.log_metric("inf", float("-inf"), step=1)
        tracking.log_metric("np", np.float32("nan"))
    metrics = tracking.get_run(run.info.run_id).data.metrics
    assert math.isnan(metrics["nan"]) and math.isnan(metrics["np"])
    assert metrics["inf"] == -math.inf  # step 1 is the latest
    history = tracking.get_metric_history(run.info.run_id, "inf")
    assert [m.value for m in history] == [math.inf, -math.inf]
    assert [m.step for m in history] == [0, 1]
    assert math.isnan(tracking.get_metric_history(run.info.run_id, "nan")[0].value)


def test_log_metrics_is_atomic(tracking) -> None:
    with tracking.start_run() as run:
        with pytest.raises(InvalidParameterError, match="Metric 'bad'"):
            tracking.log_metrics({"good": 1.0, "bad": "x", "also_good": 2.0})
        with pytest.raises(InvalidParameterError, match="Invalid metric key"):
            tracking.log_metrics({"good": 1.0, "a:b": 2.0})
        with pytest.raises(InvalidParameterError, match="step"):
            tracking.log_metrics({"good": 1.0}, step=1.5)
        assert run.writer.points == []
        tracking.log_metrics({"good": 1.0, "also_good": 2.0}, step=5)
    got = tracking.get_run(run.info.run_id).data.metrics
    assert got == {"good": 1.0, "also_good": 2.0}
    assert [m.step for m in tracking.get_metric_history(run.info.run_id, "good")] == [5]


def test_get_metric_history_returns_metrics_in_order(tracking) -> None:
    with tracking.start_run() as run:
        for step in range(5):
            tracking.log_metric("loss", 1 / (step + 1), step=step, timestamp=1000 + step)
        tracking.log_metric("other", 9.0)
        tracking.log_metric("loss", 0.1, step=2, timestamp=2000)  # out of order: kept as logged
    history = tracking.get_metric_history(run.info.run_id, "loss")
    expected = [Metric("loss", 1 / (s + 1), 1000 + s, s) for s in range(5)]
    expected.append(Metric("loss", 0.1, 2000, 2))
    assert len(history) == 6
    assert all(isinstance(m, Metric) for m in history)
    assert list(history) == expected
    assert history == expected  # compares equal to the list MLflow would return
    assert history[0] == expected[0] and history[-1] == expected[-1]
    assert history[1:3] == expected[1:3]
    assert history != expected[:-1]
    assert tracking.get_metric_history(run.info.run_id, "missing") == []
    with pytest.raises(NotFoundError):
        tracking.get_metric_history("0" * 32, "loss")


def test_latest_metric_is_the_highest_step(tracking) -> None:
    with tracking.start_run() as run:
        tracking.log_metric("m", 5.0, step=10)
        tracking.log_metric("m", 1.0, step=2)  # logged later, but an earlier step
    assert tracking.get_run(run.info.run_id).data.metrics["m"] == 5.0


def test_flush_makes_points_visible_to_another_store(tracking) -> None:
    with tracking.start_run() as run:
        for step in range(100):
            tracking.log_metric("loss", float(step), step=step)
        tracking.log_param("p", "v")
        tracking.flush()
        with Store(_store_dir(tracking)) as other:  # as a second process would open it
            steps, values, _ = other.metric_history(run.info.run_id, "loss")
            assert list(steps) == list(range(100))
            assert list(values) == [float(s) for s in range(100)]
            row = other.get_run(run.info.run_id)
            assert row["metrics"]["loss"][:2] == [99.0, 99]
            assert row["params"] == {"p": "v"}
            assert row["status"] == "RUNNING"


def test_log_metric_to_a_run_id_that_is_not_active(tracking) -> None:
    with tracking.start_run() as run:
        pass
    tracking.log_metric("late", 3.0, step=1, run_id=run.info.run_id)
    assert tracking.active_run() is None  # logging by id starts nothing
    assert tracking.get_run(run.info.run_id).data.metrics == {"late": 3.0}


# -- lifecycle and search ---------------------------------------------------------------------


def test_delete_and_restore_run(tracking) -> None:
    with tracking.start_run(run_name="keep"):
        pass
    with tracking.start_run(run_name="drop") as dropped:
        pass
    tracking.delete_run(dropped.info.run_id)
    assert tracking.get_run(dropped.info.run_id).info.lifecycle_stage == "deleted"

    def names(view_type: int) -> list[str]:
        runs = tracking.search_runs(run_view_type=view_type, output_format="list")
        return sorted(r.info.run_name for r in runs)

    assert names(ViewType.ACTIVE_ONLY) == ["keep"]
    assert names(ViewType.DELETED_ONLY) == ["drop"]
    assert names(ViewType.ALL) == ["drop", "keep"]
    assert list(tracking.search_runs()["run_id"]) != [dropped.info.run_id]

    tracking.restore_run(dropped.info.run_id)
    assert names(ViewType.ACTIVE_ONLY) == ["drop", "keep"]
    assert names(ViewType.DELETED_ONLY) == []
    with pytest.raises(NotFoundError):
        tracking.delete_run("f" * 32)


def test_logging_to_a_deleted_active_run_is_refused(tracking) -> None:
    # MLflow refuses to log to a run that is not in the 'active' lifecycle stage.
    with tracking.start_run() as run:
        tracking.delete_run(run.info.run_id)
        with pytest.raises(RunStateError, match="deleted"):
            tracking.log_param("p", 1)
        with pytest.raises(RunStateError, match="deleted"):
            tracking.set_tag("t", "v")
    data = tracking.get_run(run.info.run_id).data
    assert data.params == {} and "t" not in data.tags


def test_search_runs_dataframe_has_mlflow_columns(tracking) -> None:
    with tracking.start_run(run_name="a") as a:
        tracking.log_param("depth", 6)
        tracking.log_metric("acc", 0.9)
        tracking.set_tag("team", "x")
    time.sleep(0.002)  # start times are in ms; a tie would order the two by run_id
    with tracking.start_run(run_name="b") as b:
        tracking.log_metric("loss", 0.3)
    frame = tracking.search_runs()
    assert isinstance(frame, pd.DataFrame)
    columns = list(frame.columns)
    info = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
    assert columns[:6] == info
    rest = columns[6:]
    groups = [c.split(".", 1)[0] for c in rest]
    assert groups == sorted(groups, key=["metrics", "params", "tags"].index)
    assert {"metrics.acc", "metrics.loss", "params.depth", "tags.team"} <= set(rest)
    assert {"tags.mlflow.runName", "tags.mlflow.user", "tags.mlflow.source.type"} <= set(rest)

    assert set(frame["run_id"]) == {a.info.run_id, b.info.run_id}
    assert str(frame["start_time"].dt.tz) == "UTC"
    assert pd.api.types.is_datetime64_any_dtype(frame["start_time"])
    assert pd.api.types.is_datetime64_any_dtype(frame["end_time"])
    row_a = frame[frame["run_id"] == a.info.run_id].iloc[0]
    row_b = frame[frame["run_id"] == b.info.run_id].iloc[0]
    started = tracking.get_run(a.info.run_id).info.start_time
    assert row_a["start_time"] == pd.Timestamp(started, unit="ms", tz="UTC")
    assert row_a["status"] == "FINISHED" and row_a["experiment_id"] == "0"
    assert row_a["artifact_uri"] == tracking.get_run(a.info.run_id).info.artifact_uri
    assert row_a["metrics.acc"] == 0.9 and row_a["params.depth"] == "6"
    assert math.isnan(row_b["metrics.acc"])  # missing metric: NaN
    assert pd.isna(row_b["params.depth"])  # missing param: None (NaN under pandas' str dtype)
    assert pd.isna(row_b["tags.team"])
    # Newest first, as MLflow orders by default.
    assert list(frame["run_id"]) == [b.info.run_id, a.info.run_id]


def test_search_runs_on_an_empty_experiment(tracking) -> None:
    frame = tracking.search_runs()
    assert len(frame) == 0
    assert list(frame.columns)[:6] == [
        "run_id",
        "experiment_id",
        "status",
        "artifact_uri",
        "start_time",
        "end_time",
    ]


def test_search_runs_experiment_selection_and_list_output(tracking) -> None:
    with tracking.start_run(run_name="in-default"):
        pass
    tracking.set_experiment("other")
    with tracking.start_run(run_name="in-other"):
        pass

    def names(**kwargs) -> list[str]:
        return sorted(r.info.run_name for r in tracking.search_runs(output_format="list", **kwargs))

    assert names() == ["in-other"]  # the active experiment only
    assert names(experiment_names=["Default"]) == ["in-default"]
    assert names(experiment_names=["Default", "other"]) == ["in-default", "in-other"]
    assert names(experiment_ids=["0"]) == ["in-default"]
    assert names(search_all_experiments=True) == ["in-default", "in-other"]
    runs = tracking.search_runs(output_format="list", search_all_experiments=True)
    assert all(isinstance(r, Run) for r in runs)
    with pytest.raises(InvalidParameterError, match="output_format"):
        tracking.search_runs(output_format="json")


def test_search_runs_filter_and_order(tracking) -> None:
    for depth, loss in [(2, 0.5), (6, 0.1), (8, 0.3)]:
        with tracking.start_run(run_name=f"d{depth}"):
            tracking.log_param("depth", depth)
            tracking.log_metric("loss", loss)
    frame = tracking.search_runs(filter_string="metrics.loss < 0.4", order_by=["metrics.loss ASC"])
    assert list(frame["tags.mlflow.runName"]) == ["d6", "d8"]
    frame = tracking.search_runs(filter_string="params.depth = '2'")
    assert list(frame["tags.mlflow.runName"]) == ["d2"]


# -- where runs are stored ------------------------------------------------------------------


def test_set_tracking_uri_with_a_path_and_a_file_uri(tracking, tmp_path: Path) -> None:
    tracking.set_tracking_uri(tmp_path / "one")
    assert tracking.get_tracking_uri() == (tmp_path / "one").resolve().as_uri()
    with tracking.start_run() as first:
        pass
    assert (tmp_path / "one" / "runs" / first.info.run_id / "journal.jsonl").is_file()

    tracking.set_tracking_uri((tmp_path / "two").as_uri())
    assert tracking.get_tracking_uri() == (tmp_path / "two").resolve().as_uri()
    with tracking.start_run() as second:
        pass
    assert (tmp_path / "two" / "runs" / second.info.run_id).is_dir()
    assert len(tracking.search_runs(output_format="list")) == 1  # only the second store's run
    with pytest.raises(NotFoundError):
        tracking.get_run(first.info.run_id)

    tracking.set_tracking_uri(str(tmp_path / "one"))  # a plain string path too
    assert tracking.get_run(first.info.run_id).info.status == "FINISHED"


def test_relative_tracking_path_is_resolved_when_set(tracking, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    tracking.set_tracking_uri("relative-store")
    monkeypatch.chdir(tmp_path.parent)
    assert tracking.get_tracking_uri() == (tmp_path / "relative-store").as_uri()


@pytest.mark.parametrize(
    "uri", ["http://localhost:5000", "https://example.com", "sqlite:///mlflow.db", "s3://b/k"]
)
def test_unsupported_tracking_uris_are_refused(tracking, uri: str) -> None:
    before = tracking.get_tracking_uri()
    with pytest.raises(InvalidParameterError, match="not supported"):
        tracking.set_tracking_uri(uri)
    assert tracking.get_tracking_uri() == before


def test_switching_store_while_a_run_is_active_is_refused(tracking, tmp_path: Path) -> None:
    before = tracking.get_tracking_uri()
    with tracking.start_run() as run:
        with pytest.raises(RunStateError, match=f"Run '{run.info.run_id}' is active"):
            tracking.set_tracking_uri(tmp_path / "elsewhere")
        assert tracking.get_tracking_uri() == before
    tracking.set_tracking_uri(tmp_path / "elsewhere")  # fine once it ended
    assert tracking.get_tracking_uri() == (tmp_path / "elsewhere").as_uri()


# -- experiments ---------------------------------------------------------------------------


def test_set_experiment_by_name_creates_and_by_id_selects(tracking) -> None:
    assert tracking.get_experiment_by_name("churn") is None
    created = tracking.set_experiment("churn")
    assert created.name == "churn" and created.experiment_id == "1"
    assert tracking.get_experiment_by_name("churn").experiment_id == "1"
    with tracking.start_run() as run:
        pass
    assert run.info.experiment_id == "1"

    again = tracking.set_experiment("churn")  # existing: selected, not duplicated
    assert again.experiment_id == "1"
    assert sorted(e.name for e in tracking.search_experiments()) == ["Default", "churn"]

    selected = tracking.set_experiment(experiment_id="0")
    assert selected.name == "Default"
    with tracking.start_run() as run:
        pass
    assert run.info.experiment_id == "0"
    with pytest.raises(NotFoundError):
        tracking.set_experiment(experiment_id="99")
    with pytest.raises(InvalidParameterError):
        tracking.set_experiment()


def test_deleted_experiment_cannot_be_set(tracking) -> None:
    experiment_id = tracking.create_experiment("old", tags={"k": "v"})
    assert tracking.get_experiment(experiment_id).tags == {"k": "v"}
    tracking.delete_experiment(experiment_id)
    assert tracking.get_experiment(experiment_id).lifecycle_stage == "deleted"
    with pytest.raises(RunStateError, match="deleted"):
        tracking.set_experiment("old")
    with pytest.raises(RunStateError, match="deleted"):
        tracking.set_experiment(experiment_id=experiment_id)
    with pytest.raises(RunStateError, match="deleted"):
        tracking.start_run(experiment_id=experiment_id)
    assert [e.name for e in tracking.search_experiments(ViewType.DELETED_ONLY)] == ["old"]
    tracking.restore_experiment(experiment_id)
    assert tracking.set_experiment("old").experiment_id == experiment_id


def test_set_experiment_tag(tracking) -> None:
    tracking.set_experiment("tagged")
    tracking.set_experiment_tag("owner", "me")
    assert tracking.get_experiment_by_name("tagged").tags == {"owner": "me"}


# -- resuming ---------------------------------------------------------------------------------


def test_resuming_a_finished_run(tracking) -> None:
    with tracking.start_run(run_name="first") as run:
        tracking.log_metric("m", 1.0, step=0)
    assert tracking.get_run(run.info.run_id).info.status == "FINISHED"

    with tracking.start_run(run_id=run.info.run_id) as resumed:
        assert resumed.info.run_id == run.info.run_id
        info = tracking.get_run(run.info.run_id).info
        assert info.status == "RUNNING" and info.end_time is None
        tracking.log_metric("m", 2.0, step=1)
        tracking.log_param("late", "yes")
    got = tracking.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.info.run_name == "first"
    assert got.data.metrics == {"m": 2.0}
    assert got.data.params == {"late": "yes"}
    assert [m.value for m in tracking.get_metric_history(run.info.run_id, "m")] == [1.0, 2.0]
    assert len(tracking.search_runs(output_format="list")) == 1


def test_resuming_an_unknown_run_fails(tracking) -> None:
    with pytest.raises(NotFoundError):
        tracking.start_run(run_id="a" * 32)
    assert tracking.active_run() is None


# -- tags ---------------------------------------------------------------------------------------


def test_set_tags_and_delete_tag(tracking) -> None:
    with tracking.start_run() as run:
        tracking.set_tags({"a": 1, "b": "two"})
        tracking.set_tag("a", "replaced")
        tracking.delete_tag("b")
        with pytest.raises(NotFoundError, match="'b'"):
            tracking.delete_tag("b")
    tags = tracking.get_run(run.info.run_id).data.tags
    assert tags["a"] == "replaced" and "b" not in tags


def test_log_param_returns_value_and_stores_strings(tracking) -> None:
    with tracking.start_run() as run:
        assert tracking.log_param("lr", 0.1) == 0.1
        tracking.log_params({"depth": 6, "name": None, "flag": True})
        with pytest.raises(InvalidParameterError, match="Changing param values is not allowed"):
            tracking.log_param("lr", 0.2)
    assert tracking.get_run(run.info.run_id).data.params == {
        "lr": "0.1",
        "depth": "6",
        "name": "None",
        "flag": "True",
    }


# -- artifacts ---------------------------------------------------------------------------------


def test_log_text_and_log_dict(tracking) -> None:
    config = {"features": ["a", "b"], "depth": 6, "nested": {"x": 1.5}}
    with tracking.start_run() as run:
        tracking.log_text("héllo\nworld", "notes/readme.txt")
        tracking.log_dict(config, "config.json")
        tracking.log_dict(config, "config.yaml")
        tracking.log_dict(config, "conf/config.yml")
    folder = _artifacts(tracking, run.info.run_id)
    assert (folder / "notes" / "readme.txt").read_text(encoding="utf-8") == "héllo\nworld"
    assert json.loads((folder / "config.json").read_text()) == config
    assert yaml.safe_load((folder / "config.yaml").read_text()) == config
    assert yaml.safe_load((folder / "conf" / "config.yml").read_text()) == config
    assert not (folder / "config.yaml").read_text().lstrip().startswith("{")


def test_log_artifact_and_log_artifacts(tracking, tmp_path: Path) -> None:
    local = tmp_path / "local"
    (local / "sub").mkdir(parents=True)
    (local / "a.txt").write_text("A")
    (local / "sub" / "b.txt").write_text("B")
    single = tmp_path / "model.pkl"
    single.write_bytes(b"\x00\x01")

    with tracking.start_run() as run:
        tracking.log_artifact(single)
        tracking.log_artifact(single, artifact_path="models/v1")
        tracking.log_artifacts(local)
        tracking.log_artifacts(local, artifact_path="data")
        uri = tracking.get_artifact_uri()
        assert tracking.get_artifact_uri("data/a.txt") == f"{uri}/data/a.txt"
        with pytest.raises(InvalidParameterError, match="not a file"):
            tracking.log_artifact(tmp_path / "missing.bin")
        with pytest.raises(InvalidParameterError, match="needs a directory"):
            tracking.log_artifacts(tmp_path / "missing-dir")

    folder = _artifacts(tracking, run.info.run_id)
    assert uri == folder.as_uri()
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == [
        "a.txt",
        "data/a.txt",
        "data/sub/b.txt",
        "model.pkl",
        "models/v1/model.pkl",
        "sub/b.txt",
    ]
    assert (folder / "models" / "v1" / "model.pkl").read_bytes() == b"\x00\x01"
    assert (folder / "data" / "sub" / "b.txt").read_text() == "B"
