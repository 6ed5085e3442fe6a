"""A real Kafka broker for the whole session, on a free port, with its own state directory."""

from __future__ import annotations

import uuid

import pytest

from serving.kafka.broker import LocalBroker
from serving.kafka.clients import consumer, ensure_topics
from serving.kafka.settings import KafkaSettings, Topics

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A running broker; stopped at the end of the session."""
    local = LocalBroker(state_dir=tmp_path_factory.mktemp("kafka"))
    status = local.start(port=0)
    yield status
    local.stop()


@pytest.fixture
def kafka_settings(broker) -> KafkaSettings:
    """Settings pointing at the test broker, with topics unique to this test."""
    suffix = uuid.uuid4().hex[:8]
    topics = Topics(**{role: f"{name}-{suffix}" for role, name in Topics().all().items()})
    settings = KafkaSettings.load(
        bootstrap_servers=broker.bootstrap,
        topics=topics,
        group_id=f"test-{suffix}",
        transactional_id_prefix=f"test-{suffix}",
        partitions=2,
    )
    ensure_topics(settings)
    return settings


def read_all(settings: KafkaSettings, topic: str, expected: int | None = None, timeout: float = 30.0) -> list[bytes]:
    """Every committed message of ``topic`` (read_committed), waiting up to ``timeout`` for ``expected``."""
    import time

    reader = consumer(settings, group_id=f"reader-{uuid.uuid4().hex[:8]}")
    reader.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    idle_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            message = reader.poll(0.5)
            if message is None or message.error():
                if expected is None and values and time.monotonic() - idle_since > 3:
                    break
                continue
            values.append(message.value())
            idle_since = time.monotonic()
            if expected is not None and len(values) >= expected:
                break
    finally:
        reader.close()
    return values
