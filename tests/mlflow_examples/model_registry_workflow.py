# ruff: noqa: UP031, E402, SIM115 - the documentation's own code style, kept as it is
"""MLflow's "Model Registry Workflows" documentation, API section, run as one program.

Source: docs/docs/classic-ml/model-registry/workflow.mdx in the MLflow repository. Its
Python snippets that run on a local machine are here in the documentation's order and with
its arguments, with these changes:

* ``import nbtrack as mlflow`` in place of ``import mlflow`` (and ``nbtrack.sklearn``,
  ``nbtrack.models``, ``from nbtrack import MlflowClient`` in place of the ``mlflow.``
  module paths);
* the doc's placeholders (a run id, "data", versions that earlier snippets did not create)
  are bound to what earlier snippets made, each marked ``# glue:``;
* the "Deleting" snippet runs last, because later snippets use the model it deletes;
* left out: Databricks / Unity Catalog, ``mlflow models serve`` (a shell command), the
  vaderSentiment ``PythonModel`` example (a third-party package and a flavor nbtrack does
  not provide), and ``mlflow.set_tracking_uri("sqlite:///mlruns.db")``: nbtrack keeps runs
  in a folder, which the test sets with NBTRACK_DIR.
"""

from pprint import pprint

# --- Adding an MLflow Model to the Model Registry: log_model(registered_model_name=...) ---
from sklearn.datasets import make_regression
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

import nbtrack as mlflow
import nbtrack.sklearn
from nbtrack.models import infer_signature

with mlflow.start_run() as run:
    X, y = make_regression(n_features=4, n_informative=2, random_state=0, shuffle=False)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
    params = {"max_depth": 2, "random_state": 42}
    model = RandomForestRegressor(**params)
    model.fit(X_train, y_train)

    y_pred = model.predict(X_test)
    signature = infer_signature(X_test, y_pred)

    mlflow.log_params(params)
    mlflow.log_metrics({"mse": mean_squared_error(y_test, y_pred)})

    mlflow.sklearn.log_model(
        sk_model=model,
        name="sklearn-model",
        signature=signature,
        registered_model_name="sk-learn-random-forest-reg-model",
    )

run_id = run.info.run_id  # glue: the doc writes a literal run id

# --- mlflow.register_model ---

result = mlflow.register_model(f"runs:/{run_id}/sklearn-model", "sk-learn-random-forest-reg")

# --- MlflowClient.create_registered_model: "throws an MlflowException" if the name exists ---

from nbtrack import MlflowClient

client = MlflowClient()
try:
    client.create_registered_model("sk-learn-random-forest-reg-model")
except mlflow.MlflowException as error:  # glue: the doc describes this outcome in prose
    print(f"create_registered_model raised: {error}")

client = MlflowClient()
result = client.create_model_version(
    name="sk-learn-random-forest-reg-model",
    source=f"mlruns/0/{run_id}/artifacts/sklearn-model",
    run_id=run_id,
)

# --- Deploy and Organize Models with Aliases and Tags ---

for _ in range(2):  # glue: the snippets address versions 1 and 2 of "example-model"
    mlflow.register_model(f"runs:/{run_id}/sklearn-model", "example-model")

client = MlflowClient()
client.set_registered_model_alias("example-model", "champion", 1)
client.set_registered_model_alias("example-model", "Champion", 2)
print("alias Champion ->", client.get_model_version_by_alias("example-model", "Champion").version)
client.delete_registered_model_alias("example-model", "Champion")

client = MlflowClient()
client.set_registered_model_tag("example-model", "task", "classification")
client.delete_registered_model_tag("example-model", "task")
client.set_model_version_tag("example-model", "1", "validation_status", "approved")
client.delete_model_version_tag("example-model", "1", "validation_status")

# --- Fetching an MLflow Model from the Model Registry ---

import nbtrack.pyfunc

data = X_test  # glue: the doc's "data"
model_name = "sk-learn-random-forest-reg-model"
model_version = 1
model = mlflow.pyfunc.load_model(model_uri=f"models:/{model_name}/{model_version}")
print("version 1 predicts", model.predict(data)[:3])

client.set_registered_model_alias(model_name, "champion", 1)  # glue: the alias to fetch by
model_name = "sk-learn-random-forest-reg-model"
alias = "champion"
champion_version = mlflow.pyfunc.load_model(f"models:/{model_name}@{alias}")
print("champion predicts", champion_version.predict(data)[:3])

# --- Promoting an MLflow Model across environments: copy_model_version ---

# glue: the snippet copies from a "regression-model-staging" model with a "candidate" alias
mlflow.register_model(f"runs:/{run_id}/sklearn-model", "regression-model-staging")
client.set_registered_model_alias("regression-model-staging", "candidate", 1)

client = MlflowClient()
client.copy_model_version(
    src_model_uri="models:/regression-model-staging@candidate",
    dst_name="regression-model-production",
)

# --- Adding or Updating an MLflow Model Descriptions ---

client = MlflowClient()
client.update_model_version(
    name="sk-learn-random-forest-reg-model",
    version=1,
    description="This model version is a scikit-learn random forest containing 100 decision trees",
)

# --- Renaming an MLflow Model ---

client = MlflowClient()
client.rename_registered_model(
    name="sk-learn-random-forest-reg-model",
    new_name="sk-learn-random-forest-reg-model-100",
)
# glue: the later snippets use the original name
client.rename_registered_model(
    "sk-learn-random-forest-reg-model-100", "sk-learn-random-forest-reg-model"
)

# --- Listing and Searching MLflow Models ---

client = MlflowClient()
for rm in client.search_registered_models():
    pprint(dict(rm), indent=4)

client = MlflowClient()
for mv in client.search_model_versions("name='sk-learn-random-forest-reg-model'"):
    pprint(dict(mv), indent=4)

# --- Registering a Model Saved Outside MLflow ---

import pickle

import numpy as np
from sklearn import datasets, linear_model
from sklearn.metrics import mean_squared_error, r2_score

diabetes_X, diabetes_y = datasets.load_diabetes(return_X_y=True)
diabetes_X = diabetes_X[:, np.newaxis, 2]
diabetes_X_train = diabetes_X[:-20]
diabetes_X_test = diabetes_X[-20:]
diabetes_y_train = diabetes_y[:-20]
diabetes_y_test = diabetes_y[-20:]


def print_predictions(m, y_pred):
    print("Coefficients: \n", m.coef_)
    print("Mean squared error: %.2f" % mean_squared_error(diabetes_y_test, y_pred))
    print("Coefficient of determination: %.2f" % r2_score(diabetes_y_test, y_pred))


lr_model = linear_model.LinearRegression()
lr_model.fit(diabetes_X_train, diabetes_y_train)
diabetes_y_pred = lr_model.predict(diabetes_X_test)
print_predictions(lr_model, diabetes_y_pred)

filename = "lr_model.pkl"
pickle.dump(lr_model, open(filename, "wb"))

loaded_model = pickle.load(open(filename, "rb"))

diabetes_X, diabetes_y = datasets.load_diabetes(return_X_y=True)
diabetes_X = diabetes_X[:, np.newaxis, 2]
signature = infer_signature(diabetes_X, diabetes_y)

reg_model_name = "SklearnLinearRegression"
print("--")
mlflow.sklearn.log_model(
    loaded_model,
    name="sk_learn",
    serialization_format="cloudpickle",
    signature=signature,
    registered_model_name=reg_model_name,
)

model_uri = f"models:/{reg_model_name}/1"
loaded_model = mlflow.sklearn.load_model(model_uri)
print("--")
diabetes_y_pred = loaded_model.predict(diabetes_X_test)
print_predictions(loaded_model, diabetes_y_pred)

# --- Deprecated: Using Model Stages ---

# glue: the snippets move version 3 and read the Staging version; make both exist
mlflow.register_model(f"runs:/{run_id}/sklearn-model", "sk-learn-random-forest-reg-model")
client.transition_model_version_stage(
    name="sk-learn-random-forest-reg-model", version=2, stage="Staging"
)

client = MlflowClient()
client.transition_model_version_stage(
    name="sk-learn-random-forest-reg-model", version=3, stage="Production"
)

model_name = "sk-learn-random-forest-reg-model"
stage = "Staging"
model = mlflow.pyfunc.load_model(model_uri=f"models:/{model_name}/{stage}")
print("Staging predicts", model.predict(data)[:3])

client = MlflowClient()
client.transition_model_version_stage(
    name="sk-learn-random-forest-reg-model", version=3, stage="Archived"
)

# --- Migrating from Stages: assign an alias to the latest version in a stage ---

client = MlflowClient()


def assign_alias_to_stage(model_name, stage, alias):
    latest_mv = client.get_latest_versions(model_name, stages=[stage])[0]
    client.set_registered_model_alias(model_name, alias, latest_mv.version)


assign_alias_to_stage("sk-learn-random-forest-reg-model", "Staging", "challenger")  # glue: a call

# --- Deleting MLflow Models (moved last) ---

client = MlflowClient()
versions = [1, 2, 3]
for version in versions:
    client.delete_model_version(name="sk-learn-random-forest-reg-model", version=version)

client.delete_registered_model(name="sk-learn-random-forest-reg-model")
print("workflow done")
