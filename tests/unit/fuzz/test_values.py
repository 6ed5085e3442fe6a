"""Values that break naive checks, in every wire format: NaN, the infinities, huge numbers, wrong types, deep nesting.

The rule under test (``serving.records.wire`` and ``serving.records.wine``):
a feature that is not a finite number is a typed error naming the field; a
finite one, however large, comes back bit for bit. ``math.isfinite`` is the
oracle.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.errors import RecordDecodeError
from serving.pb.wine_record_pb2 import WineRecord
from serving.records.wine import RECORD_FIELDS, decode_record
from serving.records.wire import AVRO, JSON, PROTOBUF, DataRecord, encode
from serving.records.wire import decode as wire_decode
from tests.unit.fuzz.mutations import doubles, expect_typed, fuzz_settings
from tests.unit.fuzz.seeds import KAFKA, SENSOR, SENSOR_ROW, WINE, WINE_ROWS, check_decoded, registry

REGISTRY = registry()


def bits(value: float) -> bytes:
    """A double's bytes: equal for equal doubles, -0.0 and NaN payloads included."""
    return struct.pack("<d", value)


@fuzz_settings(300)
@given(features=st.lists(doubles, min_size=len(RECORD_FIELDS), max_size=len(RECORD_FIELDS)))
def test_a_wine_record_decodes_iff_every_feature_is_finite_and_keeps_each_bit(features: list[float]):
    """NaN or an infinity anywhere: ``RecordDecodeError`` naming a field; else the very doubles (sums may overflow)."""
    record = WineRecord(id="w", data_type="wine", ts=1)
    for name, value in zip(RECORD_FIELDS, features):
        setattr(record, name, value)
    result = expect_typed(decode_record, record.SerializeToString())
    if all(math.isfinite(v) for v in features):
        assert isinstance(result, WineRecord)
        assert [bits(getattr(result, n)) for n in RECORD_FIELDS] == [bits(v) for v in features]
    else:
        assert isinstance(result, RecordDecodeError)
        assert "non-finite" in str(result)


@pytest.mark.parametrize("fmt", [PROTOBUF, JSON, AVRO])
def test_a_sensor_record_decodes_iff_its_numbers_are_finite_in_every_format(fmt: str):
    """``temp`` and the ``spectrum`` array: NaN/inf refused as ``bad field``, finite values kept exactly."""

    @fuzz_settings(120)
    @given(temp=doubles, spectrum=st.lists(doubles, min_size=3, max_size=3))
    def fuzz(temp: float, spectrum: list[float]):
        row = {**SENSOR_ROW, "temp": temp, "spectrum": spectrum}
        result = expect_typed(wire_decode, encode(row, SENSOR, fmt, record_id="s-1", ts=1), "sensor", REGISTRY, KAFKA)
        if all(math.isfinite(v) for v in (temp, *spectrum)):
            assert isinstance(result, DataRecord)
            assert bits(result.values["temp"]) == bits(temp)
            assert [bits(v) for v in result.values["spectrum"]] == [bits(v) for v in spectrum]
        else:
            assert isinstance(result, RecordDecodeError) and result.reason == "bad field"

    fuzz()


@fuzz_settings(120)
@given(
    values=st.lists(doubles, min_size=len(RECORD_FIELDS), max_size=len(RECORD_FIELDS)),
    fmt=st.sampled_from([JSON, AVRO]),
)
def test_a_wine_record_in_json_or_avro_decodes_iff_every_feature_is_finite(values: list[float], fmt: str):
    """The wine schema's JSON and Avro forms follow the same rule as its WineRecords."""
    row = {**WINE_ROWS[0], **dict(zip(RECORD_FIELDS, values))}
    result = expect_typed(wire_decode, encode(row, WINE, fmt), "wine", REGISTRY, KAFKA)
    assert isinstance(result, DataRecord) == all(math.isfinite(v) for v in values)


#: Any JSON value: NaN and the infinities, integers past 64 bits, nested lists and objects.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(2**63 - 2, 2**70) | doubles | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@fuzz_settings(200)
@given(changes=st.dictionaries(st.sampled_from(sorted(SENSOR_ROW)), json_values, min_size=1), drop=st.booleans())
def test_a_json_record_with_values_of_any_type_decodes_or_names_the_field(changes: dict[str, Any], drop: bool):
    """Each field given any JSON value (or left out): a checked record, or a typed error."""
    row = {**SENSOR_ROW, **changes}
    if drop:
        row.pop(sorted(changes)[0])
    payload = json.dumps(row).encode()
    check_decoded(expect_typed(wire_decode, payload, "sensor", REGISTRY, KAFKA), "sensor")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"temp": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"a":' * 60_000,
        b'{"temp": 1e999}',
        b'{"count": ' + b"9" * 5_000 + b"}",
        b"\xef\xbb\xbf{}",
        b"{" + b"\xff" * 10,
        b'{"key": "\\ud800"}',
    ],
    ids=["deep-array", "deep-object", "overflow", "5000-digits", "bom", "not-utf8", "lone-surrogate"],
)
def test_json_nested_too_deep_huge_or_not_utf8_is_a_typed_error(payload: bytes):
    """JSON that Python's parser rejects with ``RecursionError`` or ``ValueError``, or that holds no valid record."""
    for data_type in ("sensor", "wine", "bare"):
        result = expect_typed(wire_decode, payload[:60_000], data_type, REGISTRY, KAFKA)
        assert isinstance(result, RecordDecodeError), type(result)


@fuzz_settings(200)
@given(schema_id=st.sampled_from([SENSOR.schema_id, WINE.schema_id, 0, 2**32 - 1]), body=st.binary(max_size=96))
def test_an_avro_body_of_random_bytes_is_a_typed_error_or_a_checked_record(schema_id: int, body: bytes):
    """Confluent framing with a known, another type's or an unknown schema id, then any body."""
    payload = b"\x00" + schema_id.to_bytes(4, "big") + body
    for data_type in ("sensor", "wine"):
        check_decoded(expect_typed(wire_decode, payload, data_type, REGISTRY, KAFKA), data_type)
