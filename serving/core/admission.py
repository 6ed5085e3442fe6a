"""Admitting published models, and the cache of built ones.

The admission rule (:meth:`ModelCache.admit`), applied when a model message arrives:

1. Decode the descriptor. Bytes that are not one, a message over the size
   cap, or a ``created_at`` out of range are **rejected**.
2. Build the model. A load failure **rejects** it.
3. Score a probe record. A failure, or a non-finite score, **rejects** it.
4. A model with the same name, version and artifact as one already known for
   its data type is a **duplicate** (a replayed message) and is ignored.
5. Otherwise it is **accepted**; it serves records from its ``created_at`` on
   (see :mod:`serving.core.timeline`).

A rejected or duplicate model never disturbs the serving one. Every outcome
comes back as a ``ModelEvent``; a rejection also as a dead letter with the
original bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.clock import now_ms
from serving.codecs.outputs import dead_letter
from serving.core.model import Model, model_key
from serving.errors import ModelMessageTooLarge, ModelValidationError, ServingError
from serving.formats import load_model, parse_descriptor, restore
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.records import for_data_type
from serving.records.base import check_timestamp
from serving.settings import ServingOptions


def probe_features(data_type: str, n_features: int | None) -> np.ndarray:
    """One realistic feature row for ``data_type`` (its record type's probe row) to check a model scores at all.

    A model that declares another width than the record type gets a row of
    zeros of its width: it then fails on real records, not on the probe.
    """
    probe = for_data_type(data_type).probe_row
    if n_features is not None and n_features != len(probe):
        return np.zeros((1, n_features), dtype=np.float64)
    return np.asarray([probe], dtype=np.float64)


def validate(model: Model) -> None:
    """Score the probe record; raise :class:`ModelValidationError` if that fails."""
    try:
        result = model.score_batch(probe_features(model.data_type, model.n_features))
    except ServingError as exc:
        raise ModelValidationError(f"model {model.name}:{model.version} failed its probe record: {exc}") from exc
    if not np.all(np.isfinite(result.scores)):
        raise ModelValidationError(f"model {model.name}:{model.version} gave a non-finite score for its probe record")


@dataclass
class Admission:
    """The outcome of :meth:`ModelCache.admit`."""

    event: ModelEvent
    model: Model | None = None
    dead_letter: DeadLetter | None = None

    @property
    def accepted(self) -> bool:
        """Whether the model was accepted."""
        return self.event.kind == ModelEvent.ACCEPTED


class ModelCache:
    """Built models by (data type, name, version), so each is built once per worker.

    Not thread-safe: each Flink function instance owns one.
    """

    def __init__(self, model_roots: Sequence[Path] | None = None, options: ServingOptions | None = None) -> None:
        self._models: dict[tuple[str, str, str], Model] = {}
        self._model_roots = list(model_roots) if model_roots else None
        self._options = options or ServingOptions()

    def __len__(self) -> int:
        return len(self._models)

    def admit(self, payload: bytes, known: Iterable[Model] = (), previous_version: str = "") -> Admission:
        """Apply the admission rule to model message bytes; see the module docstring.

        ``known`` are the models already serving or pending for the data type;
        ``previous_version`` is what the events report as serving now.
        """
        event = ModelEvent(ts=now_ms(), previous_version=previous_version)
        options = self._options
        try:
            if len(payload) > options.max_model_message_bytes:
                raise ModelMessageTooLarge(
                    f"model message is {len(payload):,} bytes, over the {options.max_model_message_bytes:,}-byte cap"
                )
            descriptor = parse_descriptor(payload)
            event.name, event.version = descriptor.name, descriptor.version
            event.data_type, event.model_type = descriptor.data_type, descriptor.model_type
            check_timestamp(descriptor.created_at, options.max_future_skew_ms, f"model {descriptor.name!r} created_at")
            model = load_model(descriptor, self._model_roots)
        except ServingError as exc:
            return self._rejected(event, exc, payload)
        try:
            validate(model)
        except ServingError as exc:
            model.close()
            return self._rejected(event, exc, payload)
        for other in known:
            if model_key(other) == model_key(model) and other.artifact_sha256 == model.artifact_sha256:
                model.close()
                event.kind, event.reason = ModelEvent.DUPLICATE, "same name, version and artifact as a known model"
                return Admission(event, model=other)
        old = self._models.pop(model_key(model), None)
        if old is not None:
            old.close()
        self._models[model_key(model)] = model
        event.kind = ModelEvent.ACCEPTED
        return Admission(event, model=model)

    def restored(self, state_bytes: bytes) -> Model:
        """The model kept in state as ``Model.to_bytes()``; built once, without a probe."""
        descriptor = parse_descriptor(state_bytes)
        cached = self._models.get(model_key(descriptor))
        if cached is not None:
            return cached
        model = restore(state_bytes, self._model_roots)
        self._models[model_key(model)] = model
        return model

    def retain(self, keep: Iterable[Model]) -> None:
        """Close and forget every cached model not in ``keep``."""
        wanted = {model_key(m) for m in keep}
        for key in [k for k in self._models if k not in wanted]:
            self._models.pop(key).close()

    def close(self) -> None:
        """Close every cached model."""
        self.retain(())

    def _rejected(self, event: ModelEvent, exc: ServingError, payload: bytes) -> Admission:
        event.kind, event.reason = ModelEvent.REJECTED, f"{exc.reason}: {exc}"
        letter = dead_letter(
            "model",
            exc.reason,
            str(exc),
            payload,
            data_type=event.data_type,
            record_id=event.version,
            max_payload_bytes=self._options.dead_letter_max_payload_bytes,
        )
        return Admission(event, dead_letter=letter)
