"""Batches across the boundary in the serving functions: late records by setting, the arrival rule, one ResultBatch."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from flink_jobs.functions.keyed import ModelServingKeyed
from flink_jobs.functions.partitioned import ModelServingPartitioned
from flink_jobs.tags import DEAD_LETTERS
from serving.core.entries import decode_entry, group_entries, is_group
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.serving_result_pb2 import ServingResult
from serving.records.wine import encode_record
from serving.settings import ServingOptions
from serving.testing import (
    T0,
    FakeContext,
    FakeRuntimeContext,
    model_message,
    record_batch,
    results_in,
    routed_row,
)

FUNCTIONS = [ModelServingKeyed, ModelServingPartitioned]


def opened(function, **options):
    serving = function(ServingOptions(**options))
    serving.open(FakeRuntimeContext())
    return serving


def arrive(serving, batch: bytes, ctx) -> list:
    take = serving.process_element1 if isinstance(serving, ModelServingKeyed) else serving.process_element
    return list(take(batch, ctx))


def publish(serving, version: str, created_at: int, ctx) -> list:
    row = SimpleNamespace(
        data_type="wine", created_at=created_at, payload=model_message("linear", version, created_at), kind="model"
    )
    take = serving.process_element2 if isinstance(serving, ModelServingKeyed) else serving.process_broadcast_element
    return list(take(row, ctx))


def wine_batch(wine_data, ids_and_times, late=()) -> bytes:
    rows = [
        routed_row(encode_record(rid, wine_data.features[i], ts=ts), "wine", ts, record_id=rid)
        for i, (rid, ts) in enumerate(ids_and_times)
    ]
    return record_batch(*rows, late=late)


def buffered(serving) -> list:
    elements = serving.buffer.entries_state.get() or []
    return [decode_entry(e) for raw in elements for e in (group_entries(raw) if is_group(raw) else [raw])]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_late_record_goes_to_the_dead_letters_as_late_with_its_bytes_when_so_set(wine_data, function):
    serving = opened(function, late_records="dead-letter")
    ctx = FakeContext("wine", watermark=T0 + 1_000)
    late_bytes = encode_record("late-1", wine_data.features[0], ts=T0)
    batch = record_batch(
        routed_row(late_bytes, "wine", T0, record_id="late-1"),
        routed_row(encode_record("on-time", wine_data.features[1], ts=T0 + 2_000), "wine", T0 + 2_000),
        late=[True, False],
    )
    outputs = arrive(serving, batch, ctx)
    [letter] = [DeadLetter.FromString(raw) for tag, raw in outputs if tag == DEAD_LETTERS]
    assert (letter.reason, letter.record_id, letter.payload) == ("late", "late-1", late_bytes)
    assert [e.ts for e in buffered(serving)] == [T0 + 2_000]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_late_record_is_kept_for_scoring_by_default(wine_data, function):
    serving = opened(function)
    ctx = FakeContext("wine", watermark=T0 + 1_000)
    outputs = arrive(serving, wine_batch(wine_data, [("late-1", T0), ("on-time", T0 + 2_000)], late=[True]), ctx)
    assert [tag for tag, _ in outputs if tag == DEAD_LETTERS] == []
    assert sorted(e.ts for e in buffered(serving)) == [T0, T0 + 2_000]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_event_time_selection_holds_a_batch_for_the_watermark(wine_data, function):
    serving = opened(function)
    ctx = FakeContext("wine", watermark=T0)
    publish(serving, "1", T0 - 10_000, ctx)
    outputs = arrive(serving, wine_batch(wine_data, [("a", T0 + 1), ("b", T0 + 2)]), ctx)
    assert results_in(outputs) == []
    assert len(buffered(serving)) == 2


@pytest.mark.parametrize("function", FUNCTIONS)
def test_arrival_selection_scores_a_batch_at_once_with_the_model_serving_then(wine_data, function):
    serving = opened(function, selection="arrival")
    ctx = FakeContext("wine", watermark=T0)
    publish(serving, "1", T0 + 50_000, ctx)  # created after the records' ts: event time would not pick it
    outputs = arrive(serving, wine_batch(wine_data, [("a", T0 + 1), ("b", T0 + 2), ("c", T0 + 3)]), ctx)
    assert sum(not isinstance(o, tuple) for o in outputs) == 1  # one ResultBatch element for the call
    results = [ServingResult.FromString(r) for r in results_in(outputs)]
    assert [(r.record_id, r.model_version) for r in results] == [("a", "1"), ("b", "1"), ("c", "1")]
    assert buffered(serving) == []

    publish(serving, "2", T0 + 60_000, ctx)
    publish(serving, "0", T0 + 40_000, ctx)  # older than the serving one: never serves
    outputs = arrive(serving, wine_batch(wine_data, [("d", T0 + 4)]), ctx)
    assert [ServingResult.FromString(r).model_version for r in results_in(outputs)] == ["2"]


def test_arrival_selection_holds_records_until_the_first_model_and_scores_them_when_it_comes(wine_data):
    serving = opened(ModelServingKeyed, selection="arrival")
    ctx = FakeContext("wine", watermark=T0)
    assert results_in(arrive(serving, wine_batch(wine_data, [("a", T0 + 1), ("b", T0 + 2)]), ctx)) == []
    assert len(buffered(serving)) == 2
    outputs = publish(serving, "1", T0 + 50_000, ctx)
    results = [ServingResult.FromString(r) for r in results_in(outputs)]
    assert [(r.record_id, r.model_version) for r in results] == [("a", "1"), ("b", "1")]
    assert buffered(serving) == []


def test_event_time_keeps_a_batch_as_one_buffer_element(wine_data):
    serving = opened(ModelServingKeyed)
    ctx = FakeContext("wine", watermark=T0)
    arrive(serving, wine_batch(wine_data, [(f"r{i}", T0 + 1 + i) for i in range(50)]), ctx)
    [element] = serving.buffer.entries_state.get()
    assert is_group(element) and len(group_entries(element)) == 50
