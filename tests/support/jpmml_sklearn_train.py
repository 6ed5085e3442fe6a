"""Train a scikit-learn pipeline and export it with sklearn2pmml: run by the sklearn2pmml side venv's python.

Usage: python jpmml_sklearn_train.py KIND OUT_DIR

Writes OUT_DIR/model.pmml, OUT_DIR/rows.json (the feature rows, as JSON
objects) and OUT_DIR/expected.json (the pipeline's own predict and
predict_proba, with the class order), so a test in the project's venv can
compare the PMML, as served, with the training library. It must not import
the project: this venv has other pins.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier
from sklearn2pmml import sklearn2pmml
from sklearn2pmml.pipeline import PMMLPipeline


def loans(n: int = 600) -> tuple[pd.DataFrame, pd.Series]:
    """A seeded data set with string categoricals: which loans default."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "purpose": rng.choice(["car", "home", "education", "business"], n),
            "income": np.round(rng.normal(50_000, 15_000, n), 2),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "years": rng.integers(0, 30, n).astype(float),
        }
    )
    risk = (frame.purpose == "business") * 1.2 + (frame.region == "south") * 0.8 - frame.income / 40_000
    label = (risk + rng.normal(0, 0.5, n) > 0).map({True: "default", False: "repaid"})
    return frame, label.rename("outcome")


def main() -> None:
    kind, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    frame, label = loans()
    classifier = {"logistic": LogisticRegression(max_iter=1000), "tree": DecisionTreeClassifier(max_depth=5)}[kind]
    encode = ColumnTransformer([("onehot", OneHotEncoder(), ["purpose", "region"])], remainder="passthrough")
    pipeline = PMMLPipeline([("encode", encode), ("classify", classifier)])
    pipeline.fit(frame, label)
    sklearn2pmml(pipeline, str(out / "model.pmml"))
    (out / "rows.json").write_text(json.dumps(frame.to_dict(orient="records")))
    expected = {
        "classes": [str(c) for c in pipeline.classes_],
        "predict": [str(p) for p in pipeline.predict(frame)],
        "predict_proba": pipeline.predict_proba(frame).tolist(),
    }
    (out / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main()
