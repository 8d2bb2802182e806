"""Model packages in MLflow's layout: files, flavors, environment, signatures, enforcement."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata

import numpy as np
import pandas as pd
import pytest
import yaml

from model_helpers import artifacts, classifier, iris
from nbtrack.errors import InvalidParameterError
from nbtrack.models import (
    ColSpec,
    ModelSignature,
    Schema,
    SchemaEnforcementError,
    TensorSpec,
    infer_signature,
)
from nbtrack.store.journal import read_records

PACKAGE_FILES = {
    "MLmodel",
    "model.pkl",
    "input_example.json",
    "serving_input_example.json",
    "requirements.txt",
    "python_env.yaml",
    "conda.yaml",
}


class Doubler:
    """Not an sklearn model: anything with predict is packaged behind nbtrack's loader."""

    def predict(self, data):
        return np.asarray(data, dtype="float64") * 2


def _log(nbtrack, model, **kwargs):
    with nbtrack.start_run() as run:
        info = nbtrack.log_model(model, "model", **kwargs)
    return run.info.run_id, info, artifacts(nbtrack, run.info.run_id) / "model"


def test_sklearn_package_has_mlflows_layout_and_flavors(tracking) -> None:
    X, _ = iris()
    run_id, info, folder = _log(tracking, classifier(), input_example=X.head(3))
    assert {p.name for p in folder.iterdir()} == PACKAGE_FILES
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    assert mlmodel["flavors"]["sklearn"] == {
        "code": None,
        "pickled_model": "model.pkl",
        "serialization_format": "cloudpickle",
        "sklearn_version": metadata.version("scikit-learn"),
    }
    pyfunc = mlmodel["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.sklearn"
    assert (pyfunc["model_path"], pyfunc["predict_fn"]) == ("model.pkl", "predict")
    assert pyfunc["python_version"] == platform.python_version()
    assert pyfunc["env"] == {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    assert (mlmodel["run_id"], mlmodel["artifact_path"]) == (run_id, "model")
    assert mlmodel["saved_input_example_info"] == {
        "artifact_path": "input_example.json",
        "serving_input_path": "serving_input_example.json",
        "type": "dataframe",
        "pandas_orient": "split",
    }
    assert info.model_uri == f"runs:/{run_id}/model"


def test_environment_files_are_pinned_from_the_running_interpreter(tracking) -> None:
    _, _, folder = _log(tracking, classifier())
    requirements = (folder / "requirements.txt").read_text().split()
    for name in ("scikit-learn", "cloudpickle", "numpy", "scipy"):
        assert f"{name}=={metadata.version(name)}" in requirements
    python_env = yaml.safe_load((folder / "python_env.yaml").read_text())
    assert python_env["python"] == platform.python_version()
    assert python_env["dependencies"] == ["-r requirements.txt"]
    assert f"pip=={metadata.version('pip')}" in python_env["build_dependencies"]
    conda = yaml.safe_load((folder / "conda.yaml").read_text())
    assert conda["dependencies"][0] == f"python={platform.python_version()}"
    assert conda["dependencies"][-1] == {"pip": requirements}


def test_a_distribution_installed_mid_session_is_pinned(tmp_path, monkeypatch) -> None:
    """Versions are read once a process, but what was not found is looked up again: a
    cell may ``%pip install`` it, then log a model of its classes."""
    from nbtrack.models import environment

    assert environment.pinned("nbtrack-fake-dist") is None
    model_class = type("Booster", (), {"__module__": "nbtrackfake.models"})
    assert environment.requirements((), model_class()) == []
    info = tmp_path / "nbtrack_fake_dist-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nbtrack-fake-dist\nVersion: 1.2\n")
    (info / "top_level.txt").write_text("nbtrackfake\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # as pip install puts it on the path
    assert environment.pinned("nbtrack-fake-dist") == "nbtrack-fake-dist==1.2"
    assert environment.requirements((), model_class()) == ["nbtrack-fake-dist==1.2"]


def test_every_file_sha256_is_recorded_in_the_run_journal(tracking) -> None:
    X, _ = iris()
    _, info, folder = _log(tracking, classifier(), input_example=X.head(2))
    records = read_records(folder.parents[1] / "journal.jsonl")
    recorded = {r["path"]: (r["sha256"], r["size"]) for r in records if r["op"] == "artifact"}
    on_disk = {
        f"model/{f.name}": (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_size)
        for f in folder.iterdir()
    }
    assert recorded == on_disk
    assert {f"model/{k}": v for k, v in info.files.items()} == {k: v[0] for k, v in on_disk.items()}


def test_signature_from_a_dataframe_example_and_the_example_saved(tracking) -> None:
    frame = pd.DataFrame(
        {
            "age": np.array([30, 40, 50], dtype="int64"),
            "income": [1.5, np.nan, 3.0],
            "city": ["a", "b", "c"],
            "member": [True, False, True],
        }
    )
    signature = infer_signature(frame, np.array([0, 1, 0]))
    assert signature.inputs == Schema(
        [
            ColSpec("long", "age"),
            ColSpec("double", "income", required=False),
            ColSpec("string", "city"),
            ColSpec("boolean", "member"),
        ]
    )
    assert signature.outputs == Schema([TensorSpec("int64", (-1,))])
    as_mlflow = signature.to_dict()
    assert json.loads(as_mlflow["inputs"])[1] == {
        "type": "double",
        "name": "income",
        "required": False,
    }
    assert as_mlflow["params"] is None
    assert ModelSignature.from_dict(as_mlflow) == signature

    X, _ = iris()
    _, info, folder = _log(tracking, classifier(), input_example=X.head(3))
    saved = json.loads((folder / "input_example.json").read_text())
    assert saved["columns"] == list(X.columns)
    assert saved["data"] == X.head(3).to_numpy().tolist()
    assert pd.read_json(folder / "input_example.json", orient="split").equals(X.head(3))
    assert json.loads((folder / "serving_input_example.json").read_text()) == {
        "dataframe_split": saved
    }
    assert info.signature.outputs == Schema([TensorSpec("int64", (-1,))])  # from predicting


@pytest.mark.slow
def test_signature_from_a_numpy_example(tracking) -> None:
    X, _ = iris()
    array = X.to_numpy()[:4]
    signature = infer_signature(array)
    assert signature.inputs == Schema([TensorSpec("float64", (-1, 4))])
    assert json.loads(signature.to_dict()["inputs"]) == [
        {"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}
    ]
    model = Doubler()
    _, info, folder = _log(tracking, model, input_example=array)
    assert json.loads((folder / "input_example.json").read_text()) == array.tolist()
    assert info.signature.outputs == Schema([TensorSpec("float64", (-1, 4))])


def test_predict_enforces_a_column_signature(tracking) -> None:
    X, _ = iris()
    _, info, _ = _log(tracking, classifier(), input_example=X.head(3))
    loaded = tracking.load_model(info.model_uri)
    expected = classifier().predict(X)
    assert (loaded.predict(X) == expected).all()
    shuffled = X[X.columns[::-1]].assign(extra=1)  # order and extra columns do not matter
    assert (loaded.predict(shuffled) == expected).all()
    as_float32 = X.astype("float32")  # float -> double is a safe upcast
    assert (loaded.predict(as_float32) == classifier().predict(as_float32)).all()
    with pytest.raises(
        SchemaEnforcementError, match=r"missing required column\(s\) \['petal width \(cm\)'\]"
    ):
        loaded.predict(X.drop(columns=["petal width (cm)"]))
    with pytest.raises(SchemaEnforcementError, match=r"'sepal length \(cm\)' has dtype .*'double'"):
        loaded.predict(X.astype({"sepal length (cm)": str}))
    with pytest.raises(SchemaEnforcementError, match="needs a pandas DataFrame"):
        loaded.predict(X.to_numpy())


@pytest.mark.slow
def test_predict_enforces_a_tensor_signature(tracking) -> None:
    X, _ = iris()
    array = X.to_numpy()
    _, info, folder = _log(tracking, Doubler(), input_example=array[:2])
    loaded = tracking.load_model(info.model_uri)
    assert (loaded.predict(array) == array * 2).all()
    assert (loaded.predict(array.astype("int32")) == array.astype("int32") * 2).all()  # safe
    with pytest.raises(SchemaEnforcementError, match=r"shape \(150, 3\).*\(-1, 4\)"):
        loaded.predict(array[:, :3])
    with pytest.raises(SchemaEnforcementError, match="dtype str"):
        loaded.predict(array.astype(str))
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    pyfunc = mlmodel["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "nbtrack.models.loader"
    assert pyfunc["data"] == "model.pkl"
    assert "sklearn" not in mlmodel["flavors"]
    requirements = (folder / "requirements.txt").read_text().split()
    assert f"nbtrack=={metadata.version('nbtrack')}" in requirements
    assert f"cloudpickle=={metadata.version('cloudpickle')}" in requirements


@pytest.mark.slow
def test_real_mlflow_loads_a_generic_package_through_nbtracks_loader(tracking) -> None:
    import mlflow.pyfunc

    X, _ = iris()
    array = X.to_numpy()
    _, _, folder = _log(tracking, Doubler(), input_example=array[:2])
    loaded = mlflow.pyfunc.load_model(str(folder))
    assert (loaded.predict(array) == array * 2).all()


def test_bad_models_and_options_are_refused_before_anything_is_written(tracking) -> None:
    with tracking.start_run() as run:
        with pytest.raises(InvalidParameterError, match="has no predict"):
            tracking.log_model(object(), "model")
        with pytest.raises(InvalidParameterError, match="serialization_format='skops'"):
            tracking.log_model(classifier(), "model", serialization_format="skops")
        with pytest.raises(InvalidParameterError, match="not allowed"):
            tracking.log_model(classifier(), "../escape")
        with pytest.raises(InvalidParameterError, match="not supported"):
            tracking.log_model(classifier(), "model", input_example=object())
        assert tracking.MlflowClient().list_artifacts(run.info.run_id) == []
        tracking.log_model(classifier(), "model", serialization_format="pickle")
        with pytest.raises(InvalidParameterError, match="already has artifacts at 'model'"):
            tracking.log_model(classifier(), "model")
    assert (tracking.load_model(f"runs:/{run.info.run_id}/model").predict(iris()[0]) == 0).any()


def test_log_model_starts_a_run_when_none_is_active(tracking) -> None:
    assert tracking.active_run() is None
    info = tracking.log_model(classifier(), "model")
    assert tracking.active_run().info.run_id == info.run_id
    tracking.end_run()


def test_save_model_writes_a_local_package_that_loads(tracking, tmp_path) -> None:
    import nbtrack.sklearn

    X, _ = iris()
    nbtrack.sklearn.save_model(classifier(), tmp_path / "pkg", input_example=X.head(2))
    assert {p.name for p in (tmp_path / "pkg").iterdir()} == PACKAGE_FILES
    estimator = nbtrack.sklearn.load_model(str(tmp_path / "pkg"))
    assert (estimator.predict(X) == classifier().predict(X)).all()
    with pytest.raises(InvalidParameterError, match="already exists"):
        nbtrack.sklearn.save_model(classifier(), tmp_path / "pkg")


def test_heavy_modules_stay_out_of_import_nbtrack() -> None:
    import subprocess

    code = (
        "import sys, nbtrack; nbtrack.MlflowClient; "
        "print(sorted(m for m in ('cloudpickle', 'yaml', 'pandas', 'sklearn', 'numpy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
