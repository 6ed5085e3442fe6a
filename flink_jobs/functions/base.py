"""What both serving functions share: intake, flushing, late models, stats (Flink-facing; see serving.core.scoring)."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence

from pyflink.datastream import TimeDomain

from flink_jobs.functions.buffer import RecordBuffer
from flink_jobs.functions.metrics import ServingMetrics
from flink_jobs.functions.timers import FlushBounds, FlushTimers, slot
from flink_jobs.tags import DEAD_LETTERS, MODEL_EVENTS, STATS
from serving.clock import now_ms
from serving.core.admission import ModelCache
from serving.core.lateness import ScoredTimes
from serving.core.model import Model
from serving.core.scoring import buffer_entry, decode_buffer, decode_data, score_due
from serving.core.stats import StatsTracker
from serving.logs import get_logger
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.records.base import Record
from serving.settings import ServingOptions

log = get_logger("serving")


def validated(value, metrics: ServingMetrics, options: ServingOptions) -> Generator[tuple, None, Record | None]:
    """Decode and validate one routed record (``RECORD_ROW``): the record, or None after yielding its dead letter.

    This is where a data record is decoded and validated (the JVM only routed
    it); what fails goes to the dead letters with the reason and its bytes,
    and is counted. Use as ``record = yield from validated(value, metrics, options)``.
    """
    decoded = decode_data(bytes(value.payload), options, value.data_type)
    if isinstance(decoded, DeadLetter):
        metrics.dead_lettered()
        yield DEAD_LETTERS, decoded.SerializeToString()
        return None
    return decoded


def score_buffer(
    buffer: RecordBuffer,
    bounds: FlushBounds,
    timelines: Mapping[str, Sequence[tuple[int, Model]]],
    tracker: StatsTracker,
    options: ServingOptions,
    metrics: ServingMetrics | None = None,
    scored_times: ScoredTimes | None = None,
) -> Iterator:
    """Score the due records of ``buffer``; yield results and side outputs; keep the rest.

    Only due records are decoded; the entries that wait stay as they are.
    ``scored_times`` (when given) learns the event times of what was scored.
    """
    due_entries = buffer.take_due(bounds.records_up_to)
    if not due_entries:
        return
    due: list[Record] = decode_buffer(due_entries)
    scored = score_due(
        due,
        timelines,
        hold=options.early_records == "hold",
        max_held=options.max_held_records,
        end_of_input=bounds.end_of_input,
        batch_size=options.batch_size,
        records_up_to=bounds.records_up_to,
        max_hold_ms=options.max_hold_ms,
        max_payload_bytes=options.dead_letter_max_payload_bytes,
    )
    for result in scored.results:
        yield result.SerializeToString()
    for letter in scored.dead_letters:
        yield DEAD_LETTERS, letter.SerializeToString()
    for model, count, duration in scored.batches:
        if metrics is not None:
            metrics.batch(count, duration)
        for message in tracker.scored(model, count, duration):
            yield STATS, message.SerializeToString()
    if metrics is not None:
        metrics.dead_lettered(len(scored.dead_letters))
    if scored_times is not None:
        by_type: dict[str, list[int]] = {}
        for result in scored.results:
            by_type.setdefault(result.data_type, []).append(result.record_ts)
        for data_type, times in by_type.items():
            scored_times.scored(data_type, times)
            scored_times.flushed(data_type, bounds.records_up_to)
    buffer.settle([buffer_entry(r.ts, r.SerializeToString()) for r in scored.held])
    held_until = [r.ts + options.max_hold_ms for r in scored.held]
    buffer.expire_at = min(held_until) if held_until and options.max_hold_ms else None


def report_stats(ctx, tracker: StatsTracker, options: ServingOptions, end_of_input: bool) -> Iterator:
    """The stats due when a timer ends: all of them at the end of input, those due by time otherwise.

    Stats are due by time (``stats_every_seconds``) only on a processing-time
    timer. When records were scored but their stats not yet emitted, and
    processing-time timers are on (``idle_flush_ms``, as in every Kafka job),
    a timer is set for when they are due: stats leave the job even when the
    data stops.
    """
    if end_of_input:
        messages = tracker.emit_all()
    elif ctx.time_domain() == TimeDomain.PROCESSING_TIME:
        messages = tracker.emit_due()
    else:
        messages = []
    for message in messages:
        yield STATS, message.SerializeToString()
    if tracker.unreported and not end_of_input and options.idle_flush_ms and tracker.every_ms:
        ctx.timer_service().register_processing_time_timer(slot(now_ms() + tracker.every_ms, 100))


class ServingFunctionBase:
    """What both serving functions share: state binding, record intake, flushing, late models.

    Subclasses (a ``KeyedCoProcessFunction`` and a ``KeyedBroadcastProcessFunction``)
    hold ``options`` and decide which models a flush applies. All the state
    named here is keyed; its descriptors are module-level in the subclass
    modules (the recorded state layout reads them there), passed in by
    :meth:`bind`.
    """

    options: ServingOptions

    def bind(self, runtime_context, record_buffer, buffer_scored, model_stats, scored_times) -> None:
        """Bind the shared state and build the model cache, metrics and timers (call from ``open``)."""
        self.buffer = RecordBuffer(
            runtime_context.get_list_state(record_buffer), runtime_context.get_state(buffer_scored)
        )
        self.stats = runtime_context.get_state(model_stats)
        self.scored_times_state = runtime_context.get_state(scored_times)
        self.cache = ModelCache(self.options.model_roots, self.options)
        self.metrics = ServingMetrics(runtime_context.get_metrics_group())
        self.timers = FlushTimers(self.options)

    def close(self) -> None:
        """Release every built model."""
        self.cache.close()

    def take_record(self, value, ctx) -> Iterator:
        """A data record: validate it, then buffer it until the watermark passes it (or dead-letter it)."""
        self.metrics.capture_scope()
        record = yield from validated(value, self.metrics, self.options)
        if record is not None:
            self.buffer.add(record.ts, bytes(value.payload))
            self.timers.request(ctx, record.ts)

    def tracker(self, instance: str) -> StatsTracker:
        """The stats of this key, loaded from state."""
        options = self.options
        return StatsTracker(instance, options.stats_every_records, options.stats_every_seconds, self.stats.value())

    def flush(
        self,
        ctx,
        bounds: FlushBounds,
        timelines: Mapping[str, Sequence[tuple[int, Model]]],
        known: Mapping[str, Sequence[tuple[int, Model]]],
        tracker: StatsTracker,
    ) -> Iterator:
        """Report late models among ``known`` (per data type, by ``created_at``), then score due records.

        ``timelines`` are what scores records (:mod:`serving.core.timeline`);
        ``known`` are the models each data type has, at their real
        ``created_at``, for :class:`serving.core.lateness.ScoredTimes`.
        """
        scored_times = ScoredTimes(self.options.late_model_horizon_ms, self.scored_times_state.value())
        for data_type, models in known.items():
            for late in scored_times.late_models(data_type, models):
                event = late.event(tracker.instance, now_ms())
                log.warning(
                    "late model",
                    extra={
                        "data_type": data_type,
                        "model": event.name,
                        "version": event.version,
                        "missed": late.missed,
                    },
                )
                yield MODEL_EVENTS, event.SerializeToString()
        yield from score_buffer(self.buffer, bounds, timelines, tracker, self.options, self.metrics, scored_times)
        self.scored_times_state.update(scored_times.to_bytes())
        if self.buffer.expire_at is not None:
            self.timers.request_at(ctx, self.buffer.expire_at + self.options.max_model_delay_ms)
        if self.buffer.waiting and not bounds.end_of_input:
            self.timers.still_waiting(ctx)

    def finish_timer(self, ctx, tracker: StatsTracker, bounds: FlushBounds | None) -> Iterator:
        """Stats due at the end of a timer call; then the tracker goes back to state."""
        yield from report_stats(ctx, tracker, self.options, bounds is not None and bounds.end_of_input)
        self.metrics.swapped(tracker.starts)
        self.stats.update(tracker.saved())
