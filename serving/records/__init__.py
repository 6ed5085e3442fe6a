"""Records of any data type: schemas as data, wire formats, the feature matrix models read.

* :mod:`serving.records.schema`: a data type's Avro schema and the registry of known ones;
* :mod:`serving.records.wire`: JSON, Confluent-framed Avro and protobuf records, checked against their schema;
* :mod:`serving.records.features`: records to the feature matrix, and a schema's probe row;
* :mod:`serving.records.wine`: the bundled example (``serving/reference/wine.avsc``) and the legacy ``WineRecord``.

Generic code asks a :class:`~serving.records.schema.SchemaRegistry` for a
data type's schema and never names wine. :func:`builtin_registry` holds the
bundled schemas; a data type without a schema whose records are protobuf is
read as a ``WineRecord`` (:func:`legacy_schema`), as every data type was
before schemas existed.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from importlib import resources

from serving.records.schema import DataTypeSchema, SchemaRegistry

#: The data type commands use when none is given: the bundled example.
DEFAULT_DATA_TYPE = "wine"


@functools.cache
def bundled_schemas() -> tuple[DataTypeSchema, ...]:
    """The schemas shipped with the package (``serving/reference/*.avsc``)."""
    folder = resources.files("serving") / "reference"
    return tuple(
        DataTypeSchema.parse(entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".avsc")
    )


def builtin_registry() -> SchemaRegistry:
    """A registry that knows the bundled schemas."""
    return SchemaRegistry(bundled_schemas())


def legacy_schema(data_type: str) -> DataTypeSchema:
    """The schema of ``data_type`` records sent as ``WineRecord`` protobufs without a schema of their own."""
    wine = next(s for s in bundled_schemas() if s.data_type == DEFAULT_DATA_TYPE)
    return wine if data_type == wine.data_type else replace(wine, data_type=data_type)


def schema_for(registry: SchemaRegistry, data_type: str) -> DataTypeSchema:
    """``data_type``'s schema in ``registry``, else the legacy (WineRecord) one."""
    return registry.get(data_type) or legacy_schema(data_type)
