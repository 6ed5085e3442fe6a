"""Record codecs: round trips, and garbage always ends as RecordDecodeError."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving import wine
from serving.codecs import decode_record, encode_record, record_features
from serving.errors import RecordDecodeError
from serving.pb.wine_record_pb2 import WineRecord


def test_round_trip_keeps_every_feature():
    data = encode_record("r-1", wine.PROBE_ROW, ts=123)
    record = decode_record(data)
    assert (record.id, record.ts, record.data_type) == ("r-1", 123, "wine")
    assert record_features(record) == list(wine.PROBE_ROW)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"", "empty"),
        (b"\xff\xff\xff\xff", "not a WineRecord"),
        (WineRecord(data_type="wine").SerializeToString(), "no id"),
        (WineRecord(id="x", data_type="").SerializeToString(), "bad data type"),
        (WineRecord(id="x", data_type="Wine Red\x00").SerializeToString(), "bad data type"),
        (WineRecord(id="x", data_type="wine", alcohol=math.nan).SerializeToString(), "non-finite alcohol"),
        (b"\x0a" + b"\x01a" + b"\x00" * 70000, "cap"),
    ],
)
def test_bad_records_are_refused_with_a_reason(payload, match):
    with pytest.raises(RecordDecodeError, match=match):
        decode_record(payload)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_other_errors(payload):
    try:
        record = decode_record(payload)
    except RecordDecodeError:
        return
    # What proto3 accepts must still be meaningful.
    assert record.id and record.data_type and record.data_type == record.data_type.lower()
    assert all(math.isfinite(v) for v in record_features(record))
