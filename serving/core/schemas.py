"""Admitting a data type's schema, published while jobs run.

The rule (:func:`admit_schema`), applied when a schema message arrives:

1. Decode it: bytes that are no ``DataTypeSchema``, or a schema that is not
   valid Avro or not servable, are **rejected**.
2. The same version as the current one is a **duplicate** and is ignored.
3. A new version must still serve every model of its data type: a field a
   serving (or pending) model reads may not be dropped or retyped. If one is,
   the schema is **rejected**, naming the fields, and the old one stays.
4. Otherwise it is **accepted** and decodes the data type's records from now on.

Every outcome is a ``ModelEvent`` whose ``subject`` is ``schema``; a
rejection is also a dead letter with the original bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from serving.clock import now_ms
from serving.codecs.outputs import dead_letter
from serving.core.admission import schema_problems
from serving.core.model import Model
from serving.pb.data_type_pb2 import DataTypeSchema as SchemaMessage
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.records.schema import DataTypeSchema, IncompatibleSchema, SchemaError
from serving.settings import ServingOptions

SUBJECT = "schema"


@dataclass
class SchemaAdmission:
    """The outcome of :func:`admit_schema`."""

    event: ModelEvent
    schema: DataTypeSchema | None = None
    dead_letter: DeadLetter | None = None

    @property
    def accepted(self) -> bool:
        """Whether the schema was accepted."""
        return self.event.kind == ModelEvent.ACCEPTED


def admit_schema(
    payload: bytes,
    current: DataTypeSchema | None,
    models: Iterable[Model],
    options: ServingOptions,
    data_type: str = "",
) -> SchemaAdmission:
    """Apply the schema admission rule to schema message bytes; see the module docstring.

    ``current`` is the data type's schema now (None: a new data type);
    ``models`` those serving or pending for it; ``data_type`` what the
    routing keyed the message by (checked against the schema when given).
    """
    event = ModelEvent(ts=now_ms(), subject=SUBJECT, previous_version=current.version if current else "")
    # What the message says it is, so a rejection names the version the publisher gave it.
    event.data_type, event.version = _claimed(payload, data_type)
    event.name = event.data_type
    try:
        schema = DataTypeSchema.from_message(payload)
        event.name, event.version, event.data_type = schema.data_type, schema.version, schema.data_type
        if data_type and data_type != schema.data_type:
            raise SchemaError(f"the message is keyed {data_type!r}, its schema is data type {schema.data_type!r}")
        if current is not None and current.version == schema.version:
            if current.avsc != schema.avsc:
                raise SchemaError(f"version {schema.version!r} of {schema.data_type!r} already names another schema")
            event.kind, event.reason = ModelEvent.DUPLICATE, "same version and schema as the current one"
            return SchemaAdmission(event, schema=current)
        problems = [p for model in models for p in schema_problems(model, schema)]
        if problems:
            raise IncompatibleSchema(
                f"schema {schema.data_type}:{schema.version} would break serving models: {'; '.join(problems)}"
            )
    except SchemaError as exc:
        event.kind, event.reason = ModelEvent.REJECTED, f"{exc.reason}: {exc}"
        letter = dead_letter(
            "schema",
            exc.reason,
            str(exc),
            payload,
            data_type=event.data_type or data_type,
            record_id=event.version,
            max_payload_bytes=options.dead_letter_max_payload_bytes,
        )
        return SchemaAdmission(event, dead_letter=letter)
    event.kind = ModelEvent.ACCEPTED
    return SchemaAdmission(event, schema=schema)


def _claimed(payload: bytes, keyed_as: str) -> tuple[str, str]:
    """The data type and version a schema message claims (the key when it says none); empty when unreadable."""
    message = SchemaMessage()
    try:
        message.ParseFromString(bytes(payload))
    except Exception:  # not even a DataTypeSchema message: the rejection says so
        return keyed_as, ""
    return message.data_type or keyed_as, message.version
