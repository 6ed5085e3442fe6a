"""Record codecs: round trips, and garbage always ends as RecordDecodeError."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.codecs.outputs import dead_letter
from serving.errors import EmptyRecordError, MissingFeatureError, RecordDecodeError, TimestampRangeError
from serving.pb.wine_record_pb2 import WineRecord
from serving.records import wine
from serving.records.base import check_timestamp
from serving.records.wine import decode_record, encode_record, record_features


def _complete(**fields) -> bytes:
    """A record with every feature set (zeros too), then ``fields`` over them."""
    record = WineRecord(id="x", data_type="wine", **dict.fromkeys(wine.RECORD_FIELDS, 0.0))
    for name, value in fields.items():
        setattr(record, name, value)
    return record.SerializeToString()


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
        (_complete(alcohol=math.nan), "non-finite alcohol"),
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


def test_zero_features_travel_and_decode_as_present():
    record = decode_record(encode_record("z", [0.0] * wine.N_FEATURES, ts=1))
    assert record_features(record) == [0.0] * wine.N_FEATURES


@pytest.mark.parametrize("missing", ["fixed_acidity", "citric_acid", "alcohol"])
def test_a_record_missing_a_feature_is_refused_naming_it(missing):
    record = WineRecord.FromString(encode_record("m", wine.PROBE_ROW, ts=1))
    record.ClearField(missing)
    with pytest.raises(MissingFeatureError, match=f"lacks {missing}$"):
        decode_record(record.SerializeToString())


def test_a_truncated_record_that_still_parses_is_refused():
    """The defect: 23 bytes of a record parsed, the rest counted as 0.0, and it was scored."""
    full = encode_record("t-1", wine.PROBE_ROW, ts=1_700_000_000_000)
    parsing = []
    for length in range(1, len(full)):
        try:
            WineRecord.FromString(full[:length])  # protobuf itself accepts a cut at a field boundary
        except Exception:
            continue
        parsing.append(full[:length])
    assert len(parsing) >= 10
    for cut in parsing:
        with pytest.raises(RecordDecodeError):
            decode_record(cut)


def test_an_empty_message_is_refused_as_an_empty_record():
    with pytest.raises(EmptyRecordError, match="tombstone"):
        decode_record(b"")


@pytest.mark.parametrize("ts", [-1, 2**63 - 1, 32_503_680_000_000])
def test_timestamps_out_of_range_are_refused(ts):
    with pytest.raises(TimestampRangeError, match="out of range"):
        check_timestamp(ts, 3_600_000, now=1_700_000_000_000)


def test_the_future_bound_holds_at_the_skew_and_can_be_switched_off():
    now = 1_700_000_000_000
    check_timestamp(now + 3_600_000, 3_600_000, now=now)
    with pytest.raises(TimestampRangeError):
        check_timestamp(now + 3_600_001, 3_600_000, now=now)
    check_timestamp(32_503_680_000_000, 0, now=now)  # year 3000: a replay may carry it
    with pytest.raises(TimestampRangeError):
        check_timestamp(2**63 - 1, 0, now=now)  # past year 9999 never


def test_a_dead_letter_keeps_a_bounded_prefix_with_size_and_digest():
    import hashlib

    payload = bytes(range(256)) * 6000  # 1.5 MB
    letter = dead_letter("data", "record too large", "too big", payload, max_payload_bytes=1000)
    assert letter.payload == payload[:1000]
    assert letter.payload_truncated
    assert letter.payload_size == len(payload)
    assert letter.payload_sha256 == hashlib.sha256(payload).hexdigest()
    small = dead_letter("data", "x", "x", b"abc", max_payload_bytes=1000)
    assert small.payload == b"abc" and not small.payload_truncated and small.payload_size == 3
