"""Reading a benchmark's results: every committed ``ServingResult`` of a topic, with when it arrived.

Runs in a thread of its own while :mod:`serving.bench.run` feeds the job, so
the arrival ("seen") times are taken as results come, not after the fact.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

from serving.clock import now_ms
from serving.kafka.clients import consumer, poll_batches
from serving.kafka.settings import KafkaSettings
from serving.pb.serving_result_pb2 import ServingResult


@dataclass(frozen=True)
class Arrival:
    """One result as the reader received it (times in epoch ms)."""

    append_ms: int
    seen_ms: int
    record_ts: int
    model_name: str
    model_version: str = ""


class ResultReader:
    """Reads every committed result of a topic from the start, in a thread of its own.

    Keeps the first arrival per record id and a count per id (duplicates show
    as counts above 1).
    """

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.settings, self.topic = settings, topic
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._arrivals: dict[str, Arrival] = {}
        self._counts: dict[str, int] = {}
        self.not_append_time = 0
        self.undecodable = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"bench-reader-{topic}", daemon=True)

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def stop(self) -> None:
        """Stop reading and close the consumer; a no-op when it never started."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def distinct(self) -> int:
        """How many distinct record ids arrived so far."""
        with self._lock:
            return len(self._arrivals)

    def snapshot(self) -> tuple[dict[str, Arrival], dict[str, int]]:
        """Copies of (first arrival per id, results per id)."""
        with self._lock:
            return dict(self._arrivals), dict(self._counts)

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_LOG_APPEND_TIME, TopicPartition

        try:
            reader = consumer(self.settings, group_id=f"bench-reader-{uuid.uuid4().hex[:8]}")
            try:
                partitions = reader.list_topics(self.topic, timeout=10).topics[self.topic].partitions
                reader.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
                for batch in poll_batches(reader, max_batch=1000, wait_s=0.2, stop=self._stop):
                    seen = now_ms()
                    with self._lock:
                        for message in batch:
                            self._add(message, seen, TIMESTAMP_LOG_APPEND_TIME)
            finally:
                reader.close()
        except Exception as exc:  # surfaced by the orchestrator as a problem, never lost
            self.error = exc

    def _add(self, message, seen: int, append_type: int) -> None:
        try:
            result = ServingResult.FromString(message.value())
        except Exception:  # a garbled message is a finding, not a crash
            self.undecodable += 1
            return
        kind, stamp = message.timestamp()
        if kind != append_type:
            self.not_append_time += 1
        key = result.record_id
        self._counts[key] = self._counts.get(key, 0) + 1
        if key not in self._arrivals:
            self._arrivals[key] = Arrival(stamp, seen, result.record_ts, result.model_name, result.model_version)
