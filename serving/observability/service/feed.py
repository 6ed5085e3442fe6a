"""The Kafka feed: a thread that reads the stats and model-events topics into a :class:`Monitor`."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from pydantic import BaseModel

from serving.clock import now_ms
from serving.kafka.clients import KafkaReadError, consumer, poll_batches
from serving.kafka.settings import KafkaSettings
from serving.logs import get_logger
from serving.observability.monitor import Monitor

log = get_logger("stats.service")

#: How often the feed asks the broker for metadata: new topics and partitions, and whether it answers.
METADATA_INTERVAL_S = 2.0
#: How long one metadata request waits for a broker before the feed counts Kafka as unreachable.
METADATA_TIMEOUT_S = 3.0
#: How long one poll waits for a message: how late a metadata refresh or a stop request can be.
POLL_WAIT_S = 0.2
#: The pause after an error before the feed reads on (so a persistent one does not spin).
ERROR_PAUSE_S = 1.0


class KafkaStatus(BaseModel):
    """Whether the feed reaches Kafka, and what it reads."""

    ok: bool
    bootstrap: str
    #: Why Kafka counts as unreachable (empty when ok).
    error: str
    #: When ``ok`` last changed (epoch ms).
    since: int
    #: role ("stats", "model_events") -> topic name.
    topics: dict[str, str]
    #: Topics that do not exist yet; they are read once they do.
    missing_topics: list[str]


class KafkaFeed(threading.Thread):
    """Reads the stats and model-events topics into a :class:`Monitor`, from the beginning, until stopped.

    Every ``metadata_interval`` seconds, whether or not messages arrive, it
    asks for metadata: a failure marks Kafka unreachable (``ok`` False,
    ``error`` the reason), a success marks it reachable and assigns any
    partition not read yet (new topics included) from its beginning. Messages
    are read with ``read_committed`` through :func:`serving.kafka.clients.poll_batches`;
    malformed ones are counted by the monitor, logged and skipped. Nothing that
    arrives on the topics stops the thread: errors are logged and it reads on.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        monitor: Monitor,
        lock: threading.Lock,
        *,
        metadata_interval: float = METADATA_INTERVAL_S,
        metadata_timeout: float = METADATA_TIMEOUT_S,
    ) -> None:
        super().__init__(name="stats-kafka-feed", daemon=True)
        self.settings = settings
        self.monitor = monitor
        self.lock = lock
        self.metadata_interval = metadata_interval
        self.metadata_timeout = metadata_timeout
        self.topics = {"stats": settings.topics.stats, "model_events": settings.topics.model_events}
        self._stopping = threading.Event()
        self._assigned: dict[str, set[int]] = {t: set() for t in self.topics.values()}
        self._missing: set[str] = set(self.topics.values())
        self._ok = False
        self._error = "not connected yet"
        self._since = now_ms()
        self._logged_down = False
        self._status_lock = threading.Lock()

    def status(self) -> KafkaStatus:
        """The current Kafka status (thread-safe)."""
        with self._status_lock:
            return KafkaStatus(
                ok=self._ok,
                bootstrap=self.settings.bootstrap_servers,
                error="" if self._ok else self._error,
                since=self._since,
                topics=dict(self.topics),
                missing_topics=sorted(self._missing),
            )

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for it (closing its consumer)."""
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        """Read until stopped; any error is logged and reading goes on after a pause. Closes the consumer."""
        reader = None
        try:
            reader = self._consumer()
            while not self._stopping.is_set():
                try:
                    self._read(reader)
                except KafkaReadError as exc:
                    # A topic deleted or forbidden under the feed: the broker answers, and the
                    # metadata refresh that starts the next read lists the topic as missing.
                    log.warning("stats feed read error; continuing", extra={"error": str(exc)})
                    self._stopping.wait(ERROR_PAUSE_S)
                except Exception as exc:  # a bug or a client failure must not end the feed
                    log.exception("stats feed error; continuing", extra={"error": str(exc)})
                    self._set_down(f"stats feed error: {exc}")
                    self._stopping.wait(ERROR_PAUSE_S)
        finally:
            if reader is not None:
                with contextlib.suppress(Exception):
                    reader.close()

    # ----------------------------------------------------------------- internals

    def _read(self, reader: Any) -> None:
        """Refresh the metadata, then ingest messages until stopped, refreshing it every interval meanwhile."""
        self._refresh(reader)
        next_refresh = time.monotonic() + self.metadata_interval
        # An empty poll yields [] too, so the refresh comes on time while no message arrives.
        for batch in poll_batches(reader, wait_s=POLL_WAIT_S, stop=self._stopping):
            for message in batch:
                self._ingest(message)
            if time.monotonic() >= next_refresh:
                self._refresh(reader)
                next_refresh = time.monotonic() + self.metadata_interval

    def _consumer(self) -> Any:
        return consumer(
            self.settings,
            group_id=f"{self.settings.group_id}-stats-service",
            from_beginning=True,
            error_cb=self._on_error,
            # Connection failures are reported once, by the feed; not by librdkafka on every retry.
            log_level=0,
            **{"reconnect.backoff.max.ms": 2000, "socket.connection.setup.timeout.ms": 3000},
        )

    def _on_error(self, error: Any) -> None:
        # Reachability is decided by the metadata requests alone: librdkafka's own "all brokers down"
        # errors also come while a metadata request succeeds over another connection.
        if error.fatal():
            self._set_down(f"Kafka client failed for good at {self.settings.bootstrap_servers}: {error.str()}")
        else:
            log.debug("kafka client error", extra={"error": error.str()})

    def _refresh(self, reader: Any) -> None:
        from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

        try:
            metadata = reader.list_topics(timeout=self.metadata_timeout)
        except KafkaException as exc:
            error = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else str(exc)
            self._set_down(f"no Kafka broker answered at {self.settings.bootstrap_servers}: {error}")
            return
        self._set_up()
        new: list[TopicPartition] = []
        missing = set()
        for topic in self.topics.values():
            described = metadata.topics.get(topic)
            if described is None or described.error is not None or not described.partitions:
                missing.add(topic)
                continue
            for partition in sorted(set(described.partitions) - self._assigned[topic]):
                new.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
                self._assigned[topic].add(partition)
        with self._status_lock:
            appeared = self._missing - missing
            self._missing = missing
        if new:
            reader.incremental_assign(new)
            log.info(
                "reading partitions",
                extra={"partitions": ",".join(f"{tp.topic}/{tp.partition}" for tp in new)},
            )
        for topic in sorted(appeared):
            log.info("topic found", extra={"topic": topic})

    def _ingest(self, message: Any) -> None:
        topic, value = message.topic(), message.value()
        with self.lock:
            if topic == self.topics["stats"]:
                accepted = self.monitor.ingest_stats(value)
            else:
                accepted = self.monitor.ingest_event(value)
        if not accepted and value is not None:
            log.warning(
                "skipped a malformed message",
                extra={"topic": topic, "partition": message.partition(), "offset": message.offset()},
            )

    def _set_down(self, reason: str) -> None:
        with self._status_lock:
            first = self._ok or not self._logged_down
            self._ok, self._error, self._logged_down = False, reason, True
            if first:
                self._since = now_ms()
        if first:  # once per outage, not on every retry
            log.warning("kafka unreachable", extra={"reason": reason})

    def _set_up(self) -> None:
        with self._status_lock:
            if self._ok:
                return
            self._ok, self._error, self._since, self._logged_down = True, "", now_ms(), False
        log.info("kafka reachable", extra={"bootstrap": self.settings.bootstrap_servers})
