"""Fixtures every layer shares: one real Kafka broker for the session, and per-test topics on it."""

from __future__ import annotations

import uuid

import pytest

from serving.kafka.clients import ensure_topics
from serving.kafka.settings import KafkaSettings, Topics
from serving.ops.broker import LocalBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A running broker; stopped at the end of the session."""
    local = LocalBroker(state_dir=tmp_path_factory.mktemp("kafka"))
    status = local.start(port=0, tie_to_parent=True)
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
