"""Admitting published models, and the cache of built ones.

The admission rule (:meth:`ModelCache.admit`), applied when a model message arrives:

1. Decode the descriptor. Bytes that are not one, a message over the size
   cap, or a ``created_at`` out of range are **rejected**.
2. Build the model, bound to the current schema of its data type: its
   inputs are found by name among the schema's fields. No schema, a load
   failure, or inputs the schema lacks (or has with another type, named)
   **reject** it. So does a signature that does not verify against the
   job's trusted keys, or none when the job requires signatures
   (:mod:`serving.governance.signing`): checked on the artifact as loaded.
3. Score the schema's probe row. A failure, or a non-finite score, **rejects** it.
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
from serving.core.model import Model, model_key, normalise_field
from serving.errors import ModelMessageTooLarge, ModelSchemaError, ModelValidationError, ServingError
from serving.formats import load_model, parse_descriptor, restore
from serving.governance.signing import check_signature, trusted_keys
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.records.base import check_timestamp
from serving.records.features import probe_matrix
from serving.records.schema import DataTypeSchema
from serving.settings import ServingOptions


def validate(model: Model, schema: DataTypeSchema) -> None:
    """Score the schema's probe row; raise :class:`ModelValidationError` if that fails."""
    try:
        declared = {normalise_field(name): value for name, value in model.probe_values.items()}
        hints = {
            f.name: declared[normalise_field(f.name)] for f in schema.features if normalise_field(f.name) in declared
        }
        result = model.score_batch(probe_matrix(schema, hints))
    except (ServingError, ValueError, TypeError) as exc:  # a probe value the model's framework refuses
        raise ModelValidationError(f"model {model.name}:{model.version} failed its probe record: {exc}") from exc
    if not np.all(np.isfinite(result.scores)):
        raise ModelValidationError(f"model {model.name}:{model.version} gave a non-finite score for its probe record")


class NoSchema(ModelSchemaError):
    """A model (or a record) of a data type no schema declares."""

    reason = "no schema"


def schema_problems(model: Model, schema: DataTypeSchema) -> list[str]:
    """Why ``model`` could not read records of ``schema`` (empty when it can): its inputs missing or retyped."""
    try:
        model.rebound(schema.columns)
    except ModelSchemaError as exc:
        return [str(exc)]
    return []


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
        self._keys: dict[str, object] | None = None  # the trusted signing keys, parsed on first use

    def __len__(self) -> int:
        return len(self._models)

    def admit(
        self,
        payload: bytes,
        schema: DataTypeSchema | None,
        known: Iterable[Model] = (),
        previous_version: str = "",
    ) -> Admission:
        """Apply the admission rule to model message bytes; see the module docstring.

        ``schema`` is the current schema of the model's data type (None: it
        has none, and the model is rejected); ``known`` are the models already
        serving or pending for the data type; ``previous_version`` is what the
        events report as serving now.
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
            if schema is None:
                raise NoSchema(
                    f"data type {descriptor.data_type!r} has no schema: publish it first (modelserving publish schema)"
                )
            model = load_model(descriptor, self._model_roots, schema.columns)
            model.schema_version = schema.version
        except ServingError as exc:
            return self._rejected(event, exc, payload)
        try:
            self._check_signature(descriptor, model)
        except ServingError as exc:
            model.close()
            return self._rejected(event, exc, payload)
        try:
            validate(model, schema)
        except ServingError as exc:
            model.close()
            return self._rejected(event, exc, payload)
        for other in known:
            if model_key(other) == model_key(model) and other.artifact_sha256 == model.artifact_sha256:
                model.close()
                event.kind, event.reason = ModelEvent.DUPLICATE, "same name, version and artifact as a known model"
                return Admission(event, model=other)
        old = self._models.pop(_cache_key(model), None)
        if old is not None:
            old.close()
        self._models[_cache_key(model)] = model
        event.kind = ModelEvent.ACCEPTED
        return Admission(event, model=model)

    def _check_signature(self, descriptor, model: Model) -> None:
        """The signature policy, on the artifact as loaded (serving.governance.signing)."""
        options = self._options
        if not descriptor.signature and not options.require_signatures:
            return
        if self._keys is None:
            self._keys = trusted_keys(options.trusted_keys)
        signer = check_signature(descriptor, model.artifact, self._keys, required=options.require_signatures)
        model.signed_by = signer

    def restored(self, state_bytes: bytes, schema: DataTypeSchema) -> Model:
        """The model kept in state as ``Model.to_bytes()``, bound to ``schema``; built once per schema version."""
        descriptor = parse_descriptor(state_bytes)
        key = (model_key(descriptor), schema.version)
        cached = self._models.get(key)
        if cached is not None:
            return cached
        model = restore(state_bytes, self._model_roots, schema.columns)
        model.schema_version = schema.version
        self._models[key] = model
        return model

    def retain(self, keep: Iterable[Model]) -> None:
        """Close and forget every cached model not in ``keep``."""
        wanted = {_cache_key(m) for m in keep}
        for key in [k for k in self._models if k not in wanted]:
            self._models.pop(key).close()

    def forget(self, model: Model) -> None:
        """Close and forget ``model`` (one admitted but then refused): the next use rebuilds from state."""
        cached = self._models.pop(_cache_key(model), None)
        if cached is not None:
            cached.close()

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


def _cache_key(model: Model) -> tuple[tuple[str, str, str], str]:
    return (model_key(model), model.schema_version)
