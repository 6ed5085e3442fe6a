"""ONNX class labels from the graph: a classifier without ZipMap or metadata scores its real labels."""

from __future__ import annotations

import numpy as np
import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from serving.formats import descriptor_from_path, load_model
from serving.records.schema import DataTypeSchema

IRIS = load_iris()
NAMES = np.asarray(["setosa", "versicolor", "virginica"])
SCHEMA = DataTypeSchema.parse(
    {"type": "record", "name": "iris", "fields": [{"name": f"f{i}", "type": "double"} for i in range(4)]}
)


def _export(classifier, labels, tmp_path, *, zipmap: bool = False):
    """Fit ``classifier`` on iris with ``labels`` as its classes and write its ONNX export (no metadata)."""
    classifier.fit(IRIS.data, labels)
    exported = convert_sklearn(
        classifier,
        initial_types=[("input", FloatTensorType([None, 4]))],
        options={id(classifier): {"zipmap": zipmap}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    assert not exported.metadata_props
    path = tmp_path / "iris.onnx"
    path.write_bytes(exported.SerializeToString())
    return path


@pytest.mark.parametrize(
    "classifier, labels",
    [
        (LogisticRegression(max_iter=1000), NAMES[IRIS.target]),  # LinearClassifier, classlabels_strings
        (RandomForestClassifier(n_estimators=5, random_state=0), IRIS.target * 2 + 3),  # classlabels_int64s 3, 5, 7
    ],
    ids=["strings", "integers"],
)
def test_a_classifier_without_zipmap_or_metadata_scores_its_own_labels(tmp_path, classifier, labels):
    path = _export(classifier, labels, tmp_path)
    model = load_model(descriptor_from_path(path, "onnx", data_type="iris"), columns=SCHEMA.columns)
    try:
        scores = model.score_batch(IRIS.data)
    finally:
        model.close()
    assert scores.labels == tuple(str(c) for c in classifier.classes_)
    # The result rule: a numeric label is the score itself, any other label scores as its index.
    numeric = all(label.isdigit() for label in scores.labels)
    winners = [str(int(s)) if numeric else scores.labels[int(s)] for s in scores.scores]
    assert winners == [str(p) for p in classifier.predict(IRIS.data)]
    np.testing.assert_allclose(scores.probabilities, classifier.predict_proba(IRIS.data), atol=1e-5)


def test_labels_metadata_overrides_the_graph(tmp_path):
    path = _export(LogisticRegression(max_iter=1000), NAMES[IRIS.target], tmp_path)
    descriptor = descriptor_from_path(path, "onnx", data_type="iris", metadata={"labels": "a,b,c"})
    model = load_model(descriptor, columns=SCHEMA.columns)
    try:
        assert model.score_batch(IRIS.data[:3]).labels == ("a", "b", "c")
    finally:
        model.close()
