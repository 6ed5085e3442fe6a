"""Train small seeded models and export them with sklearn2pmml (JPMML-SkLearn): the PMML test set.

Usage (with the sklearn2pmml side venv's python, ``make sidevenvs``)::

    .cache/venvs/sklearn2pmml/bin/python scripts/export_sklearn_models.py KIND OUT_DIR
    .cache/venvs/sklearn2pmml/bin/python scripts/export_sklearn_models.py all OUT_DIR

For each kind this writes ``OUT_DIR/KIND/``:

- ``model.pmml``: the export;
- ``rows.json``: the feature rows, as JSON objects keyed by the PMML's input names;
- ``expected.json``: the training library's own answers on those rows, ``{"function":
  "classification"|"regression", "predict": [...], "classes": [...], "predict_proba": [[...]]}``
  (labels as strings; ``classes`` is the column order of ``predict_proba``, which is
  absent when the estimator has none, e.g. an SVC);
- ``manifest.json``: kind, estimator, data set, row count and library versions.

``all`` writes every kind and ``OUT_DIR/manifest.json`` listing them, in one process
(sklearn2pmml starts a JVM per export; Python starts once). Everything is seeded, so
reruns give the same files. It must not import the project: this venv has its own pins.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import sklearn2pmml as s2p
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, PoissonRegressor, Ridge, TweedieRegressor
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn2pmml import sklearn2pmml
from sklearn2pmml.pipeline import PMMLPipeline

SEED = 7
MAX_ROWS = 300


def _identifier(name: str) -> str:
    """``sepal length (cm)`` -> ``sepal_length_cm``: field names every consumer reads alike."""
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")


def sklearn_data(name: str, string_labels: bool = False) -> tuple[pd.DataFrame, pd.Series]:
    """A scikit-learn toy data set, at most MAX_ROWS rows (a seeded sample), with identifier column names."""
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.data.rename(columns=_identifier)
    target = bunch.target
    if string_labels:
        target = pd.Series(np.asarray(bunch.target_names)[target], index=target.index)
    target = target.rename("y")
    if len(frame) > MAX_ROWS:
        keep = np.sort(np.random.default_rng(SEED).choice(len(frame), MAX_ROWS, replace=False))
        frame, target = frame.iloc[keep].reset_index(drop=True), target.iloc[keep].reset_index(drop=True)
    return frame, target


def loans(n: int = 300) -> tuple[pd.DataFrame, pd.Series]:
    """A seeded data set with string categoricals: which loans default."""
    rng = np.random.default_rng(SEED)
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


def _one_hot(classifier) -> list[tuple[str, object]]:
    encode = ColumnTransformer([("onehot", OneHotEncoder(), ["purpose", "region"])], remainder="passthrough")
    return [("encode", encode), ("classify", classifier)]


def _lgbm_classifier():
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=30, num_leaves=8, random_state=SEED, verbose=-1)


def _lgbm_regressor():
    from lightgbm import LGBMRegressor

    return LGBMRegressor(n_estimators=30, num_leaves=8, random_state=SEED, verbose=-1)


def _with_missing(data: Callable[[], tuple[pd.DataFrame, pd.Series]]) -> Callable[[], tuple[pd.DataFrame, pd.Series]]:
    """The same data with a seeded tenth of the feature values missing (NaN; null in rows.json)."""

    def missing() -> tuple[pd.DataFrame, pd.Series]:
        frame, target = data()
        holes = np.random.default_rng(SEED).random(frame.shape) < 0.1
        return frame.mask(holes), target

    return missing


def _glm(family: str, classifier: bool) -> list[tuple[str, object]]:
    """A statsmodels GLM, scaled: JPMML-StatsModels writes it as a GeneralRegressionModel.

    (scikit-learn's own GLMs, Poisson and Tweedie, become RegressionModels with ``normalizationMethod="exp"``.)
    """
    import statsmodels.api as sm
    from sklearn2pmml.statsmodels import StatsModelsClassifier, StatsModelsRegressor

    wrapper = StatsModelsClassifier if classifier else StatsModelsRegressor
    glm = wrapper(sm.GLM, family=getattr(sm.families, family)())
    return [("scale", StandardScaler()), ("model", glm)]


@dataclass(frozen=True)
class Kind:
    """One export: its data set and the pipeline steps trained on it."""

    data: Callable[[], tuple[pd.DataFrame, pd.Series]]
    steps: Callable[[], list[tuple[str, object]]]
    dataset: str


def _single(estimator: Callable[[], object]) -> Callable[[], list[tuple[str, object]]]:
    return lambda: [("model", estimator())]


IRIS = (lambda: sklearn_data("iris", string_labels=True), "iris")
WINE = (lambda: sklearn_data("wine"), "wine")
CANCER = (lambda: sklearn_data("breast_cancer"), "breast_cancer")
DIABETES = (lambda: sklearn_data("diabetes"), "diabetes")
LOANS = (loans, "loans")
#: Five features are enough for a binomial GLM (thirty separate the classes perfectly).
CANCER5 = (lambda: (lambda x, y: (x.iloc[:, :5], y))(*sklearn_data("breast_cancer")), "breast_cancer[:5]")
DIABETES_MISSING = (_with_missing(DIABETES[0]), "diabetes, 10% missing")

KINDS: dict[str, Kind] = {
    name: Kind(data, steps, dataset)
    for name, ((data, dataset), steps) in {
        "tree_classifier": (IRIS, _single(lambda: DecisionTreeClassifier(max_depth=4, random_state=SEED))),
        "tree_regressor": (DIABETES, _single(lambda: DecisionTreeRegressor(max_depth=5, random_state=SEED))),
        "forest_classifier": (
            WINE,
            _single(lambda: RandomForestClassifier(n_estimators=15, max_depth=5, random_state=SEED)),
        ),
        "gbm_classifier": (
            IRIS,
            _single(lambda: GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=SEED)),
        ),
        "gbm_binary": (
            CANCER,
            _single(lambda: GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=SEED)),
        ),
        "gbm_regressor": (
            DIABETES,
            _single(lambda: GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=SEED)),
        ),
        "mlp_classifier": (
            IRIS,
            lambda: [
                ("scale", StandardScaler()),
                ("model", MLPClassifier(hidden_layer_sizes=(8,), max_iter=2000, random_state=SEED)),
            ],
        ),
        "mlp_regressor": (
            DIABETES,
            _single(lambda: MLPRegressor(hidden_layer_sizes=(10,), max_iter=500, random_state=SEED)),
        ),
        "naive_bayes": (WINE, _single(GaussianNB)),
        "svc": (IRIS, _single(lambda: SVC(kernel="rbf", gamma="scale"))),
        "svr": (DIABETES, _single(lambda: SVR(kernel="rbf", C=50.0))),
        "logistic_regression": (IRIS, _single(lambda: LogisticRegression(max_iter=2000))),
        "poisson_regressor": (DIABETES, _single(lambda: PoissonRegressor(alpha=1e-3, max_iter=1000))),
        "tweedie_regressor": (
            DIABETES,
            _single(lambda: TweedieRegressor(power=1.5, link="log", alpha=1e-3, max_iter=1000)),
        ),
        "scaler_logistic": (
            CANCER,
            lambda: [("scale", StandardScaler()), ("model", LogisticRegression(max_iter=2000))],
        ),
        "minmax_ridge": (DIABETES, lambda: [("scale", MinMaxScaler()), ("model", Ridge(alpha=0.1))]),
        # Two classes and an odd k: no tied votes, which JPMML and scikit-learn break differently.
        "knn_classifier": (CANCER, _single(lambda: KNeighborsClassifier(n_neighbors=5))),
        "lgbm_classifier": (WINE, _single(_lgbm_classifier)),
        "lgbm_regressor": (DIABETES, _single(_lgbm_regressor)),
        "lgbm_missing": (DIABETES_MISSING, _single(_lgbm_regressor)),
        "glm_poisson": (DIABETES, lambda: _glm("Poisson", classifier=False)),
        "glm_binomial": (CANCER5, lambda: _glm("Binomial", classifier=True)),
        # One-hot string inputs (the any-data-type issue): the loans kinds.
        "logistic": (LOANS, lambda: _one_hot(LogisticRegression(max_iter=1000))),
        "tree": (LOANS, lambda: _one_hot(DecisionTreeClassifier(max_depth=5, random_state=SEED))),
    }.items()
}


def _plain(value: object) -> object:
    """A JSON value: NumPy scalars become Python ones, NaN (missing) None."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and np.isnan(value) else value


def export(kind: str, out: Path) -> dict:
    """Train ``kind``, export it to ``out`` (see the module docstring) and return its manifest."""
    spec = KINDS[kind]
    frame, target = spec.data()
    pipeline = PMMLPipeline(spec.steps())
    pipeline.fit(frame, target)
    out.mkdir(parents=True, exist_ok=True)
    sklearn2pmml(pipeline, str(out / "model.pmml"))
    rows = [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    (out / "rows.json").write_text(json.dumps(rows, allow_nan=False))
    estimator = pipeline.steps[-1][1]
    classifier = hasattr(estimator, "classes_")
    expected: dict[str, object] = {"function": "classification" if classifier else "regression"}
    if classifier:
        expected["classes"] = [str(c) for c in pipeline.classes_]
        expected["predict"] = [str(p) for p in pipeline.predict(frame)]
        if hasattr(pipeline, "predict_proba"):
            expected["predict_proba"] = pipeline.predict_proba(frame).tolist()
    else:
        expected["predict"] = [float(p) for p in pipeline.predict(frame)]
    (out / "expected.json").write_text(json.dumps(expected))
    manifest = {
        "kind": kind,
        "estimator": type(estimator).__name__,
        "steps": [type(step).__name__ for _, step in pipeline.steps],
        "dataset": spec.dataset,
        "rows": len(rows),
        "function": expected["function"],
        "versions": {"scikit-learn": sklearn.__version__, "sklearn2pmml": s2p.__version__},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str]) -> int:
    """Export one kind, or ``all``; the exit status is non-zero on a bad kind."""
    if len(argv) != 2 or (argv[0] != "all" and argv[0] not in KINDS):
        print(f"usage: export_sklearn_models.py {{all|{'|'.join(KINDS)}}} OUT_DIR", file=sys.stderr)
        return 2
    which, out = argv[0], Path(argv[1])
    if which != "all":
        export(which, out / which)
        return 0
    manifests = [export(kind, out / kind) for kind in KINDS]
    (out / "manifest.json").write_text(json.dumps({"kinds": manifests}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
