"""The admission rule: accepted, rejected (with a dead letter) and duplicate models."""

from __future__ import annotations

import numpy as np

from serving.core.admission import ModelCache
from serving.core.model import ModelType
from serving.formats import descriptor_from_path
from serving.pb.model_event_pb2 import ModelEvent
from serving.records import builtin_registry
from tests.support.reference import PMML_FOREST, PMML_LINEAR

#: The bundled wine schema the reference models are admitted against.
WINE = builtin_registry().get("wine")


def payload(path, version, **kw) -> bytes:
    return descriptor_from_path(path, ModelType.PMML, version=version, **kw).SerializeToString()


def test_accepted_model_is_built_once_and_cached():
    cache = ModelCache()
    first = cache.admit(payload(PMML_LINEAR, "1"), WINE)
    assert first.accepted and first.model.version == "1" and first.dead_letter is None
    assert len(cache) == 1


def test_corrupt_model_is_rejected_with_event_and_dead_letter():
    cache = ModelCache()
    cache.admit(payload(PMML_LINEAR, "1"), WINE)
    bad = descriptor_from_path(PMML_LINEAR, ModelType.PMML, version="2")
    bad.data, bad.sha256 = b"<PMML garbage", ""
    outcome = cache.admit(bad.SerializeToString(), WINE, previous_version="1")
    assert outcome.event.kind == ModelEvent.REJECTED and "corrupt" in outcome.event.reason
    assert outcome.event.previous_version == "1" and outcome.model is None
    assert outcome.dead_letter.source == "model" and outcome.dead_letter.payload == bad.SerializeToString()


def test_undecodable_model_message_is_rejected():
    outcome = ModelCache().admit(b"\x00\x01garbage", WINE)
    assert outcome.event.kind == ModelEvent.REJECTED and outcome.dead_letter.payload == b"\x00\x01garbage"


def test_replayed_model_is_a_duplicate():
    cache = ModelCache()
    first = cache.admit(payload(PMML_LINEAR, "1"), WINE)
    again = cache.admit(payload(PMML_LINEAR, "1"), WINE, known=[first.model])
    assert again.event.kind == ModelEvent.DUPLICATE and again.model is first.model


def test_restored_serves_from_state_bytes_and_retain_closes_the_rest(wine_data, monkeypatch):
    cache = ModelCache()
    model = cache.admit(payload(PMML_FOREST, "3"), WINE).model
    closed = []
    monkeypatch.setattr(model, "close", lambda: closed.append(model.version))
    other = ModelCache()
    restored = other.restored(model.to_bytes(), WINE)
    assert restored.version == "3" and other.restored(model.to_bytes(), WINE) is restored
    np.testing.assert_array_equal(
        restored.score_batch(wine_data.features).scores, model.score_batch(wine_data.features).scores
    )
    cache.retain([])
    # The weak form asserted model._pmml is None, true from construction under the NumPy engine.
    assert closed == ["3"] and len(cache) == 0
    assert (
        len(other.restored(model.to_bytes(), WINE).score_batch(wine_data.features[:3])) == 3
    )  # other caches keep theirs
