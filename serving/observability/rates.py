"""Records/s from cumulative stats snapshots: per instance (with counter resets) and per data type over time.

A job instance (a key or a bucket) emits a ``ModelStats`` snapshot of each
model it serves every ``stats_every_records`` records and every
``stats_every_seconds`` (and when a model starts or retires). So two
snapshots of one instance can be far apart or milliseconds apart: when the
count rule fires just after the time rule (at 50 records/s and the defaults,
1,000 records and 10 s come due together every 20 s) the last two snapshots
are ~1 s apart and differ by one flush batch. A rate over only those two
measured the batching, not the traffic: 4.4/s while 50/s flowed.

The rate here is over a stated window, with the snapshots' own ``emitted_at``:
from the newest snapshot back to the newest one at least :data:`RATE_WINDOW_MS`
older, or the oldest one known when none is that old. That is "the last 10 s
or the last two snapshots, whichever is longer".

A snapshot with a later ``emitted_at`` and a lower count than the one before
is a counter reset (the instance restarted without its state): a new run
starts, the finished run's totals are carried, and no rate spans the reset.
A snapshot older than the newest one known for its instance is stale.

Every time is Unix epoch milliseconds. Not thread-safe (see :class:`~serving.observability.monitor.Monitor`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from serving.core.stats import ModelServingStats

#: The shortest window records/s is measured over (unless only two snapshots span less).
RATE_WINDOW_MS = 10_000
#: Series points are bucketed to this many milliseconds, so a burst of snapshots is one point.
SERIES_BUCKET_MS = 1000


@dataclass(frozen=True)
class Rate:
    """Records/s over ``window_ms`` ending at ``until`` (an ``emitted_at``)."""

    records_per_second: float
    window_ms: int
    until: int


@dataclass
class InstanceStats:
    """The snapshots of one model version on one instance: the latest, the current run's counts, the resets.

    Attributes:
        stats: the latest snapshot (of the current run).
        emitted_at: its ``emitted_at``.
        points: ``(emitted_at, usage)`` of the current run, oldest first, pruned
            to what the rate window needs.
        carried: the totals of the runs before the last reset (None without a reset).
        resets: counter resets seen.
    """

    stats: ModelServingStats
    emitted_at: int
    points: list[tuple[int, int]] = field(default_factory=list)
    carried: ModelServingStats | None = None
    resets: int = 0

    @classmethod
    def first(cls, stats: ModelServingStats, emitted_at: int) -> InstanceStats:
        """An instance known from one snapshot."""
        return cls(stats, emitted_at, [(emitted_at, stats.usage)])

    def cumulative(self) -> ModelServingStats:
        """Everything this instance scored, over all its runs (so it never goes down)."""
        return self.stats if self.carried is None else self.carried.merge(self.stats)

    def add(self, stats: ModelServingStats, emitted_at: int) -> tuple[int, int, bool] | None:
        """Account for a snapshot: the (records, scoring ns) it adds and whether it starts a run; None when stale.

        One older than the newest known is stale; one of the same ``emitted_at``
        and count is a replay (adds nothing); a later one with a lower count is
        a reset (it starts a run, and what it counts was scored since an unknown time).
        """
        if emitted_at < self.emitted_at:
            return None
        if emitted_at == self.emitted_at and stats.usage <= self.stats.usage:
            return (0, 0, False) if stats.usage == self.stats.usage else None  # a replay, or older in that ms
        before = self.stats
        if stats.usage < before.usage:  # emitted later with less: the instance restarted without its state
            self.carried = before if self.carried is None else self.carried.merge(before)
            self.resets += 1
            self.points = []
            added = (stats.usage, stats.total_duration_ns, True)
        else:
            added = (stats.usage - before.usage, max(stats.total_duration_ns - before.total_duration_ns, 0), False)
        if self.points and self.points[-1][0] == emitted_at:
            self.points[-1] = (emitted_at, stats.usage)  # the same millisecond: the larger count wins
        else:
            self.points.append((emitted_at, stats.usage))
        self.stats, self.emitted_at = stats, emitted_at
        self._prune()
        return added

    def rate(self, window_ms: int = RATE_WINDOW_MS) -> Rate | None:
        """Records/s of the current run over the window (see the module); None when nothing measures it.

        With one snapshot in the first run, the window starts at the model's
        ``since`` (a count of 0 then); after a reset there is no rate until a
        second snapshot.
        """
        newest_t, newest_usage = self.points[-1]
        if len(self.points) >= 2:
            ref_t, ref_usage = self.points[_reference(self.points, newest_t - window_ms)]
            return Rate((newest_usage - ref_usage) * 1000 / (newest_t - ref_t), newest_t - ref_t, newest_t)
        if self.carried is None and 0 < self.stats.since < newest_t:
            return Rate(newest_usage * 1000 / (newest_t - self.stats.since), newest_t - self.stats.since, newest_t)
        return None

    def _prune(self, window_ms: int = RATE_WINDOW_MS) -> None:
        # Keep the window's reference point and everything after it.
        index = _reference(self.points, self.points[-1][0] - window_ms)
        if index:
            del self.points[:index]


def _reference(points: list[tuple[int, int]], cut: int) -> int:
    """The index of the newest point (before the last) at or before ``cut``, else 0 (the oldest)."""
    index = bisect.bisect_right(points, (cut, float("inf"))) - 1
    return min(max(index, 0), len(points) - 2) if len(points) >= 2 else 0


def combined(rates: list[Rate]) -> Rate | None:
    """The rates of a model's instances, summed; the window stated is the longest of them."""
    if not rates:
        return None
    return Rate(sum(r.records_per_second for r in rates), max(r.window_ms for r in rates), max(r.until for r in rates))


@dataclass(frozen=True)
class WindowedPoint:
    """One point of a data type's series: cumulative totals at ``t`` and the rates over the window ending there."""

    t: int
    usage: int
    records_per_second: float | None
    mean_duration_ns: float | None


class Series:
    """What a data type's models scored over time, as records and scoring time added per time bucket.

    Each accepted snapshot adds what it brought (see :meth:`InstanceStats.add`)
    to the bucket of its own ``emitted_at``, so snapshots from several instances
    arriving in any order land where they belong, and nothing is ever
    negative. What an instance's first snapshot (or the first after a reset)
    counts was scored over a time nobody measured: it adds to the usage, not
    to the rates (so the compacted topic read at start-up makes no spikes).
    At most ``points`` buckets are kept (the oldest go first).
    """

    def __init__(self, points: int) -> None:
        self._points = points
        self._buckets: list[list[int]] = []  # [bucket t, records, scoring ns, records outside rates], by t
        self._dropped = 0  # records of the buckets dropped, so usage stays cumulative

    def add(self, emitted_at: int, records: int, duration_ns: int, *, measured: bool = True) -> None:
        """Add what one snapshot brought to its bucket (a bucket is made even for 0: stats were seen then).

        ``measured`` False: the records count in the usage only, not in the rates.
        """
        bucket = emitted_at - emitted_at % SERIES_BUCKET_MS
        added = [records, duration_ns, 0] if measured else [0, 0, records]
        index = bisect.bisect_left(self._buckets, [bucket])
        if index < len(self._buckets) and self._buckets[index][0] == bucket:
            for k in (1, 2, 3):
                self._buckets[index][k] += added[k - 1]
        else:
            if len(self._buckets) >= self._points and index == 0:
                self._dropped += records
                return  # older than everything kept
            self._buckets.insert(index, [bucket, *added])
            if len(self._buckets) > self._points:
                old = self._buckets.pop(0)
                self._dropped += old[1] + old[3]

    def points(self, window_ms: int = RATE_WINDOW_MS) -> list[WindowedPoint]:
        """Each bucket with the cumulative count and records/s and mean ns/record over the window ending there.

        The window is the one of :class:`InstanceStats` over buckets: back to the
        newest bucket at least ``window_ms`` older, or the first bucket kept when
        none is that old. The first bucket has no rate.
        """
        times = [b[0] for b in self._buckets]
        usage, measured, duration = [], [], []
        total_usage, total_measured, total_duration = self._dropped, 0, 0
        for _, records, ns, unmeasured in self._buckets:
            total_usage += records + unmeasured
            total_measured += records
            total_duration += ns
            usage.append(total_usage)
            measured.append(total_measured)
            duration.append(total_duration)
        out = []
        for i, t in enumerate(times):
            rate = latency = None
            if i:
                j = max(min(bisect.bisect_right(times, t - window_ms) - 1, i - 1), 0)
                records = measured[i] - measured[j]
                rate = records * 1000 / (t - times[j])
                latency = (duration[i] - duration[j]) / records if records > 0 else None
            out.append(WindowedPoint(t=t, usage=usage[i], records_per_second=rate, mean_duration_ns=latency))
        return out
