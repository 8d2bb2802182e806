"""Datasets and ``log_input``: MLflow's digests, schemas and profiles, and what a run keeps."""

from __future__ import annotations

import json
import warnings

import mlflow
import numpy as np
import pandas as pd
import pytest

from nbtrack import data
from nbtrack.errors import InvalidParameterError

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning:mlflow.*",  # MLflow's own notes about sources and schemas
    "ignore:Starting with pandas version 4.0",  # MLflow's digest code on pandas 3
)

RNG = np.random.default_rng(7)
FRAMES = {
    "mixed types": pd.DataFrame(
        {
            "a": [1.0, None, 3.0],
            "s": ["x", None, "z"],
            "i32": np.array([1, 2, 3], dtype="int32"),
            "u8": np.array([1, 2, 3], dtype="uint8"),
            "t": pd.to_datetime(["2020-01-01"] * 3),
            "flag": [True, False, True],
        }
    ),
    "more rows than hashed": pd.DataFrame(
        {"z": RNG.random(12_000), "b": ["q"] * 12_000, "a": RNG.integers(0, 5, 12_000)}
    ),
    "categorical": pd.DataFrame({"c": pd.Categorical(["a", "b", "a"]), "n": [1.0, 2.0, 3.0]}),
    "mixed object column": pd.DataFrame({"m": ["a", 1, "b"], "x": [1, 2, 3]}),
}
ARRAYS = {
    "features and targets": (RNG.random((50, 4)), RNG.integers(0, 2, 50)),
    "float32, many elements": (RNG.random((30_000, 3)).astype("float32"), None),
    "strings": (np.array([["a", "b"], ["c", "d"]]), None),
}


def _mlflow(dataset) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dataset.to_dict()


@pytest.mark.parametrize("label", FRAMES)
def test_from_pandas_matches_mlflow_field_for_field(label: str) -> None:
    frame = FRAMES[label]
    ours = data.from_pandas(frame, source="/data/train.csv", name="train").to_dict()
    theirs = _mlflow(mlflow.data.from_pandas(frame, source="/data/train.csv", name="train"))
    assert ours == theirs


@pytest.mark.parametrize("label", ARRAYS)
def test_from_numpy_matches_mlflow_field_for_field(label: str) -> None:
    features, targets = ARRAYS[label]
    ours = data.from_numpy(features, source="s3://bucket/x", targets=targets).to_dict()
    theirs = _mlflow(mlflow.data.from_numpy(features, source="s3://bucket/x", targets=targets))
    assert ours == theirs


def test_digest_follows_content_and_sources_are_typed() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3]})
    changed = pd.DataFrame({"a": [1, 2, 4]})
    assert data.from_pandas(frame).digest != data.from_pandas(changed).digest
    assert data.from_pandas(frame).digest == data.from_pandas(frame.copy()).digest
    assert data.from_pandas(frame, source="https://x.org/a.csv").source_type == "http"
    assert json.loads(data.from_pandas(frame, source="https://x.org/a.csv").source) == {
        "url": "https://x.org/a.csv"
    }
    code = data.from_pandas(frame)
    assert code.source_type == "code"
    assert json.loads(code.source)["tags"]["mlflow.source.type"] == "LOCAL"
    with pytest.raises(InvalidParameterError, match="'label'"):
        data.from_pandas(frame, targets="label")


def test_log_input_records_the_dataset_and_its_context(tracking) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "label": [0, 1]})
    train = tracking.data.from_pandas(frame, source="train.csv", name="train", targets="label")
    with tracking.start_run() as run:
        tracking.log_input(train, context="training", tags={"split": "a"})
        tracking.log_input(train, context="training", tags={"split": "a"})  # the same: kept once
        tracking.log_input(train, context="eval")  # another use of the same data: a second input
    got = tracking.get_run(run.info.run_id)
    inputs = got.inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [
        ("train", train.digest),
        ("train", train.digest),
    ]
    assert [dict(i.tags) for i in inputs] == [
        {"split": "a", "mlflow.data.context": "training"},
        {"mlflow.data.context": "eval"},
    ]
    assert json.loads(inputs[0].dataset.profile) == {"num_rows": 2, "num_elements": 4}
    assert run.store.get_run(run.info.run_id)["inputs"] == 2  # the catalog counts them


def test_log_input_accepts_an_mlflow_dataset_and_rejects_other_things(tracking) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    theirs = mlflow.data.from_pandas(frame, source="/data/x.csv", name="x")
    with tracking.start_run() as run:
        tracking.log_input(theirs, context="training")
        with pytest.raises(InvalidParameterError, match="needs a dataset"):
            tracking.log_input(frame)
    [logged] = tracking.get_run(run.info.run_id).inputs.dataset_inputs
    assert logged.dataset.digest == theirs.digest and logged.dataset.name == "x"
    journal = run.store.records(run.info.run_id)
    assert [r["op"] for r in journal].count("input") == 1


def test_runs_without_inputs_report_none(tracking) -> None:
    with tracking.start_run() as run:
        tracking.log_param("p", 1)
    assert tracking.get_run(run.info.run_id).inputs.dataset_inputs == ()
