"""Read a topic to its end: every partition from the beginning up to where it ends now.

The reader assigns all partitions of a topic directly (no consumer group is
joined, nothing is committed) and stops at the end of each partition: the
last stable offset for ``read_committed``, the high watermark for
``read_uncommitted``, as librdkafka's end-of-partition events report them.
Used by the fault campaign's evidence (:mod:`serving.faults.evidence`) and by
``modelserving audit``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Literal

from serving.errors import ServingError
from serving.kafka.clients import consumer
from serving.kafka.settings import KafkaSettings
from serving.logs import get_logger

log = get_logger("kafka")

Isolation = Literal["read_committed", "read_uncommitted"]


class TopicReadError(ServingError):
    """A topic could not be read to its end (missing, a broker error, a timeout)."""

    reason = "topic unreadable"


def end_reader(settings: KafkaSettings, isolation: Isolation, *, eof: bool = True, purpose: str = "reader"):
    """A consumer for :func:`read_to_end` (``eof``: it reports partition ends) in a throwaway group.

    The group is never joined (partitions are assigned) but librdkafka wants one.
    """
    return consumer(
        settings,
        group_id=f"{purpose}-{uuid.uuid4().hex[:8]}",
        **{"isolation.level": isolation, "enable.partition.eof": eof},
    )


def topic_partitions(reader, topic: str, timeout_s: float) -> list[int]:
    """The sorted partition ids of ``topic``, asked of ``reader``.

    Raises:
        TopicReadError: the topic does not exist, or its metadata cannot be read.
    """
    try:
        metadata = reader.list_topics(topic, timeout=timeout_s).topics.get(topic)
    except Exception as exc:
        raise TopicReadError(f"cannot list the partitions of {topic}: {exc}") from exc
    if metadata is None or metadata.error is not None or not metadata.partitions:
        why = "it does not exist" if metadata is None or not metadata.partitions else str(metadata.error)
        raise TopicReadError(f"cannot read {topic}: {why}")
    return sorted(metadata.partitions)


def _permanent(kafka_error) -> set[int]:
    """Error codes that waiting will not cure (the same as the project's poll loop treats so)."""
    return {
        kafka_error.UNKNOWN_TOPIC_OR_PART,
        kafka_error.TOPIC_AUTHORIZATION_FAILED,
        kafka_error._AUTHENTICATION,
        kafka_error.SASL_AUTHENTICATION_FAILED,
    }


def read_to_end(reader, topic: str, isolation: Isolation, timeout_s: float = 120.0) -> Iterator[bytes]:
    """Every message value of ``topic`` read by ``reader`` (from :func:`end_reader`), to each partition's end.

    ``isolation`` is the reader's, for the messages. The reader is closed when
    the iteration ends, however it ends.

    Raises:
        TopicReadError: The topic is missing, the client reports a fatal or permanent
            error, or some partition's end was not reached within ``timeout_s``.
    """
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    try:
        pending = set(topic_partitions(reader, topic, min(timeout_s, 30.0)))
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        deadline = time.monotonic() + timeout_s
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TopicReadError(
                    f"reading {topic} ({isolation}) did not reach the end of partitions "
                    f"{sorted(pending)} within {timeout_s:.0f}s"
                )
            message = reader.poll(min(left, 1.0))
            if message is None:
                continue
            error = message.error()
            if error is None:
                yield message.value() or b""
            elif error.code() == KafkaError._PARTITION_EOF:
                pending.discard(message.partition())
            elif error.fatal() or error.code() in _permanent(KafkaError):
                raise TopicReadError(f"reading {topic} ({isolation}) failed: {error.str()}")
            else:
                log.warning("consumer error, retrying", extra={"topic": topic, "error": error.str()})
    finally:
        reader.close()


def read_values(
    settings: KafkaSettings,
    topic: str,
    isolation: Isolation = "read_committed",
    timeout_s: float = 120.0,
    purpose: str = "reader",
) -> Iterator[bytes]:
    """Every message value of ``topic`` from the beginning to the end of each partition (see :func:`read_to_end`).

    ``purpose`` prefixes the throwaway consumer group's name (it shows in the broker's logs).

    Raises:
        TopicReadError: as :func:`read_to_end`.
    """
    yield from read_to_end(end_reader(settings, isolation, purpose=purpose), topic, isolation, timeout_s)


def topic_reader(settings: KafkaSettings, timeout_s: float, purpose: str) -> Callable[[str], Iterator[bytes]]:
    """``topic -> values``: each topic read to its end with ``read_committed`` (:func:`read_values`)."""

    def read(topic: str) -> Iterator[bytes]:
        return read_values(settings, topic, timeout_s=timeout_s, purpose=purpose)

    return read
