"""Train scikit-learn models and lay out an MLServer model repository: run by the mlserver side venv's python.

Usage: python mlserver_train.py REPOSITORY_DIR

Writes one folder per model (``model.joblib`` saved with joblib, and the
``model-settings.json`` MLServer reads), ``oip_test_runtimes.py`` (runtimes
that misbehave on purpose: slow replies, 503s) and ``expected.json``: per
data set, the feature rows in the order the model was trained on, and the
training library's own ``predict`` and ``predict_proba`` (the oracle), with
its class order. It must not import the project: this venv has other pins.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

#: The iris model is trained on its columns in this order, not the data type's, so binding by name matters.
IRIS_TRAINED_ORDER = ["petal_width", "sepal_length", "petal_length", "sepal_width"]
IRIS_SCHEMA_ORDER = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

RUNTIMES = '''
"""MLServer runtimes that misbehave on purpose, for the oip format's fault tests."""

import asyncio

from fastapi import status
from mlserver.errors import MLServerError
from mlserver_sklearn import SKLearnModel


class SlowSKLearnModel(SKLearnModel):
    """Answers correctly, after ``delay_ms`` (model-settings parameters.extra)."""

    async def predict(self, payload):
        await asyncio.sleep(self.settings.parameters.extra["delay_ms"] / 1000)
        return await super().predict(payload)


class FlakySKLearnModel(SKLearnModel):
    """Answers every other inference request with HTTP 503, the first one included."""

    calls = 0

    async def predict(self, payload):
        type(self).calls += 1
        if type(self).calls % 2 == 1:
            raise MLServerError("busy, try again", status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
        return await super().predict(payload)
'''


def _settings(name: str, version: str, width: int, implementation: str, extra: dict | None = None) -> dict:
    return {
        "name": name,
        "implementation": implementation,
        "parameters": {"uri": "./model.joblib", "version": version, "extra": extra or {}},
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, width]}],
    }


def _write(repo: Path, settings: dict, model) -> None:
    folder = repo / settings["name"]
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))


def main() -> None:
    repo = Path(sys.argv[1])
    repo.mkdir(parents=True, exist_ok=True)
    sklearn = "mlserver_sklearn.SKLearnModel"

    diabetes = load_diabetes()
    regressor = GradientBoostingRegressor(n_estimators=50, max_depth=3, random_state=0)
    regressor.fit(diabetes.data, diabetes.target)
    _write(repo, _settings("diabetes", "v1", diabetes.data.shape[1], sklearn), regressor)

    iris = load_iris()
    by_name = dict(zip(IRIS_SCHEMA_ORDER, iris.data.T))
    trained = [[float(by_name[n][i]) for n in IRIS_TRAINED_ORDER] for i in range(len(iris.data))]
    classifier = LogisticRegression(max_iter=1000).fit(trained, iris.target)
    _write(repo, _settings("iris", "v3", 4, sklearn), classifier)
    _write(repo, _settings("iris-slow", "v1", 4, "oip_test_runtimes.SlowSKLearnModel", {"delay_ms": 1000}), classifier)
    _write(repo, _settings("iris-flaky", "v1", 4, "oip_test_runtimes.FlakySKLearnModel"), classifier)
    (repo / "oip_test_runtimes.py").write_text(RUNTIMES.lstrip())

    expected = {
        "diabetes": {
            "feature_names": list(diabetes.feature_names),
            "rows": diabetes.data.tolist(),
            "predict": regressor.predict(diabetes.data).tolist(),
        },
        "iris": {
            "feature_names": IRIS_TRAINED_ORDER,
            "schema_order": IRIS_SCHEMA_ORDER,
            "rows": iris.data.tolist(),  # in the schema's order
            "classes": [str(c) for c in classifier.classes_],
            "predict": [int(p) for p in classifier.predict(trained)],
            "predict_proba": classifier.predict_proba(trained).tolist(),
        },
    }
    (repo / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main()
