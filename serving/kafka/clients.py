"""confluent-kafka clients built from ``KafkaSettings``, topic creation, and reachability checks."""

from __future__ import annotations

from typing import Any

from serving.errors import ServingError
from serving.kafka.settings import KafkaSettings
from serving.logs import get_logger

log = get_logger("kafka")


#: Topic configuration by role, for topics :func:`ensure_topics` creates.
TOPIC_CONFIG: dict[str, dict[str, str]] = {"stats": {"cleanup.policy": "compact"}}


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

    Every topic takes messages up to ``settings.max_message_bytes`` (the jobs'
    producers are set to the same limit). The stats topic is compacted (``cleanup.policy=compact``): the jobs key each
    snapshot by data type, model version and instance, so it keeps the newest
    snapshot of each and a reader from the beginning gets the current stats
    quickly. Every other topic uses the delete policy. Existing topics are left
    as they are.
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    check_reachable(settings)
    admin = AdminClient(settings.librdkafka_config())
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = []
    for role, topic in settings.topics.all().items():
        if topic in existing:
            continue
        config = {"max.message.bytes": str(settings.max_message_bytes), **TOPIC_CONFIG.get(role, {})}
        wanted.append(
            NewTopic(topic, num_partitions=partitions or settings.partitions, replication_factor=1, config=config)
        )
    for topic, future in admin.create_topics(wanted).items() if wanted else ():
        try:
            future.result()
            log.info("topic created", extra={"topic": topic})
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise ServingError(f"cannot create topic {topic}: {exc}") from exc
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
