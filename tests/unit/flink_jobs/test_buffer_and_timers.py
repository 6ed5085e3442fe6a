"""Micro-batch pieces without Flink: buffer entries, batch size B, and the flush-timer memory."""

from __future__ import annotations

import numpy as np
import pytest

from flink_jobs.functions.buffer import RecordBuffer
from flink_jobs.functions.timers import FlushTimers, slot
from flink_jobs.tags import END_OF_INPUT
from serving.core.entries import Entry, decode_entry, encode_entry, entry_ts
from serving.core.model import BatchScores
from serving.core.scoring import score_due
from serving.pb.wine_record_pb2 import WineRecord
from serving.records import bundled_schemas
from serving.records.wine import decode_record, encode_record
from serving.records.wire import Coordinates
from serving.settings import ServingOptions
from serving.testing import FakeContext, FakeListState, FakeValueState


def test_buffer_entries_carry_ts_data_type_and_coordinates_back(wine_data):
    payload = encode_record("r1", wine_data.features[0], ts=-5)
    entry = Entry(-5, "wine", Coordinates("wine-data", 3, 17, 1_700_000_000_000), payload, checked=True)
    raw = encode_entry(entry)
    assert entry_ts(raw) == -5
    assert decode_entry(raw) == entry
    unchecked = Entry(9, "iris", Coordinates("data.iris", 0, 2, None), b'{"x": 1}')
    assert decode_entry(encode_entry(unchecked)) == unchecked


def test_a_checked_wine_record_is_kept_short_and_read_back_parsed(wine_data):
    """The hot path: 0x00 | ts | bytes (no coordinates, it has its own id), parsed once when read back."""
    payload = encode_record("r7", wine_data.features[0], ts=42)
    entry = Entry(42, "wine", Coordinates(), payload, checked=True, wine=decode_record(payload))
    raw = encode_entry(entry)
    assert raw == b"\x00" + (42).to_bytes(8, "big", signed=True) + payload
    back = decode_entry(raw)
    assert (
        back.wine is not None and back.wine.id == "r7" and (back.ts, back.payload, back.checked) == (42, payload, True)
    )


def test_a_checked_wine_record_keeps_where_it_was_read_for_provenance(wine_data):
    """0x03 | ts | partition | offset | topic | bytes: the short format, plus the coordinates results report."""
    payload = encode_record("r8", wine_data.features[0], ts=43)
    where = Coordinates("wine-data", 1, 9_000_000_000, None)
    raw = encode_entry(Entry(43, "wine", where, payload, checked=True, wine=decode_record(payload)))
    header = b"\x03" + (43).to_bytes(8, "big", signed=True) + (1).to_bytes(4, "big")
    header += (9_000_000_000).to_bytes(8, "big")
    assert raw == header + len(b"wine-data").to_bytes(2, "big") + b"wine-data" + payload
    assert entry_ts(raw) == 43
    back = decode_entry(raw)
    assert back.where == where and back.wine is not None and back.wine.id == "r8" and back.payload == payload


def test_buffers_written_before_schemas_still_read(wine_data):
    payload = encode_record("old", wine_data.features[1], ts=1234)
    for legacy in (payload, b"\x00" + (1234).to_bytes(8, "big", signed=True) + payload):
        assert entry_ts(legacy) == 1234
        entry = decode_entry(legacy)
        assert (entry.ts, entry.data_type, entry.payload, entry.checked) == (1234, "wine", payload, True)


class SizeRecorder:
    """A stand-in model that records the size of every ``score_batch`` call."""

    name, version, data_type = "recorder", "1", "wine"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def unfit_rows(self, features: np.ndarray) -> np.ndarray:
        return np.zeros(len(features), dtype=bool)

    def score_batch(self, features: np.ndarray) -> BatchScores:
        self.calls.append(len(features))
        return BatchScores(features[:, 0].astype(np.float64), None, (), 1)


@pytest.mark.parametrize(("batch_size", "calls"), [(0, [100]), (1000, [100]), (30, [30, 30, 30, 10]), (1, [1] * 100)])
def test_a_flush_is_scored_in_batches_of_at_most_b(wine_data, batch_size, calls):
    model = SizeRecorder()
    due = [decode_record(encode_record(str(i), wine_data.features[i], ts=i)) for i in range(100)]
    schemas = {s.data_type: s for s in bundled_schemas()}
    scored = score_due(due, {"wine": [(0, model)]}, schemas, hold=True, max_held=10, batch_size=batch_size)
    assert model.calls == calls
    assert [r.record_id for r in scored.results] == [str(i) for i in range(100)]
    assert [r.score for r in scored.results] == pytest.approx(wine_data.features[:100, 0])


def test_flush_timers_are_asked_for_once_per_slot_and_key():
    timers = FlushTimers(ServingOptions(batch_wait_ms=100))
    ctx = FakeContext("wine")
    for ts in [1, 50, 99, 100, 101, 150, 5]:
        timers.request(ctx, ts)
    assert ctx.timers.event == [100, END_OF_INPUT, 200]
    other = FakeContext("wine-white")
    timers.request(other, 60)
    assert other.timers.event == [100, END_OF_INPUT]


def test_a_fired_slot_is_asked_for_again_by_a_late_record():
    from pyflink.datastream import TimeDomain

    timers = FlushTimers(ServingOptions(batch_wait_ms=100))
    ctx = FakeContext("wine", domain=TimeDomain.EVENT_TIME)
    timers.request(ctx, 10)
    timers.fired(ctx, 100)
    timers.request(ctx, 20)  # late: its slot fired already, so it needs a timer of its own
    assert ctx.timers.event == [100, END_OF_INPUT, 100]


def test_the_idle_timer_flushes_only_a_quiet_key_and_never_past_the_model_delay(monkeypatch):
    """While records arrive, an idle-flush timer only moves on; once the key is quiet it flushes to now - delay.

    The defect it replaces: a processing-time timer per 100 ms slot while records
    flowed, each flushing every buffered record with the wall clock's models, so
    the event-time rule was bypassed all the time, not only when the data was quiet.
    """
    from pyflink.datastream import TimeDomain

    import flink_jobs.functions.timers as serving_function

    now = {"t": 1_000}
    monkeypatch.setattr(serving_function, "now_ms", lambda: now["t"])
    timers = FlushTimers(ServingOptions(batch_wait_ms=10, idle_flush_ms=200, max_model_delay_ms=50))
    ctx = FakeContext("wine", domain=TimeDomain.PROCESSING_TIME)
    for t in [1_000, 1_010, 1_050, 1_150]:
        now["t"] = t
        timers.request(ctx, t)
    assert ctx.timers.processing == [slot(1_200, 100)]  # one timer while it is pending
    now["t"] = 1_200
    assert timers.fired(ctx, 1_200) is None  # a record arrived at 1_150: not idle
    assert ctx.timers.processing == [1_200, slot(1_350, 100)]
    now["t"] = 1_400
    bounds = timers.fired(ctx, 1_400)
    assert bounds == serving_function.FlushBounds(1_350, 1_350, False)


def test_event_time_flushes_wait_for_the_model_delay():
    from pyflink.datastream import TimeDomain

    from flink_jobs.functions.timers import FlushBounds

    timers = FlushTimers(ServingOptions(batch_wait_ms=100, max_model_delay_ms=500))
    ctx = FakeContext("wine", domain=TimeDomain.EVENT_TIME)
    timers.request(ctx, 1_030)
    assert ctx.timers.event == [1_600, END_OF_INPUT]  # slot(1_030 + 500)
    assert timers.fired(ctx, 1_600) == FlushBounds(1_100, 1_100, False)
    assert timers.fired(ctx, END_OF_INPUT) == FlushBounds(END_OF_INPUT, END_OF_INPUT, True)


def _buffer(ts_values) -> tuple[RecordBuffer, FakeListState]:
    entries = FakeListState()
    buffer = RecordBuffer(entries, FakeValueState())
    for ts in ts_values:
        payload = encode_record(f"r{ts}", [0.0] * 11, ts=ts)
        buffer.add(encode_entry(Entry(ts, "wine", Coordinates(), payload, checked=True)))
    return buffer, entries


def test_in_order_flushes_move_a_count_and_rewrite_nothing():
    buffer, entries = _buffer(range(100))
    for up_to in range(9, 100, 10):
        due = buffer.take_due(up_to)
        assert [entry_ts(e) for e in due] == list(range(up_to - 9, up_to + 1))
        buffer.settle()
    assert entries.rewrites == 0
    assert entries.items == [] and buffer.scored_state.value() is None  # drained: cleared


def test_a_due_record_behind_a_waiting_one_is_scored_and_the_rest_kept():
    buffer, entries = _buffer([1, 2, 50, 3, 60])
    assert [entry_ts(e) for e in buffer.take_due(10)] == [1, 2, 3]
    buffer.settle()
    assert [entry_ts(e) for e in entries.items] == [50, 60] and entries.rewrites == 1
    assert [entry_ts(e) for e in buffer.take_due(55)] == [50]


def test_with_nothing_due_the_buffer_says_this_keys_records_still_wait():
    """One buffer object serves every key of an instance; a flush with nothing due never settles."""
    buffer, _ = _buffer([1, 2])
    buffer.take_due(10)
    buffer.settle()
    assert not buffer.waiting  # that key is drained
    other_key, _ = _buffer([500])
    buffer.entries_state, buffer.scored_state = other_key.entries_state, other_key.scored_state
    assert buffer.take_due(10) == []
    assert buffer.waiting  # else the caller would arm no idle timer for it


def test_held_records_stay_in_the_buffer():
    buffer, _ = _buffer([1, 2, 3])
    due = buffer.take_due(10)
    buffer.settle(held=due[:1])
    assert [entry_ts(e) for e in buffer.take_due(10)] == [1]


def test_a_long_scored_prefix_is_compacted_once_it_is_over_half_the_list():
    size = RecordBuffer.COMPACT_AFTER + 100
    buffer, entries = _buffer(range(size))
    buffer.take_due(RecordBuffer.COMPACT_AFTER - 2)  # under the threshold: only the count moves
    buffer.settle()
    assert entries.rewrites == 0 and buffer.scored_state.value() == RecordBuffer.COMPACT_AFTER - 1
    buffer.take_due(RecordBuffer.COMPACT_AFTER + 10)
    buffer.settle()
    assert entries.rewrites == 1 and buffer.scored_state.value() is None
    assert [entry_ts(e) for e in entries.items] == list(range(RecordBuffer.COMPACT_AFTER + 11, size))


def _wine_entry(ts: int) -> bytes:
    payload = WineRecord(id=f"r{ts}", data_type="wine", ts=ts).SerializeToString()
    return encode_entry(Entry(ts, "wine", Coordinates(), payload, checked=True))


def test_a_group_is_due_whole_waits_whole_or_is_split_at_the_bound():
    from serving.core.entries import encode_group, group_bounds, group_entries, is_group

    early = encode_group([_wine_entry(t) for t in (10, 11, 12)])
    mixed = encode_group([_wine_entry(t) for t in (20, 21, 22, 23)])
    late = encode_group([_wine_entry(t) for t in (30, 31)])
    assert is_group(early) and group_bounds(mixed) == (20, 23)
    buffer = RecordBuffer(FakeListState([early, mixed, late]), FakeValueState())
    due = buffer.take_due(21)
    assert [entry_ts(e) for e in due] == [10, 11, 12, 20, 21]
    buffer.settle()
    kept = buffer.entries_state.get()
    assert [[entry_ts(e) for e in group_entries(g)] if is_group(g) else [entry_ts(g)] for g in kept] == [
        [22, 23],
        [30, 31],
    ]
    assert [entry_ts(e) for e in buffer.take_due(40)] == [22, 23, 30, 31]
    buffer.settle()
    assert buffer.entries_state.get() in ([], None)


def test_a_group_of_one_is_the_entry_itself():
    from serving.core.entries import encode_group

    assert encode_group([_wine_entry(5)]) == _wine_entry(5)
