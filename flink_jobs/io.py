"""Sources and sinks: the only module that touches connectors.

A job reads two streams of raw bytes (data records and model messages) and
writes four (results, stats, dead letters, model events). ``JobIO``
implementations decide where they come from and go to.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from pyflink.common import Duration, Row, Types, WatermarkStrategy
from pyflink.common.serialization import ByteArraySchema, DeserializationSchema, Encoder
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.file_system import (
    FileSink,
    FileSource,
    OutputFileConfig,
    RollingPolicy,
    StreamFormat,
)
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetResetStrategy,
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)

from flink_jobs.tags import BYTES
from serving.codecs.outputs import dead_letter_to_json, model_event_to_json, result_to_json
from serving.core.stats import ModelServingStats
from serving.kafka.settings import KafkaSettings
from serving.observability.messages import event_key, stats_key
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.model_stats_pb2 import ModelStats
from serving.pb.serving_result_pb2 import ServingResult

#: The four outputs every job writes.
OUTPUTS = ("results", "stats", "dead-letters", "model-events")


class JobIO(Protocol):
    """Where a job's bytes come from and go to."""

    def data_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """Raw WineRecord bytes."""

    def model_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """Raw ModelDescriptor bytes."""

    def sink(self, output: str, stream: DataStream) -> None:
        """Write one of ``OUTPUTS`` (a stream of serialized protobufs)."""


def to_json_line(output: str, payload: bytes) -> str:
    """A JSON line for one serialized message of ``output``."""
    payload = bytes(payload)
    if output == "results":
        return result_to_json(ServingResult.FromString(payload))
    if output == "dead-letters":
        return dead_letter_to_json(DeadLetter.FromString(payload))
    if output == "model-events":
        return model_event_to_json(ModelEvent.FromString(payload))
    message = ModelStats.FromString(payload)
    return json.dumps({**ModelServingStats.from_proto(message).to_dict(), "emitted_at": message.emitted_at})


class _JsonLines:
    """Map function: serialized message -> JSON line (picklable, unlike a lambda over state)."""

    def __init__(self, output: str) -> None:
        self.output = output

    def __call__(self, payload) -> str:
        return to_json_line(self.output, payload)


def json_file_sink(stream: DataStream, output: str, directory: Path) -> None:
    """Write ``stream`` as JSON lines into ``directory/output/``, committed on checkpoints."""
    sink = (
        FileSink.for_row_format(str(directory / output), Encoder.simple_string_encoder())
        .with_output_file_config(OutputFileConfig.builder().with_part_prefix(output).with_part_suffix(".jsonl").build())
        .with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy())
        .build()
    )
    lines = (
        stream.map(_JsonLines(output), output_type=Types.STRING()).uid(f"{output}-to-json").name(f"{output} as JSON")
    )
    lines.sink_to(sink).uid(f"sink-{output}").name(f"{output} file sink")


def read_json_lines(directory: Path, output: str) -> list[dict]:
    """Every committed JSON line a file sink wrote for ``output`` (in-progress files are hidden)."""
    rows = []
    for part in sorted((directory / output).rglob("*.jsonl")):
        if not part.name.startswith("."):
            rows.extend(json.loads(line) for line in part.read_text().splitlines() if line)
    return rows


#: ``from_collection`` cannot take bare ``bytes`` elements (a ClassCastException in
#: PythonBridgeUtils), so collections travel as one-field rows and are unwrapped.
_PAYLOAD_ROW = Types.ROW_NAMED(["payload"], [BYTES])


class _Unwrap:
    def __call__(self, row) -> bytes:
        return row.payload


def bytes_collection(env: StreamExecutionEnvironment, items: Sequence[bytes], name: str) -> DataStream:
    """A bounded stream of ``items`` as raw bytes, in order."""
    rows = env.from_collection([Row(bytes(i)) for i in items], type_info=_PAYLOAD_ROW).uid(f"{name}-source")
    return rows.map(_Unwrap(), output_type=BYTES).uid(f"{name}-bytes").name(f"{name} bytes")


class CollectionIO:
    """In-memory inputs (bounded) and JSON-lines file outputs: local runs and tests."""

    def __init__(self, data: Sequence[bytes], models: Sequence[bytes], out_dir: Path) -> None:
        self.data, self.models, self.out_dir = list(data), list(models), Path(out_dir)

    def data_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """The data records, in order."""
        return bytes_collection(env, self.data, "data")

    def model_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """The model messages, in order."""
        return bytes_collection(env, self.models, "model")

    def sink(self, output: str, stream: DataStream) -> None:
        """JSON lines under ``out_dir/output/``."""
        json_file_sink(stream, output, self.out_dir)


def write_base64_lines(path: Path, messages: Sequence[bytes]) -> None:
    """Write messages for ``FileIO``: one base64 line each, made visible atomically."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text("".join(base64.b64encode(m).decode() + "\n" for m in messages))
    tmp.rename(path)


class KafkaIO:
    """Kafka topics in and out; every output is written exactly once (transactions).

    Consumers of the outputs must read with ``isolation.level=read_committed``:
    results become visible when the checkpoint that covers them completes.
    """

    def __init__(self, settings: KafkaSettings, job: str) -> None:
        self.settings, self.job = settings, job

    def _source(self, env: StreamExecutionEnvironment, topic: str, role: str, offsets) -> DataStream:
        builder = (
            KafkaSource.builder()
            .set_bootstrap_servers(self.settings.bootstrap_servers)
            .set_topics(topic)
            .set_group_id(f"{self.settings.group_id}-{self.job}")
            .set_client_id_prefix(f"{self.settings.group_id}-{self.job}-{role}")
            .set_starting_offsets(offsets)
            .set_value_only_deserializer(_null_as_empty_bytes())
        )
        for key, value in {**self.settings.java_properties(), "isolation.level": "read_committed"}.items():
            builder = builder.set_property(key, value)
        return env.from_source(builder.build(), WatermarkStrategy.no_watermarks(), f"kafka {role}").uid(
            f"{role}-source"
        )

    def data_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """The data topic, from the group's committed offsets (earliest when there are none)."""
        offsets = KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)
        return self._source(env, self.settings.topics.data, "data", offsets)

    def model_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """The model topic from the beginning: a fresh job must find the latest model.

        A restored job resumes from the offsets in its state instead.
        """
        return self._source(env, self.settings.topics.models, "model", KafkaOffsetsInitializer.earliest())

    def sink(self, output: str, stream: DataStream) -> None:
        """A transactional Kafka sink per output, with a prefix stable across restarts.

        Stats records are keyed ``data_type/name/version/instance`` (the stats
        topic is compacted on it) and model events by data type; the other
        outputs have no key.
        """
        topic = getattr(self.settings.topics, output.replace("-", "_"))
        builder = KafkaSink.builder().set_bootstrap_servers(self.settings.bootstrap_servers)
        if output in _KEYS:
            stream = stream.map(_Keyed(output), output_type=KEYED_ROW).uid(f"{output}-keyed").name(f"{output} keyed")
            _set_keyed_serializer(builder, topic)
        else:
            builder.set_record_serializer(
                KafkaRecordSerializationSchema.builder()
                .set_topic(topic)
                .set_value_serialization_schema(ByteArraySchema())
                .build()
            )
        builder = (
            builder.set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
            .set_transactional_id_prefix(f"{self.settings.transactional_id_prefix}-{self.job}-{output}")
            .set_property("transaction.timeout.ms", str(self.settings.transaction_timeout_ms))
            # The topics take messages up to the same size (ensure_topics): set together.
            .set_property("max.request.size", str(self.settings.max_message_bytes))
        )
        for key, value in self.settings.java_properties().items():
            builder = builder.set_property(key, value)
        stream.sink_to(builder.build()).uid(f"sink-{output}").name(f"{output} to Kafka")


#: A Kafka record: key and value bytes (written by ``io.modelserving.flink.KeyedBytesSerializationSchema``).
KEYED_ROW = Types.ROW_NAMED(["key", "value"], [BYTES, BYTES])

#: Outputs written with a record key, and how the key is made from the serialized message.
_KEYS = {
    "stats": lambda payload: stats_key(ModelStats.FromString(payload)),
    "model-events": lambda payload: event_key(ModelEvent.FromString(payload)),
}


class _Keyed:
    """Map function: serialized message of ``output`` -> ``Row(key, value)``."""

    def __init__(self, output: str) -> None:
        self.output = output

    def __call__(self, payload) -> Row:
        payload = bytes(payload)
        return Row(_KEYS[self.output](payload), payload)


def _null_as_empty_bytes() -> DeserializationSchema:
    """Kafka values as bytes, a null value (tombstone) as b"" (``io.modelserving.flink.NullAsEmptyBytes``).

    Flink's own byte-array schema drops null values without a trace; this way
    they reach the serving function, which dead-letters them.
    """
    from pyflink.java_gateway import get_gateway

    return DeserializationSchema(get_gateway().jvm.io.modelserving.flink.NullAsEmptyBytes())


def _set_keyed_serializer(builder, topic: str) -> None:
    """Make ``builder`` (a ``KafkaSinkBuilder``) write ``KEYED_ROW`` elements as keyed records to ``topic``.

    PyFlink's record-serializer builder cannot take the key from one field and
    the value from another, and ``KafkaSinkBuilder.set_record_serializer``
    only accepts schemas made by that builder, so the Java helper from
    ``scripts/java`` (in the job's jars, see ``environment.kafka_jars``) is set
    on the Java builder directly.
    """
    from pyflink.java_gateway import get_gateway

    schema = get_gateway().jvm.io.modelserving.flink.KeyedBytesSerializationSchema(topic)
    builder._j_builder.setRecordSerializer(schema)


class _FromBase64:
    def __call__(self, line: str) -> bytes:
        return base64.b64decode(line)


class FileIO(CollectionIO):
    """Inputs from files of base64 protobufs, one message per line; JSON-lines outputs.

    ``data_path`` and ``model_path`` may be files or directories. With
    ``monitor_ms`` the directories are watched for new files (the job never
    ends, like a Kafka job); without it they are read once.
    """

    def __init__(self, data_path: Path, model_path: Path, out_dir: Path, monitor_ms: int = 0) -> None:
        super().__init__([], [], out_dir)
        self.data_path, self.model_path = Path(data_path), Path(model_path)
        self.monitor_ms = monitor_ms

    def _lines(self, env: StreamExecutionEnvironment, path: Path, name: str) -> DataStream:
        builder = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(path.resolve()))
        if self.monitor_ms:
            builder = builder.monitor_continuously(Duration.of_millis(self.monitor_ms))
        source = builder.build()
        lines = env.from_source(source, WatermarkStrategy.no_watermarks(), f"{name} files").uid(f"{name}-source")
        return lines.map(_FromBase64(), output_type=BYTES).uid(f"{name}-from-base64").name(f"{name} bytes")

    def data_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """Data records from ``data_path``."""
        return self._lines(env, self.data_path, "data")

    def model_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """Model messages from ``model_path``."""
        return self._lines(env, self.model_path, "model")
