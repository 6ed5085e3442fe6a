"""Valid inputs the fuzz tests start from, the schemas they are read with, and what a decoded value must satisfy.

Schemas: the bundled ``wine`` (legacy ``WineRecord`` protobufs), a
wine-shaped ``wine-white``, a ``sensor`` type with one field of every kind
(id and timestamp fields named), and a ``bare`` one that names neither (ids
and times come from the Kafka coordinates).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from serving.errors import ServingError
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.record_pb2 import Record
from serving.pb.wine_record_pb2 import WineRecord
from serving.records import bundled_schemas
from serving.records.base import DATA_TYPE_PATTERN
from serving.records.schema import DataTypeSchema, SchemaRegistry
from serving.records.wine import RECORD_FIELDS, read_wine_csv, reference_csv
from serving.records.wire import AVRO, JSON, PROTOBUF, Coordinates, DataRecord, encode
from serving.testing import T0, sensor_schema, wine_records, wine_shaped_schema

WINE = next(s for s in bundled_schemas() if s.data_type == "wine")
WHITE = wine_shaped_schema("wine-white")
SENSOR = sensor_schema()
BARE_DOC: dict[str, Any] = {
    "type": "record",
    "name": "bare",
    "fields": [{"name": "x", "type": "double"}, {"name": "n", "type": ["null", "long"]}],
}
BARE = DataTypeSchema.parse(BARE_DOC, version="1", schema_id=43)
SCHEMAS = (WINE, WHITE, SENSOR, BARE)
#: What the routing may name: every known data type, none ("" when it could not read one), an unknown one.
DATA_TYPES = ("wine", "wine-white", "sensor", "bare", "", "nosuch")
KAFKA = Coordinates("readings", 3, 1234, T0 + 999)


def registry() -> SchemaRegistry:
    """A registry of :data:`SCHEMAS`, with no Schema Registry behind it (nothing is fetched)."""
    return SchemaRegistry(SCHEMAS)


SENSOR_ROW: dict[str, Any] = {
    "key": "s-1",
    "at": T0 + 123,
    "temp": 21.5,
    "count": 3,
    "ok": True,
    "label": "Größe",
    "spectrum": [0.5, 1.0, 2.0],
}
_ROWS = read_wine_csv(reference_csv()).features[:6]
WINE_ROWS = [dict(zip(RECORD_FIELDS, map(float, row)), id=f"w-{i}", ts=T0 + i) for i, row in enumerate(_ROWS)]

#: WineRecord bytes of reference rows, as the wine and wine-white producers send them.
WINE_RECORDS = wine_records(_ROWS) + wine_records(_ROWS[:2], data_type="wine-white", prefix="white-")
#: (name, bytes, data type, protobuf type or None): one record in every wire format each schema accepts.
SEEDS: list[tuple[str, bytes, str, Any]] = [
    ("wine-protobuf", WINE_RECORDS[0], "wine", WineRecord.DESCRIPTOR),
    ("white-protobuf", WINE_RECORDS[-1], "wine-white", WineRecord.DESCRIPTOR),
    ("wine-json", encode(WINE_ROWS[1], WINE, JSON), "wine", None),
    ("wine-avro", encode(WINE_ROWS[2], WINE, AVRO), "wine", None),
    ("sensor-protobuf", encode(SENSOR_ROW, SENSOR, PROTOBUF, record_id="s-1", ts=T0), "sensor", Record.DESCRIPTOR),
    ("sensor-json", encode(SENSOR_ROW, SENSOR, JSON), "sensor", None),
    ("sensor-avro", encode(SENSOR_ROW, SENSOR, AVRO), "sensor", None),
    ("bare-protobuf", encode({"x": 1.5, "n": 7}, BARE, PROTOBUF, record_id="b-1", ts=T0), "bare", Record.DESCRIPTOR),
    ("bare-json", encode({"x": 1.5, "n": None}, BARE, JSON), "bare", None),
    ("bare-avro", encode({"x": 1.5, "n": 7}, BARE, AVRO), "bare", None),
]


def check_decoded(value: Any, data_type: str) -> None:
    """What a decoder's answer must be: a typed error, or a record true to its contract."""
    if isinstance(value, ServingError):
        return
    if isinstance(value, WineRecord):
        check_wine(value)
        return
    assert isinstance(value, DataRecord), f"a decoder returned {type(value).__name__}"
    schema = next((s for s in SCHEMAS if s.data_type == data_type), None)
    assert schema is not None and value.data_type == data_type
    assert set(value.values) == {f.name for f in schema.fields}
    for spec in schema.fields:
        check_field(value.values[spec.name], spec)
    assert isinstance(value.ts, int) and value.id


def check_wine(record: WineRecord) -> None:
    """A WineRecord that passed: an id, a data type that is a name, all 11 features present and finite."""
    assert record.id and DATA_TYPE_PATTERN.fullmatch(record.data_type)
    for name in RECORD_FIELDS:
        assert record.HasField(name) and math.isfinite(getattr(record, name)), name


def check_field(value: Any, spec) -> None:
    """A checked value fits its field: present unless nullable, of its kind, finite, of its length."""
    if value is None:
        assert spec.nullable, spec.name
        return
    if spec.kind == "number":
        assert type(value) is float and math.isfinite(value), spec.name
    elif spec.kind == "integer":
        bits = 32 if spec.avro_type == "int" else 64
        assert type(value) is int and -(2 ** (bits - 1)) <= value < 2 ** (bits - 1), spec.name
    elif spec.kind == "boolean":
        assert type(value) is bool, spec.name
    elif spec.kind == "string":
        assert type(value) is str, spec.name
    else:
        assert len(value) == spec.length and all(type(v) is float and math.isfinite(v) for v in value), spec.name


def check_dead_letter(letter: DeadLetter, payload: bytes, max_payload_bytes: int) -> None:
    """A dead letter names a reason and keeps the message's bytes (their prefix when large), size and digest."""
    assert letter.reason and letter.source
    assert letter.payload == payload[:max_payload_bytes]
    assert letter.payload_size == len(payload)
    assert letter.payload_sha256 == hashlib.sha256(payload).hexdigest()


def as_json(document: Any) -> bytes:
    """A JSON document's bytes, NaN and the infinities written as Python's ``json`` writes them."""
    return json.dumps(document).encode()
