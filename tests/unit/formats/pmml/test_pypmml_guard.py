"""pypmml is the fallback, never a silent wrong answer: where it contradicts itself the model is refused.

pypmml (PMML4S) reads an ensemble's member probabilities by position, so on
JPMML-SparkML's random forest it gives NaN for 5 of the 6 classes and predicts
3 (JPMML-Evaluator, the reference, gives label 5 on row 0, with 0.6685 for it).
The project refuses that model at load; a later row that shows the fault fails
its batch rather than scoring it.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from serving.core.admission import validate
from serving.errors import UnreliableEvaluatorError
from serving.formats import descriptor_from_path
from serving.formats.artifacts import resolve_artifact
from serving.formats.pmml.model import PmmlModel
from serving.records import bundled_schemas, wine
from tests.support.reference import PMML_FOREST, PMML_TREE

NAN = math.nan
LABELS = ["3", "4", "5", "6", "7", "8"]


def _pypmml(path):
    descriptor = descriptor_from_path(path, "pmml")
    return PmmlModel(descriptor, resolve_artifact(descriptor), engine="pypmml")


def _output(predicted: str, probabilities: list[float]) -> pd.DataFrame:
    """A frame shaped like pypmml's output for the reference tree (its columns, one row)."""
    row = {"predicted_quality": predicted} | {f"probability({k})": p for k, p in zip(LABELS, probabilities)}
    return pd.DataFrame([row])


def test_the_forest_pypmml_gets_wrong_is_refused_at_load():
    with pytest.raises(UnreliableEvaluatorError, match="NaN class probabilities"):
        _pypmml(PMML_FOREST)


@pytest.fixture(scope="module")
def tree():
    model = _pypmml(PMML_TREE)
    yield model
    model.close()


def test_a_model_pypmml_scores_consistently_is_served_by_pypmml(tree):
    assert tree.engine == "pypmml"
    validate(tree, next(s for s in bundled_schemas() if s.data_type == wine.DATA_TYPE))
    scores = tree.score_batch(wine.read_wine_csv(wine.reference_csv()).features[:50])
    assert scores.probabilities is not None and (abs(scores.probabilities.sum(axis=1) - 1) < 1e-9).all()


def test_a_class_a_leaf_leaves_out_is_zero_when_the_others_add_up_to_one(tree):
    # JPMML gives 0 for such a class; pypmml's NaN means the same.
    scores = tree.interpret(_output("5", [0.1, NAN, 0.6, 0.3, NAN, NAN]))
    assert scores.probabilities.tolist() == [[0.1, 0.0, 0.6, 0.3, 0.0, 0.0]] and scores.scores.tolist() == [5.0]


def test_lost_probability_mass_is_refused(tree):
    with pytest.raises(UnreliableEvaluatorError, match="NaN class probabilities"):
        tree.interpret(_output("3", [NAN, NAN, 0.6685, NAN, NAN, NAN]))


def test_a_predicted_label_that_is_not_the_most_probable_is_refused(tree):
    with pytest.raises(UnreliableEvaluatorError, match="not the most probable"):
        tree.interpret(_output("3", [0.1, 0.0, 0.6, 0.3, 0.0, 0.0]))


def test_a_row_with_no_answer_at_all_is_a_missing_prediction(tree):
    scores = tree.interpret(_output(None, [NAN] * 6))
    assert math.isnan(scores.scores[0]) and scores.probabilities.tolist() == [[0.0] * 6]
