"""The schema provider: a data type's Avro schema onto the compacted data-types topic."""

from __future__ import annotations

from typing import Any

from serving.clock import now_ms
from serving.kafka.clients import create_topics, produce_with_backpressure
from serving.kafka.providers.common import FLUSH_TIMEOUT_S, DeliveryError, log, provider_producer, require_topic
from serving.kafka.settings import KafkaSettings
from serving.records.schema import DataTypeSchema


def publish_schema(settings: KafkaSettings, schema: DataTypeSchema, *, partitions: int | None = None) -> str:
    """Publish ``schema`` to ``topics.data_types`` (keyed by its data type); return its data topic.

    The data type's own topic (``data_topic_prefix`` + data type) is created
    when it does not exist, so its records have somewhere to go; running
    jobs find it within ~10 s. Waits until the broker acknowledges.

    Raises:
        TopicMissing: the data-types topic does not exist (``modelserving kafka topics``).
        DeliveryError: the broker did not acknowledge the schema.
    """
    data_topic = settings.data_topic_prefix + schema.data_type
    create_topics(settings, {"data": data_topic}, partitions or settings.partitions, exist_ok=True)
    prod = provider_producer(settings)
    topic = settings.topics.data_types
    require_topic(prod, settings, topic)
    outcome: list[Any] = []
    produce_with_backpressure(
        prod,
        topic,
        schema.to_message(created_at=now_ms()),
        key=schema.data_type.encode(),
        on_delivery=lambda err, _msg: outcome.append(err),
    )
    prod.flush(FLUSH_TIMEOUT_S)
    if not outcome or outcome[0] is not None:
        why = outcome[0].str() if outcome else f"no acknowledgement within {FLUSH_TIMEOUT_S:.0f}s"
        raise DeliveryError(f"schema {schema.data_type}:{schema.version} was not delivered to {topic}: {why}")
    log.info(
        "schema published",
        extra={"data_type": schema.data_type, "version": schema.version, "topic": topic, "data_topic": data_topic},
    )
    return data_topic


def read_schemas(settings: KafkaSettings, idle_s: float = 2.0, timeout_s: float = 30.0) -> list[DataTypeSchema]:
    """The latest schema of each data type on the data-types topic (none when the topic does not exist).

    Reads from the beginning until ``idle_s`` pass without a message (at most
    ``timeout_s``). A message that is no schema is skipped and logged: the
    job that reads the topic dead-letters it.
    """
    import time

    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from serving.kafka.clients import consumer, poll_batches
    from serving.records.schema import SchemaError

    topic = settings.topics.data_types
    reader = consumer(settings, group_id=f"{settings.group_id}-schemas-{now_ms()}")
    latest: dict[str, DataTypeSchema] = {}
    try:
        found = reader.list_topics(topic, timeout=10).topics.get(topic)
        if found is None or found.error is not None:
            return []
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in found.partitions])
        for batch in poll_batches(reader, idle_s=idle_s, until=time.monotonic() + timeout_s):
            for message in batch:
                try:
                    schema = DataTypeSchema.from_message(message.value() or b"")
                except SchemaError as exc:
                    log.warning("skipped a message that is no schema", extra={"topic": topic, "error": str(exc)})
                    continue
                latest[schema.data_type] = schema
    finally:
        reader.close()
    return list(latest.values())
