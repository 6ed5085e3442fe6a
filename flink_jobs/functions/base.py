"""What both serving functions share: intake, flushing, late models, stats (Flink-facing; see serving.core.scoring)."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence

from pyflink.datastream import TimeDomain

from flink_jobs.functions.batches import late_letter, records_of
from flink_jobs.functions.buffer import RecordBuffer
from flink_jobs.functions.flushing import score_buffer
from flink_jobs.functions.metrics import ServingMetrics
from flink_jobs.functions.timers import FlushBounds, FlushTimers, slot
from flink_jobs.tags import DEAD_LETTERS, END_OF_INPUT, MODEL_EVENTS, STATS
from serving.clock import now_ms
from serving.codecs.outputs import dead_letter
from serving.core.admission import ModelCache
from serving.core.entries import Entry, encode_entry, encode_group
from serving.core.lateness import ScoredTimes
from serving.core.model import Model
from serving.core.schemas import admit_schema
from serving.core.scoring import UNKNOWN, decode_data
from serving.core.stats import StatsTracker
from serving.errors import ServingError
from serving.formats import parse_descriptor
from serving.logs import get_logger
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.wine_record_pb2 import WineRecord
from serving.records import bundled_schemas
from serving.records.base import Record
from serving.records.schema import DataTypeSchema, SchemaRegistry
from serving.records.wire import Coordinates
from serving.rollout.rendezvous import Challengers
from serving.settings import ServingOptions

log = get_logger("serving")


#: The Kafka timestamp of a record that has none.
_NO_TIMESTAMP = -(2**63)


def where_of(value) -> Coordinates:
    """Where a routed record (``RECORD_ROW``) came from."""
    kafka_ts = None if value.kafka_ts == _NO_TIMESTAMP else value.kafka_ts
    return Coordinates(value.topic, value.partition, value.offset, kafka_ts)


def take_in(
    value, registry: SchemaRegistry, metrics: ServingMetrics, options: ServingOptions
) -> Generator[tuple, None, Entry | None]:
    """One routed record (``RECORD_ROW``) as a buffer entry, or None after yielding its dead letter.

    The JVM only routed it; here it is decoded with its data type's schema
    and checked, and what fails goes to the dead letters with the reason and
    its bytes, counted. A record whose data type has no schema yet is kept
    unchecked, by the time the JVM read: it is decoded when due, if the
    schema has come by then (:func:`serving.core.scoring.decode_entries`).
    Use as ``entry = yield from take_in(value, registry, metrics, options)``.
    """
    where, payload = where_of(value), bytes(value.payload)
    decoded = decode_data(payload, options, value.data_type, registry, where)
    if isinstance(decoded, DeadLetter):
        metrics.dead_lettered()
        yield DEAD_LETTERS, decoded.SerializeToString()
        return None
    if decoded is None:
        return Entry(value.ts, value.data_type, where, payload, checked=False)
    wine = decoded if isinstance(decoded, WineRecord) and decoded.id else None
    return Entry(decoded.ts, decoded.data_type, where, payload, checked=True, wine=wine)


def validated(
    value, registry: SchemaRegistry, metrics: ServingMetrics, options: ServingOptions
) -> Generator[tuple, None, Record | None]:
    """One routed record decoded and checked now, or None after yielding its dead letter (no schema: too)."""
    where, payload = where_of(value), bytes(value.payload)
    decoded = decode_data(payload, options, value.data_type, registry, where)
    if decoded is None:
        decoded = dead_letter(
            "data",
            UNKNOWN,
            f"no schema for data type {value.data_type!r}",
            payload,
            data_type=value.data_type,
            record_id=where.record_id() if where.topic else "",
            max_payload_bytes=options.dead_letter_max_payload_bytes,
        )
    if isinstance(decoded, DeadLetter):
        metrics.dead_lettered()
        yield DEAD_LETTERS, decoded.SerializeToString()
        return None
    return decoded


def report_stats(
    ctx, tracker: StatsTracker, options: ServingOptions, end_of_input: bool, on_processing_timer: bool
) -> Iterator:
    """The stats due when a call ends: all of them at the end of input, those due by time otherwise.

    Stats are due by time (``stats_every_seconds``) only on a processing-time
    timer. When records were scored but their stats not yet emitted, and
    processing-time timers are on (``idle_flush_ms``, as in every Kafka job),
    a timer is set for when they are due: stats leave the job even when the
    data stops.
    """
    if end_of_input:
        messages = tracker.emit_all()
    elif on_processing_timer:
        messages = tracker.emit_due()
    else:
        messages = []
    for message in messages:
        yield STATS, message.SerializeToString()
    if tracker.unreported and not end_of_input and options.idle_flush_ms and tracker.every_ms:
        ctx.timer_service().register_processing_time_timer(slot(now_ms() + tracker.every_ms, 100))


def startup_registry(options: ServingOptions) -> SchemaRegistry:
    """The schemas a function knows when it opens: the bundled ones and ``options.startup_schemas``."""
    startup = [DataTypeSchema.parse(text) for text in options.startup_schemas]
    return SchemaRegistry([*bundled_schemas(), *startup], url=options.schema_registry_url)


def awaiting_event(payload: bytes, registry: SchemaRegistry) -> ModelEvent | None:
    """The ``AWAITING_SCHEMA`` event for a model message whose data type has no schema yet, else None.

    Such a model is kept and admitted when its schema arrives (schemas and
    models travel on different topics, so one may overtake the other). A
    message that is no model at all is left to the admission, which rejects it.
    """
    try:
        descriptor = parse_descriptor(payload)
    except ServingError:
        return None
    if registry.get(descriptor.data_type) is not None:
        return None
    return ModelEvent(
        kind=ModelEvent.AWAITING_SCHEMA,
        name=descriptor.name,
        version=descriptor.version,
        data_type=descriptor.data_type,
        model_type=descriptor.model_type,
        reason=f"kept until a schema of data type {descriptor.data_type!r} arrives",
        ts=now_ms(),
    )


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
        """Bind the shared state and build the schema registry, model cache, metrics and timers (from ``open``).

        The registry starts with the bundled schemas and ``startup_schemas``;
        subclasses add what their state holds (:meth:`sync_schemas`).
        """
        self.registry = startup_registry(self.options)
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

    def sync_schemas(self, ctx) -> None:
        """Bring :attr:`registry` up to date with the schemas in state (subclasses)."""

    def take_batch(self, batch: bytes, ctx) -> Generator[tuple, None, list[Entry]]:
        """A ``RecordBatch``: each record checked, or dead-lettered (late ones, as the setting says).

        In ``event-time`` selection a record is buffered until the watermark
        passes it (its timer is asked for here) and nothing is returned; in
        ``arrival`` selection the checked entries are returned, for the
        caller to score at once (:meth:`arrival_flush`).
        """
        self.metrics.capture_scope()
        self.sync_schemas(ctx)
        options = self.options
        by_event_time = options.selection == "event-time"
        late_letters = options.late_records == "dead-letter"
        arrived: list[Entry] = []
        for record in records_of(batch):
            if record.late and late_letters:
                self.metrics.dead_lettered()
                yield DEAD_LETTERS, late_letter(record, where_of(record), options).SerializeToString()
                continue
            entry = yield from take_in(record, self.registry, self.metrics, options)
            if entry is not None:
                arrived.append(entry)
        if not by_event_time or not arrived:
            return arrived
        # One list element per batch: a flush then reads a few elements, not every waiting record.
        self.buffer.add(encode_group([encode_entry(e) for e in arrived]))
        times = [e.ts for e in arrived]
        self.timers.request(ctx, min(times))
        self.timers.request(ctx, max(times))
        return []

    def arrival_flush(
        self,
        ctx,
        timelines: Mapping[str, Sequence[tuple[int, Model]]],
        tracker: StatsTracker,
        arrived: Sequence[Entry] = (),
        challengers: Mapping[str, Challengers] | None = None,
    ):
        """``arrival`` selection: score ``arrived`` and all that is buffered with ``timelines`` (what serves now).

        Records of a data type without a model stay held (``early_records``);
        their hold expires by the watermark as in ``event-time`` selection,
        and their timers keep them from waiting on a quiet stream.
        """
        watermark = ctx.timer_service().current_watermark()
        bounds = FlushBounds(watermark - self.options.max_model_delay_ms, END_OF_INPUT, False, END_OF_INPUT - 1)
        yield from score_buffer(
            self.buffer,
            bounds,
            timelines,
            tracker,
            self.options,
            self.registry,
            self.metrics,
            arrived=arrived,
            challengers=challengers,
        )
        if self.buffer.waiting:
            self.timers.request(ctx, max(watermark, 0))
        if self.buffer.expire_at is not None:
            self.timers.request_at(ctx, self.buffer.expire_at + self.options.max_model_delay_ms)
        yield from self.finish_call(ctx, tracker, bounds, on_processing_timer=False)

    def schema_arrived(
        self, value, current: DataTypeSchema | None, models: Sequence[Model], report: bool = True
    ) -> Generator[tuple, None, DataTypeSchema | None]:
        """Admit a schema message (``MODEL_ROW`` of kind ``schema``); the accepted schema, else None.

        The outcome is a model event (subject ``schema``), a rejection also a
        dead letter, both only when ``report``. An accepted schema joins
        :attr:`registry`; the caller keeps it in state.
        """
        admission = admit_schema(bytes(value.payload), current, models, self.options, value.data_type)
        event = admission.event
        log.info(
            f"schema {ModelEvent.Kind.Name(event.kind).lower()}",
            extra={"data_type": event.data_type, "version": event.version, "reason": event.reason or "-"},
        )
        if report:
            yield MODEL_EVENTS, event.SerializeToString()
            if admission.dead_letter is not None:
                self.metrics.dead_lettered()
                yield DEAD_LETTERS, admission.dead_letter.SerializeToString()
        if not admission.accepted:
            return None
        self.registry.add(admission.schema)
        return admission.schema

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
        challengers: Mapping[str, Challengers] | None = None,
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
        yield from score_buffer(
            self.buffer,
            bounds,
            timelines,
            tracker,
            self.options,
            self.registry,
            self.metrics,
            scored_times,
            challengers=challengers,
        )
        self.scored_times_state.update(scored_times.to_bytes())
        if self.buffer.expire_at is not None:
            self.timers.request_at(ctx, self.buffer.expire_at + self.options.max_model_delay_ms)
        if self.buffer.waiting and not bounds.end_of_input:
            self.timers.still_waiting(ctx)

    def finish_timer(self, ctx, tracker: StatsTracker, bounds: FlushBounds | None) -> Iterator:
        """Stats due at the end of a timer call; then the tracker goes back to state."""
        on_processing_timer = ctx.time_domain() == TimeDomain.PROCESSING_TIME
        yield from self.finish_call(ctx, tracker, bounds, on_processing_timer)

    def finish_call(self, ctx, tracker: StatsTracker, bounds: FlushBounds | None, on_processing_timer: bool):
        """Stats due at the end of a call (by time only on a processing-time timer); the tracker back to state."""
        end_of_input = bounds is not None and bounds.end_of_input
        yield from report_stats(ctx, tracker, self.options, end_of_input, on_processing_timer)
        self.metrics.swapped(tracker.starts)
        self.stats.update(tracker.saved())
