"""/metrics: records scored and scoring time per model version are counters, so Prometheus' rate() works on them."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from serving.observability.monitor import Monitor
from serving.observability.service.prometheus import StatsCollector
from tests.unit.observability.stub_service import StubStatsService
from tests.unit.observability.test_monitor import snap


def scrape(monitor: Monitor) -> dict[str, dict]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(StubStatsService(monitor)))
    families = text_string_to_metric_families(generate_latest(registry).decode())
    return {f.name: {"type": f.type, "samples": {(s.name, s.labels.get("version")): s.value for s in f.samples}}
            for f in families}  # fmt: skip


def test_records_scored_and_scoring_seconds_are_counters_per_model_version():
    monitor = Monitor()
    monitor.add_stats(snap("A", 600, since=1_000, emitted_at=4_000, total=12_000_000))  # 20 µs a record
    monitor.add_stats(snap("B", 100, name="tf", since=5_000, emitted_at=6_000, total=5_000_000))  # 50 µs
    metrics = scrape(monitor)
    assert metrics["modelserving_model_records_scored"]["type"] == "counter"
    assert metrics["modelserving_model_scoring_seconds"]["type"] == "counter"
    assert metrics["modelserving_model_records_scored"]["samples"] == {
        ("modelserving_model_records_scored_total", "A"): 600,
        ("modelserving_model_records_scored_total", "B"): 100,
    }
    assert metrics["modelserving_model_scoring_seconds"]["samples"] == {
        ("modelserving_model_scoring_seconds_total", "A"): pytest.approx(0.012),
        ("modelserving_model_scoring_seconds_total", "B"): pytest.approx(0.005),
    }


def test_rate_over_two_scrapes_gives_throughput_and_mean_scoring_time_even_across_a_restart():
    # What rate() does: the increase between two scrapes over the time between them (here 10 s apart).
    monitor = Monitor()
    monitor.add_stats(snap("A", 0, since=1_000, emitted_at=1_000, total=0))
    monitor.add_stats(snap("A", 500, since=1_000, emitted_at=11_000, total=10_000_000))
    first = scrape(monitor)
    # The instance restarts without its state and counts from 0 again: 200 records by 21 s, 20 µs each.
    monitor.add_stats(snap("A", 200, since=1_000, emitted_at=21_000, total=4_000_000))
    second = scrape(monitor)
    key_records = ("modelserving_model_records_scored_total", "A")
    key_seconds = ("modelserving_model_scoring_seconds_total", "A")
    records = (
        second["modelserving_model_records_scored"]["samples"][key_records]
        - (first["modelserving_model_records_scored"]["samples"][key_records])
    )
    seconds = (
        second["modelserving_model_scoring_seconds"]["samples"][key_seconds]
        - (first["modelserving_model_scoring_seconds"]["samples"][key_seconds])
    )
    assert records == 200  # never a decrease, which rate() would take for a reset of the whole counter
    assert records / 10 == pytest.approx(20.0)  # records/s
    assert seconds / records == pytest.approx(20e-6)  # mean scoring time, s
