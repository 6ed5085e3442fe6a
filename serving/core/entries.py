"""How a serving function keeps a waiting record in state: a buffer entry.

An entry is the record's original bytes behind a small header, so a flush
finds the due records by time without decoding those that wait, and a record
is decoded (with its data type's schema, which may arrive after it) only
when it is due::

    0x01 | ts (8) | kafka ts (8) | partition (4) | offset (8) | checked (1)
         | len (2) + data type | len (2) + topic | the record's bytes

Entries written before schemas existed are still read: ``0x00 | ts (8) |
WineRecord bytes`` (issue 8), and bare ``WineRecord`` bytes before that.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from serving.pb.wine_record_pb2 import WineRecord
from serving.records.wire import Coordinates

_V1, _V2 = b"\x00", b"\x01"
_HEAD = struct.Struct(">qqiq?")
_NO_TIME = -(2**63)


@dataclass(frozen=True)
class Entry:
    """A waiting record: its event time, data type, where it came from, its bytes, and whether it was checked."""

    ts: int
    data_type: str
    where: Coordinates
    payload: bytes
    checked: bool = False


def encode_entry(entry: Entry) -> bytes:
    """The bytes a buffer keeps for ``entry``."""
    where = entry.where
    data_type, topic = entry.data_type.encode(), where.topic.encode()
    kafka_ts = where.timestamp if where.timestamp is not None else _NO_TIME
    head = _HEAD.pack(entry.ts, kafka_ts, where.partition, where.offset, entry.checked)
    return b"".join(
        (_V2, head, len(data_type).to_bytes(2, "big"), data_type, len(topic).to_bytes(2, "big"), topic, entry.payload)
    )


def entry_ts(raw: bytes) -> int:
    """The event time of a kept entry, read without decoding the record (old formats: parsed)."""
    if raw[:1] in (_V1, _V2):
        return int.from_bytes(raw[1:9], "big", signed=True)
    return WineRecord.FromString(bytes(raw)).ts


def decode_entry(raw: bytes) -> Entry:
    """A kept entry back; an entry of an older format is a WineRecord of the data type it names."""
    raw = bytes(raw)
    if raw[:1] == _V2:
        ts, kafka_ts, partition, offset, checked = _HEAD.unpack_from(raw, 1)
        at = 1 + _HEAD.size
        size = int.from_bytes(raw[at : at + 2], "big")
        data_type = raw[at + 2 : at + 2 + size].decode()
        at += 2 + size
        size = int.from_bytes(raw[at : at + 2], "big")
        topic = raw[at + 2 : at + 2 + size].decode()
        payload = raw[at + 2 + size :]
        where = Coordinates(topic, partition, offset, None if kafka_ts == _NO_TIME else kafka_ts)
        return Entry(ts, data_type, where, payload, checked)
    payload = raw[9:] if raw[:1] == _V1 else raw
    record = WineRecord.FromString(payload)
    return Entry(record.ts, record.data_type, Coordinates(), payload, checked=True)  # validated when they came
