"""The control provider: one ``ModelControl`` onto the control topic, keyed by its data type."""

from __future__ import annotations

from typing import Any

from serving.kafka.clients import produce_with_backpressure, producer
from serving.kafka.providers.common import (
    DELIVERY_TIMEOUT_MS,
    FLUSH_TIMEOUT_S,
    DeliveryError,
    librdkafka_log,
    log,
    require_topic,
)
from serving.kafka.settings import KafkaSettings
from serving.pb.model_control_pb2 import ModelControl


def publish_control(settings: KafkaSettings, control: ModelControl) -> None:
    """Send ``control`` to ``topics.control`` keyed by its data type, acks=all, and wait for the acknowledgement.

    The message is sent as it is: check it first (:func:`serving.rollout.control.check_control`).

    Raises:
        TopicMissing: the control topic does not exist.
        DeliveryError: the broker did not acknowledge it.
    """
    topic = settings.topics.control
    # acks=all spelt out (idempotence implies it): a control message must not be lost to a leader change.
    prod = producer(settings, **{"acks": "all", "message.timeout.ms": DELIVERY_TIMEOUT_MS, "logger": librdkafka_log})
    require_topic(prod, settings, topic)
    outcome: list[Any] = []
    produce_with_backpressure(
        prod,
        topic,
        control.SerializeToString(),
        key=control.data_type.encode(),
        on_delivery=lambda err, _msg: outcome.append(err),
    )
    prod.flush(FLUSH_TIMEOUT_S)
    if not outcome or outcome[0] is not None:
        why = outcome[0].str() if outcome else f"no acknowledgement within {FLUSH_TIMEOUT_S:.0f}s"
        action = ModelControl.Action.Name(control.action)
        raise DeliveryError(
            f"{action} for {control.data_type} was not delivered to {topic} at {settings.bootstrap_servers}: {why}"
        )
    log.info(
        "control published",
        extra={"data_type": control.data_type, "action": ModelControl.Action.Name(control.action), "topic": topic},
    )
