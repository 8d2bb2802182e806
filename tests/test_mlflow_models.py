"""Real MLflow reads nbtrack's packages (and nbtrack reads MLflow's), with the same predictions."""

from __future__ import annotations

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest

from model_helpers import artifacts, classifier, iris
from nbtrack.models import SchemaEnforcementError

pytestmark = pytest.mark.slow  # a real MLflow saves and loads the packages


@pytest.fixture
def package(tracking):
    X, _ = iris()
    with tracking.start_run() as run:
        info = tracking.sklearn.log_model(classifier(), "model", input_example=X.head(5))
    return tracking, info, artifacts(tracking, run.info.run_id) / "model"


def test_mlflow_pyfunc_loads_an_nbtrack_sklearn_package_with_identical_predictions(package) -> None:
    tracking, info, folder = package
    X, _ = iris()
    theirs = mlflow.pyfunc.load_model(str(folder))
    ours = tracking.load_model(info.model_uri)
    assert theirs.metadata.get_input_schema().input_names() == list(X.columns)
    np.testing.assert_array_equal(theirs.predict(X), ours.predict(X))
    np.testing.assert_array_equal(theirs.predict(X), classifier().predict(X))
    estimator = mlflow.sklearn.load_model(str(folder))
    np.testing.assert_array_equal(estimator.predict_proba(X), classifier().predict_proba(X))
    example = theirs.input_example
    pd.testing.assert_frame_equal(example, X.head(5), check_dtype=False)


def test_both_refuse_input_that_violates_the_signature(package) -> None:
    tracking, info, folder = package
    X, _ = iris()
    missing = X.drop(columns=["petal length (cm)"])
    with pytest.raises(mlflow.exceptions.MlflowException, match="petal length"):
        mlflow.pyfunc.load_model(str(folder)).predict(missing)
    with pytest.raises(SchemaEnforcementError, match="petal length"):
        tracking.load_model(info.model_uri).predict(missing)
    text = X.astype({"sepal width (cm)": str})
    with pytest.raises(mlflow.exceptions.MlflowException, match="sepal width"):
        mlflow.pyfunc.load_model(str(folder)).predict(text)
    with pytest.raises(SchemaEnforcementError, match="sepal width"):
        tracking.load_model(info.model_uri).predict(text)


# MLflow's own warnings while it infers the example's schema; not what this test checks.
@pytest.mark.filterwarnings("ignore:Operation with range is deprecated")
@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer")
def test_nbtrack_loads_a_package_mlflow_wrote(tracking, tmp_path) -> None:
    X, _ = iris()
    mlflow.sklearn.save_model(
        classifier(),
        str(tmp_path / "theirs"),
        serialization_format="cloudpickle",
        input_example=X.head(3),
    )
    loaded = tracking.load_model(str(tmp_path / "theirs"))
    np.testing.assert_array_equal(loaded.predict(X), classifier().predict(X))
    with pytest.raises(SchemaEnforcementError, match="missing required column"):
        loaded.predict(X.iloc[:, :2])
