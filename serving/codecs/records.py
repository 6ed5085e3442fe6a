"""Protobuf bytes <-> domain objects, with validation of meaning, not just syntax.

proto3 parses many random byte strings without complaint, so a decode that
does not raise is not yet a valid record: :func:`decode_record` also checks
the size cap, the id, the data type, that every feature is present and
finite, and (:func:`check_timestamp`) that ``ts`` lies in the accepted range.
"""

from __future__ import annotations

import math
import re

import numpy as np
from google.protobuf.message import DecodeError

from serving.clock import now_ms
from serving.errors import (
    EmptyRecordError,
    MissingFeatureError,
    RecordDecodeError,
    RecordTooLarge,
    TimestampRangeError,
)
from serving.pb.wine_record_pb2 import WineRecord
from serving.records import wine
from serving.settings import MAX_TIMESTAMP_MS

#: Records larger than this are refused before parsing (a wine record is ~110 bytes).
MAX_RECORD_BYTES = 64 * 1024

#: A data type names a stream of records sharing the wine schema ("wine", "wine-white", ...).
DATA_TYPE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def encode_record(record_id: str, features, *, ts: int | None = None, data_type: str = wine.DATA_TYPE) -> bytes:
    """Serialize one wine feature row (11 floats) as ``WineRecord`` bytes."""
    values = [float(v) for v in features]
    if len(values) != wine.N_FEATURES:
        raise RecordDecodeError(f"a wine record has {wine.N_FEATURES} features, got {len(values)}")
    record = WineRecord(id=record_id, data_type=data_type, ts=now_ms() if ts is None else ts)
    for field, value in zip(wine.RECORD_FIELDS, values):
        setattr(record, field, value)
    return record.SerializeToString()


def check_timestamp(ts: int, max_future_skew_ms: int, what: str = "ts", now: int | None = None) -> None:
    """Raise :class:`TimestampRangeError` unless ``0 <= ts <= now + max_future_skew_ms``.

    ``max_future_skew_ms == 0`` lifts the upper bound to year 9999
    (``MAX_TIMESTAMP_MS``), which always holds, so no timestamp that passes
    can overflow event-time arithmetic. The JVM routing applies the same rule
    before a ``ts`` reaches a watermark.
    """
    upper = MAX_TIMESTAMP_MS
    if max_future_skew_ms:
        upper = min(upper, (now_ms() if now is None else now) + max_future_skew_ms)
    if ts < 0 or ts > upper:
        raise TimestampRangeError(f"{what} {ts} is out of range (0 to {upper}, {max_future_skew_ms} ms ahead of now)")


def decode_record(data: bytes, *, max_bytes: int = MAX_RECORD_BYTES) -> WineRecord:
    """Parse and validate ``WineRecord`` bytes.

    Raises:
        RecordDecodeError: empty (a Kafka tombstone too), oversized,
            unparsable, no id, a data type that is not a lower-case name
            (``DATA_TYPE_PATTERN``), a feature missing (named), or a feature
            that is NaN or infinite.
    """
    if not data:
        raise EmptyRecordError("record is empty (a null Kafka value, a tombstone, or zero bytes)")
    if len(data) > max_bytes:
        raise RecordTooLarge(f"record is {len(data):,} bytes, over the {max_bytes:,}-byte cap")
    record = WineRecord()
    try:
        record.ParseFromString(data)
    except DecodeError as exc:
        raise RecordDecodeError(f"not a WineRecord: {exc}") from exc
    if not record.id:
        raise RecordDecodeError("record has no id")
    if not DATA_TYPE_PATTERN.fullmatch(record.data_type):
        raise RecordDecodeError(f"record {record.id!r} has a bad data type {record.data_type[:80]!r}")
    missing = [field for field in wine.RECORD_FIELDS if not record.HasField(field)]
    if missing:
        raise MissingFeatureError(f"record {record.id!r} lacks {', '.join(missing)}")
    for field in wine.RECORD_FIELDS:
        if not math.isfinite(getattr(record, field)):
            raise RecordDecodeError(f"record {record.id!r} has a non-finite {field}")
    return record


def record_features(record: WineRecord) -> list[float]:
    """The 11 features of a record, in model column order."""
    return [getattr(record, field) for field in wine.RECORD_FIELDS]


def features_matrix(records: list[WineRecord]) -> np.ndarray:
    """Feature rows of several records as float64 [N, 11]."""
    return np.asarray([record_features(r) for r in records], dtype=np.float64).reshape(-1, wine.N_FEATURES)
