"""Differential test: the same registry built in nbtrack and in a real MLflow searches alike.

``build_registry`` makes registered models and versions (tags, stages, aliases, a rename,
a deletion) through the MlflowClient API of whichever side it is given: once against
MLflow with a sqlite tracking and registry store (the ``mlflow`` extra), once against
nbtrack. Every test then asks both ``search_model_versions`` or ``search_registered_models``
the same question and asserts the same answer, compared as (model name, version) in order.
Run ids differ between the sides, so filters naming them are templates filled per side.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

import nbtrack
from model_helpers import logged_run
from nbtrack.errors import InvalidFilterError
from nbtrack.registry import MissingReasonWarning
from store_helpers import fluent_store

pytestmark = [
    pytest.mark.slow,  # builds a real MLflow registry
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated",  # MLflow's SQLAlchemy usage
        "ignore::FutureWarning",  # MLflow deprecates stages
    ),
]
RUNS = ("a", "b", "c", "d")


# --- the scenario ---------------------------------------------------------------------------


@dataclass
class Built:
    """What a side's registry holds: run ids by name (the versions' sources)."""

    runs: dict[str, str] = field(default_factory=dict)


def _tick() -> None:
    """Let the clock move on, so no two changes share a millisecond (the default order of
    model versions is their last update, newest first)."""
    time.sleep(0.004)


def build_registry(client: Any, new_run: Callable[[str], str]) -> Built:
    """The same models and versions, made through ``client`` (MLflow's or nbtrack's)."""
    built = Built({name: new_run(name) for name in RUNS})

    def version(model: str, run: str, tags: dict[str, str] | None = None) -> None:
        _tick()
        run_id = built.runs[run]
        client.create_model_version(model, f"runs:/{run_id}/model", run_id=run_id, tags=tags)

    def change(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        _tick()
        call(*args, **kwargs)

    change(client.create_registered_model, "churn", tags={"team": "risk", "tier": "gold"})
    version("churn", "a", {"validation": "passed", "data": "v1"})
    version("churn", "b", {"validation": "failed", "data": "v2"})
    change(client.create_registered_model, "fraud", tags={"team": "Risk", "region": "Zürich"})
    version("fraud", "a", {"validation": "passed", "note": "it's quoted"})
    version("churn", "c")
    change(client.create_registered_model, "upsell 50%")
    version("upsell 50%", "d", {"validation": "PASSED"})
    version("upsell 50%", "b")
    version("upsell 50%", "c")
    change(client.create_registered_model, "Churn_EU", tags={"team": "risk_eu"})
    version("Churn_EU", "c", {"data": "v1"})
    change(client.transition_model_version_stage, "churn", 1, "Staging")
    change(client.transition_model_version_stage, "churn", 2, "Production")
    change(client.transition_model_version_stage, "churn", 3, "Production", True)  # archives 2
    change(client.transition_model_version_stage, "fraud", 1, "Production")
    change(client.update_model_version, "upsell 50%", 1, description="the first")
    # Tags and aliases set later do not count as updates in MLflow.
    change(client.set_model_version_tag, "churn", 3, "validation", "passed")
    change(client.set_registered_model_tag, "fraud", "tier", "silver")
    change(client.set_registered_model_alias, "churn", "champion", 3)
    change(client.update_registered_model, "Churn_EU", description="Europe")
    change(client.create_registered_model, "to rename")
    version("to rename", "d", {"data": "v3"})
    change(client.rename_registered_model, "to rename", "renamed")
    change(client.delete_model_version, "upsell 50%", 2)
    change(client.create_registered_model, "no versions")
    return built


VERSIONS = [
    ("Churn_EU", 1),
    ("churn", 1),
    ("churn", 2),
    ("churn", 3),
    ("fraud", 1),
    ("renamed", 1),
    ("upsell 50%", 1),
    ("upsell 50%", 3),
]


# --- the two sides --------------------------------------------------------------------------


@dataclass
class Side:
    name: str
    client: Any
    built: Built

    def fill(self, template: str) -> str:
        """A filter template with ``{run[a]}`` filled in with this side's run ids."""
        return template.format(run=self.built.runs)

    def versions(
        self, filter_string: str = "", order_by: list[str] | None = None, max_results: int = 1000
    ) -> list[tuple[str, int]]:
        found = self.client.search_model_versions(
            self.fill(filter_string), max_results=max_results, order_by=order_by
        )
        return [(v.name, int(v.version)) for v in found]

    def models(
        self, filter_string: str = "", order_by: list[str] | None = None, max_results: int = 100
    ) -> list[str]:
        found = self.client.search_registered_models(
            self.fill(filter_string), max_results=max_results, order_by=order_by
        )
        return [m.name for m in found]


@pytest.fixture(scope="module")
def mlflow_side(tmp_path_factory: pytest.TempPathFactory) -> Side:
    """The registry built once in a real MLflow with one sqlite tracking and registry store."""
    root = tmp_path_factory.mktemp("mlflow-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("registry", artifact_location=(root / "art").as_uri())

    def new_run(name: str) -> str:
        return client.create_run(experiment, run_name=name).info.run_id

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return Side("mlflow", client, build_registry(client, new_run))


@pytest.fixture(scope="module")
def nbtrack_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Built]:
    """The registry built once in an nbtrack store; returns its folder and the run ids."""
    with fluent_store(tmp_path_factory.mktemp("nbtrack-registry")) as path:
        with warnings.catch_warnings():
            # MLflow-style moves without a reason warn, and record "no reason given".
            warnings.simplefilter("ignore", MissingReasonWarning)
            built = build_registry(nbtrack.MlflowClient(), lambda _: logged_run(nbtrack, 0.9))
        nbtrack.flush()
    return path, built


@pytest.fixture
def sides(tracking: Any, mlflow_side: Side, nbtrack_store: tuple[Path, Built]) -> tuple[Side, Side]:
    """MLflow's side, and nbtrack's: the conftest ``tracking`` fixture on the built store."""
    path, built = nbtrack_store
    tracking.set_tracking_uri(path)
    return mlflow_side, Side("nbtrack", tracking.MlflowClient(), built)


def test_both_registries_hold_the_same_versions(sides: tuple[Side, Side]) -> None:
    ml, nb = sides
    assert sorted(ml.versions()) == sorted(nb.versions()) == VERSIONS
    for name, number in VERSIONS:
        expected, got = (
            ml.client.get_model_version(name, number),
            nb.client.get_model_version(name, number),
        )
        assert (got.current_stage, got.tags, got.aliases, got.description) == (
            expected.current_stage,
            expected.tags,
            expected.aliases,
            expected.description,
        ), (name, number)


# --- model versions: filters ----------------------------------------------------------------

VERSION_FILTERS = [
    "",
    # name: every string comparator, LIKE's wildcards and case, IN lists
    "name = 'churn'",
    'name = "churn"',
    "attribute.name = 'fraud'",
    "name != 'churn'",
    "name LIKE 'ch%'",
    "name LIKE 'Ch%'",
    "name ILIKE 'ch%'",
    "name ILIKE 'CHURN_eu'",
    "name LIKE 'churn_'",
    "name LIKE '%50%'",
    "name LIKE '%5_\\%'",
    "name LIKE 'upsell 50_'",
    "name LIKE '%'",
    "name IN ('churn', 'fraud')",
    "name IN ('churn')",
    "name NOT IN ('churn', 'fraud')",
    # version_number: numbers, and a quoted number as MLflow's sqlite store casts it
    "version_number = 1",
    "version_number != 1",
    "version_number > 1",
    "version_number >= 2",
    "version_number < 2",
    "version_number <= 3",
    "version_number > -1",
    "version_number = '2'",
    "version_number = ' 3'",
    # run_id and source_path
    "run_id = '{run[a]}'",
    "run_id != '{run[a]}'",
    "run_id IN ('{run[a]}', '{run[c]}')",
    "run_id NOT IN ('{run[a]}')",
    "run_id LIKE '%'",
    "source_path = 'runs:/{run[b]}/model'",
    "source_path != 'runs:/{run[b]}/model'",
    "source_path LIKE 'runs:/%/model'",
    "source_path LIKE '%{run[c]}%'",
    "source_path ILIKE 'RUNS:/{run[d]}%'",
    "source_path LIKE 'RUNS:/%'",
    # tags
    "tags.validation = 'passed'",
    "tags.validation != 'passed'",
    "tags.validation LIKE 'pass%'",
    "tags.validation LIKE 'PASS%'",
    "tags.validation ILIKE 'PASS%'",
    "tag.data = 'v1'",
    "tags.`data` = 'v2'",
    "tags.\"data\" LIKE 'v_'",
    "tags.missing = 'x'",
    "tags.missing != 'x'",
    "tags.note = 'it''s quoted'",  # taken verbatim, as in MLflow: matches nothing
    'tags.note = "it\'s quoted"',
    "tags.note LIKE '%''%'",
    # AND chains
    "name = 'churn' and tags.validation = 'passed'",
    "name LIKE 'ch%' AND version_number >= 2 AND run_id != '{run[a]}'",
    "tags.validation = 'passed' and tags.data = 'v1'",
    "tags.validation = 'passed' AND tags.validation != 'failed'",
    "name IN ('churn', 'upsell 50%') and tags.validation ILIKE 'passed'",
    "run_id = '{run[c]}' and name != 'churn' and version_number = 1",
]


@pytest.mark.parametrize("filter_string", VERSION_FILTERS)
def test_version_filters_find_the_same_versions(sides: tuple[Side, Side], filter_string) -> None:
    ml, nb = sides
    expected = ml.versions(filter_string)
    assert nb.versions(filter_string) == expected


# --- model versions: order_by ---------------------------------------------------------------

VERSION_ORDERS = [
    None,
    ["name ASC"],
    ["name DESC"],
    ["version_number"],
    ["version_number DESC"],
    ["attribute.version_number DESC", "name ASC"],
    ["creation_timestamp ASC"],
    ["creation_timestamp DESC"],
    ["last_updated_timestamp ASC"],
    ["last_updated_timestamp DESC"],
    ["last_updated_timestamp DESC", "name DESC"],
    ["name DESC", "version_number ASC"],
]
VERSION_ORDER_CASES = [
    ("", None),
    ("", 3),
    ("tags.validation = 'passed'", None),
    ("name LIKE '%u%'", 2),
]


@pytest.mark.parametrize(("filter_string", "max_results"), VERSION_ORDER_CASES)
@pytest.mark.parametrize("order_by", VERSION_ORDERS, ids=lambda o: ",".join(o or ["default"]))
def test_version_order_by_gives_the_same_sequence(
    sides: tuple[Side, Side], order_by, filter_string: str, max_results: int | None
) -> None:
    ml, nb = sides
    limit = {} if max_results is None else {"max_results": max_results}
    expected = ml.versions(filter_string, order_by, **limit)
    assert nb.versions(filter_string, order_by, **limit) == expected


# --- registered models ----------------------------------------------------------------------

MODEL_FILTERS = [
    "",
    "name = 'churn'",
    "attribute.name = 'fraud'",
    "name != 'churn'",
    "name LIKE '%u%'",
    "name LIKE 'Churn%'",
    "name ILIKE 'churn%'",
    "name LIKE '%50\\%'",
    "name IN ('churn', 'renamed', 'to rename')",
    "name NOT IN ('churn')",
    "tags.team = 'risk'",
    "tags.team != 'risk'",
    "tags.team LIKE 'risk%'",
    "tags.team ILIKE 'risk%'",
    "tags.tier = 'silver'",
    "tags.region ILIKE 'zü%'",
    "tags.region ILIKE 'ZÜ%'",  # SQLite's lower() folds ASCII letters only
    "tags.team = 'risk' and tags.tier = 'gold'",
    "name LIKE '%r%' and tags.team ILIKE 'RISK'",
]
MODEL_ORDERS = [
    None,
    ["name DESC"],
    ["timestamp DESC"],
    ["timestamp"],
    ["last_updated_timestamp ASC"],
    ["last_updated_timestamp DESC", "name ASC"],
    ["name ASC", "timestamp DESC"],
]


@pytest.mark.parametrize("filter_string", MODEL_FILTERS)
def test_model_filters_find_the_same_models(sides: tuple[Side, Side], filter_string) -> None:
    ml, nb = sides
    expected = ml.models(filter_string)
    assert nb.models(filter_string) == expected


@pytest.mark.parametrize("max_results", [100, 2])
@pytest.mark.parametrize("order_by", MODEL_ORDERS, ids=lambda o: ",".join(o or ["default"]))
def test_model_order_by_gives_the_same_sequence(
    sides: tuple[Side, Side], order_by, max_results: int
) -> None:
    ml, nb = sides
    expected = ml.models("", order_by, max_results)
    assert nb.models("", order_by, max_results) == expected


# --- what both refuse -----------------------------------------------------------------------

INVALID_VERSION_FILTERS = [
    "version_number = 1.5",
    "version_number = '1.0'",
    "version_number = 'one'",
    "version_number LIKE '1'",
    "version_number IN ('1')",
    "name > 'a'",
    "name = churn",
    "run_id = 5",
    "tags.validation = 1",
    "attributes.name = 'churn'",  # MLflow spells it "attribute" here
    "NAME = 'churn'",
    "Tags.validation = 'passed'",
    "nonsense = 'x'",
    "metrics.acc > 1",
    "source_path IN ('x')",
    "tags.validation IS NULL",
    "tags.validation IN ('passed')",
    "name = 'churn' OR name = 'fraud'",
    "(name = 'churn')",
]
INVALID_VERSION_ORDERS = [
    ["current_stage"],
    ["tags.validation"],
    ["timestamp"],
    ["version_number", "version_number DESC"],
    ["name UP"],
    ["run_id"],
]
INVALID_MODEL_FILTERS = [
    "version_number = 1",
    "run_id = 'x'",
    "tags.team IS NULL",
    "name > 'a'",
    "attributes.name = 'churn'",
    "name LIKE 1",
]
INVALID_MODEL_ORDERS = [
    ["timestamp", "last_updated_timestamp"],
    ["tags.team"],
    ["version_number"],
    ["name sideways"],
]


REFUSED = [
    *[("versions", {"filter_string": f}) for f in INVALID_VERSION_FILTERS],
    *[("versions", {"order_by": o}) for o in INVALID_VERSION_ORDERS],
    *[("models", {"filter_string": f}) for f in INVALID_MODEL_FILTERS],
    *[("models", {"order_by": o}) for o in INVALID_MODEL_ORDERS],
]


@pytest.mark.parametrize(("search", "question"), REFUSED, ids=lambda p: str(p))
def test_what_mlflow_refuses_nbtrack_refuses(sides, search: str, question: dict) -> None:
    ml, nb = sides
    with pytest.raises(Exception):  # noqa: B017 - MLflow raises MlflowException or others
        getattr(ml, search)(**question)
    with pytest.raises(InvalidFilterError):
        getattr(nb, search)(**question)


# --- deliberate differences, pinned so they stay known --------------------------------------

# MLflow's parser drops a stray AND and reads two clauses without one as joined; nbtrack
# refuses both, as it does for runs (see test_mlflow_differential.py).
LENIENT_IN_MLFLOW = [
    ("name = 'churn' and", "name = 'churn'"),
    ("name = 'churn' version_number = 1", "name = 'churn' and version_number = 1"),
]


@pytest.mark.parametrize(("lenient", "strict"), LENIENT_IN_MLFLOW)
def test_nbtrack_refuses_version_filters_mlflow_reads_leniently(sides, lenient, strict) -> None:
    ml, nb = sides
    assert ml.versions(lenient) == ml.versions(strict) == nb.versions(strict)
    with pytest.raises(InvalidFilterError):
        nb.versions(lenient)


@pytest.mark.parametrize(
    "filter_string",
    ["current_stage = 'Production'", "current_stage IN ('Staging', 'Archived')"],
)
def test_nbtrack_also_filters_versions_by_stage(sides, filter_string) -> None:
    # MLflow filters no stage (stages are deprecated there); nbtrack keeps the filter its
    # registry had. It finds what filtering MLflow's versions by stage finds.
    ml, nb = sides
    wanted = {"Production"} if "=" in filter_string else {"Staging", "Archived"}
    with pytest.raises(Exception, match="current_stage"):
        ml.versions(filter_string)
    found = ml.client.search_model_versions("")
    expected = [(v.name, int(v.version)) for v in found if v.current_stage in wanted]
    assert nb.versions(filter_string) == expected


def test_nbtrack_orders_models_by_creation_as_mlflows_file_store_does(sides) -> None:
    # MLflow's sqlite store refuses creation_timestamp for registered models (and orders
    # by the last update for "timestamp"); its file store, and nbtrack, order by creation.
    ml, nb = sides
    with pytest.raises(Exception, match="creation_timestamp"):
        ml.models("", ["creation_timestamp"])
    found = ml.client.search_registered_models()
    by_creation = [m.name for m in sorted(found, key=lambda m: m.creation_timestamp)]
    assert nb.models("", ["creation_timestamp"]) == by_creation
    assert nb.models("", ["creation_timestamp DESC"]) == by_creation[::-1]


def test_nbtrack_reads_attribute_names_in_model_order_by(sides) -> None:
    # MLflow's sqlite store matches registered models' order_by against bare names only;
    # nbtrack reads every order_by alike, so "attribute.name" is "name".
    ml, nb = sides
    with pytest.raises(Exception, match=r"attribute\.name"):
        ml.models("", ["attribute.name DESC"])
    assert nb.models("", ["attribute.name DESC"]) == ml.models("", ["name DESC"])
