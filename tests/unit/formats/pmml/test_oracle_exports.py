"""Every sklearn2pmml export, served by either engine, equals JPMML-Evaluator and the training library.

The exports (``scripts/export_sklearn_models.py``, run once per session in the
sklearn2pmml side venv) cover trees, forests, GBMs, LightGBM (with missing
values), MLPs, naive Bayes, SVMs, GLMs (scikit-learn's and statsmodels'),
scaler pipelines, kNN and one-hot string inputs. The oracles are
JPMML-Evaluator and the library that trained the model; the rules are in
``oracle_support``.
"""

from __future__ import annotations

import pytest

from tests.support.pmml_exports import KINDS
from tests.unit.formats.pmml.oracle_support import (
    Served,
    assert_equals_jpmml,
    assert_equals_library,
    assert_jpmml_equals_library,
    assert_pypmml_refused_or_equal,
)


def test_the_test_set_is_the_one_the_script_exports(sklearn_exports):
    assert tuple(sklearn_exports) == KINDS
    assert all(len(e.rows) <= 300 for e in sklearn_exports.values())


def test_lightgbm_exports_declare_nan_as_missing(sklearn_exports):
    # What made the NumPy engine refuse LightGBM: the declaration must stay in the test set.
    for kind in ("lgbm_classifier", "lgbm_regressor", "lgbm_missing"):
        assert '<Value value="NaN" property="missing"/>' in sklearn_exports[kind].pmml.read_text(), kind
    assert any(None in row.values() for row in sklearn_exports["lgbm_missing"].rows)


@pytest.mark.parametrize("kind", KINDS)
def test_jpmml_scores_each_export_as_the_training_library(kind, sklearn_exports, jpmml):
    # The test set checks itself: the two oracles agree before the project is compared with them.
    trained = sklearn_exports[kind]
    assert_jpmml_equals_library(jpmml.answers(trained.pmml, trained.rows), trained)


@pytest.mark.parametrize("kind", KINDS)
def test_the_numpy_engine_equals_jpmml(kind, sklearn_exports, jpmml):
    trained = sklearn_exports[kind]
    served = Served.export(trained)
    engine, scores = served.score("numpy")
    assert engine == "numpy"
    assert_equals_jpmml(scores, jpmml.answers(trained.pmml, trained.rows))


@pytest.mark.parametrize("kind", KINDS)
def test_the_numpy_engine_equals_the_training_library(kind, sklearn_exports):
    trained = sklearn_exports[kind]
    engine, scores = Served.export(trained).score("numpy")
    assert engine == "numpy"
    assert_equals_library(scores, trained)


@pytest.mark.parametrize("kind", KINDS)
def test_pypmml_equals_jpmml_or_the_model_is_refused(kind, sklearn_exports, jpmml):
    # pypmml stays the fallback, but an answer it gets wrong must never be served: the model is
    # refused at load (ModelLoadError, with the reason) instead.
    trained = sklearn_exports[kind]
    assert_pypmml_refused_or_equal(Served.export(trained), jpmml)
