"""Records on the wire: format sniffing, JSON / Confluent Avro / protobuf decoding, checks that name the field."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.errors import EmptyRecordError, MissingFeatureError, RecordDecodeError, RecordTooLarge
from serving.pb.record_pb2 import Numbers, Record, Value
from serving.pb.wine_record_pb2 import WineRecord
from serving.records import builtin_registry
from serving.records.schema import DataTypeSchema, SchemaRegistry
from serving.records.wire import (
    AVRO,
    JSON,
    PROTOBUF,
    Coordinates,
    DataRecord,
    FieldTypeError,
    UnknownDataType,
    check_values,
    decode,
    wire_format,
)
from serving.testing import SENSOR_DOC, sensor_schema

SENSOR = sensor_schema()
#: A schema naming neither: ids and event times come from the Kafka coordinates.
BARE = DataTypeSchema.parse(
    {"type": "record", "name": "bare", "fields": [{"name": "x", "type": "double"}, {"name": "y", "type": "int"}]},
    schema_id=43,
)
#: A complete sensor row, as a producer would write it.
ROW: dict[str, Any] = {
    "key": "s-1",
    "at": 1_700_000_000_123,
    "temp": 21.5,
    "count": 3,
    "ok": True,
    "label": "Größe",
    "spectrum": [0.5, 1.0, 2.0],
}
KAFKA = Coordinates("readings", 3, 1234, 1_700_000_999_000)


def registry(*schemas: DataTypeSchema) -> SchemaRegistry:
    return SchemaRegistry(schemas or (SENSOR, BARE))


def framed(schema_id: int, doc: dict[str, Any], values: dict[str, Any]) -> bytes:
    """Confluent framing by hand: magic 0, big-endian 4-byte id, fastavro's schemaless body."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(doc), values)
    return b"\x00" + struct.pack(">I", schema_id) + body.getvalue()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"x": 1}', JSON),
        (b' \r\n\t{"x": 1}', JSON),
        (b"\x00\x00\x00\x00\x2a\x02", AVRO),
        (Record(id="a", data_type="bare").SerializeToString(), PROTOBUF),
        (b"\x00\x01", PROTOBUF),  # too short to carry a schema id
    ],
    ids=["json", "json-after-space", "avro", "protobuf", "short-zero"],
)
def test_wire_format_is_sniffed_from_the_first_byte(payload: bytes, expected: str) -> None:
    """0x00 plus a 4-byte id is Avro, ``{`` after white space is JSON, anything else protobuf."""
    assert wire_format(payload) == expected


def test_json_record_is_checked_and_typed_with_id_and_time_from_named_fields() -> None:
    """A UTF-8 JSON object decodes to typed values; id and ts are the named fields, not the Kafka ones."""
    row = {**ROW, "temp": 21, "count": 3.0, "extra": "ignored"}
    payload = json.dumps(row, ensure_ascii=False).encode("utf-8")
    decoded = decode(payload, "sensor", registry(), KAFKA)
    assert isinstance(decoded, DataRecord)
    assert (decoded.id, decoded.data_type, decoded.ts) == ("s-1", "sensor", 1_700_000_000_123)
    assert decoded.values == {**ROW, "temp": 21.0, "count": 3}
    assert type(decoded.values["temp"]) is float and type(decoded.values["count"]) is int
    assert decoded.SerializeToString() == payload and decoded.where == KAFKA


def test_a_missing_nullable_field_is_none() -> None:
    """An absent ``["null", ...]`` field decodes as None; it is not an error."""
    row = {k: v for k, v in ROW.items() if k != "label"}
    assert decode(json.dumps(row).encode(), "sensor", registry(), KAFKA).values["label"] is None


def test_without_named_fields_id_and_time_are_the_kafka_coordinates() -> None:
    """A schema naming no id or timestamp: id ``topic/partition/offset``, ts the Kafka timestamp."""
    decoded = decode(b'{"x": 1.5, "y": 2}', "bare", registry(), KAFKA)
    assert (decoded.id, decoded.ts) == ("readings/3/1234", 1_700_000_999_000)


def test_a_file_row_is_identified_by_its_offset() -> None:
    """Coordinates without a topic (a file) make the offset the id."""
    decoded = decode(b'{"x": 1.5, "y": 2}', "bare", registry(), Coordinates(offset=7, timestamp=9))
    assert (decoded.id, decoded.ts) == ("7", 9)


def test_no_timestamp_anywhere_is_an_error() -> None:
    """No timestamp field and no Kafka timestamp: the record has no event time."""
    with pytest.raises(RecordDecodeError, match="no event time"):
        decode(b'{"x": 1.5, "y": 2}', "bare", registry(), Coordinates("readings", 0, 1, None))


def test_confluent_framed_avro_from_fastavro_decodes() -> None:
    """Bytes framed by hand around fastavro's body decode to the values written."""
    decoded = decode(framed(42, SENSOR_DOC, ROW), "sensor", registry(), KAFKA)
    assert (decoded.id, decoded.ts, decoded.values) == ("s-1", ROW["at"], ROW)


def test_confluent_avro_serializer_output_decodes() -> None:
    """What confluent_kafka's AvroSerializer writes (mock registry) decodes with the id it registered."""
    pytest.importorskip("authlib", reason="confluent_kafka.schema_registry needs its schemaregistry extra")
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = SchemaRegistryClient.new_client({"url": "mock://wire-test"})
    serializer = AvroSerializer(client, json.dumps(SENSOR_DOC))
    payload = serializer(ROW, SerializationContext("readings", MessageField.VALUE))
    registered = client.get_latest_version("readings-value").schema_id
    known = DataTypeSchema.parse(SENSOR_DOC, schema_id=registered)
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == registered
    assert decode(payload, "sensor", SchemaRegistry([known]), KAFKA).values == ROW


def test_avro_written_with_an_older_version_still_decodes() -> None:
    """Records carry their writer's id: a v1 record decodes after v2 (a new nullable field) is current."""
    v1_doc = {"type": "record", "name": "bare", "fields": [{"name": "x", "type": "double"}]}
    v1 = DataTypeSchema.parse(v1_doc, version="1", schema_id=1)
    v2_doc = {**v1_doc, "fields": [*v1_doc["fields"], {"name": "z", "type": ["null", "long"]}]}
    v2 = DataTypeSchema.parse(v2_doc, version="2", schema_id=2)
    known = SchemaRegistry([v1, v2])
    assert decode(framed(1, v1_doc, {"x": 2.5}), "bare", known, KAFKA).values == {"x": 2.5, "z": None}
    assert decode(framed(2, v2_doc, {"x": 2.5, "z": 9}), "bare", known, KAFKA).values == {"x": 2.5, "z": 9}


@pytest.mark.parametrize(
    ("payload", "error", "match"),
    [
        (b"\x00\x00\x00\x00\x63\x00", UnknownDataType, "no schema has id 99"),
        (b"\x00\x00\x00\x00\x2b\x00", RecordDecodeError, "'bare', not 'sensor'"),
        (b"\x00\x00\x00\x00\x2a\x02", RecordDecodeError, "not an Avro 'sensor' record"),
    ],
    ids=["unknown-id", "other-data-type", "truncated-body"],
)
def test_bad_avro_is_refused(payload: bytes, error: type[Exception], match: str) -> None:
    """An unknown schema id, another data type's id, or a body that does not parse."""
    with pytest.raises(error, match=match):
        decode(payload, "sensor", registry(), KAFKA)


def test_generic_protobuf_record_decodes_every_value_kind() -> None:
    """A ``Record`` built with protoc's classes: id and ts from the message, values by their oneof kind."""
    message = Record(id="p-9", data_type="sensor", ts=5)
    message.values["key"].string_value = "s-1"
    message.values["at"].long_value = 77
    message.values["temp"].double_value = 21.5
    message.values["count"].long_value = 3
    message.values["ok"].bool_value = True
    message.values["spectrum"].CopyFrom(Value(numbers=Numbers(values=[0.5, 1.0, 2.0])))
    decoded = decode(message.SerializeToString(), "sensor", registry(), KAFKA)
    expected = {**ROW, "at": 77, "label": None}
    assert decoded.values == expected and (decoded.id, decoded.ts) == ("s-1", 77)  # named fields win
    bare = Record(id="p-9", ts=5, values={"x": Value(double_value=1.0), "y": Value(long_value=2)})
    decoded = decode(bare.SerializeToString(), "bare", registry(), KAFKA)
    assert (decoded.id, decoded.ts, decoded.values) == ("p-9", 5, {"x": 1.0, "y": 2})


WINE_VALUES = dict(zip(["fixed_acidity", "volatile_acidity", "alcohol"], [7.4, 0.7, 9.4], strict=True))


def legacy_wine(data_type: str) -> bytes:
    """A complete WineRecord built with the generated class (every feature set)."""
    message = WineRecord(id="w-1", data_type=data_type, ts=11)
    for name in ("citric_acid", "residual_sugar", "chlorides", "free_sulfur_dioxide", "total_sulfur_dioxide"):
        setattr(message, name, 0.5)
    for name, value in {**WINE_VALUES, "density": 0.99, "ph": 3.5, "sulphates": 0.56}.items():
        setattr(message, name, value)
    return message.SerializeToString()


@pytest.mark.parametrize("data_type", ["wine", "wine-legacy"])
def test_legacy_wine_record_is_still_readable(data_type: str) -> None:
    """WineRecord protobufs decode as themselves: for wine (its schema says so) and schema-less data types."""
    decoded = decode(legacy_wine(data_type), data_type, builtin_registry(), KAFKA)
    assert isinstance(decoded, WineRecord)
    assert (decoded.id, decoded.data_type, decoded.ts) == ("w-1", data_type, 11)
    assert {name: getattr(decoded, name) for name in WINE_VALUES} == WINE_VALUES


@pytest.mark.parametrize("payload", [b'{"x": 1.0, "y": 2}', b"\x00\x00\x00\x00\x2b\x02"], ids=["json", "avro"])
def test_json_or_avro_of_a_data_type_without_schema_is_unknown(payload: bytes) -> None:
    """Only protobuf may fall back to WineRecord; JSON or Avro of an unknown data type is refused."""
    with pytest.raises(UnknownDataType, match="no schema for data type 'nope'") as caught:
        decode(payload, "nope", builtin_registry(), KAFKA)
    assert caught.value.reason == "unknown data type"


def with_(**changes: Any) -> dict[str, Any]:
    return {**ROW, **changes}


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        ({k: v for k, v in ROW.items() if k != "temp"}, MissingFeatureError, "lacks temp$"),
        ({"key": "k", "at": 1, "ok": False, "spectrum": [1, 2, 3]}, MissingFeatureError, "lacks temp, count$"),
        (with_(temp=None), MissingFeatureError, "lacks temp"),
        (with_(temp="21.5"), FieldTypeError, "'temp' is str '21.5', not double"),
        (with_(temp=True), FieldTypeError, "'temp' is bool"),
        (with_(count=2.5), FieldTypeError, "'count' is float '2.5', not int"),
        (with_(count=True), FieldTypeError, "'count' is bool 'True', not int"),
        (with_(ok=1), FieldTypeError, "'ok' is int '1', not boolean"),
        (with_(key=5), FieldTypeError, "'key' is int"),
        (with_(temp=float("nan")), FieldTypeError, "'temp' is nan: not a finite number"),
        (with_(temp=float("-inf")), FieldTypeError, "'temp' is -inf: not a finite number"),
        (with_(spectrum=[1.0, float("inf"), 2.0]), FieldTypeError, "'spectrum' is inf"),
        (with_(spectrum=[1.0, 2.0]), FieldTypeError, "'spectrum' has 2 values, not 3"),
        (with_(spectrum="1,2,3"), FieldTypeError, "'spectrum' is str"),
    ],
    ids=["missing", "all-missing-named", "null-required", "string-for-double", "bool-for-double", "fraction-for-int",
         "bool-for-int", "int-for-boolean", "int-for-string", "nan", "minus-inf", "inf-in-array", "short-array",
         "string-for-array"],
)  # fmt: skip
def test_check_values_names_the_field(values: dict[str, Any], error: type[Exception], match: str) -> None:
    """Missing, mistyped and non-finite values raise typed errors whose message names the field."""
    with pytest.raises(error, match=match):
        check_values(values, SENSOR)


def test_check_values_reasons() -> None:
    """Missing fields and bad fields carry distinct dead-letter reasons."""
    with pytest.raises(MissingFeatureError) as missing:
        check_values({}, BARE)
    with pytest.raises(FieldTypeError) as bad:
        check_values({"x": "a", "y": 1}, BARE)
    assert (missing.value.reason, bad.value.reason) == ("missing feature", "bad field")


@pytest.mark.parametrize(
    ("payload", "error", "match"),
    [
        (b"", EmptyRecordError, "empty"),
        (b'{"x": "\xff"}', RecordDecodeError, "not a JSON object"),
        (b'{"x": 1,', RecordDecodeError, "not a JSON object"),
        (b"{}" + b" " * 70_000, RecordTooLarge, "cap"),
        (b"\xff\xff\xff\xff", RecordDecodeError, "not a Record"),
    ],
    ids=["empty", "bad-utf8", "truncated-json", "too-large", "garbage-protobuf"],
)
def test_undecodable_bytes_are_refused(payload: bytes, error: type[Exception], match: str) -> None:
    """Bytes that decode in no format raise a RecordDecodeError subclass (reason ``undecodable record`` or finer)."""
    with pytest.raises(error, match=match) as caught:
        decode(payload, "bare", registry(), KAFKA)
    assert isinstance(caught.value, RecordDecodeError)


def test_a_json_array_is_not_a_record() -> None:
    """A JSON array is no JSON object: it sniffs as protobuf, and is refused there."""
    with pytest.raises(RecordDecodeError):
        decode(b"[1, 2]", "bare", registry(), KAFKA)


def test_a_huge_json_integer_is_a_bad_field_not_a_crash() -> None:
    """An integer beyond float range in a double field is refused as a FieldTypeError naming it."""
    with pytest.raises(FieldTypeError, match="'x'"):
        decode(b'{"y": 1, "x": 1' + b"0" * 400 + b"}", "bare", registry(), KAFKA)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([b"", b"\x00\x00\x00\x00\x2a", b"{"]))
def test_random_bytes_end_as_a_record_or_a_decode_error(body: bytes, prefix: bytes) -> None:
    """Whatever the bytes, decode returns a checked record or raises RecordDecodeError, nothing else."""
    try:
        decoded = decode(prefix + body, "sensor", registry(), KAFKA)
    except RecordDecodeError:
        return
    assert isinstance(decoded, DataRecord) and set(decoded.values) == {f.name for f in SENSOR.fields}


@pytest.mark.parametrize(("avro_type", "value"), [("int", 2**31), ("int", -(2**31) - 1), ("long", 2**63)])
def test_an_integer_beyond_its_avro_type_is_a_bad_field(avro_type: str, value: int) -> None:
    """Avro ``int`` is 32 bits and ``long`` 64: a JSON integer past that is named, not wrapped or crashed on."""
    schema = DataTypeSchema.parse({"type": "record", "name": "counts", "fields": [{"name": "n", "type": avro_type}]})
    with pytest.raises(FieldTypeError, match=r"'n' is .*out of range"):
        check_values({"n": value}, schema)
