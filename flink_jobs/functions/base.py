"""What both serving functions do with buffered records; the Flink-facing half of ``serving.core.scoring``."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import NamedTuple

from pyflink.datastream import TimeDomain

from flink_jobs.tags import DEAD_LETTERS, END_OF_INPUT, MODEL_EVENTS, STATS
from serving.clock import now_ms
from serving.core.admission import ModelCache
from serving.core.lateness import ScoredTimes
from serving.core.model import Model
from serving.core.scoring import StatsTracker, buffer_entry, decode_buffer, decode_data, entry_ts, score_due
from serving.logs import get_logger
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.wine_record_pb2 import WineRecord
from serving.settings import ServingOptions

log = get_logger("serving")

#: The metric group of every metric the Python functions register (under the operator's group).
METRIC_GROUP = "modelserving"


class ServingMetrics:
    """The Flink metrics of a serving function, under ``<operator>.modelserving``.

    * ``records_scored`` (counter): records that became a result;
    * ``dead_letters`` (counter): records and models sent to the dead letters;
    * ``model_swaps`` (counter): models that started serving (the first one too);
    * ``scoring_time_ns`` (distribution): scoring time per record in nanoseconds,
      one sample per scored batch (the batch's time divided by its size).

    They show in Flink's web UI and in every configured metrics reporter.
    ``metric_group`` is the function's ``runtime_context.get_metrics_group()``
    (or anything with the same ``add_group``/``counter``/``distribution`` methods).
    """

    def __init__(self, metric_group) -> None:
        group = metric_group.add_group(METRIC_GROUP)
        self.records_scored = group.counter("records_scored")
        self.dead_letters = group.counter("dead_letters")
        self.model_swaps = group.counter("model_swaps")
        self.scoring_time_ns = group.distribution("scoring_time_ns")
        self._scope = None

    def capture_scope(self) -> None:
        """Remember the operator's metrics scope; call it from ``process_element`` (and its kin).

        PyFlink (process mode) runs ``on_timer`` outside the operator's Beam
        metrics scope, so updates made there would be dropped; and the serving
        functions score records in ``on_timer``. The scope current while an
        element is processed is the operator's own, and :meth:`scope` enters
        it again for updates made from a timer.
        """
        if self._scope is not None:
            return
        state = _current_beam_state()
        if state is not None and getattr(state, "metrics_container", None) is not None:
            self._scope = state

    def scope(self):
        """A context in which metric updates count for this operator (see :meth:`capture_scope`)."""
        if self._scope is None or _current_beam_state() is self._scope:
            return contextlib.nullcontext()
        return self._scope

    def batch(self, count: int, duration_ns: int) -> None:
        """Account for ``count`` records scored together in ``duration_ns``."""
        if count > 0:
            with self.scope():
                self.records_scored.inc(count)
                self.scoring_time_ns.update(duration_ns // count)

    def dead_lettered(self, count: int = 1) -> None:
        """Account for ``count`` dead letters."""
        if count > 0:
            with self.scope():
                self.dead_letters.inc(count)

    def swapped(self, count: int) -> None:
        """Account for ``count`` models that started serving."""
        if count > 0:
            with self.scope():
                self.model_swaps.inc(count)


def _current_beam_state():
    """The state of Beam's state sampler in this thread (PyFlink process mode), else None."""
    try:
        from apache_beam.runners.worker.statesampler import get_current_tracker
    except ImportError:
        return None
    tracker = get_current_tracker()
    return tracker.current_state() if tracker is not None else None


def slot(ts: int, granularity_ms: int) -> int:
    """The event-time timer that flushes a record at ``ts``: ``ts`` rounded up to the slot width."""
    return -(-ts // granularity_ms) * granularity_ms


class FlushBounds(NamedTuple):
    """What a firing timer flushes: records with ``ts <= records_up_to``, models with ``created_at <= models_up_to``."""

    records_up_to: int
    models_up_to: int
    end_of_input: bool


class FlushTimers:
    """The timers that flush buffered records, asked for once per slot and key, not once per record.

    Event time: a record at ``ts`` is flushed by the timer of its slot
    (``batch_wait_ms`` wide) once the watermark has passed ``ts +
    max_model_delay_ms``; the flush then scores records and applies models
    up to ``watermark - max_model_delay_ms``, so a model that reaches the job
    up to that delay after its ``created_at`` still scores every record from
    then on.

    Processing time (``idle_flush_ms``): when no record has arrived at a key
    for ``idle_flush_ms`` its watermark may have stopped (the data went
    quiet), so the records it holds are flushed up to the wall clock minus
    ``max_model_delay_ms``. While records keep arriving the timer only moves
    on: an idle flush never overtakes the watermark of a flowing stream.

    Every timer registration is a message from the Python worker to the JVM,
    so this remembers, per key, the timers asked for and not yet fired. That
    memory is not state, and need not be: timers are Flink state, a restore
    fires them, and the empty memory at worst asks for a timer again, which
    the JVM ignores (or, for the idle timer, flushes once as if idle).
    """

    def __init__(self, options: ServingOptions) -> None:
        self.options = options
        self._event: dict[object, set[int]] = {}
        self._processing: dict[object, int] = {}
        self._arrived: dict[object, int] = {}
        self._end_of_input: set[object] = set()

    def request(self, ctx, ts: int) -> None:
        """Ask for a flush of a record (or model) at ``ts``: by event time, and by the idle timer."""
        self.request_at(ctx, ts + self.options.max_model_delay_ms)
        if self.options.idle_flush_ms:
            key = ctx.get_current_key()
            self._arrived[key] = now_ms()
            self._arm(ctx, key, self._arrived[key] + self.options.idle_flush_ms)

    def request_at(self, ctx, at: int) -> None:
        """Ask for an event-time flush once the watermark passes ``at``."""
        key = ctx.get_current_key()
        timers = ctx.timer_service()
        flush_at = slot(at, self.options.batch_wait_ms)
        pending = self._event.setdefault(key, set())
        if flush_at not in pending:
            timers.register_event_time_timer(flush_at)
            pending.add(flush_at)
        if key not in self._end_of_input:
            timers.register_event_time_timer(END_OF_INPUT)
            self._end_of_input.add(key)

    def still_waiting(self, ctx) -> None:
        """Records wait after a flush: keep an idle timer armed so a quiet stream still flushes them."""
        if self.options.idle_flush_ms:
            self._arm(ctx, ctx.get_current_key(), now_ms() + self.options.idle_flush_ms)

    def _arm(self, ctx, key, at: int) -> None:
        if key not in self._processing:
            at = slot(at, 100)
            ctx.timer_service().register_processing_time_timer(at)
            self._processing[key] = at

    def fired(self, ctx, timestamp: int) -> FlushBounds | None:
        """Forget the fired timers of the current key; what to flush now, or None (not idle after all)."""
        key = ctx.get_current_key()
        delay = self.options.max_model_delay_ms
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            if self._processing.get(key, END_OF_INPUT) <= timestamp:
                del self._processing[key]
            arrived = self._arrived.get(key)
            if arrived is not None and arrived + self.options.idle_flush_ms > timestamp:
                self._arm(ctx, key, arrived + self.options.idle_flush_ms)  # records still arrive
                return None
            up_to = now_ms() - delay
            return FlushBounds(up_to, up_to, False)
        pending = self._event.get(key)
        if pending:
            pending.difference_update([t for t in pending if t <= timestamp])
        if timestamp >= END_OF_INPUT:  # only the timer at END_OF_INPUT ends the input; it fires last
            return FlushBounds(END_OF_INPUT, END_OF_INPUT, True)
        watermark = max(timestamp, ctx.timer_service().current_watermark())
        return FlushBounds(watermark - delay, watermark - delay, False)


class RecordBuffer:
    """The records of one key waiting for the watermark: a ``ListState`` of entries and a scored count.

    Entries (:func:`serving.core.scoring.buffer_entry`) stay in arrival order; the
    ``ValueState`` counts the leading entries already scored. Records arrive
    roughly in ``ts`` order, so the due ones are mostly a prefix and a flush
    only moves the count: the records that wait are not rewritten, which
    would cost each record one rewrite per flush while it waits. The list is
    rewritten only when due records sit behind waiting ones (out-of-order
    arrivals, held records) and, to drop the scored prefix, once that prefix
    is over half the list (amortized once per record). Both states change in
    the same timer call, so every checkpoint sees them consistent.
    """

    #: Scored entries kept before a compaction is worth its rewrite.
    COMPACT_AFTER = 1024

    def __init__(self, entries_state, scored_state) -> None:
        self.entries_state, self.scored_state = entries_state, scored_state
        self._taken: tuple[list[bytes], int, int, int, list[bytes]] | None = None
        #: After :meth:`settle`: whether entries still wait, and when the oldest held one expires.
        self.waiting = False
        self.expire_at: int | None = None

    def add(self, ts: int, payload: bytes) -> None:
        """Append a validated record."""
        self.entries_state.add(buffer_entry(ts, payload))

    def take_due(self, up_to: int) -> list[bytes]:
        """The unscored entries with ``ts <= up_to``, in arrival order; :meth:`settle` must follow."""
        entries = list(self.entries_state.get() or [])
        scored = self.scored_state.value() or 0
        if scored > len(entries):  # never written together otherwise; be safe
            scored = 0
        due: list[bytes] = []
        later: list[bytes] = []
        prefix = 0
        for entry in entries[scored:]:
            if entry_ts(entry) <= up_to:
                due.append(entry)
                prefix += not later
            else:
                later.append(entry)
        self._taken = (entries, scored, prefix, len(due), later)
        return due

    def settle(self, held: Sequence[bytes] = ()) -> None:
        """Record that the entries :meth:`take_due` gave are done, except ``held`` (kept as entries)."""
        if self._taken is None:
            return
        entries, scored, prefix, due, later = self._taken
        self._taken = None
        self.waiting = bool(held or later)
        if not held and prefix == due:
            done = scored + prefix
            if done == len(entries):
                self.entries_state.clear()
                self.scored_state.clear()
            elif done >= self.COMPACT_AFTER and 2 * done > len(entries):
                self.entries_state.update(entries[done:])
                self.scored_state.clear()
            elif done != scored:
                self.scored_state.update(done)
            return
        kept = [*held, *later]
        if kept:
            self.entries_state.update(kept)
        else:
            self.entries_state.clear()
        self.scored_state.clear()


def validated(value, metrics: ServingMetrics, options: ServingOptions) -> Generator[tuple, None, WineRecord | None]:
    """Decode and validate one routed record (``RECORD_ROW``): the record, or None after yielding its dead letter.

    This is where a data record is decoded and validated (the JVM only routed
    it); what fails goes to the dead letters with the reason and its bytes,
    and is counted. Use as ``record = yield from validated(value, metrics, options)``.
    """
    decoded = decode_data(bytes(value.payload), options)
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
    due: list[WineRecord] = decode_buffer(due_entries)
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
