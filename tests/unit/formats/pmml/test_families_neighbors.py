"""NearestNeighborModel on the NumPy engine equals JPMML-Evaluator: sklearn2pmml's kNN and handmade models.

The handmade models sit on an integer grid, so distances and votes tie often:
JPMML's stable neighbor order and its tie-breaks (training counts, then the
smallest label) are exercised, with every distance measure, compare function,
field weights, missing inputs and each scoring method.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris

from serving.formats.pmml.compiler import NotCompilable, compile_pmml
from serving.formats.pmml.compiler import neighbors as neighbors_module
from tests.unit.formats.pmml._families import (
    DATA,
    assert_matches_jpmml,
    data_dictionary,
    document,
    mining_schema,
    write,
)

LABELS = ["a", "b", "c"]


def test_sklearn2pmml_knn_classifier_matches_jpmml(jpmml):
    x = load_iris().data
    rng = np.random.default_rng(8)
    rows = np.vstack([x, np.round(x * rng.normal(1.0, 0.1, x.shape), 1), rng.uniform(0, 8, (50, 4))])
    compiled = assert_matches_jpmml(jpmml, DATA / "family_knn_classifier.pmml", rows)
    assert compiled.model_element == "NearestNeighborModel"


def test_sklearn2pmml_weighted_knn_regressor_matches_jpmml(jpmml):
    # threshold="0.0": a row equal to a training row weighs 1/0 and JPMML gives no value (NaN), as we do
    x = load_diabetes().data[:200, :5]
    rng = np.random.default_rng(9)
    assert_matches_jpmml(jpmml, DATA / "family_knn_regressor.pmml", np.vstack([x, x + rng.normal(0, 0.02, x.shape)]))


def _training(n: int = 30) -> list[tuple[int, int, str, float]]:
    rng = np.random.default_rng(21)
    rows = []
    for _ in range(n):
        x1, x2 = (int(v) for v in rng.integers(0, 5, 2))
        rows.append((x1, x2, LABELS[int(rng.choice(3, p=[0.5, 0.3, 0.2]))], float(rng.integers(0, 50))))
    return rows


def knn(function: str, k: int, measure: str, attrs: str = "", knn_inputs: str = "", prefixed: bool = True) -> str:
    """A kNN over x1, x2 with 30 grid instances; ``measure`` is the ComparisonMeasure's content."""
    classifier = function == "classification"
    target = "species" if classifier else "y"
    column = "data:{}" if prefixed else "{}"
    cells = [(column.format("c1"), 0), (column.format("c2"), 1), (column.format("t"), 2 if classifier else 3)]
    rows = "".join(
        "<row>" + "".join(f"<{c}>{r[i]}</{c}>" for c, i in cells) + "</row>" for r in _training()
    )  # fmt: skip
    fields = (
        f"<InstanceField field='x1' column='{cells[0][0]}'/><InstanceField field='x2' column='{cells[1][0]}'/>"
        f"<InstanceField field='{target}' column='{cells[2][0]}'/>"
    )
    knn_inputs = knn_inputs or "<KNNInput field='x1'/><KNNInput field='x2'/>"
    return document(
        data_dictionary(["x1", "x2"], target, LABELS if classifier else None)
        + f"<NearestNeighborModel functionName='{function}' numberOfNeighbors='{k}' {attrs}>"
        + mining_schema(["x1", "x2"], target)
        + f"<TrainingInstances><InstanceFields>{fields}</InstanceFields><InlineTable>{rows}</InlineTable>"
        + f"</TrainingInstances><ComparisonMeasure kind='distance'>{measure}</ComparisonMeasure>"
        + f"<KNNInputs>{knn_inputs}</KNNInputs></NearestNeighborModel>"
    ).replace("<PMML ", "<PMML xmlns:data='http://jpmml.org/jpmml-model/InlineTable' ", 1)


def _rows(missing: bool = False) -> np.ndarray:
    rng = np.random.default_rng(17)
    grid = np.asarray([(a / 2, b / 2) for a in range(-2, 11) for b in range(-2, 11)])
    rows = np.vstack([grid, rng.uniform(-1, 6, (100, 2))])
    if missing:
        rows[::5, 0] = np.nan
        rows[1::5, 1] = np.nan  # never both: JPMML fails a row without inputs
    return rows


MEASURES = {
    "euclidean": "<euclidean/>",
    "squaredEuclidean": "<squaredEuclidean/>",
    "cityBlock": "<cityBlock/>",
    "chebychev": "<chebychev/>",
    "minkowski": "<minkowski p-parameter='3'/>",
}


@pytest.mark.parametrize("measure", list(MEASURES))
@pytest.mark.parametrize(("k", "method"), [(3, "majorityVote"), (4, "majorityVote"), (5, "weightedMajorityVote")])
def test_classification_ties_and_measures_match_jpmml(jpmml, tmp_path, measure, k, method):
    text = knn("classification", k, MEASURES[measure], f"categoricalScoringMethod='{method}'")
    assert_matches_jpmml(jpmml, write(tmp_path, "knn", text), _rows())


@pytest.mark.parametrize("measure", list(MEASURES))
@pytest.mark.parametrize(
    ("k", "method"), [(3, "average"), (4, "median"), (5, "median"), (4, "weightedAverage"), (1, "median")]
)
def test_regression_scoring_methods_match_jpmml(jpmml, tmp_path, measure, k, method):
    text = knn("regression", k, MEASURES[measure], f"continuousScoringMethod='{method}' threshold='0.5'")
    assert_matches_jpmml(jpmml, write(tmp_path, "knn", text), _rows())


def test_missing_inputs_are_skipped_and_the_distance_scaled_as_jpmml(jpmml, tmp_path):
    for function in ("classification", "regression"):
        text = knn(function, 3, MEASURES["euclidean"])
        assert_matches_jpmml(jpmml, write(tmp_path, function, text), _rows(missing=True))


def test_field_weights_compare_functions_and_plain_columns_match_jpmml(jpmml, tmp_path):
    inputs = "<KNNInput field='x1' fieldWeight='2.5'/><KNNInput field='x2' fieldWeight='0.5'/>"
    text = knn("regression", 3, MEASURES["euclidean"], knn_inputs=inputs, prefixed=False)
    assert_matches_jpmml(jpmml, write(tmp_path, "weights", text), _rows())
    inputs = "<KNNInput field='x1' compareFunction='delta'/><KNNInput field='x2'/>"
    text = knn("classification", 4, MEASURES["cityBlock"], knn_inputs=inputs)
    assert_matches_jpmml(jpmml, write(tmp_path, "delta", text), _rows())


def test_gauss_sim_is_refused_as_jpmml_refuses_it():
    # A KNNInput has no similarityScale, so JPMML finds the element invalid.
    text = knn("regression", 3, MEASURES["euclidean"], knn_inputs="<KNNInput field='x1' compareFunction='gaussSim'/>")
    with pytest.raises(NotCompilable, match="gaussSim"):
        compile_pmml(text)


def test_a_row_without_inputs_has_no_prediction():
    compiled = compile_pmml(knn("regression", 3, MEASURES["euclidean"]))
    assert np.isnan(compiled.predict(np.asarray([[np.nan, np.nan], [1.0, 2.0]])).scores[0])


def test_big_batches_are_scored_in_chunks_with_the_same_answers(jpmml, tmp_path, monkeypatch):
    monkeypatch.setattr(neighbors_module, "_CELLS", 200)  # 6 rows per chunk of the [rows, instances] distances
    text = knn("classification", 4, MEASURES["euclidean"], "categoricalScoringMethod='weightedMajorityVote'")
    assert_matches_jpmml(jpmml, write(tmp_path, "chunks", text), _rows())


def test_the_nearest_are_a_stable_sorts_first_k():
    # the oracle is NumPy's stable argsort, which orders as JPMML's stable sort (NaN last, ties by index)
    rng = np.random.default_rng(1)
    for _ in range(200):
        n, m = int(rng.integers(1, 20)), int(rng.integers(1, 40))
        distances = rng.integers(0, 5, (n, m)).astype(float)
        distances[rng.random((n, m)) < 0.1] = np.nan
        k = int(rng.integers(1, m + 1))
        want = np.argsort(distances, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(neighbors_module._nearest(distances, k), want)
