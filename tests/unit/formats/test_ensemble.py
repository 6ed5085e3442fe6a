"""The ``ensemble`` format with embedded members: its document, its load, its votes and its provenance.

Members are iris classifiers trained here with scikit-learn and exported
to ONNX; the oracle is each scikit-learn model's own ``predict``.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from serving.codecs.outputs import result_to_json, results_for
from serving.core.admission import ModelCache
from serving.errors import CorruptModelError, ModelSchemaError
from serving.formats import load_model, restore
from serving.formats.ensemble.model import EnsembleModel
from serving.pb.model_event_pb2 import ModelEvent
from serving.records.wire import DataRecord
from tests.support.ensembles import IRIS_FIELDS, document, embedded, ensemble_descriptor, iris
from tests.support.mlserver import numeric_schema

SCHEMA = numeric_schema("iris", IRIS_FIELDS)


@pytest.fixture(scope="module")
def members():
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    return {
        "lr": embedded("lr", LogisticRegression(max_iter=1000)),
        "stump": embedded("stump", DecisionTreeClassifier(max_depth=1, random_state=0)),
        "tree": embedded("tree", DecisionTreeClassifier(max_depth=2, random_state=0)),
    }


def _load(body) -> EnsembleModel:
    return load_model(ensemble_descriptor(body), columns=SCHEMA.columns)


def test_an_ensemble_is_a_format_whose_plurality_follows_the_members_votes(members):
    """Three members, quorum 2: each row gets the answer at least two of them gave (scikit-learn's predicts)."""
    rows, _ = iris()
    lr, stump, tree = members["lr"], members["stump"], members["tree"]
    model = _load(document([stump.entry(1), lr.entry(2), tree.entry(3)], decider="plurality", quorum=2))
    try:
        assert isinstance(model, EnsembleModel)
        scores = model.score_batch(rows)
    finally:
        model.close()
    votes = np.vstack([stump.oracle.predict(rows), lr.oracle.predict(rows), tree.oracle.predict(rows)])
    disagreements = 0
    for i in range(len(rows)):
        column = list(votes[:, i])
        majority = max(set(column), key=column.count)
        if column.count(majority) >= 2:
            assert scores.scores[i] == majority, i
            # decided by the highest-priority member among the majority
            first = ["stump", "lr", "tree"][column.index(majority)]
            assert scores.decided_by[i] == f"{first}:1"
        else:  # three different answers, below quorum: the highest-priority member
            assert scores.decided_by[i] == "stump:1"
        disagreements += len(set(column)) > 1
    assert disagreements > 10, "the members must disagree somewhere for the vote to show"
    assert scores.labels == ("0", "1", "2")


def test_results_carry_decided_by_and_one_outcome_per_member(members):
    rows, _ = iris()
    lr, stump = members["lr"], members["stump"]
    model = _load(document([lr.entry(1), stump.entry(2)]))
    try:
        scores = model.score_batch(rows[:5])
    finally:
        model.close()
    np.testing.assert_array_equal(scores.scores, lr.oracle.predict(rows[:5]))
    np.testing.assert_allclose(scores.probabilities, lr.oracle.predict_proba(rows[:5]), atol=1e-5)
    records = [DataRecord(f"r{i}", "iris", 0, {}) for i in range(5)]
    results = results_for(model, records, scores)
    assert {r.decided_by for r in results} == {"lr:1"}
    assert {r.model_name for r in results} == {"iris-ensemble"}
    for result in results:
        assert [(m.name, m.version, m.status) for m in result.members] == [("lr", "1", "ok"), ("stump", "1", "ok")]
        assert all(m.latency_us > 0 for m in result.members)
    line = json.loads(result_to_json(results[0]))
    assert line["decided_by"] == "lr:1"
    assert [m["status"] for m in line["members"]] == ["ok", "ok"]


def test_a_single_model_result_has_no_ensemble_fields(members):
    model = load_model(_onnx_descriptor(members["lr"]), columns=SCHEMA.columns)
    try:
        result = results_for(model, [DataRecord("r", "iris", 0, {})], model.score_batch(iris()[0][:1]))[0]
    finally:
        model.close()
    assert result.decided_by == "" and len(result.members) == 0
    assert "decided_by" not in json.loads(result_to_json(result))


def _onnx_descriptor(member):
    from serving.core.model import ModelDescriptor
    from serving.formats.registry import set_format

    descriptor = ModelDescriptor(name=member.name, version="1", data_type="iris", data=member.onnx)
    descriptor.metadata["feature_names"] = ",".join(IRIS_FIELDS)
    set_format(descriptor, "onnx")
    return descriptor


def test_a_member_that_fails_to_load_fails_the_ensemble_naming_it(members):
    broken = members["lr"].entry(2)
    broken["descriptor"]["data_base64"] = base64.b64encode(b"not an onnx model").decode()
    with pytest.raises(CorruptModelError, match=r"ensemble 'iris-ensemble' member lr:1: ") as raised:
        _load(document([members["stump"].entry(1), broken]))
    assert "\n" not in str(raised.value)
    unknown = members["lr"].entry(2)
    unknown["descriptor"]["metadata"]["feature_names"] = "sepal_length,sepal_width,petal_length,petal_colour"
    with pytest.raises(ModelSchemaError, match=r"member lr:1: .*petal_colour"):
        _load(document([members["stump"].entry(1), unknown]))


def test_admission_accepts_an_ensemble_and_rejects_one_with_a_broken_member(members):
    cache = ModelCache()
    try:
        good = ensemble_descriptor(document([members["lr"].entry(1), members["stump"].entry(2)]))
        assert cache.admit(good.SerializeToString(), SCHEMA).accepted
        body = document([members["lr"].entry(1), {"priority": 2, "descriptor": {"name": "x", "version": "1",
                         "format": "onnx", "data_base64": base64.b64encode(b"junk").decode()}}])  # fmt: skip
        admission = cache.admit(ensemble_descriptor(body).SerializeToString(), SCHEMA)
        assert admission.event.kind == ModelEvent.REJECTED
        assert "member x:1" in admission.event.reason
    finally:
        cache.close()


def test_an_ensemble_restored_from_its_bytes_is_the_same_ensemble_without_pickles(members):
    rows, _ = iris()
    model = _load(document([members["stump"].entry(1), members["lr"].entry(2), members["tree"].entry(3)],
                           decider="plurality", quorum=2))  # fmt: skip
    state = model.to_bytes()
    restored = restore(state, columns=SCHEMA.columns)
    try:
        assert b"\x80\x04" not in state and b"cloudpickle" not in state
        json.loads(restored.artifact)  # the state is the JSON document, members as serialized descriptors
        assert restored.artifact_sha256 == model.artifact_sha256  # a replayed message is still a duplicate
        a, b = model.score_batch(rows), restored.score_batch(rows)
    finally:
        model.close()
        restored.close()
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.decided_by == b.decided_by


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("budget_ms"), "budget_ms: must be a positive whole number of milliseconds, not None"),
        (lambda d: d.update(budget_ms=-5), "budget_ms: must be a positive whole number"),
        (lambda d: d.update(mode="fast"), "mode: must be one of wallclock, declared, not 'fast'"),
        (lambda d: d.update(data_type="wine"), "data_type: 'wine' is not the ensemble's data type 'iris'"),
        (lambda d: d.update(members=[]), "members: must be a non-empty list"),
        (lambda d: d.update(extra=1), "unknown field 'extra'"),
        (lambda d: d["members"][1].update(priority=1), "members[1].priority: 1 is used by another member"),
        (lambda d: d["members"][1].update(priority="2"), "members[1].priority: must be a whole number, not '2'"),
        (lambda d: d["members"][0]["descriptor"].pop("data_base64"), "members[0].descriptor: needs exactly one of"),
        (lambda d: d["members"][0]["descriptor"].update(data_base64="%%"), "members[0].descriptor.data_base64: is not"),
        (lambda d: d["members"][0]["descriptor"].update(format="zip"), "members[0].descriptor.format: unknown model"),
        (lambda d: d["members"][0]["descriptor"].update(format="ensemble"), "cannot be a member of an ensemble"),
        (lambda d: d["members"][1]["descriptor"].update(name="lr"), "members[1].descriptor.name: 'lr' is used"),
        (lambda d: d["members"][0]["descriptor"].pop("version"), "members[0].descriptor.version: must be a non-empty"),
        (lambda d: d.update(decider={"name": "majority"}), "decider: unknown decider 'majority'"),
        (lambda d: d.update(decider={"name": "plurality", "params": {"quorum": 0}}), "quorum must be a whole number"),
        (lambda d: d.update(mode="declared"), "members[0].descriptor.metadata.expected_latency_ms: declared mode"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None,
)
def test_a_bad_ensemble_document_is_one_line_naming_the_problem(members, mutate, message):
    body = document([members["lr"].entry(1), members["stump"].entry(2)])
    mutate(body)
    with pytest.raises(CorruptModelError) as raised:
        _load(body)
    text = str(raised.value)
    assert message in text and "\n" not in text, text
    assert raised.value.reason in ("bad ensemble document", "unknown model type")


def test_a_document_that_is_not_json_is_one_line():
    with pytest.raises(CorruptModelError, match=r"^ensemble document: not JSON: ") as raised:
        _load(b"{members: [}")
    assert "\n" not in str(raised.value)
