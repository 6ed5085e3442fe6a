"""Micro-batch pieces without Flink: buffer entries, batch size B, and the flush-timer memory."""

from __future__ import annotations

import numpy as np
import pytest

from flink_jobs.serving_function import FlushTimers, slot
from flink_jobs.tags import END_OF_INPUT
from serving.codecs import decode_record, encode_record
from serving.model import BatchScores
from serving.scoring import buffer_entry, decode_buffer, entry_ts, score_due
from serving.settings import ServingOptions


def test_buffer_entries_carry_ts_and_decode_back_to_the_record(wine_data):
    payload = encode_record("r1", wine_data.features[0], ts=-5)
    entry = buffer_entry(-5, payload)
    assert entry_ts(entry) == -5
    assert decode_buffer([entry])[0] == decode_record(payload)


def test_buffers_written_before_entries_had_a_ts_still_read(wine_data):
    legacy = encode_record("old", wine_data.features[1], ts=1234)
    assert entry_ts(legacy) == 1234
    assert decode_buffer([legacy])[0].id == "old"


class SizeRecorder:
    """A stand-in model that records the size of every ``score_batch`` call."""

    name, version = "recorder", "1"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def score_batch(self, features: np.ndarray) -> BatchScores:
        self.calls.append(len(features))
        return BatchScores(features[:, 0].astype(np.float64), None, (), 1)


@pytest.mark.parametrize(("batch_size", "calls"), [(0, [100]), (1000, [100]), (30, [30, 30, 30, 10]), (1, [1] * 100)])
def test_a_flush_is_scored_in_batches_of_at_most_b(wine_data, batch_size, calls):
    model = SizeRecorder()
    due = [decode_record(encode_record(str(i), wine_data.features[i], ts=i)) for i in range(100)]
    scored = score_due(due, {"wine": [(0, model)]}, hold=True, max_held=10, batch_size=batch_size)
    assert model.calls == calls
    assert [r.record_id for r in scored.results] == [str(i) for i in range(100)]
    assert [r.score for r in scored.results] == pytest.approx(wine_data.features[:100, 0])


class FakeTimerService:
    def __init__(self) -> None:
        self.event: list[int] = []
        self.processing: list[int] = []

    def register_event_time_timer(self, t: int) -> None:
        self.event.append(t)

    def register_processing_time_timer(self, t: int) -> None:
        self.processing.append(t)


class FakeContext:
    def __init__(self, key: str, domain=None) -> None:
        self.key, self.domain, self.timers = key, domain, FakeTimerService()

    def get_current_key(self) -> str:
        return self.key

    def timer_service(self) -> FakeTimerService:
        return self.timers

    def time_domain(self):
        return self.domain


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
    ctx = FakeContext("wine", TimeDomain.EVENT_TIME)
    timers.request(ctx, 10)
    timers.fired(ctx, 100)
    timers.request(ctx, 20)  # late: its slot fired already, so it needs a timer of its own
    assert ctx.timers.event == [100, END_OF_INPUT, 100]


def test_idle_flush_timer_is_asked_for_once_per_100_ms_slot(monkeypatch):
    from pyflink.datastream import TimeDomain

    import flink_jobs.serving_function as serving_function

    clock = iter([1_000, 1_010, 1_050, 1_150])
    monkeypatch.setattr(serving_function, "now_ms", lambda: next(clock))
    timers = FlushTimers(ServingOptions(batch_wait_ms=10, idle_flush_ms=200))
    ctx = FakeContext("wine", TimeDomain.PROCESSING_TIME)
    for ts in [1, 2, 3, 4]:
        timers.request(ctx, ts)
    # 1_000 -> 1_200; 1_010 and 1_050 share the slot 1_300; 1_150 -> 1_400
    assert ctx.timers.processing == [slot(1_200, 100), slot(1_210, 100), slot(1_350, 100)]
