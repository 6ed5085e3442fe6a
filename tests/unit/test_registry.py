"""The swap rule: accepted, rejected (old model keeps serving) and duplicate offers."""

from __future__ import annotations

import numpy as np

from serving.factories import descriptor_from_path
from serving.model import ModelType
from serving.pb.model_event_pb2 import ModelEvent
from serving.registry import ModelRegistry
from tests.conftest import PMML_FOREST, PMML_LINEAR


def test_accept_then_swap_closes_the_old_model():
    registry = ModelRegistry()
    first = registry.offer(descriptor_from_path(PMML_LINEAR, ModelType.PMML, version="1"))
    assert first.accepted and registry.get("wine").version == "1"
    second = registry.offer(descriptor_from_path(PMML_FOREST, ModelType.PMML, version="2"))
    assert second.accepted and second.event.previous_version == "1"
    assert registry.get("wine").version == "2"
    assert second.retired is first.model and first.model._pmml is None  # closed


def test_corrupt_model_is_rejected_and_previous_keeps_serving(wine_data):
    registry = ModelRegistry()
    registry.offer(descriptor_from_path(PMML_LINEAR, ModelType.PMML, version="1"))
    bad = descriptor_from_path(PMML_LINEAR, ModelType.PMML, version="2")
    bad.data = b"<PMML garbage"
    bad.sha256 = ""
    outcome = registry.offer(bad)
    assert outcome.event.kind == ModelEvent.REJECTED and "corrupt" in outcome.event.reason
    assert outcome.event.previous_version == "1"
    serving = registry.get("wine")
    assert serving.version == "1"
    assert np.isfinite(serving.score_batch(wine_data.features).scores).all()


def test_replayed_model_is_a_duplicate_and_not_reloaded():
    registry = ModelRegistry()
    descriptor = descriptor_from_path(PMML_LINEAR, ModelType.PMML, version="1")
    first = registry.offer(descriptor)
    again = registry.offer(descriptor)
    assert again.event.kind == ModelEvent.DUPLICATE
    assert registry.get("wine") is first.model


def test_restore_serves_from_state_bytes(wine_data):
    registry = ModelRegistry()
    model = registry.offer(descriptor_from_path(PMML_FOREST, ModelType.PMML, version="3")).model
    state = model.to_bytes()
    other = ModelRegistry()
    restored = other.restore(state)
    assert other.get("wine") is restored and restored.version == "3"
    np.testing.assert_array_equal(
        restored.score_batch(wine_data.features).scores, model.score_batch(wine_data.features).scores
    )
