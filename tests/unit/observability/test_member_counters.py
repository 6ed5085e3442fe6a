"""An ensemble's per-member counters in the stats service: merged over instances and restarts, in the API and /metrics.

The rule is the one for ``usage``: each instance's latest snapshot counts,
the instances are summed, and an instance that restarts without its state
(a later snapshot with a lower count) has its earlier run carried. Expected
values are summed by hand from the snapshots below.
"""

from __future__ import annotations

import json
import urllib.request

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from serving.core.model import ModelType
from serving.observability.monitor import Monitor
from serving.observability.service.app import ServerThread
from serving.observability.service.prometheus import StatsCollector
from serving.pb.model_stats_pb2 import MemberStats, ModelStats
from tests.unit.observability.stub_service import StubStatsService

#: (name, version, wins, ok, late, errors) per member.
Row = tuple[str, str, int, int, int, int]


def ensemble_snap(instance: str, usage: int, emitted_at: int, members: list[Row]) -> ModelStats:
    """A snapshot of the ensemble ``guard:e1`` of data type iris from ``instance``."""
    return ModelStats(
        name="guard", version="e1", data_type="iris", model_type=ModelType.ONNX, since=1_000, usage=usage,
        total_duration_ns=100 * usage, min_duration_ns=100 if usage else 0, max_duration_ns=100 if usage else 0,
        instance=instance, emitted_at=emitted_at,
        members=[MemberStats(name=n, version=v, wins=w, ok=o, late=la, errors=e) for n, v, w, o, la, e in members],
    )  # fmt: skip


def rows(members) -> list[Row]:
    return [(m.name, m.version, m.wins, m.ok, m.late, m.errors) for m in members]


def two_instances_and_a_restart() -> tuple[Monitor, list[Row], list[Row]]:
    """The monitor, the members before bucket:1 restarts, and after it."""
    monitor = Monitor()
    monitor.add_stats(ensemble_snap("bucket:0", 4, 2_000, [("smart", "2", 1, 4, 0, 0), ("fast", "1", 3, 4, 0, 0)]))
    monitor.add_stats(ensemble_snap("bucket:1", 3, 2_500, [("smart", "2", 3, 3, 0, 0), ("fast", "1", 0, 3, 0, 0)]))
    # bucket:0's later snapshot replaces its first; an older replay of its first changes nothing.
    monitor.add_stats(ensemble_snap("bucket:0", 6, 3_000, [("smart", "2", 1, 4, 2, 0), ("fast", "1", 5, 6, 0, 0)]))
    monitor.add_stats(ensemble_snap("bucket:0", 4, 2_000, [("smart", "2", 1, 4, 0, 0), ("fast", "1", 3, 4, 0, 0)]))
    # bucket:0 (6 records) + bucket:1 (3 records), member by member.
    before = [("smart", "2", 4, 7, 2, 0), ("fast", "1", 5, 9, 0, 0)]
    return monitor, before, [("smart", "2", 4, 7, 3, 0), ("fast", "1", 6, 10, 0, 0)]


def restart(monitor: Monitor) -> None:
    """bucket:1 restarts without its state and scores 1 record: smart is late, fast decides."""
    monitor.add_stats(ensemble_snap("bucket:1", 1, 4_000, [("smart", "2", 0, 0, 1, 0), ("fast", "1", 1, 1, 0, 0)]))


def test_the_monitor_sums_each_instances_latest_snapshot_per_member():
    monitor, before, _ = two_instances_and_a_restart()
    state = monitor.state("iris").model
    assert state is not None and state.usage == 9
    assert rows(state.members) == before
    [model] = monitor.models()
    assert rows(model.members) == before


def test_a_restart_carries_the_instances_earlier_counts():
    monitor, _, after = two_instances_and_a_restart()
    restart(monitor)
    state = monitor.state("iris").model
    assert state.restarts == 1 and state.usage == 10
    assert rows(state.members) == after
    assert rows(monitor.models()[0].members) == after


def test_a_plain_model_has_no_members():
    monitor = Monitor()
    monitor.add_stats(
        ModelStats(name="lr", version="1", data_type="wine", since=1, usage=5, instance="k", emitted_at=2)
    )
    assert monitor.state("wine").model.members == [] and monitor.models()[0].members == []


def test_state_and_models_answer_the_members_over_http():
    monitor, before, _ = two_instances_and_a_restart()
    server = ServerThread(StubStatsService(monitor)).start()
    try:
        with urllib.request.urlopen(f"{server.url}/state/iris", timeout=10) as response:
            state = json.load(response)
        with urllib.request.urlopen(f"{server.url}/models", timeout=10) as response:
            models = json.load(response)
    finally:
        server.stop()
    keys = ("name", "version", "wins", "ok", "late", "errors")
    assert [tuple(m[k] for k in keys) for m in state["model"]["members"]] == before
    [model] = models["models"]
    assert [tuple(m[k] for k in keys) for m in model["members"]] == before


def scrape(monitor: Monitor) -> dict[tuple[str, str, str], float]:
    """The member counter's samples by (member, member_version, outcome)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(StubStatsService(monitor)))
    [family] = [
        f
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        if f.name == "modelserving_ensemble_member_decisions"
    ]
    assert family.type == "counter"
    samples = {}
    for sample in family.samples:
        if sample.name.endswith("_created"):
            continue
        assert sample.name == "modelserving_ensemble_member_decisions_total"
        labels = sample.labels
        assert (labels["data_type"], labels["name"], labels["version"]) == ("iris", "guard", "e1")
        samples[(labels["member"], labels["member_version"], labels["outcome"])] = sample.value
    return samples


def test_prometheus_exposes_the_members_as_counters_that_never_go_down_across_a_restart():
    monitor, _, _ = two_instances_and_a_restart()
    first = scrape(monitor)
    assert first == {
        ("smart", "2", "win"): 4, ("smart", "2", "ok"): 7, ("smart", "2", "late"): 2, ("smart", "2", "error"): 0,
        ("fast", "1", "win"): 5, ("fast", "1", "ok"): 9, ("fast", "1", "late"): 0, ("fast", "1", "error"): 0,
    }  # fmt: skip
    restart(monitor)
    second = scrape(monitor)
    increase = {key: second[key] - first[key] for key in first}
    assert increase == {
        ("smart", "2", "win"): 0, ("smart", "2", "ok"): 0, ("smart", "2", "late"): 1, ("smart", "2", "error"): 0,
        ("fast", "1", "win"): 1, ("fast", "1", "ok"): 1, ("fast", "1", "late"): 0, ("fast", "1", "error"): 0,
    }  # fmt: skip
