"""A custom ``mlflow.pyfunc.PythonModel`` logged, registered and loaded back, as MLflow's
"custom Python models" documentation does it.

Written for nbtrack's tests in the shape of MLflow's pyfunc examples: a model class with a
``predict`` (and an artifact it reads in ``load_context``), logged with an input example
and a signature, registered, then loaded by URI and used. Plain ``import mlflow``.
"""

import json
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature


class ScaledSum(mlflow.pyfunc.PythonModel):
    """Sums each row's columns, times a factor kept in an artifact."""

    def load_context(self, context):
        self.factor = json.loads(Path(context.artifacts["config"]).read_text())["factor"]

    def predict(self, context, model_input, params=None):
        return model_input.sum(axis=1) * self.factor


examples = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.5, 0.25, 0.0]})
config = Path(tempfile.mkdtemp()) / "config.json"
config.write_text(json.dumps({"factor": 3}))

mlflow.set_experiment("pyfunc-models")
with mlflow.start_run(run_name="scaled-sum") as run:
    mlflow.log_param("factor", 3)
    signature = infer_signature(examples, examples.sum(axis=1) * 3)
    info = mlflow.pyfunc.log_model(
        name="scaled_sum",
        python_model=ScaledSum(),
        artifacts={"config": str(config)},
        input_example=examples,
        signature=signature,
        registered_model_name="scaled-sum",
    )
    mlflow.log_metric("rows", len(examples))

for uri in (f"runs:/{run.info.run_id}/scaled_sum", info.model_uri, "models:/scaled-sum/1"):
    model = mlflow.pyfunc.load_model(uri)
    print(uri.split(":")[0], list(model.predict(examples)))
