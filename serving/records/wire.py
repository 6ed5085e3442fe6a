"""Records on the wire, for any data type: JSON, Confluent-framed Avro, or protobuf.

Which format a message has is read from its first byte, so one topic may mix
them and no per-topic setting is needed:

* ``0x00``: Avro binary with the Confluent framing (magic byte 0, a 4-byte
  big-endian schema id, the body), read with fastavro against the writer
  schema that id names (a registered schema, or one from a Schema Registry);
* ``{`` (after optional white space): one UTF-8 JSON object;
* anything else: protobuf, the generic ``Record`` (or, when the schema says
  so, the legacy ``WineRecord``).

:func:`decode` returns a :class:`DataRecord` whose values were checked
against the data type's schema: a missing required field, a value of the
wrong type, a non-finite number, an array of the wrong length all raise a
typed error naming the field. Extra fields are ignored.
"""

from __future__ import annotations

import functools
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from serving.errors import EmptyRecordError, MissingFeatureError, RecordDecodeError, RecordTooLarge
from serving.pb.record_pb2 import Record
from serving.pb.wine_record_pb2 import WineRecord
from serving.records.base import MAX_RECORD_BYTES
from serving.records.schema import DataTypeSchema, Field, SchemaError, SchemaRegistry

AVRO, JSON, PROTOBUF = "avro", "json", "protobuf"
_WHITESPACE = b" \t\r\n"


class UnknownDataType(RecordDecodeError):
    """A record of a data type the job has no schema for."""

    reason = "unknown data type"


class FieldTypeError(RecordDecodeError):
    """A field value of the wrong type, not finite, or an array of the wrong length."""

    reason = "bad field"


@dataclass(slots=True)  # made per record: not frozen, whose __init__ costs several times more
class Coordinates:
    """Where a message came from: Kafka's coordinates, or a file's row (topic "", offset = row)."""

    topic: str = ""
    partition: int = 0
    offset: int = -1
    timestamp: int | None = None

    def record_id(self) -> str:
        """The id of a record whose schema names no id field."""
        return str(self.offset) if not self.topic else f"{self.topic}/{self.partition}/{self.offset}"


@dataclass
class DataRecord:
    """A decoded record of any data type: id, data type, event time, values by field name, and its bytes."""

    id: str
    data_type: str
    ts: int
    values: dict[str, Any]
    payload: bytes = field(repr=False, default=b"")
    where: Coordinates = field(repr=False, default_factory=lambda: NOWHERE)

    def SerializeToString(self) -> bytes:
        """The original bytes, as the dead letters keep them."""
        return self.payload


#: Where a record with no known origin came from.
NOWHERE = Coordinates()


def wire_format(payload: bytes) -> str:
    """``avro``, ``json`` or ``protobuf``, from the first byte (see the module docstring)."""
    if payload[:1] == b"\x00" and len(payload) >= 5:
        return AVRO
    if payload.removeprefix(b"\xef\xbb\xbf").lstrip(_WHITESPACE)[:1] == b"{":
        return JSON
    return PROTOBUF


def decode(
    payload: bytes,
    data_type: str,
    registry: SchemaRegistry,
    where: Coordinates = NOWHERE,
    *,
    max_bytes: int = MAX_RECORD_BYTES,
) -> DataRecord | WineRecord:
    """Decode and check one record of ``data_type`` (as the routing named it).

    A data type with no schema is read as a legacy ``WineRecord`` when the
    bytes are protobuf (before schemas, every data type was wine-shaped);
    in any other format it is an :class:`UnknownDataType`. A ``WineRecord``
    comes back as itself (the wine fast path); anything else as a :class:`DataRecord`.

    Raises:
        RecordDecodeError: or a subclass naming the problem and the field.
    """
    payload = bytes(payload)
    if not payload:
        raise EmptyRecordError("record is empty (a null Kafka value, a tombstone, or zero bytes)")
    if len(payload) > max_bytes:
        raise RecordTooLarge(f"record is {len(payload):,} bytes, over the {max_bytes:,}-byte cap")
    fmt = wire_format(payload)
    schema = registry.get(data_type)
    if schema is None:
        if fmt != PROTOBUF:
            raise UnknownDataType(f"no schema for data type {data_type!r}")
        return _wine_decoder()(payload, max_bytes=max_bytes)
    if fmt == PROTOBUF and schema.protobuf == "WineRecord":
        return _wine_decoder()(payload, max_bytes=max_bytes)
    if fmt == AVRO:
        values = _avro_values(payload, schema, registry)
        record_id, ts = None, None
    elif fmt == JSON:
        values = _json_values(payload)
        record_id, ts = None, None
    else:
        message = Record()
        try:
            message.ParseFromString(payload)
        except (DecodeError, UnicodeDecodeError) as exc:  # the pure-Python protobuf raises the latter on bad UTF-8
            raise RecordDecodeError(f"not a Record: {exc}") from exc
        values = {name: _proto_value(value) for name, value in message.values.items()}
        record_id, ts = message.id or None, message.ts or None
    checked = check_values(values, schema)
    if schema.id_field is not None:
        record_id = str(checked[schema.id_field])
    if schema.ts_field is not None:
        ts = checked[schema.ts_field]
    if ts is None:
        ts = where.timestamp
    if ts is None:
        raise RecordDecodeError(f"record of {data_type!r} has no event time (no timestamp field, no Kafka timestamp)")
    return DataRecord(record_id or where.record_id(), data_type, int(ts), checked, payload, where)


@functools.cache
def _wine_decoder():
    """``serving.records.wine.decode_record``, imported on first use (generic code does not load wine)."""
    from serving.records.wine import decode_record

    return decode_record


def check_values(values: Mapping[str, Any], schema: DataTypeSchema) -> dict[str, Any]:
    """``values`` checked against ``schema``'s fields: every field present (or nullable), of its type.

    Raises:
        MissingFeatureError: required fields are missing (all named).
        FieldTypeError: a value of the wrong type, not finite, or an array of the wrong length.
    """
    missing = [f.name for f in schema.fields if values.get(f.name) is None and not f.nullable]
    if missing:
        raise MissingFeatureError(f"record of {schema.data_type!r} lacks {', '.join(missing)}")
    return {f.name: _checked(values.get(f.name), f) for f in schema.fields}


def _checked(value: Any, spec: Field) -> Any:
    if value is None:
        return None
    kind = spec.kind
    if kind == "boolean":
        if isinstance(value, bool):
            return value
    elif kind == "string":
        if isinstance(value, str):
            return value
    elif kind == "integer":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            bits = 32 if spec.avro_type == "int" else 64
            if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
                raise FieldTypeError(f"field {spec.name!r} is {value}: out of range for {spec.avro_type}")
            return value
    elif kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int too big for a double (JSON integers have no bound)
                raise FieldTypeError(f"field {spec.name!r} is {str(value)[:40]}...: out of range") from None
            if not math.isfinite(number):
                raise FieldTypeError(f"field {spec.name!r} is {value!r}: not a finite number")
            return number
    elif kind == "array" and isinstance(value, list | tuple):
        numbers = [_checked(v, Field(spec.name, "double", "number")) for v in value]
        if len(numbers) != spec.length:
            raise FieldTypeError(f"field {spec.name!r} has {len(numbers)} values, not {spec.length}")
        return numbers
    raise FieldTypeError(f"field {spec.name!r} is {type(value).__name__} {str(value)[:40]!r}, not {spec.avro_type}")


def _json_values(payload: bytes) -> dict[str, Any]:
    try:
        document = json.loads(payload.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise RecordDecodeError(f"not a JSON object: {exc}") from exc
    if not isinstance(document, dict):
        raise RecordDecodeError(f"a JSON record must be an object, not {type(document).__name__}")
    return document


def _avro_values(payload: bytes, schema: DataTypeSchema, registry: SchemaRegistry) -> dict[str, Any]:
    import fastavro

    schema_id = int.from_bytes(payload[1:5], "big")
    try:
        writer = registry.by_id(schema_id)
    except SchemaError as exc:  # the registry's schema for the id is none the job can serve
        raise UnknownDataType(f"schema id {schema_id} (Confluent-framed Avro): {exc}") from exc
    if writer is None:
        raise UnknownDataType(f"no schema has id {schema_id} (Confluent-framed Avro)")
    if writer.data_type != schema.data_type:
        raise RecordDecodeError(f"schema id {schema_id} is data type {writer.data_type!r}, not {schema.data_type!r}")
    try:
        return fastavro.schemaless_reader(io.BytesIO(payload[5:]), writer.parsed, None)
    except Exception as exc:  # fastavro raises EOFError, ValueError, ... on a bad body
        raise RecordDecodeError(f"not an Avro {schema.data_type!r} record (schema id {schema_id}): {exc}") from exc


def _proto_value(value) -> Any:
    kind = value.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "numbers":
        return list(value.numbers.values)
    return getattr(value, kind)


def encode(values: Mapping[str, Any], schema: DataTypeSchema, fmt: str, *, record_id: str = "", ts: int = 0) -> bytes:
    """A record's bytes in wire format ``fmt`` (``json``, ``avro`` or ``protobuf``); what producers send."""
    if fmt == JSON:
        return json.dumps(dict(values), separators=(",", ":")).encode()
    if fmt == AVRO:
        import fastavro

        body = io.BytesIO()
        fastavro.schemaless_writer(body, schema.parsed, dict(values))
        return b"\x00" + schema.schema_id.to_bytes(4, "big") + body.getvalue()
    if fmt == PROTOBUF:
        message = Record(id=record_id, data_type=schema.data_type, ts=ts)
        for name, value in values.items():
            if value is None:
                continue
            target = message.values[name]
            if isinstance(value, bool):
                target.bool_value = value
            elif isinstance(value, int):
                target.long_value = value
            elif isinstance(value, float):
                target.double_value = value
            elif isinstance(value, str):
                target.string_value = value
            else:
                target.numbers.values.extend(float(v) for v in value)
        return message.SerializeToString()
    raise ValueError(f"unknown wire format {fmt!r}: json, avro or protobuf")
