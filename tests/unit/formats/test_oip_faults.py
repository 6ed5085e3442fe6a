"""The ``oip`` format's faults against a real MLServer: slow replies, 503s, and the server killed mid-stream.

Each fault is a typed ``ScoringError`` with its reason (what a dead letter
carries), never a framework exception; a 503 or a dropped connection is
asked once more, and a model outlives its server's restart.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from serving.errors import RemoteCircuitOpen, RemoteTimeout, RemoteUnavailable, ScoringError
from serving.formats import load_model, restore
from tests.support.mlserver import numeric_schema, oip_descriptor


@pytest.fixture(scope="module")
def served(mlserver):
    server, expected = mlserver
    return server, expected["iris"]


def _iris(served, name: str, **metadata: str):
    server, data = served
    schema = numeric_schema("iris", data["schema_order"])
    descriptor = oip_descriptor(
        server.url, "iris", "iris", model_name=name, output_name="predict_proba",
        feature_names=",".join(data["feature_names"]), **metadata,
    )  # fmt: skip
    return load_model(descriptor, columns=schema.columns), np.asarray(data["rows"]), data


def test_a_reply_slower_than_timeout_ms_is_a_remote_timeout(served):
    """iris-slow answers after 1 s: 300 ms is too short, 3 s is long enough."""
    model, rows, data = _iris(served, "iris-slow", timeout_ms="300")
    try:
        started = time.monotonic()
        with pytest.raises(RemoteTimeout) as raised:
            model.score_batch(rows[:10])
        waited = time.monotonic() - started
    finally:
        model.close()
    assert raised.value.reason == "remote timeout"
    assert isinstance(raised.value, ScoringError)
    assert waited < 0.6, "a timeout is not retried (twice would take 0.6 s)"
    patient, rows, data = _iris(served, "iris-slow", timeout_ms="3000")
    try:
        np.testing.assert_allclose(patient.score_batch(rows[:10]).probabilities, data["predict_proba"][:10])
    finally:
        patient.close()


def test_a_503_is_asked_once_more(served):
    """iris-flaky answers every other request with 503, the first included: each batch succeeds on its retry."""
    model, rows, data = _iris(served, "iris-flaky")
    try:
        for start in (0, 50, 100):
            scores = model.score_batch(rows[start : start + 50])
            np.testing.assert_allclose(scores.probabilities, data["predict_proba"][start : start + 50], rtol=1e-12)
    finally:
        model.close()


def test_an_event_loop_gets_the_same_typed_errors_and_retries(served):
    slow, rows, _ = _iris(served, "iris-slow", timeout_ms="200")
    flaky, _, data = _iris(served, "iris-flaky")

    async def both():
        try:
            with pytest.raises(RemoteTimeout):
                await slow.ascore_batch(rows[:10])
            # Two batches: whatever the server's count, one of them meets a 503 first.
            return [await flaky.ascore_batch(rows[:10]), await flaky.ascore_batch(rows[:10])]
        finally:
            await slow.aclose()
            await flaky.aclose()

    try:
        scores = asyncio.run(both())
    finally:
        slow.close()
        flaky.close()
    for batch in scores:
        np.testing.assert_allclose(batch.probabilities, data["predict_proba"][:10], rtol=1e-12)


def test_the_server_killed_mid_stream_is_remote_unavailable_and_scoring_resumes_after_its_restart(served):
    server, _ = served
    model, rows, data = _iris(served, "iris")
    try:
        np.testing.assert_allclose(model.score_batch(rows[:50]).probabilities, data["predict_proba"][:50])
        server.kill()
        with pytest.raises(RemoteUnavailable) as raised:
            model.score_batch(rows[50:100])
        assert raised.value.reason == "remote unavailable"
        assert "\n" not in str(raised.value)
        # A job restoring the model from state meanwhile is not stopped by the server being down.
        restored = restore(model.to_bytes(), columns=model.columns)
        server.start()
        # The same model, its persistent client reconnecting: nothing to reload.
        scores = model.score_batch(rows[50:100])
        np.testing.assert_allclose(scores.probabilities, data["predict_proba"][50:100], rtol=1e-12)
        np.testing.assert_allclose(restored.score_batch(rows).probabilities, data["predict_proba"], rtol=1e-12)
        restored.close()
    finally:
        model.close()


def test_a_server_that_keeps_failing_is_not_called_until_a_probe_finds_it_back(served, monkeypatch):
    monkeypatch.setenv("MODELSERVING_REMOTE_BREAKER_FAILURES", "2")
    monkeypatch.setenv("MODELSERVING_REMOTE_BREAKER_OPEN_MS", "3000")
    server, _ = served
    model, rows, data = _iris(served, "iris")
    try:
        server.kill()
        for _ in range(2):
            with pytest.raises(RemoteUnavailable) as raised:
                model.score_batch(rows[:10])
            assert raised.value.reason == "remote unavailable"
        # Two failures in a row opened the breaker: the next batch is not sent at all.
        with pytest.raises(RemoteCircuitOpen, match="2 failures in a row") as raised:
            model.score_batch(rows[:10])
        assert raised.value.reason == "remote circuit open"
        server.start()
        breaker = model._client.breaker
        deadline = time.monotonic() + 10
        while breaker.state == "open" and time.monotonic() < deadline:
            time.sleep(0.1)
        # The probe finds the server back, and the breaker closes.
        np.testing.assert_allclose(model.score_batch(rows[:10]).probabilities, data["predict_proba"][:10], rtol=1e-12)
        assert breaker.state == "closed"
    finally:
        model.close()
