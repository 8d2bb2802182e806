"""Loading by every model URI form, with clear errors, and refusing packages that changed."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

import nbtrack
from model_helpers import artifacts, classifier, iris, logged_run
from nbtrack import registry
from nbtrack.errors import InvalidParameterError, NotFoundError
from nbtrack.models import ModelIntegrityError
from store_helpers import fluent_store


def _churn(tracking) -> list[str]:
    """'churn' v1 (C=0.01, Archived), v2 (C=1, Production, @champion), v3 (C=100, Staging);
    the ids of the runs that logged them."""
    runs = [logged_run(tracking, auc, c=c) for auc, c in ((0.7, 0.01), (0.9, 1.0), (0.8, 100.0))]
    for run_id in runs:
        tracking.register_model(f"runs:/{run_id}/model", "churn")
    registry.promote("churn", 1, "Production", reason="first")
    registry.promote("churn", 2, "Production", reason="better")
    registry.promote("churn", 3, "Staging", reason="candidate")
    registry.set_alias("churn", "champion", 2)
    return runs


@pytest.fixture(scope="module")
def churn_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The store of :func:`_churn`, built once for the tests that only load from it."""
    root = tmp_path_factory.mktemp("churn")
    with pytest.MonkeyPatch.context() as patch, fluent_store(root):
        patch.setenv("NBTRACK_USER", "alice")
        runs = _churn(nbtrack)
    return root, runs


@pytest.fixture
def models(churn_store):
    """The fluent API on a session of its own over the shared store, and the run ids."""
    root, runs = churn_store
    with fluent_store(root):
        yield nbtrack, runs


@pytest.fixture
def own_models(tracking, monkeypatch):
    """The same models in a store of the test's own, for the tests that change a package."""
    monkeypatch.setenv("NBTRACK_USER", "alice")
    return tracking, _churn(tracking)


def _predictions(c: float):
    return classifier(c).predict(iris()[0])


@pytest.mark.parametrize(
    ("uri", "c"),
    [
        ("runs:/{run0}/model", 0.01),
        ("models:/churn/1", 0.01),
        ("models:/churn/Production", 1.0),
        ("models:/churn/production", 1.0),
        ("models:/churn/Staging", 100.0),
        ("models:/churn/Archived", 0.01),
        ("models:/churn@champion", 1.0),
        ("models:/churn@Champion", 1.0),
        ("models:/churn/latest", 100.0),
        ("models:/churn@latest", 100.0),
    ],
)
def test_every_uri_form_loads_the_version_it_names(models, uri: str, c: float) -> None:
    tracking, runs = models
    loaded = tracking.load_model(uri.format(run0=runs[0]))
    assert (loaded.predict(iris()[0]) == _predictions(c)).all()
    assert (
        tracking.sklearn.load_model(uri.format(run0=runs[0])).predict(iris()[0]) == _predictions(c)
    ).all()
    assert (
        tracking.pyfunc.load_model(uri.format(run0=runs[0])).predict(iris()[0]) == _predictions(c)
    ).all()


def test_a_run_id_prefix_and_a_folder_load_too(models, tmp_path) -> None:
    tracking, runs = models
    assert (
        tracking.load_model(f"runs:/{runs[1][:10]}/model").predict(iris()[0]) == _predictions(1.0)
    ).all()
    folder = artifacts(tracking, runs[2]) / "model"
    assert (tracking.load_model(str(folder)).predict(iris()[0]) == _predictions(100.0)).all()
    assert (tracking.load_model(folder.as_uri()).predict(iris()[0]) == _predictions(100.0)).all()
    tracking.load_model("models:/churn/2", dst_path=tmp_path / "copy")
    assert (tmp_path / "copy" / "MLmodel").is_file()


@pytest.mark.parametrize(
    ("uri", "error", "message"),
    [
        ("runs:/0123456789abcdef0123456789abcdef/model", NotFoundError, "not found"),
        ("runs:/{run0}/nothing", NotFoundError, "has no model at 'nothing'"),
        ("runs:/{run0}", InvalidParameterError, "runs:/<run_id>/model"),
        ("runs:/{run0}/../../etc", InvalidParameterError, "may not leave"),
        ("models:/nope/1", NotFoundError, r"'nope' not found \(registered models: churn\)"),
        ("models:/churn/9", NotFoundError, r"no version 9 \(versions: 1, 2, 3\)"),
        ("models:/churn/None", NotFoundError, "no version in stage None"),
        ("models:/churn/Prod", InvalidParameterError, "not a version number, a stage"),
        ("models:/churn@nope", NotFoundError, r"no alias 'nope' \(aliases: champion\)"),
        ("models:/churn", InvalidParameterError, "models:/NAME/VERSION"),
        ("s3://bucket/model", InvalidParameterError, "not supported"),
    ],
)
def test_unknown_names_versions_stages_and_aliases_get_clear_errors(
    models, uri, error, message
) -> None:
    tracking, runs = models
    with pytest.raises(error, match=message):
        tracking.load_model(uri.format(run0=runs[0]))


class _Payload:
    """Unpickling this writes a marker file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("uri", ["runs:/{run1}/model", "models:/churn/2", "models:/churn@champion"])
def test_a_changed_pickle_is_refused_before_it_is_unpickled(own_models, tmp_path, uri: str) -> None:
    tracking, runs = own_models
    marker = tmp_path / "pwned"
    (artifacts(tracking, runs[1]) / "model" / "model.pkl").write_bytes(
        pickle.dumps(_Payload(str(marker)))
    )
    with pytest.raises(ModelIntegrityError, match=r"model\.pkl: sha256 .* was recorded") as refused:
        tracking.load_model(uri.format(run1=runs[1]))
    assert "Refusing to load" in str(refused.value)
    with pytest.raises(ModelIntegrityError):
        tracking.sklearn.load_model(uri.format(run1=runs[1]))
    assert not marker.exists()
    assert (tracking.load_model("models:/churn/1").predict(iris()[0]) == _predictions(0.01)).all()


def test_missing_added_and_edited_files_are_refused(own_models) -> None:
    tracking, runs = own_models
    folder = artifacts(tracking, runs[2]) / "model"
    (folder / "extra.py").write_text("print('hi')")
    with pytest.raises(ModelIntegrityError, match=r"extra\.py: not recorded"):
        tracking.load_model("models:/churn/3")
    (folder / "extra.py").unlink()
    (folder / "requirements.txt").unlink()
    with pytest.raises(ModelIntegrityError, match=r"requirements\.txt: missing"):
        tracking.load_model("models:/churn/Staging")
    folder = artifacts(tracking, runs[0]) / "model"
    (folder / "MLmodel").write_text(
        (folder / "MLmodel").read_text().replace("predict", "predict_proba")
    )
    with pytest.raises(ModelIntegrityError, match="MLmodel: sha256"):
        tracking.load_model(f"runs:/{runs[0]}/model")
    with pytest.raises(ModelIntegrityError):  # registering a changed package is refused too
        tracking.register_model(f"runs:/{runs[0]}/model", "other")
