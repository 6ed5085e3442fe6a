"""Which timers flush buffered records, and what a firing timer flushes."""

from __future__ import annotations

from typing import NamedTuple

from pyflink.datastream import TimeDomain

from flink_jobs.tags import END_OF_INPUT
from serving.clock import now_ms
from serving.settings import ServingOptions


def slot(ts: int, granularity_ms: int) -> int:
    """The event-time timer that flushes a record at ``ts``: ``ts`` rounded up to the slot width."""
    return -(-ts // granularity_ms) * granularity_ms


class FlushBounds(NamedTuple):
    """What a flush covers: records with ``ts <= records_up_to``, models with ``created_at <= models_up_to``.

    ``due_up_to``, when set, widens which records are due (``arrival``
    selection: all of them) while ``records_up_to`` stays the event-time
    clock that held records expire by.
    """

    records_up_to: int
    models_up_to: int
    end_of_input: bool
    due_up_to: int | None = None


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
