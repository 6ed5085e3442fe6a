"""The reference PMML files, served by either engine, equal JPMML-Evaluator on every wine row.

JPMML-Evaluator is the reference PMML implementation; the rules are in
``oracle_support``. pypmml may serve a model only where it agrees with JPMML:
elsewhere the project must refuse the model at load.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from serving.core.model import BatchScores
from tests.support.reference import PMML_FILES, PMML_FOREST
from tests.unit.formats.pmml.oracle_support import (
    Served,
    assert_equals_jpmml,
    assert_pypmml_refused_or_equal,
    winning_labels,
)

#: JPMML-Evaluator on row 0 of the reference wine data (issue 15), to four places.
FOREST_ROW_0 = {"5": 0.6685, "6": 0.2675, "4": 0.0417, "7": 0.0148, "3": 0.0075, "8": 0.0}


@pytest.mark.parametrize("path", PMML_FILES, ids=lambda p: p.stem)
def test_the_numpy_engine_equals_jpmml_on_every_row(path, wine_data, jpmml):
    served = Served.wine(path, wine_data)
    engine, scores = served.score("numpy")
    assert engine == "numpy"
    assert_equals_jpmml(scores, jpmml.answers(path, served.rows))


@pytest.mark.parametrize("path", PMML_FILES, ids=lambda p: p.stem)
def test_pypmml_equals_jpmml_or_the_model_is_refused(path, wine_data, jpmml):
    served = Served.wine(path, wine_data)
    assert_pypmml_refused_or_equal(served, jpmml)


def test_jpmml_gives_the_forest_row_0_the_issue_quotes(wine_data, jpmml):
    answers = jpmml.answers(PMML_FOREST, Served.wine(PMML_FOREST, wine_data).rows[:1])
    assert answers.predicted[0] == "5"
    assert {k: round(float(v[0]), 4) for k, v in answers.probabilities.items()} == FOREST_ROW_0


@pytest.mark.parametrize("engine", ["numpy", None])
def test_the_reference_forest_scores_5_on_row_0_with_its_distribution(engine, wine_data):
    # The score is the winning label (it was 3, from a distribution that put its mass on 5).
    served = Served.wine(PMML_FOREST, wine_data)
    _, scores = served.score(engine)
    assert winning_labels(scores)[:1] == ["5"] and scores.scores[0] == 5.0
    got = dict(zip(scores.labels, scores.probabilities[0]))
    assert got == pytest.approx(FOREST_ROW_0, abs=5e-5)


def test_the_comparison_fails_on_a_wrong_label_or_probability(wine_data, jpmml):
    # The checks above can fail: the JPMML answers, moved slightly, are refused.
    rows = Served.wine(PMML_FOREST, wine_data).rows[:20]
    answers = jpmml.answers(PMML_FOREST, rows)
    labels = tuple(sorted(answers.probabilities))
    probabilities = np.column_stack([answers.probabilities[label] for label in labels])
    # Numeric labels: a row's score is its winning label's value.
    exact = BatchScores(np.asarray([float(w) for w in answers.predicted]), probabilities, labels, 0)
    assert_equals_jpmml(exact, answers)
    nudged = probabilities.copy()
    nudged[3, 0] += 1e-8
    with pytest.raises(AssertionError):
        assert_equals_jpmml(dataclasses.replace(exact, probabilities=nudged), answers)
    relabelled = exact.scores.copy()
    relabelled[5] = 3.0 if relabelled[5] != 3.0 else 4.0
    with pytest.raises(AssertionError, match="winning labels differ"):
        assert_equals_jpmml(dataclasses.replace(exact, scores=relabelled), answers)
