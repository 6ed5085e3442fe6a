"""Talking to the test broker: produce, read committed output, wait for model events."""

from __future__ import annotations

import time
import uuid

from serving.kafka.clients import consumer, poll_batches, producer
from serving.kafka.settings import KafkaSettings
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import ServingResult


def send(settings: KafkaSettings, topic: str, messages: list[bytes | None], key: bytes = b"") -> None:
    """Produce ``messages`` in order (None is a tombstone) and wait until the broker has them all."""
    out = producer(settings)
    for message in messages:
        out.produce(topic, message, key=key or None)
    out.flush(30)


def read_all(settings: KafkaSettings, topic: str, expected: int | None = None, timeout: float = 30.0) -> list[bytes]:
    """Every committed message of ``topic`` (read_committed), waiting up to ``timeout`` for ``expected``."""
    reader = consumer(settings, group_id=f"reader-{uuid.uuid4().hex[:8]}")
    reader.subscribe([topic])
    values: list[bytes] = []
    idle_since = time.monotonic()
    try:
        for batch in poll_batches(reader, until=time.monotonic() + timeout):
            if not batch:
                if expected is None and values and time.monotonic() - idle_since > 3:
                    break
                continue
            values.extend(message.value() for message in batch)
            idle_since = time.monotonic()
            if expected is not None and len(values) >= expected:
                break
    finally:
        reader.close()
    return values


def wait_for_event(settings: KafkaSettings, version: str, timeout: float = 120) -> ModelEvent:
    """The first committed model event about ``version``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for raw in read_all(settings, settings.topics.model_events, timeout=3):
            event = ModelEvent.FromString(raw)
            if event.version == version:
                return event
    raise AssertionError(f"no model event for version {version} within {timeout}s")


def results(settings: KafkaSettings, expected: int, timeout: float = 120) -> list[ServingResult]:
    """Committed results, waiting up to ``timeout`` for ``expected`` of them."""
    return [ServingResult.FromString(v) for v in read_all(settings, settings.topics.results, expected, timeout)]
