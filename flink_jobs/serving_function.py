"""What both serving functions do with buffered records; the Flink-facing half of ``serving.scoring``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from pyflink.datastream import TimeDomain

from flink_jobs.tags import DEAD_LETTERS, END_OF_INPUT, STATS
from serving.codecs import now_ms
from serving.model import Model
from serving.pb.wine_record_pb2 import WineRecord
from serving.scoring import StatsTracker, decode_buffer, score_due
from serving.settings import ServingOptions


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


def register_flush(ctx, ts: int, options: ServingOptions) -> None:
    """Ask for a flush once the watermark passes ``ts`` (and after the idle delay, if on)."""
    timers = ctx.timer_service()
    timers.register_event_time_timer(slot(ts, options.flush_granularity_ms))
    timers.register_event_time_timer(END_OF_INPUT)
    if options.idle_flush_ms:
        timers.register_processing_time_timer(slot(now_ms() + options.idle_flush_ms, 100))


def score_buffer(
    buffer_state,
    records_up_to: int,
    timelines: Mapping[str, Sequence[tuple[int, Model]]],
    tracker: StatsTracker,
    options: ServingOptions,
    end_of_input: bool,
) -> Iterator:
    """Score the due records of ``buffer_state``; yield results and side outputs; keep the rest."""
    records = decode_buffer(buffer_state.get() or [])
    due: list[WineRecord] = [r for r in records if r.ts <= records_up_to]
    if not due:
        return
    later = [r for r in records if r.ts > records_up_to]
    scored = score_due(
        due,
        timelines,
        hold=options.early_records == "hold",
        max_held=options.max_held_records,
        end_of_input=end_of_input,
    )
    for result in scored.results:
        yield result.SerializeToString()
    for letter in scored.dead_letters:
        yield DEAD_LETTERS, letter.SerializeToString()
    for model, count, duration in scored.batches:
        for message in tracker.scored(model, count, duration):
            yield STATS, message.SerializeToString()
    buffer_state.update([r.SerializeToString() for r in scored.held + later])


def save_stats(stats_state, tracker: StatsTracker) -> None:
    """Write the tracker back to its ValueState."""
    stats_state.update(tracker.saved())
