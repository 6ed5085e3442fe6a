"""Ensembles with remote members on a real MLServer: the latency budget, late and failing members, declared mode.

One MLServer serves this module (tests/support/mlserver.py): ``iris``, and
``iris-slow`` (the same model, answering after 1 s). Embedded members are
trained here; oracles are scikit-learn's own ``predict`` and
``predict_proba`` (MLServer's in its venv, ours for the ONNX members).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from serving.codecs.outputs import results_for
from serving.formats import load_model, restore
from serving.records.wire import DataRecord
from tests.support.ensembles import IRIS_FIELDS, document, embedded, ensemble_descriptor, remote_entry
from tests.support.mlserver import numeric_schema

SCHEMA = numeric_schema("iris", IRIS_FIELDS)


@pytest.fixture(scope="module")
def served(mlserver):
    server, expected = mlserver
    return server, expected["iris"]


@pytest.fixture(scope="module")
def stump():
    """The fast member: a depth-1 tree, which tells only two of the three classes apart."""
    from sklearn.tree import DecisionTreeClassifier

    return embedded("stump", DecisionTreeClassifier(max_depth=1, random_state=0))


def _smart(served, name: str = "iris-slow", **metadata: str):
    server, data = served
    return remote_entry(server.url, name, 1, data["feature_names"], **metadata)


def _load(body):
    return load_model(ensemble_descriptor(body), columns=SCHEMA.columns)


def _statuses(scores) -> list[tuple[str, str]]:
    return [(o.name, o.status) for o in scores.outcomes]


def test_a_smart_member_past_the_budget_is_late_and_the_fallback_decides(served, stump):
    _, data = served
    rows = np.asarray(data["rows"])
    hurried = _load(document([_smart(served, timeout_ms="3000"), stump.entry(2)], budget_ms=300))
    try:
        started = time.monotonic()
        scores = hurried.score_batch(rows)
        waited = time.monotonic() - started
    finally:
        hurried.close()
    assert waited < 0.9, "the ensemble answers at the budget, not when the slow member does"
    assert _statuses(scores) == [("iris-slow", "late"), ("stump", "ok")]
    assert set(scores.decided_by) == {"stump:1"}
    np.testing.assert_array_equal(scores.scores, stump.oracle.predict(rows))
    # With a budget it can meet, the same smart member decides, with MLServer's scikit-learn answers.
    patient = _load(document([_smart(served, timeout_ms="3000"), stump.entry(2)], budget_ms=3000))
    try:
        scores = patient.score_batch(rows)
    finally:
        patient.close()
    assert _statuses(scores) == [("iris-slow", "ok"), ("stump", "ok")]
    assert set(scores.decided_by) == {"iris-slow:1"}
    np.testing.assert_array_equal(scores.scores, data["predict"])
    np.testing.assert_allclose(scores.probabilities, data["predict_proba"], rtol=1e-12)
    assert next(o for o in scores.outcomes if o.name == "iris-slow").latency_us >= 1_000_000


def test_a_member_that_fails_is_an_error_and_every_result_says_so(served, stump):
    """iris-slow with a 300 ms timeout_ms: its request times out (an error, not late) inside a 3 s budget."""
    _, data = served
    rows = np.asarray(data["rows"][:10])
    model = _load(document([_smart(served, timeout_ms="300"), stump.entry(2)], budget_ms=3000))
    try:
        scores = model.score_batch(rows)
    finally:
        model.close()
    assert _statuses(scores) == [("iris-slow", "error"), ("stump", "ok")]
    assert "remote timeout" in scores.outcomes[0].detail
    results = results_for(model, [DataRecord(f"r{i}", "iris", 0, {}) for i in range(10)], scores)
    for result in results:
        assert result.decided_by == "stump:1"
        assert [(m.name, m.status) for m in result.members] == [("iris-slow", "error"), ("stump", "ok")]
    np.testing.assert_array_equal([r.score for r in results], stump.oracle.predict(rows))


def test_plurality_over_remote_and_embedded_members(served, stump):
    """The remote iris model (twice, under two names) outvotes the stump wherever they disagree."""
    server, data = served
    rows = np.asarray(data["rows"])
    second = remote_entry(server.url, "iris", 2, data["feature_names"])
    second["descriptor"]["name"] = "iris-again"
    members = [stump.entry(1), second, remote_entry(server.url, "iris", 3, data["feature_names"])]
    model = _load(document(members, decider="plurality", budget_ms=3000, quorum=2))
    try:
        scores = model.score_batch(rows)
    finally:
        model.close()
    np.testing.assert_array_equal(scores.scores, data["predict"])
    disagree = stump.oracle.predict(rows) != np.asarray(data["predict"])
    assert disagree.sum() > 10
    decided = np.asarray(scores.decided_by)
    assert set(decided[disagree]) == {"iris-again:1"} and set(decided[~disagree]) == {"stump:1"}


def test_declared_mode_excludes_slow_members_up_front_and_is_identical_after_restore(served, stump):
    server, data = served
    rows = np.asarray(data["rows"])
    members = [
        _smart(served, expected_latency_ms="1000"),  # over the budget: never called
        remote_entry(server.url, "iris", 2, data["feature_names"], expected_latency_ms="50"),
        stump.entry(3, expected_latency_ms="1"),
    ]
    model = _load(document(members, decider="max_confidence", mode="declared", budget_ms=200, min_conf=0.9))
    try:
        started = time.monotonic()
        first = model.score_batch(rows)
        assert time.monotonic() - started < 0.9, "the slow member was called"
        restored = restore(model.to_bytes(), columns=SCHEMA.columns)
    finally:
        model.close()
    try:
        again = restored.score_batch(rows)
    finally:
        restored.close()
    assert _statuses(first) == [("iris-slow", "late"), ("iris", "ok"), ("stump", "ok")]
    assert first.outcomes[0].latency_us == 0
    records = [DataRecord(f"r{i}", "iris", 0, {}) for i in range(len(rows))]

    def comparable(model, scores):
        out = []
        for result in results_for(model, records, scores):
            result.duration_ns = 0
            for member in result.members:
                member.latency_us = 0
            out.append(result.SerializeToString())
        return out

    assert comparable(model, first) == comparable(restored, again)
    # max_confidence picked each row's surest member; the oracle's probabilities say which that is.
    remote_top = np.max(data["predict_proba"], axis=1)
    stump_top = np.max(stump.oracle.predict_proba(rows), axis=1)
    expected = np.where(
        np.maximum(remote_top, stump_top) < 0.9, "iris:1", np.where(stump_top > remote_top, "stump:1", "iris:1")
    )
    assert list(first.decided_by) == list(expected)
