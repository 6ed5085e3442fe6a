"""The current model per data type, and the rule for swapping a new one in.

The swap rule (:meth:`ModelRegistry.offer`):

1. Build the model from its descriptor. A load failure **rejects** it.
2. Score a probe record. A failure, or a non-finite score, **rejects** it.
3. A model with the same name, version and artifact as the serving one is a
   **duplicate** (a replayed message) and is ignored.
4. Otherwise it is **accepted**: it serves from now on and the previous model
   is closed.

A rejected or duplicate model never disturbs the serving one. Every outcome
comes back as a ``ModelEvent`` for the model-events output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving import wine
from serving.codecs import now_ms
from serving.errors import ModelValidationError, ServingError
from serving.factories import load_model, restore
from serving.model import Model, ModelDescriptor
from serving.pb.model_event_pb2 import ModelEvent


def probe_features(data_type: str, n_features: int | None) -> np.ndarray:
    """One realistic feature row for ``data_type`` to check a model scores at all."""
    if data_type == wine.DATA_TYPE:
        return np.asarray([wine.PROBE_ROW], dtype=np.float64)
    return np.zeros((1, n_features or 1), dtype=np.float64)


def validate(model: Model) -> None:
    """Score the probe record; raise :class:`ModelValidationError` if that fails."""
    try:
        result = model.score_batch(probe_features(model.data_type, model.n_features))
    except ServingError as exc:
        raise ModelValidationError(f"model {model.name}:{model.version} failed its probe record: {exc}") from exc
    if not np.all(np.isfinite(result.scores)):
        raise ModelValidationError(f"model {model.name}:{model.version} gave a non-finite score for its probe record")


@dataclass
class SwapOutcome:
    """What :meth:`ModelRegistry.offer` did: the event, and the models involved."""

    event: ModelEvent
    model: Model | None = None
    retired: Model | None = None

    @property
    def accepted(self) -> bool:
        """Whether the offered model now serves."""
        return self.event.kind == ModelEvent.ACCEPTED


class ModelRegistry:
    """Built models, one serving per data type; see the module docstring for the rule.

    Not thread-safe: each Flink function instance owns one.
    """

    def __init__(self, model_roots: Sequence[Path] | None = None) -> None:
        self._serving: dict[str, Model] = {}
        self._model_roots = model_roots

    def get(self, data_type: str) -> Model | None:
        """The model serving ``data_type``, or None."""
        return self._serving.get(data_type)

    def data_types(self) -> list[str]:
        """Data types with a serving model."""
        return list(self._serving)

    def offer(self, descriptor: ModelDescriptor) -> SwapOutcome:
        """Try to make ``descriptor`` the serving model of its data type."""
        data_type = descriptor.data_type
        current = self._serving.get(data_type)
        previous_version = current.version if current else ""
        event = ModelEvent(
            name=descriptor.name,
            version=descriptor.version,
            data_type=data_type,
            model_type=descriptor.model_type,
            previous_version=previous_version,
            ts=now_ms(),
        )
        try:
            model = load_model(descriptor, self._model_roots)
        except ServingError as exc:
            event.kind, event.reason = ModelEvent.REJECTED, f"{exc.reason}: {exc}"
            return SwapOutcome(event)
        try:
            validate(model)
        except ServingError as exc:
            model.close()
            event.kind, event.reason = ModelEvent.REJECTED, f"{exc.reason}: {exc}"
            return SwapOutcome(event)
        if current is not None and _same_model(current, model):
            model.close()
            event.kind, event.reason = ModelEvent.DUPLICATE, "same name, version and artifact as the serving model"
            return SwapOutcome(event, model=current)
        self._serving[data_type] = model
        if current is not None:
            current.close()
        event.kind = ModelEvent.ACCEPTED
        return SwapOutcome(event, model=model, retired=current)

    def restore(self, state_bytes: bytes) -> Model:
        """Rebuild a model from Flink state (``Model.to_bytes``) and serve it, without a probe."""
        model = restore(state_bytes, self._model_roots)
        old = self._serving.get(model.data_type)
        self._serving[model.data_type] = model
        if old is not None:
            old.close()
        return model

    def close(self) -> None:
        """Close every serving model."""
        for model in self._serving.values():
            model.close()
        self._serving.clear()


def _same_model(a: Model, b: Model) -> bool:
    return (a.name, a.version, a.artifact_sha256) == (b.name, b.version, b.artifact_sha256)
