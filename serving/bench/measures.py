"""The benchmark's pure measurement helpers: percentiles, throughput, id checks, flag and ``/proc`` parsing.

Nothing here touches Kafka, a process or the clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from serving.errors import ConfigError, EmptyInputError


def parse_sweep(text: str) -> list[tuple[int, int]]:
    """``"B:T,B:T"`` -> ``[(B, T), ...]``: batch sizes and batch waits (ms) for ``--sweep``.

    Raises:
        ConfigError: an item that is not two positive integers joined by ``:``.
    """
    pairs = []
    for item in (i.strip() for i in text.split(",") if i.strip()):
        try:
            size, wait = (int(x) for x in item.split(":"))
        except ValueError:
            raise ConfigError(f"--sweep item {item!r} is not B:T (two integers, e.g. 1000:10)") from None
        if size < 1 or wait < 1:
            raise ConfigError(f"--sweep item {item!r}: B and T must be at least 1")
        pairs.append((size, wait))
    if not pairs:
        raise ConfigError("--sweep needs at least one B:T pair")
    return pairs


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` by the nearest-rank method (no interpolation).

    The result is always one of ``values``: the smallest value with at least
    ``q`` percent of ``values`` at or below it.

    Raises:
        EmptyInputError: ``values`` is empty.
        ValueError: ``q`` is not in (0, 100].
    """
    if not values:
        raise EmptyInputError("no values to take a percentile of")
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def throughput(append_ms: Iterable[int]) -> float | None:
    """Records per second between the first and the last timestamp (ms), as ``(n - 1) / span``.

    ``n`` results span ``n - 1`` intervals. None when there are fewer than two
    results or they all share one millisecond (no measurable span).
    """
    stamps = list(append_ms)
    if len(stamps) < 2:
        return None
    span_ms = max(stamps) - min(stamps)
    if span_ms <= 0:
        return None
    return (len(stamps) - 1) * 1000.0 / span_ms


def steady_throughput(append_ms: Iterable[int], trim: float = 0.1) -> float | None:
    """Records per second over the middle of a run: without the first and the last ``trim`` of the results.

    The first results of a fresh job come while its Python workers and JIT
    warm up, so a run's first-to-last rate depends on its length; the middle
    80 % measures the rate the job holds. Falls back to :func:`throughput`
    when too few results remain.
    """
    stamps = sorted(append_ms)
    cut = int(len(stamps) * trim)
    middle = stamps[cut : len(stamps) - cut] if cut else stamps
    return throughput(middle) if len(middle) >= 2 else throughput(stamps)


@dataclass(frozen=True)
class IdCheck:
    """How the record ids that came back compare with those sent."""

    missing: int
    duplicated: int
    unexpected: int

    @property
    def ok(self) -> bool:
        """Every id came back exactly once, and nothing else did."""
        return not (self.missing or self.duplicated or self.unexpected)

    def problems(self) -> list[str]:
        """One readable sentence per kind of mismatch."""
        out = []
        if self.missing:
            out.append(f"{self.missing} record ids missing from the results")
        if self.duplicated:
            out.append(f"{self.duplicated} record ids came back more than once")
        if self.unexpected:
            out.append(f"{self.unexpected} results for record ids never sent")
        return out


def check_ids(sent: Iterable[str], counts: Mapping[str, int]) -> IdCheck:
    """Compare the ids ``sent`` with ``counts`` (record id -> results received)."""
    expected = set(sent)
    return IdCheck(
        missing=sum(1 for i in expected if counts.get(i, 0) == 0),
        duplicated=sum(1 for i, n in counts.items() if n > 1),
        unexpected=sum(1 for i in counts if i not in expected),
    )


def latency_summary(latencies_ms: Sequence[float]) -> tuple[float | None, float | None]:
    """``(p50, p99)`` of ``latencies_ms``; ``(None, None)`` when there are none."""
    if not latencies_ms:
        return None, None
    return percentile(latencies_ms, 50), percentile(latencies_ms, 99)


def parse_cpu_model(cpuinfo: str) -> str:
    """The first ``model name`` of ``/proc/cpuinfo`` text; ``unknown`` when there is none."""
    match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def parse_mem_total_gib(meminfo: str) -> float | None:
    """``MemTotal`` of ``/proc/meminfo`` text in GiB; None when absent."""
    match = re.search(r"^MemTotal:\s*(\d+)\s*kB", meminfo, re.MULTILINE)
    return int(match.group(1)) / 1024**2 if match else None
