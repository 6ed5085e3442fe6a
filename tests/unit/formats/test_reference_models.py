"""Every reference model loads and scores all 1,599 rows, matching its framework's own evaluation.

The PMML files are compared with JPMML-Evaluator in tests/unit/formats/pmml/test_oracle_reference.py.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from serving.core.model import ModelType
from serving.formats import descriptor_from_path, load_model
from serving.records import wine
from tests.support.reference import PMML_FOREST, TF_GRAPH, TF_SAVED


def test_data_has_every_row(wine_data):
    assert wine_data.features.shape == (1599, 11)
    assert wine_data.quality is not None and set(np.unique(wine_data.quality)) <= set(range(3, 9))


def test_frozen_graph_matches_tensorflow_session(wine_data):
    model = load_model(descriptor_from_path(TF_GRAPH, ModelType.TENSORFLOW))
    ours = model.score_batch(wine_data.features)

    # Independent path: a TF1 session on the raw GraphDef, with the documented tensor names.
    graph_def = tf.compat.v1.GraphDef.FromString(TF_GRAPH.read_bytes())
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            expected = session.run("dense_3/Sigmoid:0", {"dense_1_input:0": wine_data.features.astype(np.float32)})

    assert expected.shape == (1599, 9)
    np.testing.assert_allclose(ours.probabilities, expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(ours.scores, np.argmax(expected, axis=1))
    assert model.n_features == 11


def test_saved_model_matches_its_predict_signature(wine_data):
    model = load_model(descriptor_from_path(TF_SAVED, ModelType.TENSORFLOW_SAVED))
    ours = model.score_batch(wine_data.features)

    loaded = tf.saved_model.load(str(TF_SAVED / "1"))
    expected = loaded.signatures["predict"](inputs=tf.constant(wine_data.features, dtype=tf.float32))["outputs"]
    expected = expected.numpy()

    assert model.signature == "predict"
    np.testing.assert_allclose(ours.probabilities, expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(ours.scores, np.argmax(expected, axis=1))


def test_pmml_fields_match_record_names_ignoring_case_and_separators(wine_data):
    spaced = load_model(descriptor_from_path(PMML_FOREST, ModelType.PMML))
    # A record schema spelled like protobuf fields ("free_sulfur_dioxide", "ph") still maps.
    underscored = load_model(
        descriptor_from_path(PMML_FOREST, ModelType.PMML, metadata={"feature_names": ",".join(wine.RECORD_FIELDS)})
    )
    np.testing.assert_array_equal(
        spaced.score_batch(wine_data.features).scores, underscored.score_batch(wine_data.features).scores
    )
