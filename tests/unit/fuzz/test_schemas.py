"""Data-type schemas, broken every way: only ``SchemaError`` leaves the parsers, admission only rejects.

Decoders: ``DataTypeSchema.parse`` (Avro schema JSON, or a document),
``DataTypeSchema.from_message`` (the data-types topic's protobuf) and
``serving.core.schemas.admit_schema``, which answers every message with a
``SchemaAdmission``: garbage is rejected with a dead letter, never raised.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.core.admission import ModelCache
from serving.core.schemas import SchemaAdmission, admit_schema
from serving.pb.data_type_pb2 import DataTypeSchema as SchemaMessage
from serving.pb.model_event_pb2 import ModelEvent
from serving.records.schema import DataTypeSchema
from serving.settings import ServingOptions
from serving.testing import SENSOR_DOC, T0, model_message
from tests.unit.fuzz.mutations import doubles, exhaustive, expect_typed, fuzz_settings, mutated
from tests.unit.fuzz.seeds import BARE_DOC, SENSOR, WINE, check_dead_letter, check_field

OPTIONS = ServingOptions(dead_letter_max_payload_bytes=256)
AVSC_SEEDS = [WINE.avsc, json.dumps(SENSOR_DOC), json.dumps(BARE_DOC)]
MESSAGE_SEEDS = [WINE.to_message(created_at=T0), SENSOR.to_message(created_at=T0)]

#: Any JSON value, NaN and the infinities included (Python's json reads and writes them).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | doubles | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
PRIMITIVES = ["double", "float", "int", "long", "boolean", "string", "null", "bytes", "enum", "array", "record"]
names = st.sampled_from(PRIMITIVES)
#: Avro field types, valid and not: names, unions, arrays, maps, type objects nested in type objects, junk.
avro_types = st.one_of(
    names,
    st.lists(names, max_size=3),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["array", "map", "double", "enum", "record"])},
        optional={
            "items": names | st.fixed_dictionaries({"type": names}) | json_values,
            "values": names,
            "symbols": json_values,
            "modelserving.length": st.integers(-1, 3) | json_values,
        },
    ),
    st.fixed_dictionaries({"type": st.fixed_dictionaries({"type": names}) | st.lists(names, max_size=2)}),
    json_values,
)
fields = st.fixed_dictionaries(
    {"name": st.sampled_from(["x", "y", "key", "at", "x"]) | st.text(max_size=4), "type": avro_types},
    optional={"modelserving.length": st.integers(-2, 4) | json_values, "default": json_values},
)
documents = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["record"] * 7 + ["enum"]),
        "name": st.sampled_from(["sensor", "sensor", "Bad", "a-b"]),
        "fields": st.lists(fields, max_size=4),
    },
    optional={
        "modelserving.data_type": st.sampled_from(["sensor", "wine-white", "UPPER", ""]) | json_values,
        "modelserving.id": st.sampled_from(["x", "key", "nosuch"]) | json_values,
        "modelserving.timestamp": st.sampled_from(["at", "y", "nosuch"]) | json_values,
        "modelserving.example": st.dictionaries(st.sampled_from(["x", "y", "at"]), json_values) | json_values,
        "modelserving.protobuf": st.sampled_from(["WineRecord", "Record"]) | json_values,
        "namespace": st.text(max_size=6),
    },
)


def check_schema(schema: Any) -> None:
    """A schema that parsed is servable: a data type, named fields once each, an example that fits."""
    if not isinstance(schema, DataTypeSchema):
        return
    names = [f.name for f in schema.fields]
    assert schema.data_type and names and len(set(names)) == len(names)
    assert all(f.kind in ("number", "integer", "boolean", "string", "array") for f in schema.fields)
    for f in schema.fields:
        if f.kind == "array":
            assert isinstance(f.length, int) and f.length >= 1
    if schema.example is not None:
        for f in schema.features:
            if f.name in schema.example:
                value = schema.example[f.name]
                check_field(float(value) if f.kind == "number" else value, f)


def check_schema_admission(admission: SchemaAdmission, payload: bytes) -> None:
    """An answer, never an exception: accepted or a duplicate with a schema, or rejected with a dead letter."""
    assert isinstance(admission, SchemaAdmission) and admission.event.subject == "schema"
    if admission.event.kind in (ModelEvent.ACCEPTED, ModelEvent.DUPLICATE):
        assert admission.schema is not None and admission.dead_letter is None
        return
    assert admission.event.kind == ModelEvent.REJECTED and admission.event.reason
    check_dead_letter(admission.dead_letter, payload, OPTIONS.dead_letter_max_payload_bytes)


@fuzz_settings(300)
@given(text=mutated(st.sampled_from([s.encode() for s in AVSC_SEEDS])).map(lambda b: b.decode("utf-8", "replace")))
def test_mutated_schema_json_parses_or_is_a_schema_error(text: str):
    """Avro schema JSON cut, flipped and spliced: a servable schema, or a ``ServingError``."""
    check_schema(expect_typed(DataTypeSchema.parse, text))


@fuzz_settings(250)
@given(document=documents, as_text=st.booleans())
def test_a_generated_schema_document_parses_or_is_a_schema_error(document: dict, as_text: bool):
    """Documents with every kind of field type (nested, unions, junk) and property values: never an untyped error."""
    avsc = json.dumps(document) if as_text else document
    check_schema(expect_typed(DataTypeSchema.parse, avsc))


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"type": "record", "fields": ' + "[" * 100_000, '{"a":' * 100_000, "", " ", "null", "1e999"],
    ids=["deep-array", "deep-fields", "deep-object", "empty", "blank", "null", "inf"],
)
def test_schema_json_nested_too_deep_or_empty_is_a_schema_error(text: str):
    """JSON nested past Python's recursion limit (``json`` raises ``RecursionError``) or no document: a typed error."""
    assert isinstance(expect_typed(DataTypeSchema.parse, text), Exception)


def test_every_truncation_and_single_bit_flip_of_a_schema_message_is_a_schema_or_a_schema_error():
    """All prefixes and one-bit flips of a data-types message."""
    for payload in exhaustive(SENSOR.to_message(created_at=T0)):
        check_schema(expect_typed(DataTypeSchema.from_message, payload))


@fuzz_settings(300)
@given(mutated(st.sampled_from(MESSAGE_SEEDS), SchemaMessage.DESCRIPTOR))
def test_a_mutated_schema_message_is_a_schema_or_a_schema_error(payload: bytes):
    """Mutated data-types messages (huge lengths, over-long varints, wrong wire types ...)."""
    check_schema(expect_typed(DataTypeSchema.from_message, payload))


@pytest.fixture(scope="module")
def linear():
    cache = ModelCache()
    admission = cache.admit(model_message("linear", "1", T0), WINE)
    assert admission.accepted
    yield admission.model
    cache.close()


@fuzz_settings(200)
@given(
    data=st.data(),
    current=st.sampled_from([None, WINE, SENSOR]),
    keyed=st.sampled_from(["", "wine", "sensor", "other"]),
    with_model=st.booleans(),
)
def test_admit_schema_answers_every_message_and_never_raises(linear, data, current, keyed, with_model):
    """Mutated messages, and messages whose schema text is mutated or generated, through the admission rule."""
    text = data.draw(
        st.one_of(
            mutated(st.sampled_from([s.encode() for s in AVSC_SEEDS])).map(lambda b: b.decode("utf-8", "replace")),
            documents.map(json.dumps),
        )
    )
    crafted = SchemaMessage(version="v", avro_schema=text, data_type=keyed, created_at=T0).SerializeToString()
    payload = data.draw(st.one_of(st.just(crafted), mutated(st.sampled_from(MESSAGE_SEEDS), SchemaMessage.DESCRIPTOR)))
    models = [linear] if with_model else []
    try:
        admission = admit_schema(payload, current, models, OPTIONS, keyed)
    except Exception as exc:
        pytest.fail(f"admit_schema raised {type(exc).__name__}: {exc}")
    check_schema_admission(admission, payload)
