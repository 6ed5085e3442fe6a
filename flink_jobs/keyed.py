"""The keyed job: a KeyedCoProcessFunction keeps the model per data type in keyed state.

Topology::

    data ──route (JVM)──► event time (JVM) ──key_by(data_type)──┐
                                                                ├─► ModelServingKeyed ─► results
    models ─decode─► event time ──key_by(data_type)─────────────┘      side: stats, dead letters, events

State per data type (bytes and one count, never pickled objects):

* ``current-model``: ``Model.to_bytes()`` of the serving model (descriptor + artifact);
* ``pending-models``: accepted models whose ``created_at`` the watermark has not passed;
* ``record-buffer``: records waiting for the watermark (or for a first model), as
  ``serving.scoring.buffer_entry`` (ts + WineRecord bytes), in arrival order;
* ``buffer-scored``: how many leading entries of ``record-buffer`` are scored already;
* ``model-stats``: ModelStatsList bytes: the stats of the serving model.
"""

from __future__ import annotations

from pyflink.common import Types
from pyflink.datastream.functions import KeyedCoProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from flink_jobs.serving_function import (
    FlushTimers,
    RecordBuffer,
    ServingMetrics,
    buffer_record,
    flush_bounds,
    report_stats,
    save_stats,
    score_buffer,
)
from flink_jobs.tags import BYTES, DEAD_LETTERS, MODEL_EVENTS, STATS
from serving.logs import get_logger
from serving.model import Model
from serving.pb.model_event_pb2 import ModelEvent
from serving.registry import ModelCache
from serving.scoring import StatsTracker
from serving.settings import ServingOptions

log = get_logger("keyed")

CURRENT_MODEL = ValueStateDescriptor("current-model", BYTES)
PENDING_MODELS = ListStateDescriptor("pending-models", BYTES)
RECORD_BUFFER = ListStateDescriptor("record-buffer", BYTES)
BUFFER_SCORED = ValueStateDescriptor("buffer-scored", Types.LONG())
MODEL_STATS = ValueStateDescriptor("model-stats", BYTES)


class ModelServingKeyed(KeyedCoProcessFunction):
    """Scores records (input 1) with the model for their data type (input 2).

    Contract:
      * A model is admitted on arrival (decoded, built, probed): the outcome is
        a model event, and a rejection also a dead letter. A rejected model
        never replaces the serving one.
      * A record is scored by the latest accepted model with
        ``created_at <= record.ts``, once the watermark has passed both.
      * Every record ends as exactly one result or one dead letter.
      * After a restore, models are rebuilt from state bytes; no model needs
        to be sent again.
    """

    def __init__(self, options: ServingOptions) -> None:
        self.options = options

    def open(self, runtime_context: RuntimeContext) -> None:
        """Bind state, build the model cache and register the metrics."""
        self.current = runtime_context.get_state(CURRENT_MODEL)
        self.pending = runtime_context.get_list_state(PENDING_MODELS)
        self.buffer = RecordBuffer(
            runtime_context.get_list_state(RECORD_BUFFER), runtime_context.get_state(BUFFER_SCORED)
        )
        self.stats = runtime_context.get_state(MODEL_STATS)
        self.cache = ModelCache(self.options.model_roots)
        self.metrics = ServingMetrics(runtime_context.get_metrics_group())
        self.timers = FlushTimers(self.options)

    def close(self) -> None:
        """Release every built model."""
        self.cache.close()

    def process_element1(self, value, ctx):
        """A data record: validate it, then buffer it until the watermark passes it."""
        self.metrics.capture_scope()
        yield from buffer_record(value, ctx, self.buffer, self.timers, self.metrics)

    def process_element2(self, value, ctx):
        """A model: admit it now; it serves from its ``created_at`` on."""
        self.metrics.capture_scope()
        current = self._current_model()
        pending = self._pending_models()
        admission = self.cache.admit(
            bytes(value.payload),
            known=[m for m in [current, *pending] if m is not None],
            previous_version=current.version if current else "",
        )
        _log_admission(admission.event, ctx.get_current_key())
        yield MODEL_EVENTS, admission.event.SerializeToString()
        if admission.dead_letter is not None:
            self.metrics.dead_lettered()
            yield DEAD_LETTERS, admission.dead_letter.SerializeToString()
        if admission.accepted:
            self.pending.add(admission.model.to_bytes())
            self.timers.request(ctx, value.created_at)

    def on_timer(self, timestamp: int, ctx):
        """Apply due models and score due records, in event-time order."""
        self.timers.fired(ctx, timestamp)
        records_up_to, models_up_to, end = flush_bounds(timestamp, ctx)
        tracker = StatsTracker(
            f"key:{ctx.get_current_key()}",
            self.options.stats_every_records,
            self.options.stats_every_seconds,
            self.stats.value(),
        )
        current = self._current_model()
        pending = sorted(self._pending_models(), key=lambda m: m.descriptor.created_at)
        due = [m for m in pending if m.descriptor.created_at <= models_up_to]
        timeline = ([(-(2**63), current)] if current else []) + [(m.descriptor.created_at, m) for m in due]
        data_type = ctx.get_current_key()
        yield from score_buffer(
            self.buffer, records_up_to, {data_type: timeline}, tracker, self.options, end, self.metrics
        )
        for model in due:
            log.info("model swapped in", extra={"data_type": data_type, "model": model.name, "version": model.version})
        if due:
            # Only the newest due model serves on; earlier ones already retired while scoring.
            newest = due[-1]
            for message in tracker.started(newest, newest.descriptor.created_at):
                yield STATS, message.SerializeToString()
            waiting = [m for m in pending if m not in due]
            self.current.update(newest.to_bytes())
            self.pending.update([m.to_bytes() for m in waiting])
            self.cache.retain([newest, *waiting])
        yield from report_stats(ctx, tracker, self.options, end)
        self.metrics.swapped(tracker.starts)
        save_stats(self.stats, tracker)

    def _current_model(self) -> Model | None:
        raw = self.current.value()
        return self.cache.restored(bytes(raw)) if raw is not None else None

    def _pending_models(self) -> list[Model]:
        return [self.cache.restored(bytes(raw)) for raw in self.pending.get() or []]


def _log_admission(event: ModelEvent, key: str) -> None:
    log.info(
        f"model {ModelEvent.Kind.Name(event.kind).lower()}",
        extra={"data_type": key, "model": event.name, "version": event.version, "reason": event.reason or "-"},
    )
