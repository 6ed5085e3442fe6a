"""Late models are counted exactly; held records do not wait for ever. No Flink."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from serving.core.lateness import ScoredTimes
from serving.core.scoring import NO_MODEL, score_due
from serving.records.wine import decode_record, encode_record


def fake_model(version: str, created_at: int):
    return SimpleNamespace(
        name="m",
        version=version,
        data_type="wine",
        model_type=0,
        descriptor=SimpleNamespace(created_at=created_at),
    )


def flush(times: ScoredTimes, timeline, scored_ts, up_to):
    """One flush as a serving function does it: late models first, then what it scored."""
    late = times.late_models("wine", timeline)
    if len(scored_ts):
        times.scored("wine", scored_ts)
        times.flushed("wine", up_to)
    return late


def test_a_model_that_arrives_in_time_is_not_late():
    a, b = fake_model("A", 0), fake_model("B", 1_000)
    times = ScoredTimes(10_000)
    assert flush(times, [(0, a)], np.arange(0, 1_000), 999) == []
    assert flush(times, [(0, a), (1_000, b)], np.arange(1_000, 2_000), 1_999) == []


def test_a_late_model_reports_exactly_the_records_it_missed():
    a, b = fake_model("A", 0), fake_model("B", 1_500)
    times = ScoredTimes(10_000)
    flush(times, [(0, a)], np.arange(0, 1_000), 999)
    flush(times, [(0, a)], np.repeat(np.arange(1_000, 2_000), 2), 1_999)  # two records per ms
    [late] = flush(times, [(0, a), (1_500, b)], np.arange(2_000, 2_100), 2_099)
    assert late.model is b
    assert (late.missed, late.missed_from, late.missed_to, late.exact) == (1_000, 1_500, 1_999, True)
    event = late.event("key:wine", 5)
    assert (event.missed, event.instance, event.version) == (1_000, "key:wine", "B")
    # Reported once: the next flush knows it.
    assert flush(times, [(0, a), (1_500, b)], np.arange(2_100, 2_200), 2_199) == []


def test_a_late_model_only_misses_records_up_to_the_next_model():
    a, b, c = fake_model("A", 0), fake_model("B", 300), fake_model("C", 600)
    times = ScoredTimes(10_000)
    flush(times, [(0, a), (600, c)], np.arange(0, 1_000), 999)
    [late] = flush(times, [(0, a), (300, b), (600, c)], [], 999)
    assert (late.model, late.missed, late.missed_to) == (b, 300, 599)


def test_beyond_the_horizon_the_count_is_a_flagged_lower_bound():
    a, b = fake_model("A", 0), fake_model("B", 100)
    times = ScoredTimes(1_000)
    for start in range(0, 5_000, 500):
        flush(times, [(0, a)], np.arange(start, start + 500), start + 499)
    [late] = flush(times, [(0, a), (100, b)], [], 4_999)
    assert not late.exact and late.missed == 1_001  # ts 3_999..4_999: what the horizon keeps


def test_the_state_round_trips_through_bytes_and_stays_bounded():
    a, b = fake_model("A", 0), fake_model("B", 7_000)
    times = ScoredTimes(2_000)
    for start in range(0, 100_000, 1_000):
        flush(times, [(0, a)], np.repeat(np.arange(start, start + 1_000), 30), start + 999)
    raw = times.to_bytes()
    assert len(raw) < 2_001 * 16 + 200  # bounded by the horizon in ms, not by the 3 million records
    again = ScoredTimes(2_000, raw)
    [late] = again.late_models("wine", [(0, a), (98_500, fake_model("B", 98_500))])
    assert (late.missed, late.exact) == (1_500 * 30, True)
    assert b.version == "B"


def test_held_records_expire_after_max_hold_ms_as_no_model(wine_data):
    records = [decode_record(encode_record(str(i), wine_data.features[i], ts=1_000 * i)) for i in range(5)]
    scored = score_due(records, {}, {}, hold=True, max_held=100, records_up_to=4_000, max_hold_ms=2_500)
    assert [r.id for r in scored.held] == ["2", "3", "4"]
    assert [d.record_id for d in scored.dead_letters] == ["0", "1"]
    assert {d.reason for d in scored.dead_letters} == {NO_MODEL}
    assert "within 2500 ms" in scored.dead_letters[0].detail
    forever = score_due(records, {}, {}, hold=True, max_held=100, records_up_to=4_000, max_hold_ms=0)
    assert len(forever.held) == 5 and not forever.dead_letters
