"""Builders and fakes for testing serving code and the Flink functions on it, shipped like ``bytewax.testing``.

Builders make the messages producers publish: wine records and model
descriptors of the reference models, with chosen ids, times and versions.
Fakes stand in for the parts of PyFlink's runtime a serving function
touches (keyed state, timer services, metric groups, the runtime context),
so its logic runs in a unit test without a cluster. Nothing here imports
pyflink; a fake context takes the ``TimeDomain`` value a test hands it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

from serving.formats import descriptor_from_path
from serving.records import bundled_schemas, wine
from serving.records.schema import DataTypeSchema
from serving.records.wine import encode_record

#: Event time of the first record a builder makes: record i of a stream has ts ``T0 + i``.
T0 = 1_700_000_000_000
#: Reference models by short name: their file and format.
REFERENCE_MODELS: dict[str, tuple[Path, str]] = {
    "linear": (wine.reference_dir() / "models" / "winequalityLinearRegression.pmml", "pmml"),
    "tree": (wine.reference_dir() / "models" / "winequalityDecisionTreeClassification.pmml", "pmml"),
    "forest": (wine.reference_dir() / "models" / "winequalityRandonForrestClassification.pmml", "pmml"),
    "tf": (wine.reference_dir() / "models" / "optimized_WineQuality.pb", "tensorflow"),
    "tf_saved": (wine.reference_dir() / "models" / "wine_savedmodel", "tensorflow_saved"),
}


def wine_records(features, data_type: str = "wine", prefix: str = "", t0: int = T0) -> list[bytes]:
    """WineRecord bytes for feature rows; ids are ``prefix + row number``, ts ``t0 + row``."""
    return [encode_record(f"{prefix}{i}", row, ts=t0 + i, data_type=data_type) for i, row in enumerate(features)]


def model_message(kind: str, version: str, created_at: int, data_type: str = "wine", name: str | None = None) -> bytes:
    """A reference model (a key of :data:`REFERENCE_MODELS`) as a published ModelDescriptor."""
    path, fmt = REFERENCE_MODELS[kind]
    descriptor = descriptor_from_path(path, fmt, version=version, data_type=data_type, name=name or kind)
    descriptor.created_at = created_at
    return descriptor.SerializeToString()


def corrupt_model_message(version: str, created_at: int) -> bytes:
    """A well-formed descriptor whose PMML artifact is cut in half: it must fail to load."""
    path, fmt = REFERENCE_MODELS["linear"]
    descriptor = descriptor_from_path(path, fmt, version=version, name="corrupt")
    descriptor.data = descriptor.data[: len(descriptor.data) // 2]
    descriptor.sha256 = ""
    descriptor.created_at = created_at
    return descriptor.SerializeToString()


#: A data type naming its id and timestamp fields, with one field of each kind the schemas support.
SENSOR_DOC = {
    "type": "record",
    "name": "sensor",
    "modelserving.id": "key",
    "modelserving.timestamp": "at",
    "fields": [
        {"name": "key", "type": "string"},
        {"name": "at", "type": "long"},
        {"name": "temp", "type": "double"},
        {"name": "count", "type": "int"},
        {"name": "ok", "type": "boolean"},
        {"name": "label", "type": ["null", "string"]},
        {"name": "spectrum", "type": {"type": "array", "items": "double"}, "modelserving.length": 3},
    ],
}


def sensor_schema() -> DataTypeSchema:
    """:data:`SENSOR_DOC` as a schema (version 1, registry id 42)."""
    return DataTypeSchema.parse(SENSOR_DOC, version="1", schema_id=42)


def wine_shaped_schema(data_type: str) -> DataTypeSchema:
    """A schema with the wine record's fields (WineRecord protobufs) under another data type's name."""
    wine_schema = next(s for s in bundled_schemas() if s.data_type == wine.DATA_TYPE)
    document = json.loads(wine_schema.avsc)
    document["name"] = data_type.replace("-", "_").replace(".", "_")
    document["modelserving.data_type"] = data_type
    return DataTypeSchema.parse(document)


def routed_row(
    payload: bytes, data_type: str = "", ts: int = -(2**63), *, topic: str = "", offset: int = 0, record_id: str = ""
):
    """A record as the JVM routing hands it to a serving function (``RECORD_ROW``)."""
    return SimpleNamespace(
        data_type=data_type,
        id=record_id,
        ts=ts,
        payload=payload,
        topic=topic,
        partition=0,
        offset=offset,
        kafka_ts=-(2**63),
    )


def record_batch(*rows, late: Sequence[bool] = ()) -> bytes:
    """Routed rows (:func:`routed_row`) as the ``RecordBatch`` bytes the JVM's bundler hands a serving function.

    ``late`` marks, row by row, which were behind the watermark on arrival.
    """
    from serving.pb.record_batch_pb2 import BatchedRecord, RecordBatch

    flags = list(late) + [False] * (len(rows) - len(late))
    fields = ("data_type", "id", "ts", "payload", "topic", "partition", "offset", "kafka_ts")
    records = [BatchedRecord(late=flag, **{f: getattr(row, f) for f in fields}) for row, flag in zip(rows, flags)]
    return RecordBatch(records=records).SerializeToString()


def results_in(outputs) -> list[bytes]:
    """The results among a serving function's outputs: the ``ResultBatch`` elements, opened."""
    from serving.pb.record_batch_pb2 import ResultBatch

    return [r for out in outputs if not isinstance(out, tuple) for r in ResultBatch.FromString(out).results]


# --------------------------------------------------------------------------- keyed state


class FakeValueState:
    """A ``ValueState`` in memory."""

    def __init__(self, value=None) -> None:
        self._value = value

    def value(self):
        """The value, or None."""
        return self._value

    def update(self, value) -> None:
        """Replace the value."""
        self._value = value

    def clear(self) -> None:
        """Forget the value."""
        self._value = None


class FakeListState:
    """A ``ListState`` in memory; counts whole rewrites (``update``), the cost buffers try to avoid."""

    def __init__(self, items: Sequence[bytes] = ()) -> None:
        self.items = list(items)
        self.rewrites = 0

    def get(self) -> list[bytes]:
        """A copy of the list."""
        return list(self.items)

    def add(self, item: bytes) -> None:
        """Append one item."""
        self.items.append(item)

    def update(self, items: Sequence[bytes]) -> None:
        """Replace the whole list."""
        self.items = list(items)
        self.rewrites += 1

    def clear(self) -> None:
        """Empty the list."""
        self.items = []


class FakeMapState:
    """A ``MapState`` (or broadcast state) in memory."""

    def __init__(self) -> None:
        self.items_by_key: dict = {}

    def get(self, key):
        """The value of ``key``, or None."""
        return self.items_by_key.get(key)

    def put(self, key, value) -> None:
        """Set ``key``."""
        self.items_by_key[key] = value

    def remove(self, key) -> None:
        """Drop ``key``."""
        self.items_by_key.pop(key, None)

    def keys(self):
        """The keys."""
        return list(self.items_by_key)

    def values(self):
        """The values."""
        return list(self.items_by_key.values())

    def items(self):
        """The entries."""
        return list(self.items_by_key.items())


# --------------------------------------------------------------------------- metrics


class FakeCounter:
    """A metric counter."""

    def __init__(self) -> None:
        self.count = 0

    def inc(self, n: int = 1) -> None:
        """Add ``n``."""
        self.count += n


class FakeDistribution:
    """A metric distribution: every value it was given."""

    def __init__(self) -> None:
        self.values: list[int] = []

    def update(self, value: int) -> None:
        """Record one value."""
        self.values.append(value)


class FakeMetricGroup:
    """A metric group that records every metric registered under it, by dotted path, in ``registry``."""

    def __init__(self, path: str = "", registry: dict | None = None) -> None:
        self.path, self.registry = path, {} if registry is None else registry

    def add_group(self, name: str, extra: str | None = None) -> FakeMetricGroup:
        """A subgroup sharing the registry."""
        return FakeMetricGroup(f"{self.path}{name}.", self.registry)

    def counter(self, name: str) -> FakeCounter:
        """The counter ``name`` (one per path)."""
        return self.registry.setdefault(self.path + name, FakeCounter())

    def distribution(self, name: str) -> FakeDistribution:
        """The distribution ``name`` (one per path)."""
        return self.registry.setdefault(self.path + name, FakeDistribution())


class FakeRuntimeContext:
    """What a function's ``open`` is given: fresh state per descriptor, metrics, subtask 0."""

    def __init__(self, subtask: int = 0) -> None:
        self.metrics = FakeMetricGroup()
        self.subtask = subtask

    def get_metrics_group(self) -> FakeMetricGroup:
        """The function's metric group."""
        return self.metrics

    def get_state(self, descriptor) -> FakeValueState:
        """A new value state."""
        return FakeValueState()

    def get_list_state(self, descriptor) -> FakeListState:
        """A new list state."""
        return FakeListState()

    def get_map_state(self, descriptor) -> FakeMapState:
        """A new map state."""
        return FakeMapState()

    def get_index_of_this_subtask(self) -> int:
        """This instance's index."""
        return self.subtask


# --------------------------------------------------------------------------- timers and contexts


class FakeTimerService:
    """A timer service: the timers asked for, in order, and a watermark a test sets."""

    def __init__(self, watermark: int = -(2**63)) -> None:
        self.event: list[int] = []
        self.processing: list[int] = []
        self.watermark = watermark

    def register_event_time_timer(self, t: int) -> None:
        """Ask for an event-time timer."""
        self.event.append(t)

    def register_processing_time_timer(self, t: int) -> None:
        """Ask for a processing-time timer."""
        self.processing.append(t)

    def current_watermark(self) -> int:
        """The watermark the test set."""
        return self.watermark


class FakeContext:
    """A process or timer context: the current key, the timer service, the domain of a firing timer."""

    def __init__(self, key: str = "wine", domain=None, watermark: int = -(2**63)) -> None:
        self.key, self.domain, self.timers = key, domain, FakeTimerService(watermark)
        self.broadcast: dict[str, FakeMapState] = {}

    def get_broadcast_state(self, descriptor) -> FakeMapState:
        """The broadcast state of ``descriptor`` (one per descriptor name)."""
        return self.broadcast.setdefault(descriptor.name, FakeMapState())

    def get_current_key(self) -> str:
        """The key being processed."""
        return self.key

    def timer_service(self) -> FakeTimerService:
        """The timers of this context."""
        return self.timers

    def time_domain(self):
        """The domain of the firing timer (what the test passed)."""
        return self.domain
