"""The results provider: the ``ServingResult`` messages a serving job commits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError

from serving.errors import ConfigError
from serving.kafka.clients import KafkaReadError, consumer, poll_batches
from serving.kafka.providers.common import ProviderError, librdkafka_log, log, require_topic
from serving.kafka.settings import KafkaSettings
from serving.pb.serving_result_pb2 import ServingResult

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message


def tail_results(
    settings: KafkaSettings,
    *,
    from_beginning: bool,
    limit: int | None,
    timeout: float | None,
) -> Iterator[ServingResult]:
    """Yield the committed ``ServingResult`` messages of ``settings.topics.results``.

    The consumer is ``read_committed`` (results of aborted Flink transactions
    never show) and is assigned every partition directly, so it joins no
    consumer group and commits nothing. Messages that are not a
    ``ServingResult`` are logged and skipped. Close the generator (or let it
    end) to close the consumer.

    Args:
        settings: Where to read.
        from_beginning: Start at the oldest result; otherwise only new ones.
        limit: Stop after this many results; None for no limit.
        timeout: Stop once no result has arrived for this many seconds; None waits forever.

    Raises:
        ConfigError: a negative limit or timeout.
        TopicMissing: the results topic does not exist.
        ProviderError: the consumer reports a non-retriable error.
    """
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be 0 or more, got {limit}")
    if timeout is not None and timeout < 0:
        raise ConfigError(f"timeout must be 0 s or more, got {timeout}")
    # Checked above, before the first next(): a generator body would only run then.
    return _tail(settings, from_beginning=from_beginning, limit=limit, timeout=timeout)


def _tail(
    settings: KafkaSettings, *, from_beginning: bool, limit: int | None, timeout: float | None
) -> Iterator[ServingResult]:
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

    if limit == 0:
        return
    topic = settings.topics.results
    reader = consumer(settings, from_beginning=from_beginning, logger=librdkafka_log)
    try:
        partitions = require_topic(reader, settings, topic)
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        reader.assign([TopicPartition(topic, p, start) for p in partitions])
        seen = 0
        for message in _messages(reader, settings, topic, timeout):
            result = ServingResult()
            try:
                result.ParseFromString(message.value() or b"")
            except DecodeError:
                log.warning(
                    "skipped a message that is not a ServingResult",
                    extra={"topic": topic, "partition": message.partition(), "offset": message.offset()},
                )
                continue
            yield result
            seen += 1
            if limit is not None and seen >= limit:
                return
    finally:
        reader.close()


def _messages(reader: Consumer, settings: KafkaSettings, topic: str, idle_s: float | None) -> Iterator[Message]:
    """Every message of ``reader``, until ``idle_s`` pass without one; permanent errors as :class:`ProviderError`."""
    try:
        for batch in poll_batches(reader, idle_s=idle_s):
            yield from batch
    except KafkaReadError as exc:
        # The error says "reading <topic> failed: <why>"; ours also names the broker, as it always has.
        why = str(exc).partition(" failed: ")[2] or str(exc)
        raise ProviderError(f"reading {topic} at {settings.bootstrap_servers} failed: {why}") from exc
