"""PMML with categorical (string) inputs: an sklearn one-hot pipeline scores as scikit-learn does, on every row."""

from __future__ import annotations

import numpy as np
import pytest

from serving.formats import descriptor_from_path, load_model
from serving.records.features import feature_matrix
from serving.records.schema import DataTypeSchema
from serving.records.wire import DataRecord, check_values
from tests.support.pmml_exports import export

LOANS = {
    "type": "record",
    "name": "loans",
    "fields": [
        {"name": "purpose", "type": "string"},
        {"name": "income", "type": "double"},
        {"name": "region", "type": "string"},
        {"name": "years", "type": "double"},
    ],
}


@pytest.mark.parametrize("kind", ["logistic", "tree"])
def test_a_one_hot_pipeline_scores_as_scikit_learn_on_every_row(tmp_path, kind):
    trained = export(kind, tmp_path)
    schema = DataTypeSchema.parse(LOANS)
    records = [DataRecord(str(i), "loans", 0, check_values(row, schema)) for i, row in enumerate(trained.rows)]
    matrix = feature_matrix(records, schema)
    assert matrix.dtype == object and matrix[0, 0] in ("car", "home", "education", "business")
    model = load_model(descriptor_from_path(trained.pmml, "pmml", data_type="loans"), columns=schema.columns)
    try:
        assert model.categorical
        scores = model.score_batch(matrix)
    finally:
        model.close()
    winners = [scores.labels[int(s)] for s in scores.scores]
    assert winners == trained.predict, "a row's winning label differs from scikit-learn's"
    order = [scores.labels.index(c) for c in trained.classes]
    np.testing.assert_allclose(scores.probabilities[:, order], trained.predict_proba, rtol=0, atol=1e-9)


def test_a_string_field_the_schema_has_as_a_number_is_refused_by_name(tmp_path):
    trained = export("logistic", tmp_path)
    retyped = {**LOANS, "fields": [{"name": "purpose", "type": "double"}, *LOANS["fields"][1:]]}
    schema = DataTypeSchema.parse(retyped)
    from serving.errors import ModelSchemaError

    with pytest.raises(ModelSchemaError, match="purpose is number, read as string"):
        load_model(descriptor_from_path(trained.pmml, "pmml", data_type="loans"), columns=schema.columns)


def test_without_an_example_the_probe_row_uses_categories_the_model_declares(tmp_path):
    from serving.core.admission import validate

    trained = export("logistic", tmp_path)
    schema = DataTypeSchema.parse(LOANS)  # no modelserving.example
    model = load_model(descriptor_from_path(trained.pmml, "pmml", data_type="loans"), columns=schema.columns)
    try:
        assert model.probe_values["purpose"] in {"car", "home", "education", "business"}
        assert model.probe_values["region"] in {"north", "south", "east", "west"}
        validate(model, schema)  # an empty string is no category: the probe scored NaN and rejected the model
    finally:
        model.close()
