"""C4's offline scores: each published version scores each acknowledged record as its framework does."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from serving.faults.expected import offline_scores
from serving.faults.generator import GroundTruth, PublishedModel
from serving.testing import model_message
from tests.support.reference import TF_GRAPH


def tf_classes(rows: np.ndarray) -> np.ndarray:
    graph_def = tf.compat.v1.GraphDef.FromString(TF_GRAPH.read_bytes())
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            probabilities = session.run("dense_3/Sigmoid:0", {"dense_1_input:0": rows.astype(np.float32)})
    return np.argmax(probabilities, axis=1)


def test_a_version_scores_the_rows_its_records_were_made_from(wine_data):
    truth = GroundTruth(rows={"r0": 0, "r7": 7, "r1600": 1})
    truth.models.append(PublishedModel("m1", "tf", 1, model_message("tf", "m1", 1)))
    expected = offline_scores(truth, wine_data.features)
    classes = tf_classes(wine_data.features[[0, 7, 1]])
    assert [expected("m1", r) for r in ("r0", "r7", "r1600")] == [float(c) for c in classes]


def test_an_unknown_version_or_id_has_no_offline_score(wine_data):
    truth = GroundTruth(rows={"r0": 0})
    truth.models.append(PublishedModel("m1", "tf", 1, model_message("tf", "m1", 1)))
    expected = offline_scores(truth, wine_data.features)
    assert expected("m2", "r0") is None
    assert expected("m1", "r1") is None


def test_a_version_scores_only_the_records_its_results_name(wine_data):
    truth = GroundTruth(rows={"r0": 0, "r7": 7, "r1600": 1})
    truth.models.append(PublishedModel("m1", "tf", 1, model_message("tf", "m1", 1)))
    expected = offline_scores(truth, wine_data.features, wanted={"m1": {"r7", "r1600"}})
    classes = tf_classes(wine_data.features[[7, 1]])
    assert [expected("m1", r) for r in ("r7", "r1600")] == [float(c) for c in classes]
    assert expected("m1", "r0") is None  # no result named it: not scored, so C4 reports it
