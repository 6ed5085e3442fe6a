"""Data types declared as data: an Avro record schema per data type.

A data type's schema is an Avro record schema (``.avsc`` JSON), the format
Schema Registry keeps. Its record ``name`` is the data type. Optional
properties say more:

* ``"modelserving.data_type"``: the data type, when Avro cannot spell it as
  a name (``wine-white``: Avro names have no dashes);
* ``"modelserving.id"``: the field holding the record id (else the Kafka
  coordinates ``topic/partition/offset``, or the row number of a file);
* ``"modelserving.timestamp"``: the field holding the event time in Unix
  epoch milliseconds (else the Kafka record timestamp);
* ``"modelserving.example"``: a record, scored by every model of the data
  type before it is admitted (the probe row);
* ``"modelserving.protobuf"``: ``"WineRecord"`` for the legacy wine message,
  else records in protobuf travel as the generic ``Record``.

Fields may be ``double``, ``float``, ``int``, ``long``, ``boolean``,
``string``, a nullable union of one of those (``["null", "double"]``), or an
``array`` of numbers with a fixed length (``"modelserving.length": N`` on the
field), a tensor-shaped feature. Every field other than the id and the
timestamp is a *feature*; models read features by name, in the columns of
:attr:`DataTypeSchema.columns` (an array field spreads over ``name[0]`` ...).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from serving.errors import ServingError
from serving.pb.data_type_pb2 import DataTypeSchema as SchemaMessage
from serving.records.base import DATA_TYPE_PATTERN

#: Avro primitive types a field may have, and the kind of value each holds.
KINDS = {"double": "number", "float": "number", "int": "integer", "long": "integer", "boolean": "boolean"}
KINDS["string"] = "string"
NUMERIC_KINDS = ("number", "integer", "boolean")


class SchemaError(ServingError):
    """A data-type schema that is not valid Avro, or that the job cannot serve."""

    reason = "bad schema"


class IncompatibleSchema(SchemaError):
    """A new schema version that drops or retypes a field a serving model reads."""

    reason = "incompatible schema"


@dataclass(frozen=True)
class Field:
    """One field of a data type.

    Attributes:
        name: The field name.
        avro_type: ``double``, ``float``, ``int``, ``long``, ``boolean``, ``string`` or ``array``.
        kind: ``number``, ``integer``, ``boolean``, ``string`` or ``array``.
        nullable: Whether the value may be missing (a ``["null", ...]`` union).
        length: For arrays, the number of values.
    """

    name: str
    avro_type: str
    kind: str
    nullable: bool = False
    length: int | None = None

    @property
    def numeric(self) -> bool:
        """Whether a model can read it as a number (booleans as 0 and 1)."""
        return self.kind in NUMERIC_KINDS or self.kind == "array"


@dataclass(frozen=True)
class Column:
    """One column of the feature matrix: a feature field, or one element of an array field."""

    name: str
    kind: str
    field: str
    index: int | None = None


@dataclass(frozen=True)
class DataTypeSchema:
    """A parsed, checked data-type schema. Build it with :meth:`parse` or :meth:`from_message`."""

    data_type: str
    version: str
    schema_id: int
    avsc: str
    fields: tuple[Field, ...]
    id_field: str | None = None
    ts_field: str | None = None
    example: Mapping[str, Any] | None = None
    protobuf: str = "Record"
    created_at: int = 0
    parsed: Any = field(default=None, compare=False, repr=False)

    @property
    def features(self) -> tuple[Field, ...]:
        """The fields models read: all but the id and the timestamp."""
        return tuple(f for f in self.fields if f.name not in (self.id_field, self.ts_field))

    @property
    def columns(self) -> tuple[Column, ...]:
        """The feature matrix's columns, in schema order; an array field spreads over its length."""
        columns: list[Column] = []
        for f in self.features:
            if f.kind == "array":
                columns.extend(Column(f"{f.name}[{i}]", "number", f.name, i) for i in range(f.length or 0))
            else:
                columns.append(Column(f.name, f.kind, f.name))
        return tuple(columns)

    @property
    def numeric(self) -> bool:
        """Whether every feature is numeric: the feature matrix is then float64."""
        return all(f.numeric for f in self.features)

    def field(self, name: str) -> Field | None:
        """The field called ``name``, or None."""
        return next((f for f in self.fields if f.name == name), None)

    @classmethod
    def parse(
        cls, avsc: str | Mapping[str, Any], *, version: str | None = None, schema_id: int | None = None
    ) -> DataTypeSchema:
        """Parse and check an Avro record schema; ``version`` and ``schema_id`` default to digests of it.

        Raises:
            SchemaError: not JSON, not valid Avro, not a record, a bad data type
                name, a field type the job cannot serve, or a property that names
                a missing field.
        """
        import fastavro

        try:
            document = json.loads(avsc) if isinstance(avsc, str) else dict(avsc)
        except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise SchemaError(f"the schema is not JSON: {exc}") from exc
        if not isinstance(document, dict) or document.get("type") != "record":
            raise SchemaError("a data-type schema must be an Avro record schema")
        try:
            parsed = fastavro.parse_schema(document)
        except Exception as exc:  # fastavro raises several kinds for a bad schema
            raise SchemaError(f"not a valid Avro schema: {type(exc).__name__}: {exc}") from exc
        data_type = document.get("modelserving.data_type", document.get("name", ""))
        if not isinstance(data_type, str) or not DATA_TYPE_PATTERN.fullmatch(data_type):
            raise SchemaError(f"the record name {str(data_type)[:80]!r} is no data type (lower case, digits, _ . -)")
        fields = tuple(_field(f) for f in document.get("fields", []))
        if not fields:
            raise SchemaError(f"data type {data_type!r} has no fields")
        names = {f.name for f in fields}
        if len(names) != len(fields):
            twice = sorted({f.name for f in fields if sum(g.name == f.name for g in fields) > 1})
            raise SchemaError(f"data type {data_type!r} names field(s) twice: {', '.join(twice)}")
        id_field, ts_field = document.get("modelserving.id"), document.get("modelserving.timestamp")
        for prop, name in (("modelserving.id", id_field), ("modelserving.timestamp", ts_field)):
            if name is not None and (not isinstance(name, str) or name not in names):
                raise SchemaError(f"data type {data_type!r}: {prop} names {name!r}, which is no field")
        if ts_field is not None and next(f for f in fields if f.name == ts_field).kind != "integer":
            raise SchemaError(f"data type {data_type!r}: the timestamp field {ts_field!r} must be an int or long")
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        schema = cls(
            data_type=data_type,
            version=version or digest[:12],
            schema_id=schema_id if schema_id is not None else int(digest[:8], 16) & 0x7FFFFFFF,
            avsc=canonical,
            fields=fields,
            id_field=id_field,
            ts_field=ts_field,
            example=document.get("modelserving.example"),
            protobuf=document.get("modelserving.protobuf", "Record"),
            parsed=parsed,
        )
        if schema.example is not None:
            _check_example(schema)
        return schema

    @classmethod
    def from_message(cls, payload: bytes) -> DataTypeSchema:
        """A schema as the data-types topic carries it (a ``DataTypeSchema`` protobuf).

        Raises:
            SchemaError: the bytes are no such message, or its schema is bad.
        """
        message = SchemaMessage()
        try:
            message.ParseFromString(bytes(payload))
        except Exception as exc:
            raise SchemaError(f"not a DataTypeSchema message: {exc}") from exc
        if not message.avro_schema:
            raise SchemaError("the DataTypeSchema message carries no schema")
        schema = cls.parse(message.avro_schema, version=message.version or None, schema_id=message.schema_id or None)
        if message.data_type and message.data_type != schema.data_type:
            raise SchemaError(f"the message says data type {message.data_type!r}, its schema {schema.data_type!r}")
        return _with(schema, created_at=message.created_at)

    def to_message(self, created_at: int = 0) -> bytes:
        """The ``DataTypeSchema`` protobuf bytes of this schema, to publish or to keep in state."""
        return SchemaMessage(
            version=self.version,
            avro_schema=self.avsc,
            data_type=self.data_type,
            schema_id=self.schema_id,
            created_at=created_at or self.created_at,
        ).SerializeToString()


def _check_example(schema: DataTypeSchema) -> None:
    """Raise :class:`SchemaError` unless the example is a record whose values fit their fields."""
    from serving.errors import InputError
    from serving.records.wire import check_values  # wire builds on this module

    if not isinstance(schema.example, dict):
        raise SchemaError(f"data type {schema.data_type!r}: modelserving.example must be a record (an object)")
    present = {f.name for f in schema.features if f.name in schema.example}
    fields = [f for f in schema.features if f.name in present]
    try:
        check_values(schema.example, _with(schema, fields=tuple(fields)))
    except InputError as exc:
        raise SchemaError(f"data type {schema.data_type!r}: modelserving.example does not fit: {exc}") from exc


def _with(schema: DataTypeSchema, **changes: Any) -> DataTypeSchema:
    from dataclasses import replace

    return replace(schema, **changes)


def _field(spec: Mapping[str, Any]) -> Field:
    name, avro_type = spec["name"], spec["type"]
    nullable = False
    if isinstance(avro_type, list):
        others = [t for t in avro_type if t != "null"]
        if len(others) != 1 or len(avro_type) != 2:
            raise SchemaError(f"field {name!r}: only a union of null and one type is served, got {avro_type}")
        nullable, avro_type = True, others[0]
    if isinstance(avro_type, dict) and avro_type.get("type") == "array":
        items = avro_type.get("items")
        if isinstance(items, dict):  # {"type": "double"} is Avro for "double"
            items = items.get("type")
        if not isinstance(items, str) or KINDS.get(items) not in ("number", "integer"):
            raise SchemaError(f"field {name!r}: an array must hold numbers, not {items!r}")
        length = spec.get("modelserving.length", avro_type.get("modelserving.length"))
        if not isinstance(length, int) or length < 1:
            raise SchemaError(f'field {name!r}: an array needs its length as "modelserving.length": N')
        return Field(name, "array", "array", nullable, length)
    if isinstance(avro_type, dict):
        avro_type = avro_type.get("type")
    if avro_type not in KINDS:
        raise SchemaError(f"field {name!r} has type {avro_type!r}, which the job cannot serve")
    return Field(name, avro_type, KINDS[avro_type], nullable)


class SchemaRegistry:
    """The schemas a job (or a command) knows: the current one per data type, every version by schema id.

    ``url``: a Confluent Schema Registry, asked for ids no known schema has
    (Avro records whose writer schema was registered there).
    """

    def __init__(self, schemas: Iterable[DataTypeSchema] = (), url: str | None = None) -> None:
        self._current: dict[str, DataTypeSchema] = {}
        self._by_id: dict[int, DataTypeSchema] = {}
        self.url = url
        self._remote = None
        for schema in schemas:
            self.add(schema)

    def add(self, schema: DataTypeSchema) -> None:
        """Make ``schema`` the current version of its data type (and known by its id)."""
        self._current[schema.data_type] = schema
        self._by_id[schema.schema_id] = schema

    def get(self, data_type: str) -> DataTypeSchema | None:
        """The current schema of ``data_type``, or None."""
        return self._current.get(data_type)

    def data_types(self) -> list[str]:
        """Every data type with a schema, sorted."""
        return sorted(self._current)

    def by_id(self, schema_id: int) -> DataTypeSchema | None:
        """The schema with ``schema_id``: a known one, else one fetched from ``url`` (cached), else None."""
        found = self._by_id.get(schema_id)
        if found is None and self.url:
            found = self._fetch(schema_id)
            if found is not None:
                self._by_id[schema_id] = found
        return found

    def _fetch(self, schema_id: int) -> DataTypeSchema | None:
        try:
            if self._remote is None:
                from confluent_kafka.schema_registry import SchemaRegistryClient

                self._remote = SchemaRegistryClient({"url": self.url})
            remote = self._remote.get_schema(schema_id)
            return DataTypeSchema.parse(remote.schema_str, schema_id=schema_id)
        except SchemaError:
            raise
        except Exception:  # unknown id, registry down: the record is dead-lettered with the id
            return None
