"""What a record type is, and the checks every record passes whatever its type.

A record type knows how its records travel (decode, encode), which features
a model reads from them and in which order, and a realistic probe row that a
new model must score before it is admitted. Generic code (scoring,
admission, the formats) asks :func:`serving.records.for_data_type` for the
record type of a data type and never names one.

proto3 parses many random byte strings without complaint, so a decode that
does not raise is not yet a valid record: a record type checks meaning too
(presence, finiteness, size), and :func:`check_timestamp` bounds ``ts``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from serving.clock import now_ms
from serving.errors import TimestampRangeError
from serving.settings import MAX_TIMESTAMP_MS

#: Records larger than this are refused before parsing (a wine record is ~110 bytes).
MAX_RECORD_BYTES = 64 * 1024

#: What a data type may be called: lower case, digits, ``_ . -``; 64 characters at most.
DATA_TYPE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class Record(Protocol):
    """What generic code reads of a decoded record."""

    id: str
    data_type: str
    ts: int

    def SerializeToString(self) -> bytes:
        """The record's bytes on the wire."""


class RecordType(ABC):
    """A kind of record the jobs serve.

    Attributes:
        name: What it is called, e.g. ``wine``.
        field_names: The features as the record carries them, in model column order.
        feature_names: The same features as models name them (PMML fields match these).
        probe_row: One realistic feature row, scored by every model before it is admitted.
    """

    name: str
    field_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    probe_row: tuple[float, ...]

    @abstractmethod
    def decode(self, payload: bytes, *, max_bytes: int = MAX_RECORD_BYTES) -> Record:
        """Parse and validate a record.

        Raises:
            RecordDecodeError: or a subclass naming what is wrong (empty,
                too large, unparsable, a field missing or not finite ...).
        """

    @abstractmethod
    def parse(self, payload: bytes) -> Record:
        """Parse a record that was validated before (kept in state): no checks."""

    @abstractmethod
    def encode(self, record_id: str, features: Sequence[float], *, ts: int, data_type: str) -> bytes:
        """A record's bytes from its id, features (in ``field_names`` order), time and data type."""

    @abstractmethod
    def features(self, records: Sequence[Record]) -> np.ndarray:
        """The feature rows of ``records``: float64 [N, len(field_names)]."""


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
