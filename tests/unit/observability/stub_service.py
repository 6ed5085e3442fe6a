"""A stats service without Kafka, over a Monitor fed with synthetic snapshots: the dashboard's unit-level stage."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from serving.clock import now_ms
from serving.core.model import ModelType
from serving.observability.monitor import Monitor
from serving.observability.service.feed import KafkaStatus
from serving.observability.service.state import Overview, StatsService
from serving.pb.model_stats_pb2 import ModelStats

LONG_NAME = "gradient-boosted-wine-quality-regressor-with-a-very-long-descriptive-name"


class StubStatsService(StatsService):
    """A :class:`StatsService` over ``monitor``; Kafka counts as reachable and nothing is read.

    ``mangle`` may rewrite each overview before it is served (to hand the page values no monitor makes).
    """

    def __init__(self, monitor: Monitor, mangle: Callable[[Overview], Overview] | None = None) -> None:
        self.monitor = monitor
        self.lock = threading.Lock()
        self.mangle = mangle

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> None:
        """Nothing to stop."""

    def kafka(self) -> KafkaStatus:
        """Always reachable."""
        return KafkaStatus(ok=True, bootstrap="stub", error="", since=0, topics={}, missing_topics=[])

    def overview(self) -> Overview:
        """The monitor's overview, through ``mangle``."""
        answer = super().overview()
        return self.mangle(answer) if self.mangle is not None else answer


def demo_like_snapshots(
    end: int, *, seconds: int, rate: int = 50, swap_every: int = 20, instance: str = "key:wine"
) -> Iterator[ModelStats]:
    """What one keyed instance of the demo emits: ``rate`` records/s, a new model every ``swap_every`` s.

    Stats go out every 10 s and every 1,000 records of a model (the job's defaults), when a model
    starts (0 records) and when it retires; the last snapshot is at ``end`` (epoch ms). Every third
    model (the first; the 181st, serving after an hour) has a long name. Scoring takes 20 µs
    a record, 60 µs for every fourth model.
    """
    start = end - seconds * 1000
    usage = total = model = 0
    since = start
    last_emit = start

    def snapshot(at: int) -> ModelStats:
        name = LONG_NAME if model % 3 == 0 else ("linear", "tree", "forest")[model % 3]
        return ModelStats(
            name=name,
            version=f"v{model}",
            data_type="wine",
            model_type=ModelType.PMML,
            since=since,
            usage=usage,
            total_duration_ns=total,
            min_duration_ns=10_000 if usage else 0,
            max_duration_ns=90_000 if usage else 0,
            instance=instance,
            emitted_at=at,
        )

    yield snapshot(start)
    for second in range(1, seconds + 1):
        at = start + second * 1000  # the records of the second ending at ``at`` are scored at ``at``
        per_record = 60_000 if model % 4 == 3 else 20_000
        before = usage
        usage += rate
        total += rate * per_record
        if second % swap_every == 0:
            yield snapshot(at)  # the retiring model's last stats
            model, usage, total, since = model + 1, 0, 0, at
            yield snapshot(at)  # the new one starts
        elif before // 1000 != usage // 1000 or at - last_emit >= 10_000:
            last_emit = at
            yield snapshot(at)


def demo_like_monitor(end: int | None = None, *, seconds: int = 3600, rate: int = 50) -> Monitor:
    """A monitor fed :func:`demo_like_snapshots` ending now (or at ``end``)."""
    monitor = Monitor()
    for message in demo_like_snapshots(end if end is not None else now_ms(), seconds=seconds, rate=rate):
        monitor.add_stats(message)
    return monitor


def screenshot(path: str, window: str = "5 min") -> None:
    """Save the dashboard over an hour of demo-like stats (the stub service) as a PNG at ``path``."""
    import time

    from serving.observability.service.app import ServerThread
    from tests.support.browser import choose_window, headless_chromium

    server = ServerThread(StubStatsService(demo_like_monitor(seconds=3615))).start()
    try:
        with headless_chromium() as browser:
            browser.get(f"{server.url}/")
            time.sleep(2)
            choose_window(browser, window)
            browser.save_screenshot(path)
    finally:
        server.stop()


if __name__ == "__main__":
    import sys

    screenshot(*sys.argv[1:3])
