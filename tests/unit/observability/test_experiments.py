"""Experiments in the stats service: pair stats are not serving models; /experiments merges instances; the lineup.

The pair snapshots are what the jobs emit (``serving.rollout.experiments.stats_message``);
the expected figures are worked out by hand, the Wilson bound by scipy.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from scipy.stats import binomtest

from serving.observability.messages import MalformedMessage, parse_event, parse_stats
from serving.observability.monitor import Monitor
from serving.observability.service.app import create_app
from serving.observability.service.prometheus import StatsCollector
from serving.pb.comparison_pb2 import PairStats
from serving.pb.model_event_pb2 import ModelEvent
from serving.rollout.experiments import stats_message
from tests.unit.observability.stub_service import StubStatsService
from tests.unit.observability.test_monitor import event, snap


def pair(n: int, agreements: int, *, instance: str, emitted_at: int, challenger: str = "v2", **fields):
    """The stats message a job emits for the pair (wine, champion v1, ``challenger``) as ``instance`` counted it."""
    stats = PairStats(
        data_type="wine",
        champion_version="v1",
        challenger_version=challenger,
        challenger_role=fields.pop("role", "shadow"),
        n=n,
        agreements=agreements,
        emitted_at=emitted_at,
        instance=instance,
        **fields,
    )
    return stats_message(stats, instance)


def fed_monitor() -> Monitor:
    """A serving model (v1, 100 records) and the pair v1/v2 counted by two buckets, one with an older snapshot."""
    monitor = Monitor()
    monitor.add_event(event(ModelEvent.ACCEPTED, "v1", ts=500))
    monitor.add_stats(snap("v1", 100, since=1_000, emitted_at=5_000, total=2_000_000))
    common = {"since": 1_200}
    monitor.add_stats(pair(300, 290, instance="bucket:0", emitted_at=3_000, **common))  # replaced by the next
    monitor.add_stats(
        pair(600, 570, instance="bucket:0", emitted_at=4_000, champion_errors=2, challenger_errors=8,
             mean_abs_delta=0.2, p95_abs_delta=0.5, challenger_p99_ms=3.0, **common)
    )  # fmt: skip
    monitor.add_stats(
        pair(400, 390, instance="bucket:1", emitted_at=4_500, mean_abs_delta=0.1, p95_abs_delta=0.9,
             challenger_p99_ms=2.0, since=1_100)
    )  # fmt: skip
    return monitor


def client(monitor: Monitor) -> TestClient:
    return TestClient(create_app(StubStatsService(monitor), manage=False))


def test_pair_stats_are_not_serving_models():
    http = client(fed_monitor())
    models = http.get("/models").json()
    assert [(m["name"], m["version"], m["usage"], m["status"]) for m in models["models"]] == [
        ("linear", "v1", 100, "serving")
    ]
    state = http.get("/state/wine").json()
    assert (state["model"]["version"], state["model"]["usage"], state["models_known"]) == ("v1", 100, 1)
    overview = http.get("/overview").json()
    assert [m["version"] for m in overview["models"]] == ["v1"]
    assert [p["usage"] for p in overview["data_types"]["wine"]["series"]] == [100]


def test_experiments_sum_the_newest_snapshot_of_each_instance():
    answer = client(fed_monitor()).get("/experiments").json()
    [wine] = answer["data_types"]
    [e] = wine["experiments"]
    # bucket:0's newest (600 / 570) plus bucket:1's (400 / 390); bucket:0's older 300 is replaced, not added.
    assert (e["data_type"], e["champion_version"], e["challenger_version"], e["role"]) == ("wine", "v1", "v2", "shadow")
    assert (e["n"], e["agreements"], e["instances"]) == (1000, 960, 2)
    assert e["agreement_rate"] == pytest.approx(0.96)
    assert e["wilson_lower"] == pytest.approx(binomtest(960, 1000).proportion_ci(0.95, method="wilson").low)
    assert (e["champion_errors"], e["challenger_errors"]) == (2, 8)
    # Means weighted by the records both scored: (590 * 0.2 + 400 * 0.1) / 990; percentiles: the highest.
    assert e["mean_abs_delta"] == pytest.approx((590 * 0.2 + 400 * 0.1) / 990)
    assert (e["p95_abs_delta"], e["challenger_p99_ms"]) == (0.9, 3.0)
    assert (e["since"], e["updated_at"]) == (1_100, 4_500)
    assert e["recommended"] is False


def test_a_pair_moved_between_compare_subtasks_is_not_counted_twice():
    # ComparePairs is keyed by data type: after a restore at another parallelism its subtask (and instance) may
    # change while the aggregate keeps its counts. The old subtask's last snapshot stays on the compacted topic.
    monitor = Monitor()
    monitor.add_stats(pair(500, 490, instance="compare-0", emitted_at=2_000))
    monitor.add_stats(pair(800, 780, instance="compare-1", emitted_at=3_000))
    [e] = client(monitor).get("/experiments/wine").json()["experiments"]
    assert (e["n"], e["agreements"], e["instances"]) == (800, 780, 1)


def test_a_role_change_keeps_one_pair_with_the_newest_role():
    monitor = Monitor()
    monitor.add_stats(pair(100, 100, instance="compare-0", emitted_at=2_000, role="shadow"))
    monitor.add_stats(pair(150, 149, instance="compare-0", emitted_at=3_000, role="canary"))
    [e] = client(monitor).get("/experiments/wine").json()["experiments"]
    assert (e["role"], e["n"], e["agreements"]) == ("canary", 150, 149)


def test_promote_recommended_marks_its_pair_only_and_the_lineup_follows_the_events():
    monitor = fed_monitor()
    monitor.add_stats(pair(50, 10, instance="bucket:0", emitted_at=4_000, challenger="v3", role="canary"))
    monitor.add_event(event(ModelEvent.ACCEPTED, "v2", ts=600, name="tree"))
    monitor.add_event(
        ModelEvent(kind=ModelEvent.ROLE_SET, data_type="wine", version="v2", name="tree", role="shadow", ts=600)
    )
    monitor.add_event(ModelEvent(kind=ModelEvent.PINNED, data_type="wine", ts=700))
    recommended = ModelEvent(
        kind=ModelEvent.PROMOTE_RECOMMENDED, data_type="wine", version="v2", previous_version="v1",
        role="shadow", ts=4_100, reason="n 1000 >= 1000, wilson lower 0.95 >= 0.95",
    )  # fmt: skip
    monitor.add_event(recommended)
    before = monitor.counters.model_copy()
    http = client(monitor)
    wine = http.get("/experiments/wine").json()
    by_challenger = {e["challenger_version"]: e for e in wine["experiments"]}
    assert (by_challenger["v2"]["recommended"], by_challenger["v2"]["recommended_at"]) == (True, 4_100)
    assert by_challenger["v2"]["recommendation"] == recommended.reason
    assert by_challenger["v3"]["recommended"] is False
    assert wine["pinned"] is True
    roles = {v["version"]: (v["name"], v["role"]) for v in wine["lineup"]}
    assert roles == {"v1": ("linear", "champion"), "v2": ("tree", "shadow")}
    assert [e["kind"] for e in wine["events"]] == ["ACCEPTED", "ACCEPTED", "ROLE_SET", "PINNED", "PROMOTE_RECOMMENDED"]
    # Lineup events are neither new models nor duplicates.
    assert before.duplicates == 0
    assert {m["version"] for m in http.get("/models").json()["models"]} == {"v1", "v2"}


def test_promotion_and_retirement_move_the_roles():
    monitor = Monitor()
    monitor.add_event(event(ModelEvent.ACCEPTED, "v1", ts=500))
    monitor.add_event(
        ModelEvent(kind=ModelEvent.ROLE_SET, data_type="wine", version="v2", name="tree", role="canary", ts=600)
    )
    monitor.add_event(ModelEvent(kind=ModelEvent.PROMOTED, data_type="wine", version="v2", role="champion", ts=900))
    monitor.add_event(ModelEvent(kind=ModelEvent.RETIRED, data_type="wine", version="v1", ts=900))
    lineup = client(monitor).get("/experiments/wine").json()["lineup"]
    assert [(v["version"], v["role"], v["since"], v["last_event"]) for v in lineup] == [
        ("v1", "retired", 900, "RETIRED"),
        ("v2", "champion", 900, "PROMOTED"),
    ]


def test_unknown_data_type_is_404_and_a_type_without_experiments_is_empty():
    http = client(fed_monitor())
    unknown = http.get("/experiments/loans")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "unknown data type"
    monitor = Monitor()
    monitor.add_stats(snap("A", 5))
    empty = client(monitor).get("/experiments/wine")
    assert empty.status_code == 200
    assert (empty.json()["experiments"], empty.json()["lineup"]) == ([], [])


def test_prometheus_exports_each_pair_and_no_pair_as_a_model():
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(StubStatsService(fed_monitor())))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
    }
    key = (("challenger", "v2"), ("champion", "v1"), ("data_type", "wine"))
    assert samples[("modelserving_experiment_comparisons", key)] == 1000
    assert samples[("modelserving_experiment_agreement_ratio", key)] == pytest.approx(0.96)
    scored = {labels: v for (name, labels), v in samples.items() if name == "modelserving_model_records_scored_total"}
    assert scored == {(("data_type", "wine"), ("name", "linear"), ("version", "v1")): 100}


def test_lineup_events_parse_and_bad_ones_are_malformed():
    pinned = ModelEvent(kind=ModelEvent.PINNED, data_type="wine", ts=1).SerializeToString()
    assert parse_event(pinned).kind == ModelEvent.PINNED
    for bad in (
        ModelEvent(kind=ModelEvent.PINNED, ts=1),  # no data type
        ModelEvent(kind=ModelEvent.PROMOTED, data_type="wine", ts=1),  # no version
    ):
        with pytest.raises(MalformedMessage):
            parse_event(bad.SerializeToString())


@pytest.mark.parametrize(
    "fields",
    [
        {"agreements": 11},  # more than n
        {"challenger_errors": 11},
        {"mean_abs_delta": float("nan")},
        {"p95_abs_delta": -1.0},
    ],
)
def test_bad_pair_stats_are_malformed(fields):
    message = pair(10, fields.pop("agreements", 5), instance="bucket:0", emitted_at=1, **fields)
    with pytest.raises(MalformedMessage):
        parse_stats(message.SerializeToString())


def test_pair_stats_naming_another_challenger_are_malformed():
    message = pair(10, 5, instance="bucket:0", emitted_at=1)
    message.version = "v9"
    with pytest.raises(MalformedMessage):
        parse_stats(message.SerializeToString())
    assert parse_stats(pair(10, 5, instance="bucket:0", emitted_at=1).SerializeToString()).pair.n == 10
