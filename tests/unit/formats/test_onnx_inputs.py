"""ONNX inputs bound by name: the ONNX model's own ``feature_names`` metadata, as a data scientist leaves it."""

from __future__ import annotations

import numpy as np
import onnx
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from serving.formats import descriptor_from_path, load_model
from serving.records.schema import DataTypeSchema

SCHEMA_ORDER = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TRAINED_ORDER = ["petal_width", "sepal_length", "petal_length", "sepal_width"]


def test_feature_names_in_the_onnx_metadata_bind_the_inputs_by_name(tmp_path):
    """The model was trained on another column order than the schema's; by name it scores as scikit-learn."""
    iris = load_iris()
    by_name = dict(zip(SCHEMA_ORDER, iris.data.T))
    trained = np.column_stack([by_name[n] for n in TRAINED_ORDER])
    oracle = LogisticRegression(max_iter=1000).fit(trained, iris.target)
    exported = convert_sklearn(oracle, initial_types=[("input", FloatTensorType([None, 4]))], target_opset=17)
    onnx.helper.set_model_props(exported, {"feature_names": ",".join(TRAINED_ORDER)})
    path = tmp_path / "iris.onnx"
    path.write_bytes(exported.SerializeToString())
    schema = DataTypeSchema.parse(
        {"type": "record", "name": "iris", "fields": [{"name": n, "type": "double"} for n in SCHEMA_ORDER]}
    )
    model = load_model(descriptor_from_path(path, "onnx", data_type="iris"), columns=schema.columns)
    try:
        scores = model.score_batch(iris.data)  # in schema order
    finally:
        model.close()
    order = [scores.labels.index(str(c)) for c in oracle.classes_]
    np.testing.assert_allclose(scores.probabilities[:, order], oracle.predict_proba(trained), atol=1e-5)
