"""What the providers share: their errors, a producer, one-message produce, the topic check."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from serving.errors import ConfigError, ServingError
from serving.kafka.clients import producer
from serving.kafka.settings import KafkaSettings
from serving.logs import get_logger
from serving.records.base import DATA_TYPE_PATTERN

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Producer

#: The providers' logger, one name for every provider module.
log = get_logger("kafka.providers")
#: librdkafka's own log lines go through this logger rather than straight to stderr.
librdkafka_log = get_logger("kafka.librdkafka")

#: How long librdkafka keeps retrying one message before reporting it failed.
DELIVERY_TIMEOUT_MS = 30_000
#: How long a final flush waits; a little more than the delivery timeout, so failures arrive as errors.
FLUSH_TIMEOUT_S = DELIVERY_TIMEOUT_MS / 1000 + 5
#: How long a topic that is not (yet) usable is retried before it counts as missing.
TOPIC_SETTLE_S = 2.0


class ProviderError(ServingError):
    """Publishing to or reading from Kafka failed."""

    reason = "kafka provider failed"


class DeliveryError(ProviderError):
    """The broker did not acknowledge a message."""

    reason = "delivery failed"


class TopicMissing(ProviderError):
    """A topic the provider needs does not exist (the broker does not auto-create topics)."""

    reason = "topic missing"


class InlineModelTooLarge(ConfigError):
    """An inline model was forced but is larger than ``inline_model_max_bytes``."""

    reason = "model too large to publish inline"


def provider_producer(settings: KafkaSettings) -> Producer:
    """A producer for ``settings`` that gives up on a message after :data:`DELIVERY_TIMEOUT_MS`.

    Its librdkafka log lines go to :data:`librdkafka_log`.
    """
    return producer(settings, **{"message.timeout.ms": DELIVERY_TIMEOUT_MS, "logger": librdkafka_log})


def require_topic(client: Producer | Consumer, settings: KafkaSettings, topic: str) -> list[int]:
    """The sorted partition ids of ``topic``, asked of ``client``.

    The broker does not create topics on demand, and a producer would only
    report a missing one after its delivery timeout: better to say so at once.
    A topic that is not usable yet is retried for :data:`TOPIC_SETTLE_S`.

    Raises:
        TopicMissing: the topic does not exist.
        ProviderError: the metadata cannot be read, or the topic is not usable.
    """
    from confluent_kafka import KafkaError, KafkaException

    # A topic created a moment ago may still lack a leader, or be unknown to the broker we ask: retry briefly.
    deadline = time.monotonic() + TOPIC_SETTLE_S
    while True:
        try:
            metadata = client.list_topics(topic=topic, timeout=10)
        except KafkaException as exc:
            raise ProviderError(f"cannot read metadata of {topic} from {settings.bootstrap_servers}: {exc}") from exc
        described = metadata.topics.get(topic)
        error = None if described is None else described.error
        if described is not None and error is None and described.partitions:
            return sorted(described.partitions)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    if described is None or error is None or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
        raise TopicMissing(
            f"topic {topic} does not exist at {settings.bootstrap_servers} (create it with `modelserving kafka topics`)"
        )
    raise ProviderError(f"topic {topic} at {settings.bootstrap_servers} is not usable: {error.str()}")


def check_data_type(data_type: str) -> None:
    """Raise :class:`~serving.errors.ConfigError` unless ``data_type`` is a valid data type name."""
    if not DATA_TYPE_PATTERN.fullmatch(data_type):
        raise ConfigError(f"bad data type {data_type!r}: use lower-case letters, digits, '_', '.', '-'")
