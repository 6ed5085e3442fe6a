"""What a challenger configuration must also show: its comparisons, each record once, read as a user would.

A shadow compares every record the champion scored; a canary only the
records its hash picks (the champion scores those too, for the comparison).
Counting them by record id (``read_committed``) proves the challenger ran,
so a figure that costs nothing is a measurement, not a challenger that never
joined the lineup.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence

from serving.bench.configs import BenchConfig
from serving.kafka.clients import consumer, poll_batches
from serving.kafka.settings import KafkaSettings
from serving.pb.comparison_pb2 import Comparison


def count_comparisons(settings: KafkaSettings, timeout_s: float = 60.0, idle_s: float = 5.0) -> Counter[str]:
    """Committed comparisons per record id on ``settings.topics.comparisons``; read until ``idle_s`` without one."""
    reader = consumer(settings, group_id=f"bench-comparisons-{uuid.uuid4().hex[:8]}")
    reader.subscribe([settings.topics.comparisons])
    counts: Counter[str] = Counter()
    try:
        for batch in poll_batches(reader, max_batch=5_000, idle_s=idle_s, until=time.monotonic() + timeout_s):
            counts.update(Comparison.FromString(m.value()).record_id for m in batch)
    finally:
        reader.close()
    return counts


def comparison_problems(config: BenchConfig, sent: Sequence[str], counts: Counter[str]) -> tuple[list[str], str]:
    """(problems, a note) for ``config``'s comparisons of the ``sent`` record ids.

    A shadow: every id exactly once. A canary: no id twice, none that was
    not sent, and a share within 2 points of its weight (20,000 ids give a
    standard deviation of 0.3 points at 20 %).
    """
    problems = []
    sent_ids = set(sent)
    repeated = sum(1 for n in counts.values() if n > 1)
    unknown = len(counts.keys() - sent_ids)
    if repeated or unknown:
        problems.append(f"comparisons: {repeated} ids compared more than once, {unknown} ids never sent")
    share = len(counts) / len(sent) if sent else 0.0
    missing = len(sent_ids - counts.keys())
    if config.challenger_role == "shadow" and missing:
        problems.append(f"comparisons: {missing} of {len(sent)} records never compared")
    weight = config.challenger_weight_bp / 10_000
    if config.challenger_role == "canary" and abs(share - weight) > 0.02:
        problems.append(f"comparisons: the canary took {share:.1%} of the records, not {weight:.0%}")
    note = f"{sum(counts.values())} comparisons over {len(counts)} of {len(sent)} ids ({share:.1%})"
    return problems, note
