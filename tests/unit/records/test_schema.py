"""Data-type schemas: Avro record schemas parsed and checked, the registry of versions, the message form."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from serving.errors import ServingError
from serving.pb.data_type_pb2 import DataTypeSchema as SchemaMessage
from serving.records.schema import DataTypeSchema, IncompatibleSchema, SchemaError, SchemaRegistry


def record(name: str = "sensor", fields: list[dict[str, Any]] | None = None, **props: Any) -> dict[str, Any]:
    """An Avro record schema document with ``fields`` (default: one double) and extra properties."""
    fields = [{"name": "x", "type": "double"}] if fields is None else fields
    return {"type": "record", "name": name, "fields": fields, **props}


#: Every primitive a field may have, with the kind written out by hand from the module docstring.
PRIMITIVES = {
    "d": ("double", "number"),
    "f": ("float", "number"),
    "i": ("int", "integer"),
    "l": ("long", "integer"),
    "b": ("boolean", "boolean"),
    "s": ("string", "string"),
}


def test_record_name_is_the_data_type_and_each_primitive_has_its_kind() -> None:
    """Parsing keeps field order, the Avro type, and maps each primitive to the kind models read."""
    doc = record("sensor", [{"name": n, "type": t} for n, (t, _) in PRIMITIVES.items()])
    schema = DataTypeSchema.parse(json.dumps(doc))
    assert schema.data_type == "sensor"
    assert [f.name for f in schema.fields] == list(PRIMITIVES)
    assert [(f.avro_type, f.kind) for f in schema.fields] == list(PRIMITIVES.values())
    assert not any(f.nullable for f in schema.fields)
    assert not schema.numeric  # one string feature makes the matrix an object array
    assert [f.name for f in schema.fields if f.numeric] == ["d", "f", "i", "l", "b"]


@pytest.mark.parametrize("union", [["null", "double"], ["double", "null"]])
def test_a_null_union_is_a_nullable_field_of_the_other_type(union: list[str]) -> None:
    """``["null", T]`` (either order) is field type T, nullable."""
    schema = DataTypeSchema.parse(record(fields=[{"name": "x", "type": union}]))
    (only,) = schema.fields
    assert (only.avro_type, only.kind, only.nullable) == ("double", "number", True)


def test_an_array_of_numbers_spreads_over_indexed_columns() -> None:
    """An array field with ``modelserving.length`` 3 is three number columns ``name[i]``, in schema order."""
    doc = record(
        fields=[
            {"name": "a", "type": "double"},
            {"name": "v", "type": {"type": "array", "items": "float"}, "modelserving.length": 3},
            {"name": "z", "type": "long"},
        ]
    )
    schema = DataTypeSchema.parse(doc)
    assert schema.field("v").kind == "array" and schema.field("v").length == 3
    assert [(c.name, c.field, c.index) for c in schema.columns] == [
        ("a", "a", None),
        ("v[0]", "v", 0),
        ("v[1]", "v", 1),
        ("v[2]", "v", 2),
        ("z", "z", None),
    ]
    assert schema.numeric


def test_id_and_timestamp_properties_name_fields_that_are_not_features() -> None:
    """``modelserving.id`` / ``.timestamp`` pick the id and event-time fields; the rest are the features."""
    example = {"temp": 21.5, "ok": True}
    doc = record(
        fields=[
            {"name": "key", "type": "string"},
            {"name": "when", "type": "long"},
            {"name": "temp", "type": "double"},
            {"name": "ok", "type": "boolean"},
        ],
        **{"modelserving.id": "key", "modelserving.timestamp": "when", "modelserving.example": example},
    )
    schema = DataTypeSchema.parse(doc)
    assert (schema.id_field, schema.ts_field) == ("key", "when")
    assert [f.name for f in schema.features] == ["temp", "ok"]
    assert [c.name for c in schema.columns] == ["temp", "ok"]
    assert dict(schema.example) == example
    assert schema.protobuf == "Record"  # no modelserving.protobuf: the generic message


def test_without_properties_every_field_is_a_feature() -> None:
    """No id or timestamp property: nothing is set aside (Kafka coordinates will serve)."""
    schema = DataTypeSchema.parse(record(fields=[{"name": "id", "type": "string"}, {"name": "x", "type": "int"}]))
    assert schema.id_field is None and schema.ts_field is None and schema.example is None
    assert [f.name for f in schema.features] == ["id", "x"]


def test_the_data_type_property_spells_names_avro_cannot() -> None:
    """``modelserving.data_type`` overrides the record name (Avro names have no dashes)."""
    schema = DataTypeSchema.parse(record("wine_white", **{"modelserving.data_type": "wine-white"}))
    assert schema.data_type == "wine-white"


def test_version_digest_ignores_key_order_and_white_space_but_not_content() -> None:
    """The default version is a digest of the schema's canonical form; explicit version and id win."""
    doc = record(fields=[{"name": "x", "type": "double"}, {"name": "y", "type": "int"}])
    shuffled = json.dumps(dict(reversed(list(doc.items()))), indent=4)
    first, second = DataTypeSchema.parse(doc), DataTypeSchema.parse(shuffled)
    assert first.version == second.version and first.schema_id == second.schema_id
    changed = DataTypeSchema.parse(record(fields=[{"name": "x", "type": "double"}, {"name": "y", "type": "long"}]))
    assert changed.version != first.version
    assert 0 <= first.schema_id < 2**31  # fits Confluent's signed 4-byte schema id
    pinned = DataTypeSchema.parse(doc, version="7", schema_id=99)
    assert (pinned.version, pinned.schema_id) == ("7", 99)


BAD_SCHEMAS: list[tuple[str, Any, str]] = [
    ("not-json", '{"type": "record", ', "not JSON"),
    ("json-array", "[1, 2]", "must be an Avro record"),
    ("enum-schema", {"type": "enum", "name": "e", "symbols": ["a"]}, "must be an Avro record"),
    ("field-without-type", record(fields=[{"name": "x"}]), "not a valid Avro"),
    ("unknown-named-type", record(fields=[{"name": "x", "type": "nosuch"}]), "not a valid Avro"),
    ("bytes", record(fields=[{"name": "x", "type": "bytes"}]), "'x' has type 'bytes'"),
    ("map", record(fields=[{"name": "x", "type": {"type": "map", "values": "double"}}]), "'x' has type 'map'"),
    ("union-of-three", record(fields=[{"name": "x", "type": ["null", "double", "string"]}]), "'x': only a union"),
    ("array-of-strings", record(fields=[{"name": "x", "type": {"type": "array", "items": "string"}}]), "'x'"),
    ("array-no-length", record(fields=[{"name": "x", "type": {"type": "array", "items": "double"}}]), "length"),
    ("upper-case-name", record("Sensor"), "'Sensor' is no data type"),
    ("no-fields", record(fields=[]), "no fields"),
    ("id-names-no-field", record(**{"modelserving.id": "key"}), "modelserving.id names 'key'"),
    ("ts-names-no-field", record(**{"modelserving.timestamp": "at"}), "modelserving.timestamp names 'at'"),
    ("ts-is-a-double", record(**{"modelserving.timestamp": "x"}), "'x' must be an int or long"),
    ("example-not-object", record(**{"modelserving.example": [1.0]}), "modelserving.example must be a record"),
]


@pytest.mark.parametrize(("avsc", "match"), [c[1:] for c in BAD_SCHEMAS], ids=[c[0] for c in BAD_SCHEMAS])
def test_a_schema_the_job_cannot_serve_is_a_schema_error(avsc: Any, match: str) -> None:
    """Invalid or unservable schemas raise SchemaError (a ServingError, reason ``bad schema``) saying why."""
    with pytest.raises(SchemaError, match=match) as caught:
        DataTypeSchema.parse(avsc)
    assert isinstance(caught.value, ServingError) and caught.value.reason == "bad schema"


def test_incompatible_schema_is_a_schema_error_with_its_own_reason() -> None:
    """IncompatibleSchema is caught as a SchemaError but reports ``incompatible schema``."""
    assert issubclass(IncompatibleSchema, SchemaError) and IncompatibleSchema("x").reason == "incompatible schema"


def test_array_items_written_as_a_type_object_are_accepted() -> None:
    """``"items": {"type": "double"}`` is valid Avro for an array of doubles."""
    field = {"name": "v", "type": {"type": "array", "items": {"type": "double"}}, "modelserving.length": 2}
    assert DataTypeSchema.parse(record(fields=[field])).field("v").length == 2


def test_a_non_string_id_property_is_a_schema_error() -> None:
    """``"modelserving.id": ["x"]`` names no field: a SchemaError, not a TypeError."""
    with pytest.raises(SchemaError):
        DataTypeSchema.parse(record(**{"modelserving.id": ["x"]}))


def test_duplicate_field_names_are_a_schema_error() -> None:
    """Avro record field names are unique; two ``x`` fields are ambiguous for models reading by name."""
    with pytest.raises(SchemaError):
        DataTypeSchema.parse(record(fields=[{"name": "x", "type": "double"}, {"name": "x", "type": "string"}]))


def test_from_message_reads_the_published_protobuf() -> None:
    """A DataTypeSchema message (built with the generated class) gives its schema, version, id and time."""
    doc = record("sensor", [{"name": "t", "type": "double"}])
    message = SchemaMessage(version="3", avro_schema=json.dumps(doc), data_type="sensor", schema_id=41, created_at=5)
    schema = DataTypeSchema.from_message(message.SerializeToString())
    assert (schema.data_type, schema.version, schema.schema_id, schema.created_at) == ("sensor", "3", 41, 5)
    assert [f.name for f in schema.fields] == ["t"]


def test_to_message_round_trips_through_the_generated_class() -> None:
    """``to_message`` bytes parse (by protoc's class) to the schema's version, id, data type and JSON."""
    doc = record("sensor", [{"name": "t", "type": "double"}])
    schema = DataTypeSchema.parse(doc, version="4", schema_id=12)
    message = SchemaMessage.FromString(schema.to_message(created_at=77))
    assert (message.version, message.schema_id, message.data_type, message.created_at) == ("4", 12, "sensor", 77)
    assert json.loads(message.avro_schema) == doc


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (b"\xff\xff\xff", "not a DataTypeSchema"),
        (SchemaMessage(version="1", data_type="sensor").SerializeToString(), "carries no schema"),
        (SchemaMessage(avro_schema=json.dumps(record("sensor")), data_type="other").SerializeToString(), "'other'"),
    ],
    ids=["garbage", "no-schema", "data-type-mismatch"],
)
def test_from_message_refuses_bad_messages(message: bytes, match: str) -> None:
    """Bytes that are no message, a message without schema, or one naming another data type: SchemaError."""
    with pytest.raises(SchemaError, match=match):
        DataTypeSchema.from_message(message)


def test_registry_keeps_the_current_version_and_every_version_by_id() -> None:
    """``add`` makes a schema current for its data type; older versions stay reachable by schema id."""
    old = DataTypeSchema.parse(record("sensor"), version="1", schema_id=1)
    new = DataTypeSchema.parse(record("sensor", [{"name": "y", "type": "int"}]), version="2", schema_id=2)
    other = DataTypeSchema.parse(record("alpha"), version="1", schema_id=3)
    registry = SchemaRegistry([old, other])
    registry.add(new)
    assert registry.get("sensor") is new and registry.get("alpha") is other and registry.get("nope") is None
    assert registry.data_types() == ["alpha", "sensor"]
    assert registry.by_id(1) is old and registry.by_id(2) is new and registry.by_id(404) is None


class FakeRemote:
    """Stands in for confluent_kafka's SchemaRegistryClient: schemas by id, and the ids asked for."""

    schemas: dict[int, str] = {}
    asked: list[int] = []

    def __init__(self, conf: dict[str, str]) -> None:
        self.conf = conf

    def get_schema(self, schema_id: int) -> types.SimpleNamespace:
        FakeRemote.asked.append(schema_id)
        if schema_id not in self.schemas:
            raise LookupError(f"schema {schema_id} not found")
        return types.SimpleNamespace(schema_str=self.schemas[schema_id])


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeRemote]]:
    """A fake ``confluent_kafka.schema_registry`` module whose client is :class:`FakeRemote`."""
    module = types.ModuleType("confluent_kafka.schema_registry")
    module.SchemaRegistryClient = FakeRemote  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "confluent_kafka.schema_registry", module)
    FakeRemote.schemas, FakeRemote.asked = {}, []
    yield FakeRemote


def test_registry_fetches_an_unknown_id_from_its_url_once(remote: type[FakeRemote]) -> None:
    """With a url, an unknown id is fetched, parsed under that id, and cached; a failed fetch is None."""
    remote.schemas[77] = json.dumps(record("sensor", [{"name": "r", "type": "long"}]))
    registry = SchemaRegistry(url="http://registry:8081")
    fetched = registry.by_id(77)
    assert fetched is not None and fetched.schema_id == 77 and fetched.data_type == "sensor"
    assert registry.by_id(77) is fetched and remote.asked == [77]
    assert registry.by_id(78) is None
    assert registry.get("sensor") is None  # fetched writer schemas do not become current


def test_registry_raises_for_a_remote_schema_it_cannot_serve(remote: type[FakeRemote]) -> None:
    """A registered schema with an unservable field is a SchemaError, not a silent None."""
    remote.schemas[5] = json.dumps(record("sensor", [{"name": "b", "type": "bytes"}]))
    with pytest.raises(SchemaError, match="'b'"):
        SchemaRegistry(url="http://registry:8081").by_id(5)
