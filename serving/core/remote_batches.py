"""Remote batches: a remote model's records leave the serving function as one message and come back as outcomes.

The serving function keeps choosing the model; for a model that
:func:`is_asynchronous` (format ``oip``) it writes a ``RemoteBatch`` (the
model as kept in state, its input rows and the records' ids, times and bytes)
instead of calling the server. :class:`RemoteScorer`, inside PyFlink's async
operator, scores it on the model's server and returns tagged outcomes: one
result per record, or one dead letter per record with the reason, plus the
stats of its own instance. Nothing here imports Flink.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence

import numpy as np

from serving.codecs.outputs import dead_letter, results_for
from serving.core.member_stats import tally
from serving.core.model import Model
from serving.core.stats import StatsTracker
from serving.errors import ServingError
from serving.logs import get_logger
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.remote_batch_pb2 import RemoteBatch, RemoteRecord
from serving.records.base import Record
from serving.records.schema import Column
from serving.records.wire import DataRecord
from serving.settings import ServingOptions

log = get_logger("remote")

#: Models kept per worker: a remote model is its server's URL and settings, cheap to keep.
_CACHED_MODELS = 16


class RemoteOutcome(enum.Enum):
    """What a tagged outcome holds: its first byte."""

    RESULT = b"R"
    DEAD_LETTER = b"D"
    STATS = b"S"


def is_asynchronous(model: Model) -> bool:
    """Whether ``model`` is scored by the async operator rather than in the serving function."""
    return bool(getattr(model, "asynchronous", False))


def remote_batch(model: Model, records: Sequence[Record], inputs: np.ndarray, max_payload_bytes: int) -> bytes:
    """The ``RemoteBatch`` for ``records``, whose model inputs (in ``model.input_names`` order) are ``inputs``."""
    message = RemoteBatch(
        model=model.to_bytes(),
        data_type=model.data_type,
        input_names=list(model.input_names),
        inputs=np.asarray(inputs, dtype=np.float64).ravel().tolist(),
        max_payload_bytes=max_payload_bytes,
    )
    message.records.extend(RemoteRecord(id=r.id, ts=r.ts, payload=r.SerializeToString()) for r in records)
    return message.SerializeToString()


def remote_outcomes(value: bytes) -> tuple[RemoteOutcome, bytes]:
    """Split a tagged outcome into its kind and its message bytes."""
    return RemoteOutcome(value[:1]), value[1:]


def _records(batch: RemoteBatch) -> list[DataRecord]:
    """The batch's records as results and dead letters need them: id, data type, time and bytes (no values)."""
    return [DataRecord(r.id, batch.data_type, r.ts, {}, bytes(r.payload)) for r in batch.records]


def dead_letters(batch: RemoteBatch, exc: ServingError) -> list[bytes]:
    """One tagged dead letter per record of ``batch``, with ``exc``'s reason."""
    return [
        RemoteOutcome.DEAD_LETTER.value
        + dead_letter(
            "scoring", exc.reason, str(exc), r.payload, data_type=r.data_type, record_id=r.id,
            max_payload_bytes=batch.max_payload_bytes,
        ).SerializeToString()
        for r in _records(batch)
    ]  # fmt: skip


#: Reasons that say the server was not there, so asking again later may succeed.
RETRYABLE_REASONS = frozenset({"remote unavailable", "remote timeout", "remote circuit open"})


def worth_retrying(outcomes: list[bytes]) -> bool:
    """Whether a batch's outcomes are all dead letters of a server that was not there (the async retry rule)."""
    if not outcomes:
        return False
    for value in outcomes:
        kind, payload = remote_outcomes(value)
        if kind is not RemoteOutcome.DEAD_LETTER or DeadLetter.FromString(payload).reason not in RETRYABLE_REASONS:
            return False
    return True


def timed_out(value: bytes, options: ServingOptions) -> list[bytes]:
    """The outcomes of a batch whose request outlived the async operator's own time limit."""
    from serving.errors import RemoteTimeout

    batch = RemoteBatch.FromString(value)
    return dead_letters(
        batch, RemoteTimeout(f"no answer within the job's limit of {options.remote_async_timeout_ms} ms")
    )


class RemoteScorer:
    """Scores ``RemoteBatch`` messages; one per async operator instance (its event loop owns the clients).

    Models are rebuilt from their state bytes once and cached by digest, bound
    to their own input names (the serving function already ordered the
    inputs). Stats are this instance's (``instance``), kept in memory: after a
    restart they start again, which the stats service reads as a restart.
    """

    def __init__(self, instance: str, options: ServingOptions) -> None:
        self.options = options
        self.tracker = StatsTracker(instance, options.stats_every_records, options.stats_every_seconds, None)
        self._models: dict[str, Model] = {}

    async def score(self, value: bytes) -> list[bytes]:
        """Tagged outcomes for one ``RemoteBatch``: results, or dead letters with the reason; then due stats."""
        batch = RemoteBatch.FromString(value)
        records = _records(batch)
        try:
            model = self._model(batch)
            inputs = np.asarray(batch.inputs, dtype=np.float64).reshape(len(records), len(batch.input_names))
            scores = await model.ascore_batch(inputs)
        except ServingError as exc:
            log.warning(
                "remote batch failed",
                extra={"data_type": batch.data_type, "records": len(records), "reason": exc.reason, "error": str(exc)},
            )
            return dead_letters(batch, exc)
        outcomes = [RemoteOutcome.RESULT.value + r.SerializeToString() for r in results_for(model, records, scores)]
        for stats in self.tracker.scored(model, len(records), scores.duration_ns, tally(scores, len(records))):
            outcomes.append(RemoteOutcome.STATS.value + stats.SerializeToString())
        return outcomes

    def _model(self, batch: RemoteBatch) -> Model:
        from serving.formats import restore

        digest = hashlib.sha256(batch.model).hexdigest()
        model = self._models.get(digest)
        if model is None:
            columns = [Column(name, "number", name) for name in batch.input_names]
            model = restore(bytes(batch.model), columns=columns)
            if len(self._models) >= _CACHED_MODELS:
                self._models.pop(next(iter(self._models))).close()
            self._models[digest] = model
        return model

    def close(self) -> None:
        """Close every cached model's connections."""
        for model in self._models.values():
            model.close()
        self._models.clear()
