"""serving.observability.{monitor,messages}: merging stats snapshots, model status, history, series, malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.core.model import ModelType
from serving.core.stats import ModelServingStats
from serving.observability.messages import MalformedMessage, event_key, parse_event, parse_stats, stats_key
from serving.observability.monitor import (
    ACCEPTED,
    REJECTED,
    RETIRED,
    SERVING,
    Monitor,
    UnknownDataType,
    status_counts,
)
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.model_stats_pb2 import ModelStats


def snap(
    version: str = "A",
    usage: int = 0,
    *,
    name: str = "linear",
    instance: str = "key:wine",
    since: int = 1_000,
    emitted_at: int = 2_000,
    total: int | None = None,
    low: int = 10,
    high: int = 30,
    data_type: str = "wine",
) -> ModelStats:
    return ModelStats(
        name=name,
        version=version,
        data_type=data_type,
        model_type=ModelType.PMML,
        since=since,
        usage=usage,
        total_duration_ns=20 * usage if total is None else total,
        min_duration_ns=low if usage else 0,
        max_duration_ns=high if usage else 0,
        instance=instance,
        emitted_at=emitted_at,
    )


def event(kind, version: str = "A", *, name: str = "linear", ts: int = 500, reason: str = "", data_type: str = "wine"):
    return ModelEvent(kind=kind, name=name, version=version, data_type=data_type, ts=ts, reason=reason)


def test_record_keys_name_the_model_version_and_instance():
    assert stats_key(snap("A", instance="bucket:3")) == b"wine/linear/A/bucket:3"
    assert event_key(event(ModelEvent.ACCEPTED)) == b"wine"


def test_latest_snapshot_per_instance_wins_and_instances_merge():
    monitor = Monitor()
    monitor.add_stats(snap("A", 100, instance="bucket:0", emitted_at=2_000))
    monitor.add_stats(snap("A", 300, instance="bucket:0", emitted_at=3_000))
    monitor.add_stats(snap("A", 200, instance="bucket:0", emitted_at=2_500))  # older, arrives late
    monitor.add_stats(snap("A", 50, instance="bucket:1", emitted_at=2_000, low=5, high=90))
    monitor.add_stats(snap("A", 50, instance="bucket:1", emitted_at=2_000, low=5, high=90))  # replayed
    state = monitor.state("wine").model
    assert state is not None
    assert state.usage == 350
    assert state.total_duration_ns == 20 * 350
    assert (state.min_duration_ns, state.max_duration_ns) == (5, 90)
    assert state.instances == 2
    assert state.updated_at == 3_000
    assert monitor.counters.stale_stats == 1


@given(st.lists(st.tuples(st.sampled_from(["k0", "k1", "k2"]), st.integers(0, 10_000)), min_size=1, max_size=40))
def test_merged_usage_counts_every_run_of_every_instance(snapshots):
    # Snapshots in emission order: a count lower than its instance's previous one is a restart without state.
    monitor = Monitor()
    for i, (instance, usage) in enumerate(snapshots):
        monitor.add_stats(snap("A", usage, instance=instance, emitted_at=2_000 + i))
    finished: dict[str, int] = {}
    last: dict[str, int] = {}
    for instance, usage in snapshots:
        if usage < last.get(instance, 0):
            finished[instance] = finished.get(instance, 0) + last[instance]
        last[instance] = usage
    assert monitor.state("wine").model.usage == sum(finished.values()) + sum(last.values())


def test_merge_matches_model_serving_stats_merge():
    a, b = snap("A", 10, instance="i1", low=3, high=7, total=50), snap("A", 4, instance="i2", low=1, high=20, total=40)
    monitor = Monitor()
    monitor.add_stats(a)
    monitor.add_stats(b)
    expected = ModelServingStats.from_proto(a).merge(ModelServingStats.from_proto(b))
    state = monitor.state("wine").model
    assert (state.usage, state.total_duration_ns, state.min_duration_ns, state.max_duration_ns) == (
        expected.usage,
        expected.total_duration_ns,
        expected.min_duration_ns,
        expected.max_duration_ns,
    )
    assert state.mean_duration_ns == pytest.approx(expected.mean_duration_ns)


def test_a_newer_model_that_started_retires_the_older_one():
    monitor = Monitor()
    monitor.add_event(event(ModelEvent.ACCEPTED, "A", ts=900))
    monitor.add_stats(snap("A", 0, since=1_000, emitted_at=1_100))
    monitor.add_stats(snap("A", 600, since=1_000, emitted_at=4_000))
    monitor.add_event(event(ModelEvent.ACCEPTED, "B", name="tf", ts=5_100))
    monitor.add_stats(snap("B", 0, name="tf", since=5_000, emitted_at=5_200))
    monitor.add_stats(snap("B", 999, name="tf", since=5_000, emitted_at=9_000))
    state = monitor.state("wine")
    assert state.model.name == "tf" and state.model.version == "B"
    assert state.model.since == 5_000 and state.model.usage == 999
    assert state.models_known == 2
    history = monitor.history("wine")
    assert [(h.version, h.status, h.deployed_at, h.retired_at, h.usage) for h in history] == [
        ("A", RETIRED, 1_000, 5_000, 600),
        ("B", SERVING, 5_000, None, 999),
    ]
    assert history[0].accepted_at == 900
    views = {m.version: m for m in monitor.models()}
    assert (views["A"].status, views["B"].status) == (RETIRED, SERVING)


def test_stats_arriving_out_of_order_give_the_same_answers():
    messages = [
        snap("A", 0, since=1_000, emitted_at=1_100),
        snap("A", 600, since=1_000, emitted_at=4_000),
        snap("B", 0, name="tf", since=5_000, emitted_at=5_200),
        snap("B", 999, name="tf", since=5_000, emitted_at=9_000),
    ]
    forward, backward = Monitor(), Monitor()
    for m in messages:
        forward.add_stats(m)
    for m in reversed(messages):
        backward.add_stats(m)
    assert forward.history("wine") == backward.history("wine")
    assert forward.state("wine").model.usage == backward.state("wine").model.usage == 999


def test_accepted_rejected_and_duplicate_events():
    monitor = Monitor()
    monitor.add_stats(snap("A", 10, since=1_000))
    monitor.add_event(event(ModelEvent.REJECTED, "bad", name="corrupt", ts=3_000, reason="corrupt model: cut"))
    monitor.add_event(event(ModelEvent.ACCEPTED, "C", name="forest", ts=4_000))
    monitor.add_event(event(ModelEvent.DUPLICATE, "A", ts=4_500))
    monitor.add_event(ModelEvent(kind=ModelEvent.REJECTED, reason="undecodable", ts=4_600))
    views = {m.version: m for m in monitor.models()}
    assert views["bad"].status == REJECTED and views["bad"].reason == "corrupt model: cut"
    assert views["bad"].rejected_at == 3_000
    assert views["C"].status == ACCEPTED and views["C"].since is None
    assert views["A"].status == SERVING
    assert monitor.counters.duplicates == 1 and monitor.counters.rejected_unidentified == 1
    assert [h.version for h in monitor.history("wine")] == ["A", "bad", "C"]
    assert status_counts(monitor.models()) == {SERVING: 1, RETIRED: 0, ACCEPTED: 1, REJECTED: 1}


def test_an_accepted_model_superseded_before_it_served_counts_as_retired():
    monitor = Monitor()
    monitor.add_event(event(ModelEvent.ACCEPTED, "A", ts=900))  # accepted before B was even published
    monitor.add_stats(snap("B", 5, name="tf", since=1_000))
    assert {m.version: m.status for m in monitor.models()} == {"A": RETIRED, "B": SERVING}


def test_history_at_a_time_names_the_model_serving_then():
    monitor = Monitor()
    monitor.add_stats(snap("A", 600, since=1_000, emitted_at=4_000))
    monitor.add_stats(snap("B", 999, name="tf", since=5_000, emitted_at=9_000))
    assert [h.version for h in monitor.history("wine", at=4_999)] == ["A"]
    assert [h.version for h in monitor.history("wine", at=5_000)] == ["B"]
    assert monitor.history("wine", at=999) == []


def test_unknown_data_type_is_a_typed_error():
    monitor = Monitor()
    monitor.add_stats(snap("A", 1))
    for query in (monitor.state, monitor.history, monitor.series):
        with pytest.raises(UnknownDataType, match="nope"):
            query("nope")


def test_a_data_type_known_only_from_events_has_no_serving_model():
    monitor = Monitor()
    monitor.add_event(event(ModelEvent.ACCEPTED, "A", data_type="wine-white"))
    state = monitor.state("wine-white")
    assert state.model is None and state.models_known == 1


def test_series_gives_throughput_and_latency_over_ten_seconds_back_in_one_second_buckets():
    monitor = Monitor()
    monitor.add_stats(snap("A", 0, since=1_000, emitted_at=1_000))
    monitor.add_stats(snap("A", 1_000, since=1_000, emitted_at=2_000, total=40_000))
    monitor.add_stats(snap("A", 1_500, since=1_000, emitted_at=2_400, total=50_000))  # same 1 s bucket
    monitor.add_stats(snap("A", 3_500, since=1_000, emitted_at=4_000, total=150_000))
    points = monitor.series("wine")
    assert [p.t for p in points] == [1_000, 2_000, 4_000]
    assert [p.usage for p in points] == [0, 1_500, 3_500]
    assert points[0].records_per_second is None
    # No bucket is 10 s older than these: the window goes back to the first one (t = 1 s, 0 records).
    assert points[1].records_per_second == pytest.approx(1_500)
    assert points[1].mean_duration_ns == pytest.approx(50_000 / 1_500)
    assert points[2].records_per_second == pytest.approx(3_500 / 3)
    assert points[2].mean_duration_ns == pytest.approx(150_000 / 3_500)


def test_series_of_two_instances_is_the_same_in_any_interleaving_and_never_negative():
    k0 = [snap("A", 0, instance="k0", emitted_at=1_000), snap("A", 100, instance="k0", emitted_at=3_000, total=10_000)]
    k1 = [snap("A", 0, instance="k1", emitted_at=2_000), snap("A", 100, instance="k1", emitted_at=4_000, total=30_000)]
    answers = []
    # Each instance's own snapshots stay in order (one Kafka key each); the instances interleave any way.
    for order in (k0 + k1, k1 + k0, [k1[0], k0[0], k1[1], k0[1]]):
        monitor = Monitor()
        for message in order:
            monitor.add_stats(message)
        answers.append(monitor.series("wine"))
    assert answers[0] == answers[1] == answers[2]
    points = answers[0]
    assert [(p.t, p.usage) for p in points] == [(1_000, 0), (2_000, 0), (3_000, 100), (4_000, 200)]
    assert [p.records_per_second for p in points] == pytest.approx([None, 0, 50, 200 / 3])
    assert [p.mean_duration_ns for p in points] == pytest.approx([None, None, 100, 200])


def test_series_read_back_from_the_compacted_topic_has_no_spikes():
    # Compaction keeps one snapshot per instance and model: counts scored over times nobody measured.
    monitor = Monitor()
    monitor.add_stats(snap("A", 600, since=1_000, emitted_at=4_000))
    monitor.add_stats(snap("B", 999, name="tf", since=5_000, emitted_at=9_000))
    monitor.add_stats(snap("B", 1_049, name="tf", since=5_000, emitted_at=10_000, total=20 * 1_049))  # then live
    points = monitor.series("wine")
    assert [(p.t, p.usage) for p in points] == [(4_000, 600), (9_000, 1_599), (10_000, 1_649)]
    # Only the 50 records between B's two snapshots are measured, over 10,000 - 4,000 ms: 50 / 6 s.
    assert [p.records_per_second for p in points] == pytest.approx([None, 0, 50 / 6])
    assert points[2].mean_duration_ns == pytest.approx(20)


def test_series_is_bounded():
    monitor = Monitor(series_points=5)
    for i in range(20):
        monitor.add_stats(snap("A", i, emitted_at=1_000 * (i + 1)))
    assert len(monitor.series("wine")) == 5


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xff\xff\xff",
        b"x" * 70_000,
        ModelStats(version="1", data_type="wine").SerializeToString(),  # no name
        ModelStats(name="m", version="1", data_type="Bad Type").SerializeToString(),
        ModelStats(name="m", version="1", data_type="wine", usage=-1).SerializeToString(),
        ModelStats(
            name="m", version="1", data_type="wine", usage=2, min_duration_ns=9, max_duration_ns=1
        ).SerializeToString(),
        ModelStats(name="m", version="1", data_type="wine", model_type=77).SerializeToString(),
    ],
)
def test_malformed_stats_are_refused_with_a_typed_error(payload):
    with pytest.raises(MalformedMessage):
        parse_stats(payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x08\x09",  # kind 9
        ModelEvent(kind=ModelEvent.ACCEPTED, version="1", data_type="wine").SerializeToString(),
        ModelEvent(kind=ModelEvent.ACCEPTED, name="m", version="1", data_type="wine", ts=-5).SerializeToString(),
    ],
)
def test_malformed_events_are_refused_with_a_typed_error(payload):
    with pytest.raises(MalformedMessage):
        parse_event(payload)


def test_ingest_skips_and_counts_malformed_messages_and_tombstones():
    monitor = Monitor()
    assert monitor.ingest_stats(snap("A", 5).SerializeToString())
    assert not monitor.ingest_stats(b"\xff garbage")
    assert not monitor.ingest_stats(None)
    assert not monitor.ingest_event(b"\x08\x09")
    assert monitor.ingest_event(event(ModelEvent.ACCEPTED).SerializeToString())
    counters = monitor.counters
    assert (counters.stats_messages, counters.malformed_stats, counters.tombstones) == (1, 1, 1)
    assert (counters.event_messages, counters.malformed_events) == (1, 1)
    assert monitor.state("wine").model.usage == 5


valid_stats = st.builds(
    snap,
    st.sampled_from("AB"),
    st.integers(0, 1_000),
    instance=st.sampled_from(["k0", "k1"]),
    emitted_at=st.integers(1_000, 9_000),
).map(ModelStats.SerializeToString)
valid_events = st.builds(
    event,
    st.sampled_from([ModelEvent.ACCEPTED, ModelEvent.REJECTED, ModelEvent.DUPLICATE]),
    st.sampled_from("ABC"),
    ts=st.integers(0, 9_000),
).map(ModelEvent.SerializeToString)


@given(st.lists(st.one_of(st.none(), st.binary(max_size=200), valid_stats, valid_events), max_size=30))
def test_no_bytes_ever_break_the_monitor(payloads):
    # Every payload goes to both topics. A twin monitor gets only what parses: garbage must leave no trace.
    monitor, clean = Monitor(), Monitor()
    for payload in payloads:
        for ingest, parse, add in (
            (monitor.ingest_stats, parse_stats, clean.add_stats),
            (monitor.ingest_event, parse_event, clean.add_event),
        ):
            try:
                message = None if payload is None else parse(payload)
            except MalformedMessage:
                message = None
            assert ingest(payload) is (message is not None)
            if message is not None:
                add(message)
    counters = monitor.counters
    # Each payload is counted exactly once per topic: read, malformed, or a tombstone.
    assert counters.tombstones == 2 * payloads.count(None)
    assert counters.stats_messages + counters.malformed_stats == len(payloads) - payloads.count(None)
    assert counters.event_messages + counters.malformed_events == len(payloads) - payloads.count(None)
    read = {"stats_messages", "event_messages", "stale_stats", "rejected_unidentified", "duplicates"}
    assert counters.model_dump(include=read) == clean.counters.model_dump(include=read)
    assert monitor.models() == clean.models()
    assert monitor.data_types() == clean.data_types()
    for data_type in monitor.data_types():
        state, history = monitor.state(data_type), monitor.history(data_type)
        assert state == clean.state(data_type)
        assert history == clean.history(data_type)
        assert monitor.series(data_type) == clean.series(data_type)
        assert state.models_known == len(history)
