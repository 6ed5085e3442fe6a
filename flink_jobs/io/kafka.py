"""Kafka in and out: every output written exactly once, in transactions that commit with checkpoints."""

from __future__ import annotations

import re

from pyflink.common import Row, Types, WatermarkStrategy
from pyflink.common.serialization import ByteArraySchema, DeserializationSchema
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetResetStrategy,
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)

from flink_jobs.tags import BYTES, KAFKA_RECORD
from serving.kafka.settings import KafkaSettings
from serving.observability.messages import event_key, stats_key
from serving.pb.model_control_pb2 import ModelControl
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.model_stats_pb2 import ModelStats


class KafkaIO:
    """Kafka topics in and out; every output is written exactly once (transactions).

    Consumers of the outputs must read with ``isolation.level=read_committed``:
    results become visible when the checkpoint that covers them completes.
    """

    def __init__(self, settings: KafkaSettings, job: str) -> None:
        self.settings, self.job = settings, job
        self.topic_prefix = settings.data_topic_prefix

    def _builder(self, role: str, offsets):
        """A KafkaSource builder with the job's group, client id, offsets and client properties."""
        builder = (
            KafkaSource.builder()
            .set_bootstrap_servers(self.settings.bootstrap_servers)
            .set_group_id(f"{self.settings.group_id}-{self.job}")
            .set_client_id_prefix(f"{self.settings.group_id}-{self.job}-{role}")
            .set_starting_offsets(offsets)
        )
        for key, value in {**self.settings.java_properties(), "isolation.level": "read_committed"}.items():
            builder = builder.set_property(key, value)
        return builder

    def _source(self, env: StreamExecutionEnvironment, topic: str, role: str, offsets) -> DataStream:
        builder = self._builder(role, offsets).set_topics(topic).set_value_only_deserializer(_null_as_empty_bytes())
        return env.from_source(builder.build(), WatermarkStrategy.no_watermarks(), f"kafka {role}").uid(
            f"{role}-source"
        )

    def data_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """Every data topic, from the group's committed offsets (earliest when there are none).

        The data topics are ``topics.data`` (self-describing protobuf records)
        and every topic named ``data_topic_prefix`` + a data type, found while
        the job runs (checked every ``partition.discovery.interval.ms``, 10 s),
        so a data type declared mid-run needs no restart. Each record comes
        with its topic, partition, offset and Kafka timestamp
        (``io.modelserving.flink.KafkaRecordRow``).
        """
        from pyflink.java_gateway import get_gateway

        settings = self.settings
        pattern = re.escape(settings.topics.data)
        if settings.data_topic_prefix:
            pattern += "|" + re.escape(settings.data_topic_prefix) + ".+"
        builder = self._builder(
            "data", KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)
        ).set_topic_pattern(f"^({pattern})$")
        builder._j_builder.setDeserializer(get_gateway().jvm.io.modelserving.flink.KafkaRecordRow())
        builder = builder.set_property("partition.discovery.interval.ms", "10000")
        return env.from_source(
            builder.build(), WatermarkStrategy.no_watermarks(), "kafka data", type_info=KAFKA_RECORD
        ).uid("data-source")

    def schema_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """The data-types topic from the beginning: every schema published (a restored job resumes in it)."""
        return self._source(env, self.settings.topics.data_types, "schema", KafkaOffsetsInitializer.earliest())

    def model_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """The model topic from the beginning: a fresh job must find the latest model.

        A restored job resumes from the offsets in its state instead.
        """
        return self._source(env, self.settings.topics.models, "model", KafkaOffsetsInitializer.earliest())

    def control_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """The control topic from the beginning, like the models (a restored job resumes from its offsets)."""
        return self._source(env, self.settings.topics.control, "control", KafkaOffsetsInitializer.earliest())

    def sink(self, output: str, stream: DataStream) -> None:
        """A transactional Kafka sink per output, with a prefix stable across restarts.

        Stats records are keyed ``data_type/name/version/instance`` (the stats
        topic is compacted on it), model events and control messages by data
        type; the other outputs have no key.
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
    # The job's own control messages, keyed like an operator's: by data type, so each type's stay in order.
    "control": lambda payload: ModelControl.FromString(payload).data_type.encode(),
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
