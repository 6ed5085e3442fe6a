"""What both serving functions do with buffered records; the Flink-facing half of ``serving.scoring``."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator, Mapping, Sequence

from pyflink.datastream import TimeDomain

from flink_jobs.tags import DEAD_LETTERS, END_OF_INPUT, STATS
from serving.codecs import now_ms
from serving.model import Model
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.wine_record_pb2 import WineRecord
from serving.scoring import StatsTracker, buffer_entry, decode_buffer, decode_data, entry_ts, score_due
from serving.settings import ServingOptions

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


def flush_bounds(timestamp: int, ctx) -> tuple[int, int, bool]:
    """``(records up to, models up to, end of input)`` for a firing timer.

    An event-time timer flushes what the watermark has passed. A processing-time
    (idle-flush) timer flushes every buffered record, with the models whose
    publication time has passed on the wall clock.
    """
    if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
        return END_OF_INPUT, now_ms(), False
    watermark = max(timestamp, ctx.timer_service().current_watermark())
    # Only the timer set at END_OF_INPUT itself ends the input; it fires after all others.
    return watermark, watermark, timestamp >= END_OF_INPUT


class FlushTimers:
    """Asks for the flush timers of buffered records: once per slot and key, not once per record.

    Every timer registration is a message from the Python worker to the JVM,
    and the JVM keeps one timer per key and time anyway; registering three
    timers for every record was the serving functions' largest per-record
    cost. This remembers, per key, the timers asked for and not yet fired.

    Memory only, and that is sound: timers are Flink state. After a restore
    Flink fires the restored timers, and the empty memory here at worst asks
    for a timer again, which the JVM ignores.
    """

    def __init__(self, options: ServingOptions) -> None:
        self.options = options
        self._event: dict[object, set[int]] = {}
        self._processing: dict[object, int] = {}
        self._end_of_input: set[object] = set()

    def request(self, ctx, ts: int) -> None:
        """Ask for a flush once the watermark passes ``ts`` (and after the idle delay, if on)."""
        key = ctx.get_current_key()
        timers = ctx.timer_service()
        flush_at = slot(ts, self.options.batch_wait_ms)
        pending = self._event.setdefault(key, set())
        if flush_at not in pending:
            timers.register_event_time_timer(flush_at)
            pending.add(flush_at)
        if key not in self._end_of_input:
            timers.register_event_time_timer(END_OF_INPUT)
            self._end_of_input.add(key)
        if self.options.idle_flush_ms:
            idle_at = slot(now_ms() + self.options.idle_flush_ms, 100)
            if self._processing.get(key) != idle_at:
                timers.register_processing_time_timer(idle_at)
                self._processing[key] = idle_at

    def fired(self, ctx, timestamp: int) -> None:
        """Forget the timers of the current key that have fired by now."""
        key = ctx.get_current_key()
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            if self._processing.get(key, END_OF_INPUT) <= timestamp:
                del self._processing[key]
            return
        pending = self._event.get(key)
        if pending:
            pending.difference_update([t for t in pending if t <= timestamp])


class RecordBuffer:
    """The records of one key waiting for the watermark: a ``ListState`` of entries and a scored count.

    Entries (:func:`serving.scoring.buffer_entry`) stay in arrival order; the
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


def validated(value, metrics: ServingMetrics) -> Generator[tuple, None, WineRecord | None]:
    """Decode and validate one routed record (``RECORD_ROW``): the record, or None after yielding its dead letter.

    This is where a data record is decoded and validated (the JVM only routed
    it); what fails goes to the dead letters with the reason and its bytes,
    and is counted. Use as ``record = yield from validated(value, metrics)``.
    """
    decoded = decode_data(bytes(value.payload))
    if isinstance(decoded, DeadLetter):
        metrics.dead_lettered()
        yield DEAD_LETTERS, decoded.SerializeToString()
        return None
    return decoded


def buffer_record(value, ctx, buffer: RecordBuffer, timers: FlushTimers, metrics: ServingMetrics) -> Iterator:
    """Take in one routed record: buffer it and ask for its flush, or dead-letter it (:func:`validated`)."""
    record = yield from validated(value, metrics)
    if record is not None:
        buffer.add(record.ts, bytes(value.payload))
        timers.request(ctx, record.ts)


def score_buffer(
    buffer: RecordBuffer,
    records_up_to: int,
    timelines: Mapping[str, Sequence[tuple[int, Model]]],
    tracker: StatsTracker,
    options: ServingOptions,
    end_of_input: bool,
    metrics: ServingMetrics | None = None,
) -> Iterator:
    """Score the due records of ``buffer``; yield results and side outputs; keep the rest.

    Only due records are decoded; the entries that wait stay as they are.
    """
    due_entries = buffer.take_due(records_up_to)
    if not due_entries:
        return
    due: list[WineRecord] = decode_buffer(due_entries)
    scored = score_due(
        due,
        timelines,
        hold=options.early_records == "hold",
        max_held=options.max_held_records,
        end_of_input=end_of_input,
        batch_size=options.batch_size,
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
    buffer.settle([buffer_entry(r.ts, r.SerializeToString()) for r in scored.held])


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


def save_stats(stats_state, tracker: StatsTracker) -> None:
    """Write the tracker back to its ValueState."""
    stats_state.update(tracker.saved())
