"""Scoring what a flush releases: due buffered records (and just-arrived ones) to results and side outputs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from flink_jobs.functions.buffer import RecordBuffer
from flink_jobs.functions.metrics import ServingMetrics
from flink_jobs.functions.timers import FlushBounds
from flink_jobs.tags import ARCHIVE, COMPARISONS, DEAD_LETTERS, REMOTE_REQUESTS, STATS
from serving.core.entries import Entry, decode_entry, encode_entry
from serving.core.lateness import ScoredTimes
from serving.core.model import Model
from serving.core.scoring import Locations, decode_entries, score_due
from serving.core.stats import StatsTracker
from serving.records.schema import SchemaRegistry
from serving.records.wire import NOWHERE
from serving.rollout.rendezvous import Challengers
from serving.settings import ServingOptions


def score_buffer(
    buffer: RecordBuffer,
    bounds: FlushBounds,
    timelines: Mapping[str, Sequence[tuple[int, Model]]],
    tracker: StatsTracker,
    options: ServingOptions,
    registry: SchemaRegistry,
    metrics: ServingMetrics | None = None,
    scored_times: ScoredTimes | None = None,
    arrived: Sequence[Entry] = (),
    challengers: Mapping[str, Challengers] | None = None,
) -> Iterator:
    """Score the due records of ``buffer`` and ``arrived``; yield results and side outputs; keep the rest.

    Only due records are decoded, with their data type's schema in
    ``registry``; the entries that wait stay as they are. ``arrived`` are
    entries that never went into the buffer (``arrival`` selection): they
    are due now, and only those held for a model are buffered.
    ``scored_times`` (when given) learns the event times of what was scored.
    ``challengers`` (by data type) score beside the champion: their comparisons
    and a decoy's archive leave as side outputs (:mod:`serving.rollout.rendezvous`).
    """
    due_entries = buffer.take_due(bounds.records_up_to if bounds.due_up_to is None else bounds.due_up_to)
    if not due_entries and not arrived:
        return
    locations = Locations()  # where each record was read, for the results' provenance
    due, letters, waiting = decode_entries(
        [*(decode_entry(e) for e in due_entries), *arrived], registry, options, bounds.records_up_to, locations
    )
    for letter in letters:
        yield DEAD_LETTERS, letter.SerializeToString()
    if metrics is not None:
        metrics.dead_lettered(len(letters))
    schemas = {dt: registry.get(dt) for dt in {r.data_type for r in due}}
    scored = score_due(
        due,
        timelines,
        schemas,
        hold=options.early_records == "hold",
        max_held=options.max_held_records,
        end_of_input=bounds.end_of_input,
        batch_size=options.batch_size,
        records_up_to=bounds.records_up_to,
        max_hold_ms=options.max_hold_ms,
        max_payload_bytes=options.dead_letter_max_payload_bytes,
        asynchronous=options.remote_scoring == "async",
        challengers=challengers,
        locations=locations,
    )
    for result in scored.results:
        yield result.SerializeToString()
    for comparison in scored.comparisons:
        yield COMPARISONS, comparison.SerializeToString()
    for archived in scored.archive:
        yield ARCHIVE, archived.SerializeToString()
    for _, _, request in scored.remote:
        yield REMOTE_REQUESTS, request
    for letter in scored.dead_letters:
        yield DEAD_LETTERS, letter.SerializeToString()
    for model, count, duration, members in scored.batches:
        if metrics is not None:
            metrics.batch(count, duration)
        for message in tracker.scored(model, count, duration, members):
            yield STATS, message.SerializeToString()
    if metrics is not None:
        metrics.dead_lettered(len(scored.dead_letters))
    if scored_times is not None:
        by_type: dict[str, list[int]] = {}
        for result in scored.results:
            by_type.setdefault(result.data_type, []).append(result.record_ts)
        for data_type, times, _ in scored.remote:
            by_type.setdefault(data_type, []).extend(times)
        for data_type, times in by_type.items():
            scored_times.scored(data_type, times)
            scored_times.flushed(data_type, bounds.records_up_to)
    kept = [Entry(r.ts, r.data_type, getattr(r, "where", NOWHERE), r.SerializeToString(), True) for r in scored.held]
    kept += waiting
    buffer.settle([encode_entry(e) for e in kept])
    held_until = [e.ts + options.max_hold_ms for e in kept]
    buffer.expire_at = min(held_until) if held_until and options.max_hold_ms else None
