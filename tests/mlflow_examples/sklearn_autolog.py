"""scikit-learn autologging as MLflow documents it: ``mlflow.sklearn.autolog()`` before fitting.

Written for nbtrack's tests in the shape of MLflow's sklearn autolog examples (a plain
estimator, a pipeline, a grid search whose best candidates become child runs, and a metric
computed after training), with scikit-learn's bundled diabetes data. Plain ``import
mlflow``: where it logs is MLFLOW_TRACKING_URI's business.
"""

import mlflow
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

X, y = load_diabetes(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

mlflow.set_experiment("sklearn-autolog")
mlflow.sklearn.autolog(log_input_examples=True, log_post_training_metrics=True)

with mlflow.start_run(run_name="linear"):
    linear = LinearRegression().fit(X_train, y_train)
    print("mse", mean_squared_error(y_test, linear.predict(X_test)))

with mlflow.start_run(run_name="pipeline"):
    Pipeline([("scale", StandardScaler()), ("ridge", Ridge(alpha=0.5))]).fit(X_train, y_train)

with mlflow.start_run(run_name="search"):
    search = GridSearchCV(Ridge(), {"alpha": [0.1, 1.0, 10.0]}, cv=3)
    search.fit(X_train, y_train)
    print("best", search.best_params_)
