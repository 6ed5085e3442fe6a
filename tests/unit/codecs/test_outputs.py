"""The ``run`` command's JSON lines: a classifier's result names its labels beside the probabilities."""

from __future__ import annotations

import json

from serving.codecs.outputs import result_to_json
from serving.pb.serving_result_pb2 import ServingResult


def test_a_classifier_result_carries_labels_in_the_order_of_its_probabilities():
    result = ServingResult(model_name="iris-lr", record_id="7", score=1.0)
    result.probabilities.extend([0.25, 0.75])
    result.labels.extend(["setosa", "versicolor"])
    line = json.loads(result_to_json(result))
    assert dict(zip(line["labels"], line["probabilities"])) == {"setosa": 0.25, "versicolor": 0.75}


def test_a_regressor_result_has_neither():
    line = json.loads(result_to_json(ServingResult(model_name="linear", record_id="1", score=5.5)))
    assert line["score"] == 5.5 and "labels" not in line and "probabilities" not in line
