"""What the benchmark sends: the wine rows as ``WineRecord`` protobufs, or as JSON records of a declared data type.

The JSON data type, ``winejson``, has wine's features and an ``id`` field
but no time field: its event time is the Kafka timestamp. It measures the
generic path (schema lookup, JSON decoding, checks by field) against the
wine fast path with the same model and rows.
"""

from __future__ import annotations

import json
from pathlib import Path

from serving.kafka.settings import KafkaSettings
from serving.records import wine
from serving.records.schema import DataTypeSchema
from serving.records.wine import encode_record

#: The data type of the ``json`` configurations.
JSON_DATA_TYPE = "winejson"


def json_schema() -> DataTypeSchema:
    """Wine's schema as the ``winejson`` data type: an id field, no time field, no protobuf message."""
    document = json.loads((wine.reference_dir() / "wine.avsc").read_text(encoding="utf-8"))
    document = {k: v for k, v in document.items() if k not in ("modelserving.timestamp", "modelserving.protobuf")}
    document["name"] = JSON_DATA_TYPE
    document["fields"] = [f for f in document["fields"] if f["name"] != "ts"]
    return DataTypeSchema.parse(document)


class RecordSource:
    """The records one configuration sends: their topic, data type and bytes (``data_format`` wine or json)."""

    def __init__(self, settings: KafkaSettings, data_format: str) -> None:
        self.rows = wine.read_wine_csv(wine.reference_csv()).features
        self.json = data_format == "json"
        if self.json:
            self.schema = json_schema()
            self.data_type = JSON_DATA_TYPE
            self.topic = settings.data_topic_prefix + JSON_DATA_TYPE
            self._names = [f.name for f in self.schema.features]
        else:
            self.data_type = wine.DATA_TYPE
            self.topic = settings.topics.data

    def encode(self, record_id: str, i: int, ts: int) -> bytes:
        """Record ``i`` (the wine rows, cycled) with ``record_id``, stamped ``ts`` (JSON: the Kafka timestamp)."""
        row = self.rows[i % len(self.rows)]
        if self.json:
            values = {"id": record_id, **{n: float(v) for n, v in zip(self._names, row)}}
            return json.dumps(values, separators=(",", ":")).encode()
        return encode_record(record_id, row, ts=ts)

    def job_args(self, work_dir: Path) -> tuple[str, ...]:
        """Job flags the records need: the JSON data type's schema, in a ``--schemas`` directory."""
        if not self.json:
            return ()
        schemas = work_dir / "schemas"
        schemas.mkdir(parents=True, exist_ok=True)
        (schemas / f"{JSON_DATA_TYPE}.avsc").write_text(self.schema.avsc, encoding="utf-8")
        return ("--schemas", str(schemas))
