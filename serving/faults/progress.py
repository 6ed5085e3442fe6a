"""Watching a faulted job recover: its state, its checkpoints, and its committed output.

:class:`OutputWatcher` counts the distinct record ids a ``read_committed``
consumer has seen on the results and dead-letter topics, with the time of
each step, so the runner can tell when the output caught up with what was
acknowledged at the moment of a fault. The checkpoint and state helpers
poll Flink's REST API.
"""

from __future__ import annotations

import bisect
import threading
import time
import uuid

from serving.kafka.clients import consumer
from serving.kafka.settings import KafkaSettings
from serving.ops.cluster.errors import ClusterError
from serving.ops.cluster.rest import FlinkRest
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.serving_result_pb2 import ServingResult


class OutputWatcher(threading.Thread):
    """Counts distinct committed output ids (results and dead letters) over time, until stopped."""

    def __init__(self, settings: KafkaSettings) -> None:
        super().__init__(name="faults-output", daemon=True)
        self.settings = settings
        self.seen: set[str] = set()
        self.times: list[float] = []  # times[i]: when the (i+1)-th distinct id was seen
        self._halt = threading.Event()

    def run(self) -> None:
        """Consume until stopped."""
        reader = consumer(self.settings, group_id=f"faults-watch-{uuid.uuid4().hex[:8]}")
        results, letters = self.settings.topics.results, self.settings.topics.dead_letters
        reader.subscribe([results, letters])
        try:
            while not self._halt.is_set():
                for message in reader.consume(500, 0.5):
                    if message.error() or message.value() is None:
                        continue
                    try:
                        if message.topic() == results:
                            record_id = ServingResult.FromString(message.value()).record_id
                        else:
                            letter = DeadLetter.FromString(message.value())
                            # A model's or a control message's dead letter names no input record.
                            record_id = letter.record_id if letter.source in ("data", "scoring") else ""
                    except Exception:
                        continue
                    if record_id and record_id not in self.seen:
                        self.seen.add(record_id)
                        self.times.append(time.time())
        finally:
            reader.close()

    def count(self) -> int:
        """Distinct ids seen so far."""
        return len(self.times)

    def reached(self, count: int, timeout: float) -> float | None:
        """Wait until ``count`` distinct ids were seen; the time it happened, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while len(self.times) < count:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)
        return self.times[count - 1] if count > 0 else time.time()

    def stop(self) -> None:
        """Stop consuming."""
        self._halt.set()
        self.join(30)


def completed_checkpoints(rest: FlinkRest, job_id: str) -> tuple[int, float | None]:
    """The number of completed checkpoints and when the latest finished (epoch s), or (0, None)."""
    try:
        stats = rest.checkpoints(job_id)
    except ClusterError:
        return 0, None
    latest = (stats.get("latest") or {}).get("completed") or {}
    finished = latest.get("latest_ack_timestamp")
    return int(stats.get("counts", {}).get("completed", 0)), (finished / 1000 if finished else None)


def wait_new_checkpoint(rest: FlinkRest, job_id: str, after: int, timeout: float) -> tuple[int, float | None]:
    """Wait for more than ``after`` completed checkpoints; (count, when the latest finished), or (after, None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count, finished = completed_checkpoints(rest, job_id)
        if count > after:
            return count, finished
        time.sleep(0.5)
    return after, None


def wait_all_running(rest: FlinkRest, job_id: str, timeout: float, left_first: bool) -> float | None:
    """When every vertex of the job runs (again, after leaving RUNNING when ``left_first``); None on timeout."""
    deadline = time.monotonic() + timeout
    left = not left_first
    while time.monotonic() < deadline:
        try:
            job = rest.job(job_id)
        except ClusterError:
            time.sleep(0.5)
            continue
        running = job.get("state") == "RUNNING" and all(v.get("status") == "RUNNING" for v in job.get("vertices", []))
        if not running:
            left = True
        elif left:
            return time.time()
        time.sleep(0.3)
    return None


def count_before(times: list[float], at: float) -> int:
    """How many of the sorted ``times`` are at or before ``at``."""
    return bisect.bisect_right(times, at)
