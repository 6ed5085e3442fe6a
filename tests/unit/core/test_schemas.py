"""Admitting a data type's schema while models serve: new, compatible, incompatible, duplicate, malformed.

And the model side: a model is admitted only against its data type's schema, reading fields it has.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from serving.core.admission import ModelCache
from serving.core.model import Model
from serving.core.schemas import SUBJECT, admit_schema
from serving.pb.data_type_pb2 import DataTypeSchema as SchemaMessage
from serving.pb.model_event_pb2 import ModelEvent
from serving.records import builtin_registry
from serving.records.schema import DataTypeSchema
from serving.settings import ServingOptions
from serving.testing import wine_shaped_schema
from tests.support.reference import PMML_LINEAR
from tests.unit.core.test_admission import payload

#: The bundled wine schema; the linear reference model reads six of its fields, alcohol among them.
WINE = builtin_registry().get("wine")
OPTIONS = ServingOptions()


def wine_doc() -> dict[str, Any]:
    """A fresh copy of the wine schema document (serving/reference/wine.avsc)."""
    return json.loads(WINE.avsc)


def message(doc: dict[str, Any], version: str, data_type: str = "wine") -> bytes:
    """A DataTypeSchema message as ``modelserving publish schema`` would send it, built with protoc's class."""
    return SchemaMessage(version=version, avro_schema=json.dumps(doc), data_type=data_type).SerializeToString()


def without(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """``doc`` with field ``name`` dropped (and from the example)."""
    example = {k: v for k, v in doc["modelserving.example"].items() if k != name}
    return {**doc, "fields": [f for f in doc["fields"] if f["name"] != name], "modelserving.example": example}


def retyped(doc: dict[str, Any], name: str, avro_type: Any) -> dict[str, Any]:
    """``doc`` with field ``name`` of ``avro_type`` (and left out of the example, whose value no longer fits)."""
    example = {k: v for k, v in doc["modelserving.example"].items() if k != name}
    fields = [{**f, "type": avro_type} if f["name"] == name else f for f in doc["fields"]]
    return {**doc, "fields": fields, "modelserving.example": example}


@pytest.fixture
def linear() -> Model:
    """The linear reference model, admitted against the wine schema (it reads alcohol, not citric_acid)."""
    admitted = ModelCache().admit(payload(PMML_LINEAR, "1"), WINE)
    assert admitted.accepted
    return admitted.model


def test_a_schema_for_a_new_data_type_is_accepted() -> None:
    """No current schema and no models: a valid schema is accepted, reported as a schema event."""
    doc = {"type": "record", "name": "sensor", "fields": [{"name": "temp", "type": "double"}]}
    outcome = admit_schema(message(doc, "1", "sensor"), None, [], OPTIONS, "sensor")
    assert outcome.accepted and outcome.dead_letter is None
    assert outcome.schema.data_type == "sensor" and outcome.schema.version == "1"
    assert [f.name for f in outcome.schema.fields] == ["temp"]
    event = outcome.event
    assert (event.subject, event.name, event.data_type, event.version, event.previous_version) == (
        SUBJECT,
        "sensor",
        "sensor",
        "1",
        "",
    )
    assert SUBJECT == "schema"


def test_a_compatible_version_is_accepted_while_a_model_serves(linear: Model) -> None:
    """Adding a nullable field and dropping one the model does not read keep the model working."""
    doc = without(wine_doc(), "citric_acid")
    doc["fields"].append({"name": "vintage", "type": ["null", "int"]})
    outcome = admit_schema(message(doc, "2"), WINE, [linear], OPTIONS, "wine")
    assert outcome.accepted, outcome.event.reason
    assert outcome.schema.version == "2" and outcome.event.previous_version == WINE.version
    assert outcome.schema.field("vintage").nullable and outcome.schema.field("citric_acid") is None


@pytest.mark.parametrize(
    "doc",
    [without(wine_doc(), "alcohol"), retyped(wine_doc(), "alcohol", "string")],
    ids=["drops-alcohol", "alcohol-becomes-string"],
)
def test_a_version_breaking_a_serving_model_is_rejected_and_the_old_one_kept(
    linear: Model, doc: dict[str, Any]
) -> None:
    """Dropping or retyping a field the serving model reads is rejected, naming the field; no new schema."""
    sent = message(doc, "2")
    outcome = admit_schema(sent, WINE, [linear], OPTIONS, "wine")
    assert not outcome.accepted and outcome.schema is None
    event = outcome.event
    assert event.kind == ModelEvent.REJECTED and event.reason.startswith("incompatible schema: ")
    assert "alcohol" in event.reason and event.previous_version == WINE.version and event.version == "2"
    letter = outcome.dead_letter
    assert letter.source == "schema" and letter.reason == "incompatible schema" and letter.payload == sent


def test_the_same_breaking_version_is_accepted_when_no_model_reads_the_field() -> None:
    """Compatibility is about the models serving: with none, dropping alcohol is fine."""
    outcome = admit_schema(message(without(wine_doc(), "alcohol"), "2"), WINE, [], OPTIONS, "wine")
    assert outcome.accepted and outcome.schema.field("alcohol") is None


def test_a_replayed_schema_is_a_duplicate_and_keeps_the_current_one(linear: Model) -> None:
    """The same version and schema as the current one is ignored (a replay of the compacted topic)."""
    current = DataTypeSchema.parse(wine_doc(), version="5")
    outcome = admit_schema(message(wine_doc(), "5"), current, [linear], OPTIONS, "wine")
    assert outcome.event.kind == ModelEvent.DUPLICATE and not outcome.accepted
    assert outcome.schema is current and outcome.dead_letter is None


@pytest.mark.parametrize(
    ("sent", "keyed", "match"),
    [
        (b"\xff\x00garbage", "wine", "bad schema: not a DataTypeSchema"),
        (message({"type": "record", "name": "wine", "fields": [{"name": "b", "type": "bytes"}]}, "2"), "", "'b'"),
        (message(wine_doc(), "2"), "beer", "keyed 'beer'"),
    ],
    ids=["not-a-message", "unservable-field", "keyed-by-another-data-type"],
)
def test_a_malformed_schema_is_rejected_with_a_dead_letter(sent: bytes, keyed: str, match: str) -> None:
    """Undecodable, unservable or mis-keyed schema messages are rejected; their bytes go to the dead letters."""
    outcome = admit_schema(sent, WINE, [], OPTIONS, keyed)
    assert outcome.event.kind == ModelEvent.REJECTED and outcome.schema is None
    assert match in outcome.event.reason
    assert outcome.dead_letter.source == "schema" and outcome.dead_letter.payload == sent


def test_a_schema_whose_example_does_not_fit_its_fields_is_rejected() -> None:
    """The example is the probe row every model scores; a string for a double must not get in."""
    doc = wine_doc()
    doc["modelserving.example"]["alcohol"] = "high"
    outcome = admit_schema(message(doc, "2"), WINE, [], OPTIONS, "wine")
    assert outcome.event.kind == ModelEvent.REJECTED


def test_a_probe_row_that_cannot_be_built_rejects_the_model_rather_than_crashing_admission() -> None:
    """A probe the model cannot take is a rejected model (a dead letter), not an exception out of admit.

    ``parse`` refuses such examples; this one is put in by hand, as a schema
    restored from an older job's state might carry it.
    """
    parsed = DataTypeSchema.parse(wine_doc())
    bad = dataclasses.replace(parsed, example={**parsed.example, "alcohol": "high"})
    outcome = ModelCache().admit(payload(PMML_LINEAR, "1"), bad)
    assert outcome.event.kind == ModelEvent.REJECTED and "probe" in outcome.event.reason


def test_a_model_of_a_data_type_without_schema_is_rejected() -> None:
    """ModelCache.admit with no schema for the data type rejects with reason ``no schema``."""
    outcome = ModelCache().admit(payload(PMML_LINEAR, "1", data_type="beer"), None)
    assert outcome.event.kind == ModelEvent.REJECTED and outcome.event.reason.startswith("no schema: ")
    assert "'beer'" in outcome.event.reason and outcome.dead_letter.data_type == "beer"


def test_a_model_reading_a_field_its_schema_lacks_is_rejected_naming_it() -> None:
    """A wine-shaped data type without alcohol cannot serve the linear model: the reason names alcohol."""
    shaped = json.loads(wine_shaped_schema("wine-lite").avsc)
    lite = DataTypeSchema.parse(without(shaped, "alcohol"))
    outcome = ModelCache().admit(payload(PMML_LINEAR, "1", data_type="wine-lite"), lite)
    assert outcome.event.kind == ModelEvent.REJECTED
    assert outcome.event.reason.startswith("model schema mismatch: ") and "alcohol" in outcome.event.reason


def test_a_model_is_admitted_against_a_wine_shaped_schema_of_another_data_type() -> None:
    """Any data type with the fields a model reads serves it; the model is bound to that schema's version."""
    white = wine_shaped_schema("wine-white")
    assert white.data_type == "wine-white"
    outcome = ModelCache().admit(payload(PMML_LINEAR, "1", data_type="wine-white"), white)
    assert outcome.accepted and outcome.model.data_type == "wine-white"
    assert outcome.model.schema_version == white.version


def test_a_version_label_reused_for_another_schema_is_rejected() -> None:
    """Two schemas under one version would make results' schema versions ambiguous: the second is refused."""
    current = DataTypeSchema.parse(wine_doc(), version="5")
    changed = {**wine_doc(), "fields": [*wine_doc()["fields"], {"name": "vintage", "type": ["null", "int"]}]}
    outcome = admit_schema(message(changed, "5"), current, [], OPTIONS, "wine")
    assert outcome.event.kind == ModelEvent.REJECTED and "already names another schema" in outcome.event.reason
