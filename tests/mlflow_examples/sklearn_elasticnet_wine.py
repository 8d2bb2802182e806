# ruff: noqa: UP031, UP032 - the example's own string formatting, kept as it is
"""MLflow's scikit-learn ElasticNet wine example (examples/sklearn_elasticnet_wine/train.py).

The same program, step for step, with two changes:
  1. ``import nbtrack as mlflow`` (and ``import nbtrack.sklearn``) instead of MLflow's imports;
  2. local data: the example downloads winequality-red.csv (UCI wine quality, 11 features
     and a 3-9 ``quality`` score). There is no network here and the CSV is not available
     offline, so scikit-learn's bundled wine dataset (13 chemical features) stands in, with
     its class label (0-2) as the ``quality`` column the rest of the program expects.
"""

import logging
import sys
import warnings
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

import nbtrack as mlflow
import nbtrack.sklearn

logging.basicConfig(level=logging.WARN)
logger = logging.getLogger(__name__)


def eval_metrics(actual, pred):
    rmse = np.sqrt(mean_squared_error(actual, pred))
    mae = mean_absolute_error(actual, pred)
    r2 = r2_score(actual, pred)
    return rmse, mae, r2


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    np.random.seed(40)

    try:
        # Change 2 (local data), in place of pd.read_csv(csv_url, sep=";").
        from sklearn.datasets import load_wine

        wine = load_wine(as_frame=True)
        data = pd.concat([wine.data, wine.target.rename("quality")], axis=1)
    except Exception as e:
        logger.exception("Unable to load the training & test data. Error: %s", e)

    # 75% train, 25% test, as train_test_split does by default.
    train, test = train_test_split(data)

    # "quality" is the column to predict.
    train_x = train.drop(["quality"], axis=1)
    test_x = test.drop(["quality"], axis=1)
    train_y = train[["quality"]]
    test_y = test[["quality"]]

    alpha = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
    l1_ratio = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5

    with mlflow.start_run():
        lr = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, random_state=42)
        lr.fit(train_x, train_y)

        predicted_qualities = lr.predict(test_x)

        (rmse, mae, r2) = eval_metrics(test_y, predicted_qualities)

        print("Elasticnet model (alpha={:f}, l1_ratio={:f}):".format(alpha, l1_ratio))
        print("  RMSE: %s" % rmse)
        print("  MAE: %s" % mae)
        print("  R2: %s" % r2)

        mlflow.log_param("alpha", alpha)
        mlflow.log_param("l1_ratio", l1_ratio)
        mlflow.log_metric("rmse", rmse)
        mlflow.log_metric("r2", r2)
        mlflow.log_metric("mae", mae)

        tracking_url_type_store = urlparse(mlflow.get_tracking_uri()).scheme

        # The example registers the model unless the store is a local file store.
        if tracking_url_type_store != "file":
            mlflow.sklearn.log_model(lr, "model", registered_model_name="ElasticnetWineModel")
        else:
            mlflow.sklearn.log_model(lr, "model")
