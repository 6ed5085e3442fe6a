"""How a serving function keeps a waiting record in state: a buffer entry.

An entry is the record's original bytes behind a small header, so a flush
finds the due records by time without decoding those that wait, and a record
is decoded (with its data type's schema, which may arrive after it) only
when it is due::

    0x01 | ts (8) | kafka ts (8) | partition (4) | offset (8) | checked (1)
         | len (2) + data type | len (2) + topic | the record's bytes

A checked ``WineRecord`` with its own id needs little of that header, and
the wine path is the hot one: it keeps a short format with only where it was
read (for the results' provenance, issue 17)::

    0x03 | ts (8) | partition (4) | offset (8) | len (2) + topic | WineRecord bytes

The short format of issue 8, ``0x00 | ts (8) | WineRecord bytes`` (no
coordinates), and bare ``WineRecord`` bytes (before issue 8) are still read.

A batch of records that crossed from the JVM together is kept as ONE list
element, a group (issue 16), so a flush reads a few elements rather than
every waiting record::

    0x02 | min ts (8) | max ts (8) | count (4) | (len (4) + entry) * count

(0x02 is no protobuf tag, so a group is never mistaken for bare WineRecord bytes.)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from serving.pb.wine_record_pb2 import WineRecord
from serving.records.wire import NOWHERE, Coordinates

_V1, _V2, _GROUP, _WINE = b"\x00", b"\x01", b"\x02", b"\x03"
_HEAD = struct.Struct(">qqiq?")
_WINE_HEAD = struct.Struct(">qiqH")
_GROUP_HEAD = struct.Struct(">qqI")
_LENGTH = struct.Struct(">I")
_NO_TIME = -(2**63)


@dataclass(slots=True)  # made twice per record: not frozen, whose __init__ costs several times more
class Entry:
    """A waiting record: its event time, data type, where it came from, its bytes, and whether it was checked."""

    ts: int
    data_type: str
    where: Coordinates
    payload: bytes
    checked: bool = False
    #: The payload parsed, for a checked ``WineRecord`` with its own id: kept in the short format
    #: (``0x00 | ts | bytes``) and not parsed twice when read back.
    wine: WineRecord | None = None


def encode_entry(entry: Entry) -> bytes:
    """The bytes a buffer keeps for ``entry`` (a checked ``WineRecord``: the short format)."""
    where = entry.where
    if entry.wine is not None:
        if not where.topic and where.offset < 0:
            return b"".join((_V1, entry.ts.to_bytes(8, "big", signed=True), entry.payload))
        topic = where.topic.encode()
        return b"".join(
            (_WINE, _WINE_HEAD.pack(entry.ts, where.partition, where.offset, len(topic)), topic, entry.payload)
        )
    names = _NAMES.get((entry.data_type, where.topic))
    if names is None:
        names = _names(entry.data_type, where.topic)
    kafka_ts = where.timestamp if where.timestamp is not None else _NO_TIME
    return b"".join(
        (_V2, _HEAD.pack(entry.ts, kafka_ts, where.partition, where.offset, entry.checked), names, entry.payload)
    )


#: (data type, topic) -> their length-prefixed bytes: the same few pairs come with every record.
_NAMES: dict[tuple[str, str], bytes] = {}


def _names(data_type: str, topic: str) -> bytes:
    encoded = [name.encode() for name in (data_type, topic)]
    names = b"".join(len(name).to_bytes(2, "big") + name for name in encoded)
    if len(_NAMES) < 4096:  # topics are few; a bound all the same
        _NAMES[(data_type, topic)] = names
    return names


def entry_ts(raw: bytes) -> int:
    """The event time of a kept entry, read without decoding the record (old formats: parsed)."""
    if raw[:1] in (_V1, _V2, _GROUP, _WINE):  # a group: its earliest
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
    if raw[:1] == _WINE:
        ts, partition, offset, size = _WINE_HEAD.unpack_from(raw, 1)
        at = 1 + _WINE_HEAD.size
        where = Coordinates(raw[at : at + size].decode(), partition, offset, None)
        payload = raw[at + size :]
        record = WineRecord.FromString(payload)
        return Entry(ts, record.data_type, where, payload, True, record)  # checked on arrival
    payload = raw[9:] if raw[:1] == _V1 else raw
    record = WineRecord.FromString(payload)
    return Entry(record.ts, record.data_type, NOWHERE, payload, True, record)  # checked on arrival


def encode_group(entries: list[bytes]) -> bytes:
    """Several kept entries as one group element (their order kept); one entry stays as it is."""
    if len(entries) == 1:
        return entries[0]
    times = [entry_ts(e) for e in entries]
    parts = [_GROUP, _GROUP_HEAD.pack(min(times), max(times), len(entries))]
    for entry in entries:
        parts += (_LENGTH.pack(len(entry)), entry)
    return b"".join(parts)


def is_group(raw: bytes) -> bool:
    """Whether a kept element is a group of entries (:func:`encode_group`)."""
    return raw[:1] == _GROUP


def group_bounds(raw: bytes) -> tuple[int, int]:
    """The earliest and the latest event time in a group, read from its header."""
    low, high, _ = _GROUP_HEAD.unpack_from(raw, 1)
    return low, high


def group_entries(raw: bytes) -> list[bytes]:
    """The entries of a group, in order."""
    raw = bytes(raw)
    _, _, count = _GROUP_HEAD.unpack_from(raw, 1)
    at = 1 + _GROUP_HEAD.size
    entries = []
    for _ in range(count):
        (size,) = _LENGTH.unpack_from(raw, at)
        entries.append(raw[at + 4 : at + 4 + size])
        at += 4 + size
    return entries
