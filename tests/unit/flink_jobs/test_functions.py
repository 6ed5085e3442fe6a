"""Flink metrics of the serving functions, and the stats emission rule, with the fakes of serving.testing."""

from __future__ import annotations

import time

import pytest
from pyflink.datastream import TimeDomain

from flink_jobs.functions.base import report_stats
from flink_jobs.functions.buffer import RecordBuffer
from flink_jobs.functions.flushing import score_buffer
from flink_jobs.functions.keyed import ModelServingKeyed
from flink_jobs.functions.metrics import METRIC_GROUP, ServingMetrics
from flink_jobs.functions.partitioned import ModelServingPartitioned
from flink_jobs.functions.timers import FlushBounds
from flink_jobs.tags import DEAD_LETTERS, STATS
from serving.core.admission import ModelCache
from serving.core.entries import decode_entry
from serving.core.model import ModelType
from serving.core.stats import StatsTracker
from serving.formats import descriptor_from_path
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_stats_pb2 import ModelStats, ModelStatsList
from serving.records import builtin_registry, bundled_schemas
from serving.records.schema import SchemaRegistry
from serving.records.wine import encode_record
from serving.settings import ServingOptions
from serving.testing import (
    FakeContext,
    FakeListState,
    FakeMetricGroup,
    FakeRuntimeContext,
    FakeValueState,
    record_batch,
    results_in,
    routed_row,
    wine_shaped_schema,
)
from tests.support.reference import PMML_LINEAR


def linear_model(version: str = "A"):
    descriptor = descriptor_from_path(PMML_LINEAR, ModelType.PMML, version=version, name="linear")
    descriptor.created_at = 1
    admission = ModelCache().admit(descriptor.SerializeToString(), builtin_registry().get("wine"))
    assert admission.accepted
    return admission.model


EXPECTED = {
    f"{METRIC_GROUP}.records_scored",
    f"{METRIC_GROUP}.dead_letters",
    f"{METRIC_GROUP}.model_swaps",
    f"{METRIC_GROUP}.scoring_time_ns",
}


def test_both_serving_functions_register_their_metrics_in_open():
    for function in (ModelServingKeyed(ServingOptions()), ModelServingPartitioned(ServingOptions())):
        context = FakeRuntimeContext()
        function.open(context)
        assert set(context.metrics.registry) == EXPECTED


@pytest.mark.parametrize("function", [ModelServingKeyed, ModelServingPartitioned])
def test_records_are_validated_on_arrival_and_bad_ones_counted_as_dead_letters(wine_data, function):
    serving = function(ServingOptions())
    context = FakeRuntimeContext()
    serving.open(context)
    arrive = serving.process_element1 if function is ModelServingKeyed else serving.process_element
    ctx = FakeContext("wine")
    garbage = b"\xff not a record"
    outputs = list(arrive(record_batch(routed_row(garbage)), ctx))
    assert [tag for tag, _ in outputs] == [DEAD_LETTERS]
    assert DeadLetter.FromString(outputs[0][1]).payload == garbage
    assert context.metrics.registry[f"{METRIC_GROUP}.dead_letters"].count == 1
    good = encode_record("1", wine_data.features[0], ts=5)
    assert list(arrive(record_batch(routed_row(good, "wine", 5)), ctx)) == []
    [entry] = [decode_entry(e) for e in serving.buffer.entries_state.get()]
    assert (entry.payload, entry.ts, entry.checked) == (good, 5, True)
    assert ctx.timers.event  # asked to be flushed


def test_score_buffer_counts_records_dead_letters_and_scoring_time(wine_data):
    group = FakeMetricGroup()
    metrics = ServingMetrics(group)
    model = linear_model()
    records = [encode_record(str(i), row, ts=10 + i) for i, row in enumerate(wine_data.features[:25])]
    records.append(encode_record("orphan", wine_data.features[0], ts=12, data_type="beer"))
    buffer = FakeListState(records)
    tracker = StatsTracker("key:wine", 1000, 10.0, None)
    options = ServingOptions(early_records="drop")
    out = list(
        score_buffer(
            RecordBuffer(buffer, FakeValueState()),
            FlushBounds(100, 100, False),
            {"wine": [(1, model)]},
            tracker,
            options,
            SchemaRegistry([*bundled_schemas(), wine_shaped_schema("beer")]),
            metrics,
        )
    )
    results = [o for o in out if not isinstance(o, tuple)]
    assert len(results) == 25
    assert metrics.records_scored.count == 25
    assert metrics.dead_letters.count == 1
    assert len(metrics.scoring_time_ns.values) == 1 and metrics.scoring_time_ns.values[0] > 0
    assert tracker.starts == 1
    assert buffer.items == []


def test_the_last_emission_time_survives_the_state_round_trip():
    model = linear_model()
    tracker = StatsTracker("key:wine", 0, 10.0, None)
    tracker.started(model, 1)
    tracker.emit_all()
    saved = tracker.saved()
    emitted = max(e.emitted_at for e in ModelStatsList.FromString(saved).stats)
    assert emitted > 0
    again = StatsTracker("key:wine", 0, 10.0, saved)
    assert again.emit_due() == []  # less than 10 s ago
    stale = ModelStatsList.FromString(saved)
    for entry in stale.stats:
        entry.emitted_at -= 11_000
    due = StatsTracker("key:wine", 0, 10.0, stale.SerializeToString()).emit_due()
    assert [m.version for m in due] == ["A"]


def test_unreported_stats_set_a_timer_and_leave_on_the_processing_time_timer():
    model = linear_model()
    options = ServingOptions(idle_flush_ms=500, stats_every_seconds=10.0)
    tracker = StatsTracker("key:wine", 1000, 10.0, None)
    tracker.started(model, 1)
    tracker.scored(model, 5, 5_000)
    assert tracker.unreported
    ctx = FakeContext(domain=TimeDomain.EVENT_TIME)
    assert list(report_stats(ctx, tracker, options, False, False)) == []
    assert len(ctx.timers.processing) == 1
    assert ctx.timers.processing[0] >= int(time.time() * 1000) + 9_000

    # When that timer fires, more than 10 s later, the stats are due.
    state = ModelStatsList.FromString(tracker.saved())
    for entry in state.stats:
        entry.emitted_at -= 11_000
    later = StatsTracker("key:wine", 1000, 10.0, state.SerializeToString())
    fired = FakeContext(domain=TimeDomain.PROCESSING_TIME)
    out = list(report_stats(fired, later, options, False, True))
    assert [tag for tag, _ in out] == [STATS]
    assert ModelStats.FromString(out[0][1]).usage == 5
    assert fired.timers.processing == []


def test_no_stats_timer_without_processing_time_timers():
    model = linear_model()
    tracker = StatsTracker("key:wine", 1000, 10.0, None)
    tracker.started(model, 1)
    tracker.scored(model, 5, 5_000)
    ctx = FakeContext(domain=TimeDomain.EVENT_TIME)
    list(report_stats(ctx, tracker, ServingOptions(idle_flush_ms=0), False, False))
    assert ctx.timers.processing == []  # bounded jobs stay deterministic: stats leave at the end of input


def test_the_passthrough_validates_like_the_serving_jobs_and_counts_dead_letters(wine_data):
    from flink_jobs.functions.passthrough import Passthrough
    from serving.pb.serving_result_pb2 import ServingResult
    from serving.settings import PASSTHROUGH_MODEL

    passthrough = Passthrough(ServingOptions())
    context = FakeRuntimeContext()
    passthrough.open(context)
    garbage = b"\xff not a record"
    outputs = list(passthrough.process_element(("", record_batch(routed_row(garbage))), None))
    assert [tag for tag, _ in outputs] == [DEAD_LETTERS]
    assert DeadLetter.FromString(outputs[0][1]).payload == garbage
    assert context.metrics.registry[f"{METRIC_GROUP}.dead_letters"].count == 1
    good = encode_record("7", wine_data.features[0], ts=5)
    [result] = results_in(passthrough.process_element(("wine", record_batch(routed_row(good, "wine", 5))), None))
    assert ServingResult.FromString(result).record_id == "7"
    assert ServingResult.FromString(result).model_name == PASSTHROUGH_MODEL
