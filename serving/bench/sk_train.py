"""Train the bench's scikit-learn model and lay out its MLServer model repository: run by MLServer's venv python.

Usage: python -P sk_train.py ROWS_JSON REPOSITORY_DIR NAME SEED

``ROWS_JSON`` holds ``{"features": [[...], ...], "target": [...]}`` (the wine
reference rows and their quality). Writes ``REPOSITORY_DIR/NAME/`` with
``model.joblib`` (saved by this venv's joblib, so MLServer's scikit-learn
loads it) and ``model-settings.json``, and ``REPOSITORY_DIR/NAME.params.json``:
the fitted parameters (scaler mean and scale, coefficients, intercepts,
classes), the scikit-learn version, and this model's own ``predict_proba``
on every row, against which the embedded ONNX copy is checked.

It must not import the project: this venv has other pins.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main() -> None:
    """Train, save the joblib and its model-settings.json, and write the parameters (see the module docstring)."""
    rows_json, repository, name, seed = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    data = json.loads(rows_json.read_text())
    features = np.asarray(data["features"], dtype=np.float64)
    target = np.asarray(data["target"], dtype=np.int64)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(features, target)
    scaler, classifier = model[0], model[-1]

    folder = repository / name
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    settings = {
        "name": name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"},
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, features.shape[1]]}],
    }
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))
    params = {
        "sklearn_version": sklearn.__version__,
        "mean": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "var": scaler.var_.tolist(),
        "coef": classifier.coef_.tolist(),
        "intercept": classifier.intercept_.tolist(),
        "classes": classifier.classes_.tolist(),
        "n_iter": classifier.n_iter_.tolist(),
        "predict_proba": model.predict_proba(features).tolist(),
    }
    (repository / f"{name}.params.json").write_text(json.dumps(params))


if __name__ == "__main__":
    main()
