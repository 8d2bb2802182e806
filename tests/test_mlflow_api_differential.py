"""Differential tests: figures, images, tables, inputs and custom python models logged by
real MLflow (sqlite store) and by nbtrack land at the same artifact paths with the same
bytes, read back alike, and each side loads the other's python models with the same
predictions.

``log_media`` logs one scenario through the fluent API of the module it is given, once
per side. Names MLflow makes unique with a UUID (image series, table images, Plotly's
div ids) are compared with the UUIDs masked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.data
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import fluent as mlflow_fluent

import nbtrack
from nbtrack.tracking import fluent
from nbtrack.tracking.session import Session, close_stores
from python_models import Affine, AffineLogic

pytestmark = [
    pytest.mark.slow,  # a real MLflow logs the same scenario
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
]

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, size=(40, 90, 3), dtype=np.uint8)
GRAY = RNG.random((30, 20))
TABLE = {"question": ["What is MLflow?", "What is nbtrack?"], "score": [0.5, 1.0]}
MORE_ROWS = pd.DataFrame({"question": ["Why?"], "score": [2.0]})


def log_media(api: Any) -> dict[str, str]:
    """The same calls on ``api`` (mlflow or nbtrack); the run ids by run name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from PIL import Image

    figure, axes = plt.subplots(figsize=(3, 2))
    axes.plot([0, 1, 2], [2, 3, 1])
    images = [Image.new("RGB", (300, 100), (255, 0, 0)), Image.fromarray(RGB)]
    api.set_experiment("media")
    api.set_experiment_tags({"team": "ml", "release": 2})
    ids = {}
    with api.start_run(run_name="media") as run:
        api.log_figure(figure, "figs/line.png")
        with matplotlib.rc_context({"svg.hashsalt": "same ids on both sides"}):
            api.log_figure(figure, "figs/line.svg", save_kwargs={"metadata": {"Date": None}})
        api.log_figure(go.Figure(go.Scatter(x=[0, 1], y=[2, 3])), "figs/plotly.html")
        api.log_image(RGB, "img/rgb.png")
        api.log_image(GRAY, "img/gray.png")
        api.log_image(images[0], "img/red.jpg")
        api.log_image(RGB, key="val/pred", step=3, timestamp=1_700_000_000_000, synchronous=True)
        api.log_table(TABLE, "tables/eval.json")
        api.log_table(MORE_ROWS, "tables/eval.json")
        api.log_table(TABLE, "tables/eval.parquet")
        api.log_table({"prompt": ["red", "noise"], "image": images}, "tables/gen.json")
        with api.start_run(run_name="child", nested=True) as child:
            ids["child"] = child.info.run_id
        ids["media"] = run.info.run_id
    with api.start_run(run_name="second") as run:
        api.log_table({"question": ["Again?"], "score": [3.0]}, "tables/eval.json")
        datasets = [
            api.data.from_numpy(np.arange(6).reshape(3, 2), source="train.csv", name="train"),
            api.data.from_pandas(pd.DataFrame({"a": [1.0]}), source="test.csv", name="test"),
        ]
        api.log_inputs(datasets, ["training", None], [None, {"split": "test"}])
        ids["second"] = run.info.run_id
    plt.close(figure)
    return ids


class Side:
    def __init__(self, api: Any, ids: dict[str, str], root: Path) -> None:
        self.api, self.ids, self.root = api, ids, root

    def artifacts(self, name: str) -> Path:
        uri = self.api.get_run(self.ids[name]).info.artifact_uri
        path = uri[len("file://") :] if uri.startswith("file://") else uri
        return (self.root / path).resolve() if not os.path.isabs(path) else Path(path)

    def files(self, name: str) -> dict[str, bytes]:
        """The run's artifact files, UUIDs in names and JSON masked."""
        folder = self.artifacts(name)
        return {
            UUID.sub("<uuid>", p.relative_to(folder).as_posix()): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }


@pytest.fixture(scope="module")
def mlflow_side(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Side]:
    root = tmp_path_factory.mktemp("mlflow-media")
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
            patch.delenv(variable, raising=False)
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setattr(mlflow_fluent, "_active_experiment_id", None)
        patch.chdir(root)  # MLflow resolves its default artifact root against the cwd
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        try:
            ids = log_media(mlflow)
            mlflow.flush_artifact_async_logging()
            yield Side(mlflow, ids, root)
        finally:
            while mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def nbtrack_side(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Side]:
    root = tmp_path_factory.mktemp("nbtrack-media")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for variable in ("NBTRACK_DIR", "NBTRACK_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
            patch.delenv(variable, raising=False)
        session = Session(root / "store")
        with fluent.use_session(session):
            ids = log_media(nbtrack)
            yield Side(nbtrack, ids, root)
            session.close("KILLED")
        close_stores()


@pytest.fixture
def sides(mlflow_side: Side, nbtrack_side: Side) -> tuple[Side, Side]:
    return mlflow_side, nbtrack_side


def test_the_same_artifact_paths(sides) -> None:
    theirs, ours = sides
    for run in ("media", "second", "child"):
        assert sorted(ours.files(run)) == sorted(theirs.files(run)), run


BYTE_EQUAL = [
    "figs/line.png",
    "figs/line.svg",
    "img/rgb.png",
    "img/gray.png",
    "img/red.jpg",
    "images/val~pred+step+3+timestamp+1700000000000+<uuid>.png",
    "images/val~pred+step+3+timestamp+1700000000000+<uuid>+compressed.webp",
    "tables/eval.json",
]


@pytest.mark.parametrize("path", BYTE_EQUAL)
def test_the_same_bytes(sides, path: str) -> None:
    theirs, ours = sides
    assert ours.files("media")[path] == theirs.files("media")[path]


def test_tables_hold_the_same_rows_and_image_cells(sides) -> None:
    theirs, ours = sides
    for side in sides:
        assert json.loads(side.files("media")["tables/eval.json"])["data"][-1] == ["Why?", 2.0]
    gen = [
        json.loads(UUID.sub("<uuid>", s.files("media")["tables/gen.json"].decode())) for s in sides
    ]
    assert gen[0] == gen[1]
    images = {p: b for p, b in ours.files("media").items() if p.startswith("table_images/")}
    assert set(images) == {p for p in theirs.files("media") if p.startswith("table_images/")}
    parquet = [pd.read_parquet(s.artifacts("media") / "tables/eval.parquet") for s in sides]
    pd.testing.assert_frame_equal(parquet[0], parquet[1])


def test_plotly_html_is_the_same_page(sides) -> None:
    pages = [UUID.sub("<uuid>", s.files("media")["figs/plotly.html"].decode()) for s in sides]
    assert pages[0] == pages[1]


def test_the_same_tags_parent_and_experiment_tags(sides) -> None:
    theirs, ours = sides
    for name in ("media", "second"):
        mine = ours.api.get_run(ours.ids[name]).data.tags
        other = theirs.api.get_run(theirs.ids[name]).data.tags
        for key in ("mlflow.loggedArtifacts", "mlflow.loggedImages"):
            assert mine.get(key) == other.get(key), (name, key)
    for side in sides:
        assert side.api.get_parent_run(side.ids["child"]).info.run_name == "media"
        assert side.api.get_parent_run(side.ids["media"]) is None
    tags = [s.api.get_experiment_by_name("media").tags for s in sides]
    assert tags[1] == {k: v for k, v in tags[0].items() if not k.startswith("mlflow.")}


def test_load_table_returns_the_same_frame(sides) -> None:
    frames = [
        s.api.load_table("tables/eval.json", extra_columns=["tags.mlflow.runName"]) for s in sides
    ]
    pd.testing.assert_frame_equal(frames[1], frames[0])
    assert frames[1]["tags.mlflow.runName"].tolist() == ["second", "media", "media", "media"]
    only = [s.api.load_table("tables/eval.json", run_ids=[s.ids["media"]]) for s in sides]
    pd.testing.assert_frame_equal(only[1], only[0])


def test_log_inputs_records_the_same_datasets(sides) -> None:
    def described(side: Side) -> list:
        found = side.api.get_run(side.ids["second"]).inputs.dataset_inputs
        return [
            (i.dataset.name, i.dataset.digest, sorted((t.key, t.value) for t in i.tags))
            for i in found
        ]

    theirs, ours = sides
    assert described(ours) == described(theirs)


def test_the_artifacts_module_reads_alike(sides, tmp_path: Path) -> None:
    results = []
    for side in sides:
        run_id = side.ids["media"]
        listing = side.api.artifacts.list_artifacts(f"runs:/{run_id}/figs")
        by_id = side.api.artifacts.list_artifacts(run_id=run_id, artifact_path="tables")
        folder = Path(
            side.api.artifacts.download_artifacts(
                run_id=run_id, artifact_path="img", dst_path=tmp_path / side.api.__name__
            )
        )
        results.append(
            (
                [(f.path, f.is_dir, f.file_size) for f in listing],
                [(f.path, f.is_dir, f.file_size) for f in by_id],
                folder.relative_to(tmp_path / side.api.__name__).as_posix(),
                sorted(p.name for p in folder.iterdir()),
                side.api.artifacts.load_dict(f"runs:/{run_id}/tables/eval.json"),
                side.api.artifacts.load_image(f"runs:/{run_id}/img/rgb.png").size,
            )
        )
    assert results[1] == results[0]


# -- custom python models, both ways -----------------------------------------------------------


class MlflowAffine(AffineLogic, mlflow.pyfunc.PythonModel):
    """The same model on MLflow's base class (MLflow refuses any other)."""


@pytest.fixture
def model_inputs(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "weights.json").write_text(json.dumps({"scale": 3.0}))
    (tmp_path / "nbtrack_test_offsets.py").write_text("OFFSET = 0.25\n")
    return {
        "artifacts": {"weights": str(tmp_path / "weights.json")},
        "code_paths": [str(tmp_path / "nbtrack_test_offsets.py")],
        "model_config": {"shift": 1.0},
        "input_example": pd.DataFrame({"x": [1.0, 2.0]}),
    }


def with_params(inputs: dict[str, Any], side: Any) -> dict[str, Any]:
    """``inputs`` with a signature (made by ``side``'s infer_signature) declaring the
    ``extra`` param: only declared params reach predict."""
    frame = inputs["input_example"]
    signature = side.models.infer_signature(frame, frame.rename(columns={"x": "y"}), {"extra": 0.0})
    return {**inputs, "signature": signature}


@pytest.fixture
def no_offsets_module() -> Iterator[None]:
    """Each load imports the code_paths module anew from its own package."""
    yield
    sys.modules.pop("nbtrack_test_offsets", None)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_each_side_loads_the_others_python_model_with_the_same_predictions(
    tracking, tmp_path: Path, model_inputs: dict[str, Any], no_offsets_module: None
) -> None:
    theirs = with_params(model_inputs, mlflow)
    mlflow.pyfunc.save_model(str(tmp_path / "theirs"), python_model=MlflowAffine(), **theirs)
    ours = with_params(model_inputs, tracking)
    tracking.pyfunc.save_model(tmp_path / "ours", python_model=Affine(), **ours)
    frame = pd.DataFrame({"x": [0.0, 1.5, -2.0]})
    expected = frame["x"] * 3.0 + 0.25 + 1.0
    predictions = []
    for folder in ("theirs", "ours"):
        for load in (mlflow.pyfunc.load_model, tracking.pyfunc.load_model):
            sys.modules.pop("nbtrack_test_offsets", None)
            predictions.append(load(str(tmp_path / folder)).predict(frame)["y"])
    for found in predictions:
        np.testing.assert_allclose(found, expected)
    for folder in ("theirs", "ours"):
        for load in (mlflow.pyfunc.load_model, tracking.pyfunc.load_model):
            sys.modules.pop("nbtrack_test_offsets", None)
            model = load(str(tmp_path / folder))
            np.testing.assert_allclose(model.predict(frame, {"extra": 1.0})["y"], expected + 1)
            np.testing.assert_allclose(model.predict(frame, {"other": 1.0})["y"], expected)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_python_model_packages_have_mlflows_layout(
    tracking, tmp_path: Path, model_inputs: dict[str, Any], no_offsets_module: None
) -> None:
    sys.path.insert(0, str(tmp_path))  # the code module importable at save, as in a project
    try:
        mlflow.pyfunc.save_model(
            str(tmp_path / "theirs"), python_model=MlflowAffine(), **model_inputs
        )
        tracking.pyfunc.save_model(tmp_path / "ours", python_model=Affine(), **model_inputs)
    finally:
        sys.path.remove(str(tmp_path))
    files = [
        sorted(
            p.relative_to(tmp_path / f).as_posix() for p in (tmp_path / f).rglob("*") if p.is_file()
        )
        for f in ("theirs", "ours")
    ]
    assert files[1] == files[0]
    mlmodels = [yaml.safe_load((tmp_path / f / "MLmodel").read_text()) for f in ("theirs", "ours")]
    assert mlmodels[1]["flavors"] == mlmodels[0]["flavors"]
    assert mlmodels[1]["signature"] == mlmodels[0]["signature"]
    assert mlmodels[1]["saved_input_example_info"] == mlmodels[0]["saved_input_example_info"]
    for name in ("input_example.json", "serving_input_example.json", "artifacts/weights.json"):
        assert (tmp_path / "ours" / name).read_bytes() == (tmp_path / "theirs" / name).read_bytes()


def test_a_script_using_nbtrack_as_mlflow_logs_a_model_real_mlflow_serves(
    tmp_path: Path, no_offsets_module: None
) -> None:
    # The class is defined in the script's __main__, so cloudpickle stores it by value,
    # as for a notebook's class: the loading process has no module to import it from.
    script = textwrap.dedent(
        """
        import json, sys
        import pandas as pd
        import nbtrack as mlflow

        class Tokens(mlflow.pyfunc.PythonModel):
            def load_context(self, context):
                with open(context.artifacts["vocab"]) as handle:
                    self.vocab = json.load(handle)

            def predict(self, context, model_input, params=None):
                return [self.vocab.get(w, -1) for w in model_input["word"]]

        with open("vocab.json", "w") as handle:
            json.dump({"a": 1, "b": 2}, handle)
        mlflow.set_tracking_uri("store")
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="tokens", python_model=Tokens(), artifacts={"vocab": "vocab.json"},
                input_example=pd.DataFrame({"word": ["a", "z"]}),
            )
        print(json.dumps({"run_id": info.run_id, "uri": info.model_uri}))
        """
    )
    (tmp_path / "train.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBTRACK_")}
    done = subprocess.run(
        [sys.executable, "train.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    logged = json.loads(done.stdout.strip().splitlines()[-1])
    package = tmp_path / "store" / "runs" / logged["run_id"] / "artifacts" / "tokens"
    model = mlflow.pyfunc.load_model(str(package))
    words = pd.DataFrame({"word": ["b", "a", "q"]})
    assert list(model.predict(words)) == [2, 1, -1]
    with fluent.use_session(Session(tmp_path / "store")):
        assert list(nbtrack.pyfunc.load_model(logged["uri"]).predict(words)) == [2, 1, -1]
    close_stores()
