"""MLflow's everyday API beyond the core: submodules, figures, images, tables, inputs,
custom python models, read back through nbtrack; and bad input refused with the store
unchanged. (tests/test_mlflow_api_differential.py runs the same calls on real MLflow.)"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model_helpers import store_path
from nbtrack.errors import InvalidParameterError, NotFoundError
from nbtrack.exceptions import MlflowException, ModelIntegrityError
from nbtrack.models import infer_signature


def files_in(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def store_files(nbtrack) -> dict[str, bytes]:
    """Every run's journal and artifacts, and the experiments' journal: what a refused
    call must leave as it was."""
    root = store_path(nbtrack)
    found = files_in(root / "runs") if (root / "runs").exists() else {}
    experiments = root / "experiments.jsonl"
    if experiments.exists():
        found["experiments.jsonl"] = experiments.read_bytes()
    return found


def run_artifacts(nbtrack, run_id: str) -> dict[str, bytes]:
    return files_in(store_path(nbtrack) / "runs" / run_id / "artifacts")


# -- the submodules people import -----------------------------------------------------------


IMPORTS = [
    "import nbtrack.sklearn as s; s.log_model; s.load_model; s.autolog",
    "import nbtrack.pyfunc as p; p.PythonModel; p.PythonModelContext; p.log_model; p.load_model",
    "from nbtrack.models import infer_signature, ModelSignature, Model",
    "from nbtrack.artifacts import download_artifacts, list_artifacts, load_text, load_dict, "
    "load_image",
    "from nbtrack.exceptions import MlflowException",
    "from nbtrack.entities import Run, RunInfo, RunData, Metric, Param, RunTag, Experiment, "
    "ViewType, RunStatus, LifecycleStage, Dataset, DatasetInput, InputTag, FileInfo, "
    "ExperimentTag, SourceType, RunInputs",
    "import nbtrack as mlflow; mlflow.artifacts.load_text; mlflow.exceptions.MlflowException; "
    "mlflow.entities.Run; mlflow.models.infer_signature; mlflow.pyfunc.PythonModel",
]


@pytest.mark.parametrize("statement", IMPORTS)
@pytest.mark.slow  # a fresh interpreter for each form
def test_mlflow_style_imports_work_in_a_fresh_interpreter(statement: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", statement], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_entities_and_exceptions_speak_mlflows_names() -> None:
    from nbtrack import entities, exceptions
    from nbtrack.errors import NbtrackError

    assert exceptions.MlflowException is NbtrackError
    assert issubclass(exceptions.ModelIntegrityError, MlflowException)
    assert issubclass(exceptions.TransitionRefused, MlflowException)
    error = MlflowException.invalid_parameter_value("bad")
    assert error.error_code == "INVALID_PARAMETER_VALUE"
    assert entities.Dataset is entities.DatasetRecord
    assert entities.RunStatus.to_string(entities.RunStatus.FAILED) == "FAILED"
    assert entities.ViewType.from_string("deleted_only") == entities.ViewType.DELETED_ONLY
    assert entities.ViewType.to_string(entities.ViewType.ALL) == "ALL"
    assert entities.LifecycleStage.view_type_to_stages(entities.ViewType.ACTIVE_ONLY) == ["active"]
    with pytest.raises(InvalidParameterError, match="'DONE' is not a run status"):
        entities.RunStatus.from_string("DONE")
    assert importlib.import_module("nbtrack").entities is entities


# -- figures ---------------------------------------------------------------------------------


@pytest.fixture
def line_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    axes.plot([0, 1, 2], [2, 3, 1])
    yield figure
    plt.close(figure)


def test_log_figure_saves_matplotlib_in_the_extensions_format(tracking, line_figure) -> None:
    with tracking.start_run() as run:
        tracking.log_figure(line_figure, "plots/line.png")
        tracking.log_figure(line_figure, "plots/line.svg", save_kwargs={"metadata": {"Date": None}})
    files = run_artifacts(tracking, run.info.run_id)
    assert files["plots/line.png"].startswith(b"\x89PNG")
    assert b"<svg" in files["plots/line.svg"]
    logged = {r["path"]: r["sha256"] for r in _artifact_records(tracking, run.info.run_id)}
    assert set(logged) == {"plots/line.png", "plots/line.svg"}


def test_log_figure_saves_altair_charts_as_html_json_png_and_svg(tracking) -> None:
    import altair as alt

    chart = alt.Chart(pd.DataFrame({"x": [1, 2], "y": [3, 4]})).mark_line().encode(x="x", y="y")
    with tracking.start_run() as run:
        for name in ("chart.html", "chart.json", "chart.png", "chart.svg"):
            tracking.log_figure(chart, name)
    files = run_artifacts(tracking, run.info.run_id)
    assert b"vega" in files["chart.html"]
    assert json.loads(files["chart.json"])["mark"]["type"] == "line"
    assert files["chart.png"].startswith(b"\x89PNG")
    assert b"<svg" in files["chart.svg"]


def test_log_figure_saves_plotly_as_html_loading_plotlyjs_from_the_cdn(tracking) -> None:
    go = pytest.importorskip("plotly.graph_objects")
    with tracking.start_run() as run:
        tracking.log_figure(go.Figure(go.Scatter(x=[0, 1], y=[2, 3])), "plotly/fig.html")
    html = run_artifacts(tracking, run.info.run_id)["plotly/fig.html"].decode()
    assert "cdn.plot.ly" in html and '"x":[0,1]' in html


# -- images ----------------------------------------------------------------------------------


def test_log_image_converts_arrays_as_mlflow_does(tracking) -> None:
    from PIL import Image

    gray = np.array([[0.0, 0.5], [1.0, 0.25]])
    rgb = np.zeros((3, 4, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    with tracking.start_run() as run:
        tracking.log_image(gray, "gray.png")
        tracking.log_image(rgb, "rgb.png")
        tracking.log_image(np.ones((2, 2, 1), dtype=bool), "mask.png")
        tracking.log_image(Image.new("RGBA", (5, 2), (1, 2, 3, 4)), "pil/rgba.png")
    run_id = run.info.run_id
    loaded = {
        name: np.asarray(tracking.artifacts.load_image(f"runs:/{run_id}/{name}"))
        for name in ("gray.png", "rgb.png", "mask.png", "pil/rgba.png")
    }
    np.testing.assert_array_equal(loaded["gray.png"], [[0, 127], [255, 63]])
    np.testing.assert_array_equal(loaded["rgb.png"], rgb)
    np.testing.assert_array_equal(loaded["mask.png"], [[255, 255], [255, 255]])
    assert loaded["pil/rgba.png"].shape == (2, 5, 4)


def test_float_pixels_out_of_range_are_rescaled_with_a_warning(tracking) -> None:
    with tracking.start_run() as run, pytest.warns(UserWarning, match="rescaling"):
        tracking.log_image(np.array([[-1.0, 1.0]]), "scaled.png")
    image = tracking.artifacts.load_image(f"runs:/{run.info.run_id}/scaled.png")
    np.testing.assert_array_equal(np.asarray(image), [[0, 255]])


def test_log_image_by_key_and_step_stores_mlflow_3s_image_series(tracking) -> None:
    image = np.random.default_rng(0).integers(0, 256, size=(300, 600, 3), dtype=np.uint8)
    with tracking.start_run() as run:
        tracking.log_image(image, key="val/pred", step=3, timestamp=1_700_000_000_000)
        tracking.log_image(image, key="val/pred")
    names = sorted(run_artifacts(tracking, run.info.run_id))
    pattern = r"images/val~pred\+step\+(\d+)\+timestamp\+(\d+)\+[0-9a-f-]{36}"
    import re

    full = [n for n in names if re.fullmatch(pattern + r"\.png", n)]
    previews = [n for n in names if re.fullmatch(pattern + r"\+compressed\.webp", n)]
    assert len(full) == 2 and len(previews) == 2 and len(names) == 4
    assert any("+step+3+timestamp+1700000000000+" in n for n in full)
    assert any("+step+0+" in n for n in full)
    preview = tracking.artifacts.load_image(f"runs:/{run.info.run_id}/{previews[0]}")
    assert preview.size == (256, 128)
    assert tracking.get_run(run.info.run_id).data.tags["mlflow.loggedImages"] == "True"


# -- tables ----------------------------------------------------------------------------------


def test_log_table_writes_mlflows_json_and_appends_rows(tracking) -> None:
    with tracking.start_run() as run:
        tracking.log_table({"q": ["a", "b"], "score": [0.5, 1.0]}, "eval/table.json")
        tracking.log_table(pd.DataFrame({"q": ["c"], "score": [2.0]}), "eval/table.json")
        tracking.log_table({"one": 1, "two": "x"}, "row.json")  # scalars: one row
    files = run_artifacts(tracking, run.info.run_id)
    assert json.loads(files["eval/table.json"]) == {
        "columns": ["q", "score"],
        "data": [["a", 0.5], ["b", 1.0], ["c", 2.0]],
    }
    assert json.loads(files["row.json"]) == {"columns": ["one", "two"], "data": [[1, "x"]]}
    tag = tracking.get_run(run.info.run_id).data.tags["mlflow.loggedArtifacts"]
    assert json.loads(tag) == [
        {"path": "eval/table.json", "type": "table"},
        {"path": "row.json", "type": "table"},
    ]


def test_load_table_joins_the_experiments_runs_and_adds_run_columns(tracking) -> None:
    ids = []
    for score in (1.0, 2.0):
        with tracking.start_run() as run:
            tracking.log_table({"score": [score]}, "t.json")
            ids.append(run.info.run_id)
    with tracking.start_run():
        tracking.log_text("no table here", "t.txt")
    table = tracking.load_table("t.json", extra_columns=["run_id"])
    assert table.to_dict("list") == {"score": [2.0, 1.0], "run_id": [ids[1], ids[0]]}
    only = tracking.load_table("t.json", run_ids=[ids[0]])
    assert only.to_dict("list") == {"score": [1.0]}
    with pytest.warns(UserWarning, match="Not all runs"):
        tracking.load_table("t.json", run_ids=[ids[0], "0" * 32])


def test_log_table_stores_image_columns_as_image_files(tracking) -> None:
    from PIL import Image

    images = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 255, 0))]
    with tracking.start_run() as run:
        tracking.log_table({"prompt": ["red", "green"], "image": images}, "gen/images.json")
    files = run_artifacts(tracking, run.info.run_id)
    cells = json.loads(files["gen/images.json"])["data"]
    assert [c[1]["type"] for c in cells] == ["image", "image"]
    for cell, expected in zip(cells, [(255, 0, 0), (0, 255, 0)], strict=True):
        assert cell[1]["filepath"].startswith("table_images/gen/images/")
        assert cell[1]["compressed_filepath"] in files
        pixel = tracking.artifacts.load_image(f"runs:/{run.info.run_id}/{cell[1]['filepath']}")
        assert pixel.getpixel((0, 0)) == expected


# -- inputs, parents, experiment tags ------------------------------------------------------------


def test_log_inputs_logs_each_dataset_with_its_context_and_tags(tracking) -> None:
    first = tracking.data.from_numpy(np.arange(6).reshape(3, 2), source="train.csv")
    second = tracking.data.from_pandas(pd.DataFrame({"a": [1.0]}), source="test.csv")
    with tracking.start_run() as run:
        tracking.log_inputs([first, second], ["training", None], [None, {"split": "test"}])
    inputs = tracking.get_run(run.info.run_id).inputs.dataset_inputs
    assert [i.dataset.digest for i in inputs] == [first.digest, second.digest]
    assert [{t.key: t.value for t in i.tags} for i in inputs] == [
        {"mlflow.data.context": "training"},
        {"split": "test"},
    ]


def test_get_parent_run_and_set_experiment_tags(tracking) -> None:
    with tracking.start_run() as parent, tracking.start_run(nested=True) as child:
        pass
    assert tracking.get_parent_run(child.info.run_id).info.run_id == parent.info.run_id
    assert tracking.get_parent_run(parent.info.run_id) is None
    tracking.set_experiment("tagged")
    tracking.set_experiment_tags({"team": "ml", "release": 2})
    assert tracking.get_experiment_by_name("tagged").tags == {"team": "ml", "release": "2"}


# -- nbtrack.artifacts -------------------------------------------------------------------------


def test_artifacts_module_downloads_lists_and_reads(tracking, tmp_path: Path) -> None:
    with tracking.start_run() as run:
        tracking.log_text("hello", "notes/a.txt")
        tracking.log_dict({"k": [1, 2]}, "config.json")
    run_id = run.info.run_id
    art = tracking.artifacts
    assert art.load_text(f"runs:/{run_id}/notes/a.txt") == "hello"
    assert art.load_dict(f"runs:/{run_id}/config.json") == {"k": [1, 2]}
    assert art.load_text(tracking.get_run(run_id).info.artifact_uri + "/notes/a.txt") == "hello"
    copied = art.download_artifacts(run_id=run_id, artifact_path="notes/a.txt", dst_path=tmp_path)
    assert copied == str(tmp_path / "a.txt") and Path(copied).read_text() == "hello"
    whole = Path(art.download_artifacts(f"runs:/{run_id}/", dst_path=tmp_path / "all"))
    assert whole == tmp_path / "all" and sorted(p.name for p in whole.iterdir()) == [
        "config.json",
        "notes",
    ]
    assert [f.path for f in art.list_artifacts(run_id=run_id)] == ["config.json", "notes"]
    assert [f.path for f in art.list_artifacts(f"runs:/{run_id}/notes")] == ["notes/a.txt"]
    assert art.list_artifacts(run_id=run_id, artifact_path="notes")[0].file_size == 5


def test_artifacts_module_refuses_bad_uris_and_content(tracking) -> None:
    with tracking.start_run() as run:
        tracking.log_text("a: 1", "c.yaml")
        tracking.log_artifact(_write(Path("bin.dat"), b"\xff\xfe\x00"))
    run_id = run.info.run_id
    art = tracking.artifacts
    with pytest.raises(InvalidParameterError, match="exactly one of artifact_uri or run_id"):
        art.download_artifacts(f"runs:/{run_id}/c.yaml", run_id=run_id)
    with pytest.raises(InvalidParameterError, match="exactly one"):
        art.list_artifacts()
    with pytest.raises(InvalidParameterError, match="artifact_path cannot be given"):
        art.download_artifacts(f"runs:/{run_id}/", artifact_path="c.yaml")
    with pytest.raises(InvalidParameterError, match="may not leave"):
        art.download_artifacts(f"runs:/{run_id}/../../catalog.json")
    with pytest.raises(InvalidParameterError, match="may not leave"):
        art.download_artifacts(run_id=run_id, artifact_path="../journal.jsonl")
    with pytest.raises(NotFoundError):
        art.load_text(f"runs:/{run_id}/absent.txt")
    with pytest.raises(NotFoundError):
        art.load_text(f"runs:/{'0' * 32}/c.yaml")
    with pytest.raises(MlflowException, match="not JSON"):
        art.load_dict(f"runs:/{run_id}/c.yaml")
    with pytest.raises(MlflowException, match="not valid UTF-8"):
        art.load_text(f"runs:/{run_id}/bin.dat")
    with pytest.raises(MlflowException, match="not an image"):
        art.load_image(f"runs:/{run_id}/c.yaml")
    with pytest.raises(InvalidParameterError, match="not supported"):
        art.load_text("s3://bucket/c.yaml")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _artifact_records(nbtrack, run_id: str) -> list[dict]:
    from nbtrack.tracking.fluent import current_store

    return current_store().records(run_id, "artifact")


# -- bad input changes nothing ---------------------------------------------------------------


def _bad_calls(tracking, figure) -> list[tuple[str, object]]:
    """(what the error must say, call) for each kind of refused input."""
    array = np.zeros((4, 4, 3), dtype=np.uint8)
    dataset = tracking.data.from_numpy(np.arange(4), source="x.csv")
    return [
        ("figure=", lambda: tracking.log_figure("a figure?", "f.png")),
        ("may not leave", lambda: tracking.log_figure(figure, "../f.png")),
        ("may not leave", lambda: tracking.log_figure(figure, "/tmp/f.png")),
        ("artifact_file='f.xyz'", lambda: tracking.log_figure(figure, "f.xyz")),
        ("such as .png", lambda: tracking.log_figure(figure, "plots/line")),
        ("image=", lambda: tracking.log_image("pixels", "i.png")),
        ("not both", lambda: tracking.log_image(array, "i.png", key="k")),
        ("give key=", lambda: tracking.log_image(array)),
        ("key='a#b'", lambda: tracking.log_image(array, key="a#b")),
        ("steps must be integers", lambda: tracking.log_image(array, key="k", step=1.5)),
        ("in \\[0, 255\\]", lambda: tracking.log_image(np.full((2, 2), 300), "i.png")),
        ("shape \\(2, 2, 2\\)", lambda: tracking.log_image(np.zeros((2, 2, 2)), "i.png")),
        ("dtype complex", lambda: tracking.log_image(np.zeros((2, 2), complex), "i.png")),
        ("may not leave", lambda: tracking.log_image(array, "../../i.png")),
        ("extension Pillow", lambda: tracking.log_image(array, "i.nope")),
        ("data=", lambda: tracking.log_table([1, 2], "t.json")),
        (".json or .parquet", lambda: tracking.log_table({"a": [1]}, "t.csv")),
        ("contains ,", lambda: tracking.log_table({"a": [1]}, "a,b.json")),
        ("may not leave", lambda: tracking.log_table({"a": [1]}, "../t.json")),
        ("cannot be written", lambda: tracking.log_table({"a": [object()]}, "t.parquet")),
        ("mixes images", lambda: tracking.log_table({"a": [_pil(), "x"]}, "t.json")),
        ("same length", lambda: tracking.log_inputs([dataset], [], [])),
        ("models=", lambda: tracking.log_inputs([dataset], [None], [None], models=["m"])),
        ("needs a dataset", lambda: tracking.log_inputs([dataset, "x"], [None] * 2, [None] * 2)),
        ("Invalid tag key", lambda: tracking.set_experiment_tags({"ok": 1, "bad key!": 2})),
        ("tags must be a dict", lambda: tracking.set_experiment_tags(["team"])),
    ]


def _pil():
    from PIL import Image

    return Image.new("RGB", (2, 2))


def test_bad_input_is_refused_naming_it_and_nothing_is_stored(tracking, line_figure) -> None:
    with tracking.start_run():
        tracking.log_table({"a": [1]}, "t.json")  # an existing table: a bad append changes it not
        before = store_files(tracking)
        for message, call in _bad_calls(tracking, line_figure):
            with pytest.raises(InvalidParameterError, match=message):
                call()
            assert store_files(tracking) == before, message


def test_bad_input_outside_a_run_starts_none(tracking, line_figure) -> None:
    before = store_files(tracking)
    for message, call in _bad_calls(tracking, line_figure):
        with pytest.raises(InvalidParameterError, match=message):
            call()
    assert tracking.active_run() is None
    assert store_files(tracking) == before


def test_load_table_errors_name_the_problem(tracking) -> None:
    with tracking.start_run():
        tracking.log_table({"a": [1]}, "t.json")
    with pytest.raises(NotFoundError, match=r"No runs found with the table 'other\.json'"):
        tracking.load_table("other.json")
    with pytest.raises(InvalidParameterError, match="'nope' not among the runs' columns"):
        tracking.load_table("t.json", extra_columns=["nope"])


# -- custom python models ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _forget_code_modules():
    """A package's code_paths module is imported from that package: none left behind."""
    yield
    sys.modules.pop("nbtrack_test_offsets", None)


class Scaler:
    """Not a PythonModel: what log_model refuses."""


@pytest.mark.slow
def test_python_model_round_trip_with_artifacts_code_and_config(tracking, tmp_path: Path) -> None:
    from python_models import Affine

    weights = _write(tmp_path / "weights.json", json.dumps({"scale": 2.0}).encode())
    lib = tmp_path / "lib"
    lib.mkdir()
    _write(lib / "nbtrack_test_offsets.py", b"OFFSET = 0.5\n")
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with tracking.start_run():
        info = tracking.pyfunc.log_model(
            name="affine",
            python_model=Affine(),
            artifacts={"weights": str(weights)},
            code_paths=[str(lib / "nbtrack_test_offsets.py")],
            model_config={"shift": 10.0},
            input_example=frame.head(2),
            signature=infer_signature(frame, pd.DataFrame({"y": [1.0]}), params={"extra": 0.0}),
        )
    assert set(info.files) >= {
        "python_model.pkl",
        "artifacts/weights.json",
        "code/nbtrack_test_offsets.py",
        "MLmodel",
    }
    conf = info.flavors["python_function"]
    assert conf["loader_module"] == "mlflow.pyfunc.model"
    assert conf["artifacts"] == {"weights": {"path": "artifacts/weights.json", "uri": str(weights)}}
    assert info.signature.inputs.input_names() == ["x"]
    loaded = tracking.pyfunc.load_model(info.model_uri)
    expected = frame["x"] * 2.0 + 0.5 + 10.0
    pd.testing.assert_series_equal(loaded.predict(frame)["y"], expected, check_names=False)
    assert isinstance(loaded.unwrap_python_model(), Affine)
    assert loaded.predict(frame, params={"extra": 1.0})["y"].tolist() == (expected + 1).tolist()
    with pytest.warns(UserWarning, match=r"Ignoring params \['other'\]"):
        assert loaded.predict(frame, params={"other": 1})["y"].tolist() == expected.tolist()


@pytest.mark.slow
def test_params_the_signature_does_not_declare_are_ignored_as_mlflow_does(tracking) -> None:
    from python_models import Affine

    with tracking.start_run():
        info = tracking.pyfunc.log_model(name="m", python_model=Affine())
    loaded = tracking.pyfunc.load_model(info.model_uri)
    frame = pd.DataFrame({"x": [1.0]})
    with pytest.warns(UserWarning, match="declares none"):
        ignored = loaded.predict(frame, params={"extra": 5.0})
    pd.testing.assert_frame_equal(ignored, loaded.predict(frame))


@pytest.mark.slow
def test_a_registered_python_model_loads_by_models_uri(tracking, tmp_path: Path) -> None:
    from python_models import Doubler

    with tracking.start_run():
        info = tracking.pyfunc.log_model(
            name="m", python_model=Doubler(), registered_model_name="doubler"
        )
    assert info.registered_model_version == 1
    loaded = tracking.pyfunc.load_model("models:/doubler/1")
    assert loaded.predict(pd.DataFrame({"x": [2.0]}))["x"].tolist() == [4.0]
    copy = Path(tracking.artifacts.download_artifacts("models:/doubler/1", dst_path=tmp_path))
    assert (copy / "python_model.pkl").is_file() and (copy / "MLmodel").is_file()


@pytest.mark.slow
def test_python_model_package_is_verified_before_unpickling(tracking) -> None:
    from python_models import Affine

    with tracking.start_run() as run:
        info = tracking.pyfunc.log_model(name="m", python_model=Affine(), artifacts=None)
    pickle_file = store_path(tracking) / "runs" / run.info.run_id / "artifacts/m/python_model.pkl"
    pickle_file.write_bytes(pickle_file.read_bytes() + b"\x00")
    with pytest.raises(ModelIntegrityError, match=r"python_model\.pkl"):
        tracking.pyfunc.load_model(info.model_uri)


@pytest.mark.slow
def test_a_function_is_a_python_model_and_predict_may_omit_the_context(tracking) -> None:
    from python_models import Doubler, double

    frame = pd.DataFrame({"x": [1.0, 4.0]})
    with tracking.start_run():
        by_function = tracking.pyfunc.log_model(name="f", python_model=double)
        by_class = tracking.pyfunc.log_model(name="c", python_model=Doubler())
    for info in (by_function, by_class):
        assert tracking.pyfunc.load_model(info.model_uri).predict(frame)["x"].tolist() == [2, 8]


@pytest.mark.slow
def test_same_named_artifacts_are_kept_apart_as_mlflow_does(tracking, tmp_path: Path) -> None:
    from python_models import Affine

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _write(tmp_path / folder / "weights.json", b'{"scale": 1.0}')
    _write(tmp_path / "0", b"taken")
    artifacts = {
        "weights": str(tmp_path / "a" / "weights.json"),
        "other": str(tmp_path / "b" / "weights.json"),
        "zero": str(tmp_path / "0"),
    }
    with tracking.start_run():
        info = tracking.pyfunc.log_model(name="m", python_model=Affine(), artifacts=artifacts)
    paths = {n: v["path"] for n, v in info.flavors["python_function"]["artifacts"].items()}
    assert paths == {
        "weights": "artifacts/1/weights.json",
        "other": "artifacts/2/weights.json",
        "zero": "artifacts/0",
    }


def test_bad_python_models_are_refused_and_nothing_is_stored(tracking, tmp_path: Path) -> None:
    from python_models import Affine, Unpicklable

    bad = [
        ("python_model must be a PythonModel", dict(python_model=Scaler())),
        ("Pass python_model", dict()),
        ("loader_module/data_path form", dict(loader_module="m", data_path="d")),
        ("no such file", dict(python_model=Affine(), artifacts={"w": str(tmp_path / "no")})),
        ("use a local path", dict(python_model=Affine(), artifacts={"w": "hf:/bert"})),
        ("code_paths", dict(python_model=Affine(), code_paths=[str(tmp_path / "no.py")])),
        ("Cannot serialize", dict(python_model=Unpicklable(threading.Lock()))),
        ("may not leave", dict(python_model=Affine(), name="../m")),
    ]
    with tracking.start_run():
        before = store_files(tracking)
        for message, kwargs in bad:
            with pytest.raises(InvalidParameterError, match=message):
                tracking.pyfunc.log_model(**kwargs)
            assert store_files(tracking) == before, message
    with pytest.raises(InvalidParameterError, match="already exists"):
        tracking.pyfunc.save_model(tmp_path, python_model=Affine())
