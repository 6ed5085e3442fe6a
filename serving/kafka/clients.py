"""confluent-kafka clients built from ``KafkaSettings``, topic creation, and reachability checks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from serving.errors import ServingError
from serving.kafka.settings import KafkaSettings, Topics
from serving.logs import get_logger

log = get_logger("kafka")


#: Topic configuration by role, for topics :func:`ensure_topics` creates.
TOPIC_CONFIG: dict[str, dict[str, str]] = {
    "stats": {"cleanup.policy": "compact"},
    "data_types": {"cleanup.policy": "compact"},
}


class KafkaUnreachable(ServingError):
    """No broker answered at the configured bootstrap address."""

    reason = "kafka unreachable"


def check_reachable(settings: KafkaSettings, timeout: float = 5.0) -> None:
    """Raise :class:`KafkaUnreachable`, naming the bootstrap address, unless a broker answers."""
    from confluent_kafka.admin import AdminClient

    # log_level 0: a refused connection is our error to report, not librdkafka's to print.
    admin = AdminClient({**settings.librdkafka_config(), "socket.connection.setup.timeout.ms": 3000, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except Exception as exc:
        raise KafkaUnreachable(
            f"no Kafka broker answered at {settings.bootstrap_servers} within {timeout:.0f}s "
            "(start one with `modelserving kafka start`)"
        ) from exc


def ensure_topics(settings: KafkaSettings, partitions: int | None = None) -> dict[str, str]:
    """Create every topic of ``settings.topics`` that does not exist yet; returns role -> topic.

    Existing topics are left as they are. See :func:`create_topics` for how
    topics are configured.
    """
    check_reachable(settings)
    create_topics(settings, settings.topics, partitions or settings.partitions, exist_ok=True)
    return settings.topics.all()


def producer(settings: KafkaSettings, **overrides: Any):
    """An idempotent producer that keeps order per partition."""
    from confluent_kafka import Producer

    config = {
        **settings.librdkafka_config(),
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.max.bytes": settings.max_message_bytes,
        **overrides,
    }
    return Producer(config)


def consumer(settings: KafkaSettings, group_id: str | None = None, *, from_beginning: bool = True, **overrides: Any):
    """A consumer that reads only committed transactional output (``read_committed``)."""
    from confluent_kafka import Consumer

    config = {
        **settings.librdkafka_config(),
        "group.id": group_id or settings.group_id,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        **overrides,
    }
    return Consumer(config)


class KafkaReadError(ServingError):
    """Reading a topic failed in a way retrying cannot cure (missing topic, authorization, a fatal error)."""

    reason = "kafka read failed"


def _permanent_errors() -> set[int]:
    from confluent_kafka import KafkaError

    return {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    }


def poll_batches(
    reader,
    *,
    max_batch: int = 1,
    wait_s: float = 0.5,
    stop: threading.Event | None = None,
    idle_s: float | None = None,
    until: float | None = None,
) -> Iterator[list]:
    """The one poll loop: batches of messages from ``reader`` (a confluent-kafka consumer) as they arrive.

    Each poll waits up to ``wait_s`` for a first message, then takes what else
    is buffered, up to ``max_batch`` in all, without waiting. An empty poll
    yields ``[]``, so a caller can do periodic work. Messages that carry an
    error are not yielded: transient ones (a broker restarting, a lost
    connection, the end of a partition) are logged and waited out, and
    permanent ones raise :class:`KafkaReadError`.

    Ends when ``stop`` is set, ``idle_s`` seconds pass without a message, or
    the ``time.monotonic()`` deadline ``until`` passes. The caller owns
    ``reader`` and closes it.
    """
    from confluent_kafka import KafkaError

    permanent = _permanent_errors()
    last = time.monotonic()
    while stop is None or not stop.is_set():
        now = time.monotonic()
        wait = wait_s
        if idle_s is not None:
            if now - last >= idle_s:
                return
            wait = min(wait, idle_s - (now - last))
        if until is not None:
            if now >= until:
                return
            wait = min(wait, until - now)
        first = reader.poll(max(wait, 0.0))
        if first is None:
            yield []
            continue
        messages = [first, *(reader.consume(max_batch - 1, 0) if max_batch > 1 else [])]
        batch = []
        for message in messages:
            error = message.error()
            if error is None:
                batch.append(message)
            elif error.fatal() or error.code() in permanent:
                raise KafkaReadError(f"reading {message.topic()} failed: {error.str()}")
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error, retrying", extra={"topic": message.topic(), "error": error.str()})
        if batch:
            last = time.monotonic()
        yield batch


def create_topics(
    settings: KafkaSettings,
    topics: Topics | Mapping[str, str],
    partitions: int,
    *,
    partitions_by_role: Mapping[str, int] | None = None,
    config_by_role: Mapping[str, Mapping[str, str]] | None = None,
    exist_ok: bool = False,
    timeout_s: float = 30.0,
) -> None:
    """Create every topic of ``topics``.

    Every topic takes messages up to ``settings.max_message_bytes`` (the jobs'
    producers are set to the same limit). The stats topic is compacted
    (``cleanup.policy=compact``): the jobs key each snapshot by data type,
    model version and instance, so it keeps the newest snapshot of each and a
    reader from the beginning gets the current stats quickly. Every other
    topic uses the delete policy.

    Args:
        settings: The cluster to create them on.
        topics: The topic names by role (a ``Topics``, or a role -> name mapping).
        partitions: Partitions of each topic whose role ``partitions_by_role`` does not name.
        partitions_by_role: Role -> partitions, for roles that need another count.
        config_by_role: Role -> topic configuration over the defaults above.
        exist_ok: Leave a topic that exists as it is, instead of failing.
        timeout_s: How long to wait for each topic to be created.

    Raises:
        ServingError: A topic could not be created (it exists already, the broker refused, a timeout).
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    partitions_by_role = partitions_by_role or {}
    config_by_role = config_by_role or {}
    admin = AdminClient(settings.librdkafka_config())
    existing = set(admin.list_topics(timeout=10).topics) if exist_ok else set()
    wanted = [
        NewTopic(
            name,
            num_partitions=partitions_by_role.get(role, partitions),
            replication_factor=1,
            config={
                "max.message.bytes": str(settings.max_message_bytes),
                **TOPIC_CONFIG.get(role, {}),
                **config_by_role.get(role, {}),
            },
        )
        for role, name in (topics.all() if isinstance(topics, Topics) else dict(topics)).items()
        if name not in existing
    ]
    for name, future in admin.create_topics(wanted).items() if wanted else ():
        try:
            future.result(timeout_s)
            log.info("topic created", extra={"topic": name})
        except Exception as exc:
            if exist_ok and "TOPIC_ALREADY_EXISTS" in str(exc):
                continue
            raise ServingError(f"cannot create topic {name}: {exc}") from exc


def delete_topics(settings: KafkaSettings, names: Iterable[str], timeout_s: float = 60.0) -> dict[str, str]:
    """Delete the topics ``names``, waiting up to ``timeout_s`` for each; never raises for a topic.

    Returns:
        Topic -> why, for every topic that was not deleted (empty when all were).
    """
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.librdkafka_config())
    failed = {}
    # The broker gets half the time, so its own timeout arrives as an error rather than ours.
    for name, future in admin.delete_topics(list(names), operation_timeout=timeout_s / 2).items():
        try:
            future.result(timeout_s)
        except Exception as exc:
            failed[name] = str(exc)
    return failed


def produce_with_backpressure(
    sink,
    topic: str,
    value: bytes,
    *,
    key: bytes | None = None,
    on_delivery: Callable[[Any, Any], None] | None = None,
    timestamp: int | None = None,
) -> None:
    """Produce one message with ``sink`` (a confluent-kafka producer), waiting while its local queue is full.

    A full queue (``BufferError``) is not a failure: delivery reports are
    served until there is room, then the message is produced. Pending
    delivery callbacks are served before returning.
    """
    callback = {} if on_delivery is None else {"on_delivery": on_delivery}
    if timestamp is not None:
        callback["timestamp"] = timestamp  # the Kafka record timestamp: the event time of what is sent
    while True:
        try:
            sink.produce(topic, value, key=key, **callback)
            break
        except BufferError:
            sink.poll(0.1)
    sink.poll(0)


class KafkaFlushTimeout(ServingError):
    """Messages were still waiting in a producer's queue when its flush timed out."""

    reason = "kafka flush timed out"


def flush_or_raise(sink, topic: str, timeout_s: float = 60.0) -> None:
    """Flush ``sink`` (a confluent-kafka producer), waiting up to ``timeout_s``.

    A message whose delivery failed counts as flushed: check failures with an
    ``on_delivery`` callback.

    Raises:
        KafkaFlushTimeout: Messages were still queued at the timeout; the message names ``topic``.
    """
    if sink.flush(timeout_s):
        raise KafkaFlushTimeout(f"the broker did not acknowledge every message to {topic} within {timeout_s:.0f}s")
