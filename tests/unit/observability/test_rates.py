"""Records/s of the serving model from synthetic snapshot sequences, checked against hand-computed rates.

The window (serving.observability.rates): per instance, from its newest
snapshot back to the newest one at least 10 s older (the oldest one when
none is), by the snapshots' own ``emitted_at``; the instances' rates summed.
Every expected value below is worked out by hand in the comment next to it.
"""

from __future__ import annotations

import pytest

from serving.observability.monitor import Monitor
from tests.unit.observability.test_monitor import snap


def fed(*snapshots) -> Monitor:
    monitor = Monitor()
    for message in snapshots:
        monitor.add_stats(message)
    return monitor


def rate(monitor: Monitor) -> tuple[float, int]:
    model = monitor.state("wine").model
    assert model is not None
    return model.records_per_second, model.rate_window_ms


def test_a_steady_rate_with_an_emission_by_count_just_after_one_by_time():
    # The defect as reported: 50 records/s, stats every 10 s and every 1,000 records. At ~20 s both rules
    # come due; the last two snapshots are 1.13 s apart and one flush batch (5 records) apart:
    # over them, 5 / 1.13 s = 4.42/s. Over the window: newest 21,630, the newest snapshot at or before
    # 11,630 is (11,000; 500): (1,000 - 500) / 10.63 s = 47.04/s.
    monitor = fed(
        snap("A", 0, since=1_000, emitted_at=1_000),
        snap("A", 500, since=1_000, emitted_at=11_000),
        snap("A", 995, since=1_000, emitted_at=20_500),
        snap("A", 1_000, since=1_000, emitted_at=21_630),
    )
    assert rate(monitor) == (pytest.approx(500_000 / 10_630), 10_630)
    assert rate(monitor)[0] == pytest.approx(47.04, abs=0.01)


def test_a_steady_rate_with_frequent_snapshots_is_over_the_last_ten_seconds():
    # 50/s, a snapshot every 2 s from t = 1 s (100 records each): newest (21,000; 1,000),
    # reference (11,000; 500): 500 / 10 s = 50/s.
    monitor = fed(*(snap("A", 100 * k, since=1_000, emitted_at=1_000 + 2_000 * k) for k in range(11)))
    assert rate(monitor) == (pytest.approx(50.0), 10_000)


def test_the_last_two_snapshots_when_they_span_more_than_ten_seconds():
    # (1,000; 0) and (21,000; 1,000): 1,000 / 20 s = 50/s over 20 s.
    monitor = fed(snap("A", 0, since=1_000, emitted_at=1_000), snap("A", 1_000, since=1_000, emitted_at=21_000))
    assert rate(monitor) == (pytest.approx(50.0), 20_000)


def test_one_snapshot_is_measured_from_the_models_start():
    # since 1,000, 100 records at 3,000: 100 / 2 s = 50/s.
    assert rate(fed(snap("A", 100, since=1_000, emitted_at=3_000))) == (pytest.approx(50.0), 2_000)


def test_a_rate_change_shows_once_the_window_has_passed_it():
    # 50/s for 20 s (a snapshot every 5 s), then 200/s.
    steady = [snap("A", 250 * k, since=0, emitted_at=5_000 * k) for k in range(5)]  # up to (20,000; 1,000)
    faster = snap("A", 2_000, since=0, emitted_at=25_000)
    fastest = snap("A", 3_000, since=0, emitted_at=30_000)
    # Newest (20,000; 1,000), reference (10,000; 500): 500 / 10 s = 50/s.
    assert rate(fed(*steady)) == (pytest.approx(50.0), 10_000)
    # Newest (25,000; 2,000), reference (15,000; 750): 1,250 / 10 s = 125/s (half old, half new).
    assert rate(fed(*steady, faster)) == (pytest.approx(125.0), 10_000)
    # Newest (30,000; 3,000), reference (20,000; 1,000): 2,000 / 10 s = 200/s.
    assert rate(fed(*steady, faster, fastest)) == (pytest.approx(200.0), 10_000)


def test_a_restart_that_resets_an_instance():
    before = [snap("A", 500 * k, since=1_000, emitted_at=1_000 + 10_000 * k) for k in range(3)]  # (21,000; 1,000)
    # It restarts without its state and reports 60 records at 23,000: a new run, with one snapshot
    # and no start time of its own, so no rate yet; the records of both runs count: 1,000 + 60.
    after = [snap("A", 60, since=1_000, emitted_at=23_000)]
    monitor = fed(*before, *after)
    model = monitor.state("wine").model
    assert (model.usage, model.records_per_second, model.restarts) == (1_060, 0.0, 1)
    assert monitor.counters.counter_resets == 1 and monitor.counters.stale_stats == 0
    # (33,000; 560): (560 - 60) / 10 s = 50/s, never a pair across the reset; usage 1,000 + 560.
    monitor.add_stats(snap("A", 560, since=1_000, emitted_at=33_000))
    model = monitor.state("wine").model
    assert (model.usage, model.records_per_second, model.rate_window_ms) == (1_560, pytest.approx(50.0), 10_000)
    # (43,000; 1,060): (1,060 - 560) / 10 s = 50/s; usage 1,000 + 1,060. Totals never went down.
    monitor.add_stats(snap("A", 1_060, since=1_000, emitted_at=43_000))
    model = monitor.state("wine").model
    assert (model.usage, model.records_per_second) == (2_060, pytest.approx(50.0))
    assert model.total_duration_ns == 20 * 2_060
    assert [p.usage for p in monitor.series("wine")] == [0, 500, 1_000, 1_060, 1_560, 2_060]


def test_a_snapshot_older_than_the_newest_is_stale_not_a_restart():
    monitor = fed(
        snap("A", 0, since=1_000, emitted_at=1_000),
        snap("A", 1_000, since=1_000, emitted_at=21_000),
        snap("A", 500, since=1_000, emitted_at=11_000),  # arrives late
    )
    model = monitor.state("wine").model
    assert (model.usage, model.restarts, monitor.counters.stale_stats) == (1_000, 0, 1)
    assert rate(monitor) == (pytest.approx(50.0), 20_000)


def test_two_instances_at_their_own_rates_and_phases_add_up():
    # k0 at 30/s, a snapshot every 10 s: newest (21,000; 600), reference (11,000; 300): 300 / 10 s = 30/s.
    k0 = [snap("A", 300 * k, instance="k0", since=1_000, emitted_at=1_000 + 10_000 * k) for k in range(3)]
    # k1 at 20/s, every 4 s from 2,000: newest (22,000; 400), the newest at or before 12,000 is
    # (10,000; 160): 240 / 12 s = 20/s over 12 s.
    k1 = [snap("A", 80 * k, instance="k1", since=1_000, emitted_at=2_000 + 4_000 * k) for k in range(6)]
    # Interleaved as they might arrive: 30 + 20 = 50/s; the window stated is the longer one, 12 s.
    monitor = fed(*sorted(k0 + k1, key=lambda m: m.emitted_at))
    model = monitor.state("wine").model
    assert (model.records_per_second, model.rate_window_ms) == (pytest.approx(50.0), 12_000)
    assert (model.usage, model.instances) == (1_000, 2)


def test_two_instances_one_restarted():
    # k0 steady at 30/s as above; k1 ran to 400 records, restarted at ~22 s and reports 20 and then 220 at
    # 23,000 and 33,000: (220 - 20) / 10 s = 20/s. Sum 50/s (k0's rate unchanged by k1's restart).
    k0 = [snap("A", 300 * k, instance="k0", since=1_000, emitted_at=1_000 + 10_000 * k) for k in range(4)]
    k1 = [
        snap("A", 0, instance="k1", since=1_000, emitted_at=2_000),
        snap("A", 400, instance="k1", since=1_000, emitted_at=22_000),
        snap("A", 20, instance="k1", since=1_000, emitted_at=23_000),
        snap("A", 220, instance="k1", since=1_000, emitted_at=33_000),
    ]
    monitor = fed(*sorted(k0 + k1, key=lambda m: m.emitted_at))
    model = monitor.state("wine").model
    # k0: newest (31,000; 900), reference (21,000; 600): 30/s.
    assert model.records_per_second == pytest.approx(50.0)
    assert (model.usage, model.restarts) == (900 + 400 + 220, 1)
