"""Scoring buffered records and keeping stats: the work both Flink jobs share. Flink-free.

A Flink function keeps records and models in state, and when the watermark
(or the idle-flush timer) says records are due it calls :func:`score_due`
with them and the model timeline of each data type. What comes back are
plain protobuf messages for the main output and the side outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from serving.codecs import dead_letter, decode_record, features_matrix, now_ms, results_for
from serving.errors import RecordDecodeError, ServingError
from serving.model import Model
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_stats_pb2 import ModelStats, ModelStatsList
from serving.pb.serving_result_pb2 import ServingResult
from serving.pb.wine_record_pb2 import WineRecord
from serving.registry import model_key
from serving.stats import ModelServingStats
from serving.timeline import assign

NO_MODEL = "no model"


@dataclass
class Scored:
    """The outcome of scoring due records."""

    results: list[ServingResult] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: (model, records scored, total duration ns), one per batch call
    batches: list[tuple[Model, int, int]] = field(default_factory=list)
    #: records kept for a model still to come (hold mode, no model yet)
    held: list[WineRecord] = field(default_factory=list)


#: First byte of a buffer entry: 0 is never the first byte of a WineRecord (field number 0 is invalid).
_ENTRY_MARK = b"\x00"


def buffer_entry(ts: int, payload: bytes) -> bytes:
    """A record as a buffer keeps it: a mark, its ``ts`` (8 bytes) and its WineRecord bytes.

    The timestamp up front lets a flush find the due records without
    decoding the ones that must wait.
    """
    return _ENTRY_MARK + ts.to_bytes(8, "big", signed=True) + bytes(payload)


def entry_ts(entry: bytes) -> int:
    """The ``ts`` of a buffer entry (older buffers kept bare WineRecord bytes: decoded)."""
    if entry[:1] == _ENTRY_MARK:
        return int.from_bytes(entry[1:9], "big", signed=True)
    return decode_record(bytes(entry)).ts


def decode_buffer(entries: Iterable[bytes]) -> list[WineRecord]:
    """Records kept in state; they were validated on the way in, so this cannot fail."""
    return [decode_record(bytes(e[9:]) if e[:1] == _ENTRY_MARK else bytes(e)) for e in entries]


def score_due(
    records: Sequence[WineRecord],
    timelines: Mapping[str, Sequence[tuple[int, Model]]],
    *,
    hold: bool,
    max_held: int,
    end_of_input: bool = False,
    batch_size: int = 0,
) -> Scored:
    """Score ``records`` by the event-time rule of :mod:`serving.timeline`.

    Records whose data type has no model yet are held (``hold``, up to
    ``max_held``; the oldest overflow is dead-lettered) or dead-lettered as
    ``no model``. Each model's records go to ``score_batch`` in batches of at
    most ``batch_size`` (0: all at once). At ``end_of_input`` nothing more can arrive, so held records
    are dead-lettered too: nothing is lost silently.
    """
    out = Scored()
    by_type: dict[str, list[WineRecord]] = {}
    for record in records:
        by_type.setdefault(record.data_type, []).append(record)
    for data_type, group in by_type.items():
        timeline = timelines.get(data_type, ())
        assignment = assign(group, timeline, hold=hold)
        for model, run in assignment.runs:
            step = batch_size or len(run)
            for start in range(0, len(run), step):
                _score_batch(model, run[start : start + step], out)
        unserved = assignment.unserved
        if hold and not timeline and not end_of_input:
            overflow = max(0, len(unserved) - max_held)
            out.held.extend(unserved[overflow:])
            reason = f"{NO_MODEL}: hold buffer for {data_type!r} is full ({max_held} records)"
            unserved = unserved[:overflow]
        else:
            reason = f"{NO_MODEL} for data type {data_type!r}"
        out.dead_letters.extend(
            dead_letter("data", NO_MODEL, reason, r.SerializeToString(), data_type=r.data_type, record_id=r.id)
            for r in unserved
        )
    return out


def _score_batch(model: Model, batch: list[WineRecord], out: Scored) -> None:
    try:
        scores = model.score_batch(features_matrix(batch))
    except ServingError as exc:
        out.dead_letters.extend(
            dead_letter("scoring", exc.reason, str(exc), r.SerializeToString(), data_type=r.data_type, record_id=r.id)
            for r in batch
        )
        return
    out.results.extend(results_for(model, batch, scores))
    out.batches.append((model, len(batch), scores.duration_ns))


def decode_data(payload: bytes) -> WineRecord | DeadLetter:
    """A valid record, or a dead letter with the reason and the original bytes."""
    try:
        return decode_record(payload)
    except RecordDecodeError as exc:
        return dead_letter("data", exc.reason, str(exc), payload)


class StatsTracker:
    """Stats of each model an instance serves, with the emission rule.

    Stats are emitted (returned as ``ModelStats`` messages) when a model starts
    and stops serving its data type, every ``every_records`` records, when
    ``every_seconds`` have passed since the last emission (checked on
    :meth:`scored` and :meth:`emit_due`), and on request. The tracker loads
    from and saves to ``ModelStatsList`` bytes, so a Flink function can keep it
    in one ValueState; the time of the last emission travels with it (as each
    entry's ``emitted_at``), so the time rule holds across timer calls.

    Attributes:
        starts: models that started serving since this tracker was built.
        unreported: records were accounted for since the last emission of all
            stats; a caller should come back (:meth:`emit_due`) later.
    """

    def __init__(self, instance: str, every_records: int, every_seconds: float, saved: bytes | None) -> None:
        self.instance = instance
        self.every_records = every_records
        self.every_ms = int(every_seconds * 1000)
        entries = ModelStatsList.FromString(bytes(saved)).stats if saved else []
        self.stats: dict[str, ModelServingStats] = {}
        for entry in entries:
            stats = ModelServingStats.from_proto(entry)
            self.stats["\x1f".join((stats.data_type, stats.name, stats.version))] = stats
        self._last_emit_ms = max((e.emitted_at for e in entries), default=0) or now_ms()
        self.starts = 0
        self.unreported = False

    @staticmethod
    def key(model: Model) -> str:
        """The state key of a model's stats."""
        return "\x1f".join(model_key(model))

    def started(self, model: Model, since_ms: int) -> list[ModelStats]:
        """``model`` now serves its data type: retire the others of that type."""
        emitted = []
        for key in [k for k, s in self.stats.items() if s.data_type == model.data_type]:
            if key != self.key(model):
                emitted.append(self._message(self.stats.pop(key)))
        if self.key(model) not in self.stats:
            self.stats[self.key(model)] = self._fresh(model, since_ms)
            self.starts += 1
            emitted.append(self._message(self.stats[self.key(model)]))
        return emitted

    def scored(self, model: Model, count: int, duration_ns: int) -> list[ModelStats]:
        """Account for a batch; returns the stats due for emission, if any."""
        since = model.descriptor.created_at or now_ms()
        emitted = self.started(model, since) if self.key(model) not in self.stats else []
        stats = self.stats[self.key(model)]
        before = stats.usage
        stats.record(duration_ns, count)
        crossed = self.every_records and before // self.every_records != stats.usage // self.every_records
        if crossed or (self.every_ms and now_ms() - self._last_emit_ms >= self.every_ms):
            emitted.extend(self.emit_all())
        else:
            self.unreported = True
        return [m for m in emitted if m is not None]

    def emit_due(self) -> list[ModelStats]:
        """Every model's stats when ``every_seconds`` have passed since the last emission, else nothing."""
        if self.every_ms and now_ms() - self._last_emit_ms >= self.every_ms:
            return self.emit_all()
        return []

    def emit_all(self) -> list[ModelStats]:
        """Current stats of every model, for periodic and end-of-input emission."""
        self._last_emit_ms = now_ms()
        self.unreported = False
        return [self._message(s) for s in self.stats.values()]

    def saved(self) -> bytes:
        """The bytes to keep in state (a ``ModelStatsList``; ``emitted_at``: the last emission)."""
        entries = []
        for stats in self.stats.values():
            entry = stats.to_proto()
            entry.emitted_at = self._last_emit_ms
            entries.append(entry)
        return ModelStatsList(stats=entries).SerializeToString()

    def _fresh(self, model: Model, since_ms: int) -> ModelServingStats:
        stats = ModelServingStats.for_model(model.descriptor, since_ms)
        stats.instance = self.instance
        return stats

    def _message(self, stats: ModelServingStats) -> ModelStats:
        message = stats.to_proto()
        message.emitted_at = now_ms()
        return message
