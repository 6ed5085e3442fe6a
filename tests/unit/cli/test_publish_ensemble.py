"""``publish ensemble FILE.json``: a friendly file becomes the ensemble format's document, checked before sending."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from serving.formats import load_model
from serving.formats.ensemble.document import parse_document
from serving.formats.ensemble.publishing import ensemble_descriptor
from tests.support.ensembles import IRIS_FIELDS, embedded, iris
from tests.support.mlserver import numeric_schema


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    folder = tmp_path_factory.mktemp("models")
    made = {
        "lr": embedded("lr", LogisticRegression(max_iter=1000)),
        "stump": embedded("stump", DecisionTreeClassifier(max_depth=1)),
    }
    for name, member in made.items():
        (folder / f"{name}.onnx").write_bytes(member.onnx)
    return folder, made


def _write(folder, body) -> str:
    path = folder / "ensemble.json"
    path.write_text(json.dumps(body))
    return str(path)


def _friendly(**overrides):
    body = {
        "name": "iris-vote",
        "data_type": "iris",
        "budget_ms": 150,
        "decider": "first_valid_by_priority",
        "members": [
            {"path": "lr.onnx", "type": "onnx", "metadata": {"feature_names": ",".join(IRIS_FIELDS),
                                                             "expected_latency_ms": 5}},
            {"location": "http://127.0.0.1:8080/", "name": "iris-remote", "metadata": {"model_name": "iris"}},
            {"path": "stump.onnx", "type": "onnx", "metadata": {"feature_names": ",".join(IRIS_FIELDS)}},
        ],
    }  # fmt: skip
    body.update(overrides)
    return body


def test_a_friendly_file_becomes_an_ensemble_descriptor_without_any_connection(onnx_files):
    folder, made = onnx_files
    descriptor = ensemble_descriptor(_write(folder, _friendly()))
    assert (descriptor.format, descriptor.name, descriptor.data_type) == ("ensemble", "iris-vote", "iris")
    assert len(descriptor.version) == 12
    document = parse_document(descriptor.data, "iris")
    assert (document.budget_ms, document.mode, document.decider) == (150, "wallclock", "first_valid_by_priority")
    members = [(m.priority, m.descriptor.name, m.descriptor.format) for m in document.members]
    assert members == [(1, "lr", "onnx"), (2, "iris-remote", "oip"), (3, "stump", "onnx")]
    assert document.members[1].descriptor.location == "http://127.0.0.1:8080"
    assert document.members[0].descriptor.data == made["lr"].onnx  # the file, inline
    assert document.members[0].descriptor.metadata["expected_latency_ms"] == "5"
    assert ensemble_descriptor(_write(folder, _friendly())).version == descriptor.version


def test_the_published_ensemble_loads_and_scores_as_its_first_member(onnx_files):
    folder, made = onnx_files
    body = _friendly(decider={"name": "plurality", "params": {"quorum": 1}})
    body["members"].pop(1)  # no server in this test
    schema = numeric_schema("iris", IRIS_FIELDS)
    model = load_model(ensemble_descriptor(_write(folder, body)), columns=schema.columns)
    rows, _ = iris()
    try:
        agree = made["lr"].oracle.predict(rows) == made["stump"].oracle.predict(rows)
        scores = model.score_batch(rows)
    finally:
        model.close()
    # one vote each where they differ: the tie goes to lr, the higher priority
    np.testing.assert_array_equal(scores.scores, made["lr"].oracle.predict(rows))
    assert not agree.all()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b.update(mode="fast"), "mode: must be one of wallclock, declared"),
        (lambda b: b.update(decider="majority"), "unknown decider 'majority'"),
        (lambda b: b["members"][0].pop("type"), "members[0] needs the model file's type"),
        (lambda b: b["members"][0].update(path="missing.onnx"), "members[0]: model path"),
        (lambda b: b["members"][1].update(location="http://models.example.com"), "members[1]: remote model host"),
        (lambda b: b["members"][2].update(location="http://127.0.0.1:1"), "members[2] needs either path"),
        (lambda b: b.update(mode="declared"), "members[1].descriptor.metadata.expected_latency_ms"),
        (lambda b: b.pop("name"), "name must be a non-empty string"),
    ],
)
def test_publish_ensemble_errors_are_one_line_before_any_connection(onnx_files, change, message):
    folder, _ = onnx_files
    body = _friendly()
    change(body)
    command = [sys.executable, "-m", "serving.cli", "publish", "ensemble", _write(folder, body),
               "--bootstrap-servers", "127.0.0.1:9"]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_a_file_that_is_not_json_is_one_line(tmp_path):
    path = tmp_path / "e.json"
    path.write_text("{nope")
    proc = subprocess.run([sys.executable, "-m", "serving.cli", "publish", "ensemble", str(path)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert "is not JSON" in proc.stderr
