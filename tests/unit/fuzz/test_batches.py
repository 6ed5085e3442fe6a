"""Fuzzed input through the serving functions: the job dead-letters it, it never fails.

Records: a valid ``RecordBatch`` (the JVM writes it) holding fuzzed
payloads goes through ``ModelServingKeyed.process_element1`` and
``ModelServingPartitioned.process_element``: every record ends as exactly
one result, dead letter or buffered entry, and nothing raises. Models and
schemas: fuzzed messages through ``process_element2`` and
``process_broadcast_element`` end as model events and dead letters. A
garbage batch itself is not user input: it may raise protobuf's
``DecodeError``, nothing else, and leaves nothing behind.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from google.protobuf.message import DecodeError
from hypothesis import event, given
from hypothesis import strategies as st

from flink_jobs.functions.batches import records_of
from flink_jobs.functions.keyed import ModelServingKeyed
from flink_jobs.functions.partitioned import ModelServingPartitioned
from flink_jobs.tags import DEAD_LETTERS, MODEL_EVENTS, STATS
from serving.core.entries import group_entries, is_group
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_descriptor_pb2 import ModelDescriptor
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.record_batch_pb2 import RecordBatch, ResultBatch
from serving.pb.serving_result_pb2 import ServingResult
from serving.settings import ServingOptions
from serving.testing import SENSOR_DOC, T0, FakeContext, FakeRuntimeContext, model_message, record_batch, routed_row
from tests.unit.fuzz.mutations import fuzz_settings, mutated
from tests.unit.fuzz.seeds import BARE_DOC, DATA_TYPES, SEEDS, SENSOR, WINE

FUNCTIONS = [ModelServingKeyed, ModelServingPartitioned]
LINEAR = model_message("linear", "1", T0 - 10_000)
#: Every record seed, valid or mutated: what producers send, broken every way.
payloads = st.one_of(st.sampled_from([s[1] for s in SEEDS]), mutated(st.sampled_from([s[1] for s in SEEDS])))
#: Event times the JVM may read: around the records', the extremes, the JVM's "none".
times = st.one_of(st.integers(T0 - 5, T0 + 5), st.sampled_from([-(2**63), -1, 0, 2**63 - 1]))
rows = st.builds(
    routed_row,
    payload=payloads,
    data_type=st.sampled_from(DATA_TYPES),
    ts=times,
    topic=st.sampled_from(["", "readings"]),
    offset=st.integers(-1, 2**63 - 1),
    record_id=st.sampled_from(["", "r-1"]),
)


def opened(function, **options):
    serving = function(ServingOptions(startup_schemas=(json.dumps(SENSOR_DOC), json.dumps(BARE_DOC)), **options))
    serving.open(FakeRuntimeContext())
    return serving


def take_records(serving, batch: bytes, ctx) -> list:
    take = serving.process_element1 if isinstance(serving, ModelServingKeyed) else serving.process_element
    return list(take(batch, ctx))


def take_model(serving, row, ctx) -> list:
    take = serving.process_element2 if isinstance(serving, ModelServingKeyed) else serving.process_broadcast_element
    return list(take(row, ctx))


def model_row(payload: bytes, kind: str = "model", data_type: str = "wine") -> SimpleNamespace:
    return SimpleNamespace(data_type=data_type, created_at=T0, payload=payload, kind=kind)


def pending(serving) -> int:
    """Records in the buffer not yet scored (a group counts its members)."""
    entries = list(serving.buffer.entries_state.get() or [])[serving.buffer.scored_state.value() or 0 :]
    return sum(len(group_entries(e)) if is_group(e) else 1 for e in entries)


def outcomes(outputs: list) -> tuple[list[ServingResult], list[DeadLetter]]:
    """Results and dead letters among a call's outputs; every other output must be a known side output."""
    results, letters = [], []
    for output in outputs:
        if isinstance(output, tuple):
            tag, raw = output
            assert tag in (DEAD_LETTERS, MODEL_EVENTS, STATS), tag
            if tag == DEAD_LETTERS:
                letters.append(DeadLetter.FromString(raw))
        else:
            results.extend(ServingResult.FromString(r) for r in ResultBatch.FromString(output).results)
    return results, letters


@pytest.mark.parametrize("selection", ["event-time", "arrival"])
@pytest.mark.parametrize("function", FUNCTIONS, ids=["keyed", "partitioned"])
def test_each_fuzzed_record_in_a_batch_ends_as_one_result_dead_letter_or_buffered_entry(function, selection):
    """Fuzzed payloads in a valid batch, with a model serving wine: never an exception, nothing lost or doubled."""

    @fuzz_settings(60)
    @given(batch_rows=st.lists(rows, min_size=1, max_size=5), late=st.lists(st.booleans(), max_size=5), data=st.data())
    def fuzz(batch_rows, late, data):
        serving = opened(
            function, selection=selection, late_records=data.draw(st.sampled_from(["score", "dead-letter"]))
        )
        ctx = FakeContext("wine", watermark=T0)
        take_model(serving, model_row(LINEAR), ctx)
        before = pending(serving)
        try:
            outputs = take_records(serving, record_batch(*batch_rows, late=late[: len(batch_rows)]), ctx)
        except Exception as exc:
            pytest.fail(f"{function.__name__} raised {type(exc).__name__} on a fuzzed record: {exc}")
        results, letters = outcomes(outputs)
        assert all(letter.reason and letter.source in ("data", "scoring") for letter in letters)
        assert len(results) + len(letters) + pending(serving) - before == len(batch_rows)
        event(f"results: {bool(results)}, dead letters: {bool(letters)}, buffered: {pending(serving) > before}")

    fuzz()


@fuzz_settings(100)
@given(
    function=st.sampled_from(FUNCTIONS),
    payload=mutated(st.sampled_from([LINEAR]), ModelDescriptor.DESCRIPTOR) | st.binary(max_size=64),
    data_type=st.sampled_from(["wine", "sensor", "nosuch", ""]),
)
def test_a_fuzzed_model_message_ends_as_a_model_event_and_never_fails_the_function(function, payload, data_type):
    """Model messages mutated every way: an event (accepted, rejected with a dead letter, or awaiting a schema)."""
    serving = opened(function)
    try:
        outputs = take_model(serving, model_row(payload, data_type=data_type), FakeContext(data_type))
    except Exception as exc:
        pytest.fail(f"{function.__name__} raised {type(exc).__name__} on a fuzzed model message: {exc}")
    events = [ModelEvent.FromString(raw) for tag, raw in outputs if tag == MODEL_EVENTS]
    _, letters = outcomes(outputs)
    assert len(events) == 1
    assert (events[0].kind == ModelEvent.REJECTED) == (len(letters) == 1)


@fuzz_settings(100)
@given(
    function=st.sampled_from(FUNCTIONS),
    payload=mutated(st.sampled_from([WINE.to_message(), SENSOR.to_message()])) | st.binary(max_size=64),
    data_type=st.sampled_from(["wine", "sensor", "nosuch", ""]),
)
def test_a_fuzzed_schema_message_ends_as_a_schema_event_and_never_fails_the_function(function, payload, data_type):
    """Schema messages mutated every way: accepted, a duplicate, or rejected with a dead letter."""
    serving = opened(function)
    try:
        outputs = take_model(serving, model_row(payload, "schema", data_type), FakeContext(data_type))
    except Exception as exc:
        pytest.fail(f"{function.__name__} raised {type(exc).__name__} on a fuzzed schema message: {exc}")
    events = [ModelEvent.FromString(raw) for tag, raw in outputs if tag == MODEL_EVENTS]
    _, letters = outcomes(outputs)
    assert [e.subject for e in events] == ["schema"]
    assert (events[0].kind == ModelEvent.REJECTED) == (len(letters) == 1)


#: What the pure-Python protobuf raises on a string field that is not UTF-8, where upb raises DecodeError.
BATCH_ERRORS = (DecodeError, UnicodeDecodeError)


@fuzz_settings(150)
@given(
    function=st.sampled_from(FUNCTIONS),
    batch=mutated(st.sampled_from([record_batch(*[routed_row(s[1], s[2]) for s in SEEDS])]), RecordBatch.DESCRIPTOR),
)
def test_a_garbage_batch_raises_at_most_a_protobuf_decode_error_and_leaves_nothing_behind(function, batch):
    """The JVM writes batches, so garbage there is a bug, not input: protobuf's own error, before any record."""
    serving = opened(function)
    try:
        records = list(records_of(batch))
    except BATCH_ERRORS:
        with pytest.raises(BATCH_ERRORS):
            take_records(serving, batch, FakeContext("wine", watermark=T0))
        assert pending(serving) == 0
        return
    outputs = take_records(serving, batch, FakeContext("wine", watermark=T0))
    results, letters = outcomes(outputs)
    assert len(results) + len(letters) + pending(serving) == len(records)
