"""Data records in every wire format, broken every way: only typed errors leave the decoders, dead letters the job.

Decoders: ``serving.records.wine.decode_record`` (the legacy WineRecord),
``serving.records.wire.decode`` (protobuf Record or WineRecord,
Confluent-framed Avro, JSON, by the first byte) and
``serving.core.scoring.decode_data``, which returns a dead letter instead of
raising.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.core.scoring import decode_data
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.record_pb2 import Record
from serving.pb.wine_record_pb2 import WineRecord
from serving.records.wine import decode_record
from serving.records.wire import decode
from serving.settings import ServingOptions
from tests.unit.fuzz.mutations import exhaustive, expect_typed, fuzz_settings, mutated
from tests.unit.fuzz.seeds import (
    DATA_TYPES,
    KAFKA,
    SEEDS,
    WINE_RECORDS,
    check_dead_letter,
    check_decoded,
    check_wine,
    registry,
)

REGISTRY = registry()
#: A small record cap, so that the size check is reached by fuzzed records too.
OPTIONS = ServingOptions(max_record_bytes=200, dead_letter_max_payload_bytes=64)


def seeds_of(*names: str) -> st.SearchStrategy[bytes]:
    return st.sampled_from([payload for name, payload, _, _ in SEEDS if name in names])


@pytest.mark.parametrize(("name", "seed", "data_type", "message"), SEEDS, ids=[s[0] for s in SEEDS])
def test_every_truncation_and_single_bit_flip_of_a_record_decodes_or_is_a_typed_error(name, seed, data_type, message):
    """All prefixes and all one-bit flips of a valid record, in each format: a valid record or a ``ServingError``."""
    for payload in exhaustive(seed):
        check_decoded(expect_typed(decode, payload, data_type, REGISTRY, KAFKA), data_type)
        letter = decode_data(payload, OPTIONS, data_type, REGISTRY, KAFKA)
        if isinstance(letter, DeadLetter):
            check_dead_letter(letter, payload, OPTIONS.dead_letter_max_payload_bytes)


def test_every_truncation_and_single_bit_flip_of_a_wine_record_is_a_valid_record_or_a_typed_error():
    """The WineRecord fast path on its own: the same exhaustive mutations of every reference record."""
    for seed in WINE_RECORDS:
        for payload in exhaustive(seed):
            result = expect_typed(decode_record, payload)
            if isinstance(result, WineRecord):
                check_wine(result)


def test_the_empty_record_is_a_typed_error_in_every_decoder():
    """Zero bytes (a tombstone): ``EmptyRecordError`` from both decoders, a dead letter from ``decode_data``."""
    assert expect_typed(decode_record, b"").reason == "empty record"
    for data_type in ("wine", "sensor", ""):
        assert expect_typed(decode, b"", data_type, REGISTRY).reason == "empty record"
        assert decode_data(b"", OPTIONS, data_type, REGISTRY).reason == "empty record"


@fuzz_settings(300)
@given(mutated(st.sampled_from(WINE_RECORDS), WineRecord.DESCRIPTOR))
def test_a_mutated_wine_record_is_a_valid_wine_record_or_a_typed_error(payload: bytes):
    """Mutated WineRecords (huge lengths, over-long varints, wrong wire types ...): valid, or a ``ServingError``."""
    result = expect_typed(decode_record, payload)
    if isinstance(result, WineRecord):
        check_wine(result)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("wine-protobuf", "white-protobuf"), WineRecord.DESCRIPTOR),
        (("sensor-protobuf", "bare-protobuf"), Record.DESCRIPTOR),
        (("wine-json", "sensor-json", "bare-json"), None),
        (("wine-avro", "sensor-avro", "bare-avro"), None),
    ],
    ids=["wine-record", "record", "json", "avro"],
)
def test_a_mutated_record_in_any_wire_format_decodes_or_is_a_typed_error(names, message):
    """Each wire format's seeds, mutated, decoded as every data type the routing may name."""

    @fuzz_settings(150)
    @given(payload=mutated(seeds_of(*names), message), data_type=st.sampled_from(DATA_TYPES))
    def fuzz(payload: bytes, data_type: str):
        check_decoded(expect_typed(decode, payload, data_type, REGISTRY, KAFKA), data_type)

    fuzz()


@fuzz_settings(300)
@given(
    payload=mutated(st.sampled_from([s[1] for s in SEEDS])),
    data_type=st.sampled_from(DATA_TYPES),
    kafka=st.booleans(),
)
def test_decode_data_returns_a_record_or_a_dead_letter_never_raises(payload: bytes, data_type: str, kafka: bool):
    """``decode_data`` has no error to raise: a record, a dead letter with the bytes, or None (no schema yet)."""
    where = KAFKA if kafka else type(KAFKA)()
    try:
        result = decode_data(payload, OPTIONS, data_type, REGISTRY, where)
    except Exception as exc:
        pytest.fail(f"decode_data raised {type(exc).__name__}: {exc}")
    if result is None:
        assert data_type and REGISTRY.get(data_type) is None  # kept for a schema still to come
    elif isinstance(result, DeadLetter):
        check_dead_letter(result, payload, OPTIONS.dead_letter_max_payload_bytes)
        assert result.source == "data"
    else:
        check_decoded(result, data_type)
        assert len(payload) <= OPTIONS.max_record_bytes


@fuzz_settings(100)
@given(payload=st.binary(min_size=1, max_size=512), data_type=st.sampled_from(DATA_TYPES))
def test_random_bytes_in_every_wire_format_are_a_typed_error_or_a_record(payload: bytes, data_type: str):
    """Random bytes behind each format's first byte (Avro's 0, JSON's brace, protobuf's anything)."""
    for framed in (payload, b"\x00" + payload, b"{" + payload, b' \t{"' + payload):
        check_decoded(expect_typed(decode, framed, data_type, REGISTRY, KAFKA), data_type)
