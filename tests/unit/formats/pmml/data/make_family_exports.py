"""Regenerate the sklearn2pmml exports the family tests score (run with the sklearn2pmml side venv's python).

Usage: .cache/venvs/sklearn2pmml/bin/python tests/unit/formats/pmml/data/make_family_exports.py

Small fits on iris and on the first 5 diabetes features (the first 120 rows
for the models that store their training rows), each kept under 50 KB.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.datasets import load_diabetes, load_iris
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.svm import SVC, SVR
from sklearn2pmml import sklearn2pmml
from sklearn2pmml.pipeline import PMMLPipeline

OUT = Path(__file__).parent


def main() -> None:
    iris = load_iris(as_frame=True)
    xi = iris.data.set_axis(["sl", "sw", "pl", "pw"], axis=1)
    yi = pd.Series(iris.target_names[iris.target], name="species")
    diabetes = load_diabetes(as_frame=True)
    xd, yd = diabetes.data.iloc[:, :5], diabetes.target.rename("y")
    xs, ys = xd.iloc[:120], yd.iloc[:120]
    models = {
        "family_mlp_classifier": (MLPClassifier(hidden_layer_sizes=(5,), max_iter=2000, random_state=1), xi, yi),
        "family_mlp_classifier_tanh": (
            MLPClassifier(hidden_layer_sizes=(4, 3), activation="tanh", max_iter=2000, random_state=1), xi, yi),
        "family_mlp_regressor": (MLPRegressor(hidden_layer_sizes=(6,), max_iter=3000, random_state=1), xd, yd),
        "family_gaussian_nb": (GaussianNB(), xi, yi),
        "family_svc_rbf": (SVC(), xi, yi),
        "family_svc_poly": (SVC(kernel="poly", degree=2), xi, yi),
        "family_svr": (SVR(C=50.0), xs, ys),
        "family_knn_classifier": (KNeighborsClassifier(n_neighbors=5), xi, yi),
        "family_knn_regressor": (KNeighborsRegressor(n_neighbors=4, weights="distance"), xs, ys),
    }  # fmt: skip
    for name, (estimator, x, y) in models.items():
        pipeline = PMMLPipeline([("model", estimator)])
        pipeline.fit(x, y)
        sklearn2pmml(pipeline, str(OUT / f"{name}.pmml"))


if __name__ == "__main__":
    main()
