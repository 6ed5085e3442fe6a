"""The stats and model-events topics as the monitor reads them, broken every way: ``MalformedMessage`` only.

Not control messages (there is no model-control topic yet), but input all
the same: ``serving.observability.messages.parse_stats`` / ``parse_event``
decode what any producer may have written to the topics, and the
``Monitor`` ingests them and must never raise.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from serving.observability.messages import parse_event, parse_stats
from serving.observability.monitor import Monitor
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.model_stats_pb2 import MemberStats, ModelStats
from tests.unit.fuzz.mutations import exhaustive, expect_typed, fuzz_settings, mutated

STATS = ModelStats(
    name="linear",
    version="1",
    data_type="wine",
    since=1_000,
    usage=3,
    total_duration_ns=60,
    min_duration_ns=10,
    max_duration_ns=30,
    instance="key:wine",
    emitted_at=2_000,
    members=[MemberStats(name="m", version="1", wins=1, ok=2)],
).SerializeToString()
EVENT = ModelEvent(
    kind=ModelEvent.REJECTED, name="linear", version="1", data_type="wine", ts=500, reason="corrupt model: x"
).SerializeToString()


def test_every_truncation_and_single_bit_flip_of_stats_and_events_is_a_message_or_malformed():
    """All prefixes and one-bit flips of a stats snapshot and of a model event, through both parsers."""
    for payload in exhaustive(STATS) + exhaustive(EVENT):
        expect_typed(parse_stats, payload)
        expect_typed(parse_event, payload)


@fuzz_settings(200)
@given(
    stats=mutated(st.just(STATS), ModelStats.DESCRIPTOR),
    event=mutated(st.just(EVENT), ModelEvent.DESCRIPTOR),
)
def test_mutated_stats_and_events_are_messages_or_malformed_and_the_monitor_never_raises(stats, event):
    """Mutated messages on either topic: a validated message or ``MalformedMessage``; the monitor counts them."""
    for payload in (stats, event):
        expect_typed(parse_stats, payload)
        expect_typed(parse_event, payload)
    monitor = Monitor()
    for payload in (stats, event):
        monitor.ingest_stats(payload)
        monitor.ingest_event(payload)
    counters = monitor.counters
    assert counters.stats_messages + counters.malformed_stats == 2
    assert counters.event_messages + counters.malformed_events == 2
