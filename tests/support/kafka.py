"""Talking to the test broker: produce, read committed output, wait for model events."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from serving.clock import now_ms
from serving.kafka.clients import consumer, poll_batches, producer
from serving.kafka.settings import KafkaSettings
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import ServingResult
from serving.records.wine import encode_record


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


class EventLog:
    """Every committed model event, read by one open consumer as they come (waiting costs no re-reads)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.reader = consumer(settings, group_id=f"events-{uuid.uuid4().hex[:8]}")
        self.reader.subscribe([settings.topics.model_events])
        self.events: list[ModelEvent] = []

    def wait(self, version: str, kind: int | None = None, timeout: float = 120.0, nth: int = 1) -> ModelEvent:
        """The ``nth`` committed event about ``version`` (of ``kind``, when given)."""
        for batch in poll_batches(self.reader, max_batch=500, wait_s=0.2, until=time.monotonic() + timeout):
            self.events += [ModelEvent.FromString(m.value()) for m in batch]
            found = [e for e in self.events if e.version == version and kind in (None, e.kind)]
            if len(found) >= nth:
                return found[nth - 1]
        what = "any" if kind is None else ModelEvent.Kind.Name(kind)
        raise AssertionError(f"no {what} model event for version {version!r} within {timeout:.0f}s")

    def close(self) -> None:
        """Close the consumer."""
        self.reader.close()


def wait_for_event(settings: KafkaSettings, version: str, timeout: float = 120) -> ModelEvent:
    """The first committed model event about ``version``."""
    log = EventLog(settings)
    try:
        return log.wait(version, timeout=timeout)
    finally:
        log.close()


def results(settings: KafkaSettings, expected: int, timeout: float = 120) -> list[ServingResult]:
    """Committed results, waiting up to ``timeout`` for ``expected`` of them."""
    return [ServingResult.FromString(v) for v in read_all(settings, settings.topics.results, expected, timeout)]


def kafka_config_file(settings: KafkaSettings, path: Path) -> Path:
    """A TOML ``--kafka-config`` with the test's broker, group, prefix and topics."""
    topics = "".join(f'{role} = "{topic}"\n' for role, topic in settings.topics.all().items())
    path.write_text(
        "[kafka]\n"
        f'bootstrap_servers = "{settings.bootstrap_servers}"\n'
        f'group_id = "{settings.group_id}"\n'
        f'transactional_id_prefix = "{settings.transactional_id_prefix}"\n'
        f"[kafka.topics]\n{topics}"
    )
    return path


class Publisher:
    """Wine records with ids 0, 1, 2, ... and ``ts`` = send time, at ``rate``/s, in a thread, until stopped."""

    def __init__(self, settings: KafkaSettings, rows, rate: float = 100.0) -> None:
        self.settings, self.rows, self.rate = settings, rows, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        out = producer(self.settings)
        batch = max(1, int(self.rate / 10))
        while not self._stop.is_set():
            for _ in range(batch):
                i = self.sent
                record = encode_record(str(i), self.rows[i % len(self.rows)], ts=now_ms())
                out.produce(self.settings.topics.data, record)
                self.sent = i + 1
            out.poll(0)
            time.sleep(0.1)
        out.flush(30)

    def stop(self) -> int:
        """Stop publishing; returns how many records were sent (all flushed)."""
        self._stop.set()
        self._thread.join(60)
        return self.sent


def send_tracked(settings: KafkaSettings, topic: str, messages: list[tuple[bytes, int]]) -> list[str]:
    """Produce ``(value, kafka_timestamp)`` pairs in order; each one's ``topic/partition/offset``, as acknowledged."""
    out = producer(settings)
    where: dict[int, str] = {}

    def acknowledged(index: int):
        def on_delivery(err, msg) -> None:
            assert err is None, err
            where[index] = f"{msg.topic()}/{msg.partition()}/{msg.offset()}"

        return on_delivery

    for i, (value, ts) in enumerate(messages):
        out.produce(topic, value, timestamp=ts, on_delivery=acknowledged(i))
        out.poll(0)
    assert out.flush(30) == 0, "not every message was acknowledged"
    return [where[i] for i in range(len(messages))]
