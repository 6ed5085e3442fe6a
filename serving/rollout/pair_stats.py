"""The running comparison of one (champion version, challenger version) pair, kept in Flink state as bytes.

A :class:`PairAggregate` counts the :class:`~serving.pb.comparison_pb2.Comparison`
records of one pair of a data type (:meth:`~PairAggregate.add`), merges with
the aggregate of another instance, round-trips through ``PairAggregateState``
bytes (never pickle) and gives a ``PairStats`` message to emit
(:meth:`~PairAggregate.snapshot`). What is counted where:

* ``n``, ``agreements``: every comparison, failed sides included (a failure
  never agrees, so errors weigh against promotion);
* ``champion_errors``, ``challenger_errors``: comparisons where that side failed;
* ``|delta|`` (mean, and p95 by sketch): the comparisons both sides scored;
* scoring times (p99 by sketch, milliseconds): each side's, on the records it scored;
* ``since``: the earliest record event time seen (0 until one with a time);
* ``challenger_role``: the role of the latest comparison added (a shadow may become a canary).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from serving.errors import ServingError
from serving.pb.comparison_pb2 import Comparison, PairAggregateState, PairStats
from serving.rollout.promotion import wilson_lower
from serving.rollout.quantiles import QuantileSketch, SketchStateError

_FORMAT = 1
_NS_PER_MS = 1_000_000


class PairStateError(ServingError):
    """Bytes that are not a valid pair aggregate state."""

    reason = "bad pair state"


def pair_key(comparison: Comparison) -> tuple[str, str, str]:
    """The pair a comparison counts for: (data type, champion version, challenger version)."""
    return comparison.data_type, comparison.champion.version, comparison.challenger.version


@dataclass
class PairAggregate:
    """Counters and sketches of one pair's comparisons (what counts where: module doc).

    Contract: ``a.merge(b)`` equals one aggregate fed the comparisons of both;
    ``from_bytes(to_bytes())`` equals the original; bytes that are not a
    state raise :class:`PairStateError`; comparisons of another pair raise ``ValueError``.
    """

    data_type: str
    champion_version: str
    challenger_version: str
    challenger_role: str = ""
    instance: str = ""
    since: int = 0
    n: int = 0
    agreements: int = 0
    champion_errors: int = 0
    challenger_errors: int = 0
    scored: int = 0
    sum_abs_delta: float = 0.0
    abs_delta: QuantileSketch = field(default_factory=QuantileSketch)
    champion_ms: QuantileSketch = field(default_factory=QuantileSketch)
    challenger_ms: QuantileSketch = field(default_factory=QuantileSketch)

    @classmethod
    def for_comparison(cls, comparison: Comparison, instance: str = "") -> PairAggregate:
        """An empty aggregate for the pair ``comparison`` belongs to."""
        data_type, champion, challenger = pair_key(comparison)
        return cls(data_type, champion, challenger, challenger_role=comparison.challenger_role, instance=instance)

    @property
    def key(self) -> tuple[str, str, str]:
        """(data type, champion version, challenger version)."""
        return self.data_type, self.champion_version, self.challenger_version

    @property
    def mean_abs_delta(self) -> float:
        """Mean ``|delta|`` over the comparisons both sides scored, 0 when none."""
        return self.sum_abs_delta / self.scored if self.scored else 0.0

    def add(self, comparison: Comparison) -> None:
        """Count one comparison of this pair.

        Raises:
            ValueError: the comparison is of another pair.
        """
        if pair_key(comparison) != self.key:
            raise ValueError(f"comparison of {pair_key(comparison)} added to the aggregate of {self.key}")
        self.n += 1
        self.agreements += int(comparison.agree)
        if comparison.challenger_role:
            self.challenger_role = comparison.challenger_role
        if comparison.record_ts > 0:
            self.since = min(self.since, comparison.record_ts) if self.since else comparison.record_ts
        champion, challenger = comparison.champion, comparison.challenger
        self.champion_errors += bool(champion.error)
        self.challenger_errors += bool(challenger.error)
        if not champion.error:
            self.champion_ms.add(max(champion.duration_ns, 0) / _NS_PER_MS)
        if not challenger.error:
            self.challenger_ms.add(max(challenger.duration_ns, 0) / _NS_PER_MS)
        if not (champion.error or challenger.error) and math.isfinite(comparison.delta):
            self.scored += 1
            self.sum_abs_delta += abs(comparison.delta)
            self.abs_delta.add(abs(comparison.delta))

    def merge(self, other: PairAggregate) -> PairAggregate:
        """A new aggregate of both (another instance's, of the same pair).

        Raises:
            ValueError: ``other`` is of another pair.
        """
        if other.key != self.key:
            raise ValueError(f"cannot merge the aggregate of {self.key} with that of {other.key}")
        return PairAggregate(
            *self.key,
            challenger_role=self.challenger_role or other.challenger_role,
            instance=self.instance if self.instance == other.instance else "",
            since=min(s for s in (self.since, other.since) if s) if (self.since or other.since) else 0,
            n=self.n + other.n,
            agreements=self.agreements + other.agreements,
            champion_errors=self.champion_errors + other.champion_errors,
            challenger_errors=self.challenger_errors + other.challenger_errors,
            scored=self.scored + other.scored,
            sum_abs_delta=self.sum_abs_delta + other.sum_abs_delta,
            abs_delta=self.abs_delta.merge(other.abs_delta),
            champion_ms=self.champion_ms.merge(other.champion_ms),
            challenger_ms=self.challenger_ms.merge(other.challenger_ms),
        )

    def snapshot(self, emitted_at: int, confidence: float = 0.95) -> PairStats:
        """The ``PairStats`` to emit at ``emitted_at`` (epoch ms); Wilson lower bound at ``confidence``."""
        return PairStats(
            data_type=self.data_type,
            champion_version=self.champion_version,
            challenger_version=self.challenger_version,
            challenger_role=self.challenger_role,
            n=self.n,
            agreements=self.agreements,
            mean_abs_delta=self.mean_abs_delta,
            p95_abs_delta=self.abs_delta.quantile(0.95),
            champion_errors=self.champion_errors,
            challenger_errors=self.challenger_errors,
            challenger_p99_ms=self.challenger_ms.quantile(0.99),
            champion_p99_ms=self.champion_ms.quantile(0.99),
            wilson_lower=wilson_lower(self.agreements, self.n, confidence),
            since=self.since,
            emitted_at=emitted_at,
            instance=self.instance,
        )

    def to_bytes(self) -> bytes:
        """The serialized ``PairAggregateState``, to keep in Flink state."""
        return PairAggregateState(
            format=_FORMAT,
            data_type=self.data_type,
            champion_version=self.champion_version,
            challenger_version=self.challenger_version,
            challenger_role=self.challenger_role,
            n=self.n,
            agreements=self.agreements,
            champion_errors=self.champion_errors,
            challenger_errors=self.challenger_errors,
            since=self.since,
            instance=self.instance,
            scored=self.scored,
            sum_abs_delta=self.sum_abs_delta,
            abs_delta=self.abs_delta.to_proto(),
            champion_ms=self.champion_ms.to_proto(),
            challenger_ms=self.challenger_ms.to_proto(),
        ).SerializeToString()

    @classmethod
    def from_bytes(cls, data: bytes) -> PairAggregate:
        """The aggregate serialized in ``data`` (from :meth:`to_bytes`).

        Raises:
            PairStateError: ``data`` does not parse, is of another format, or its counts do not add up.
        """
        try:
            state = PairAggregateState.FromString(bytes(data))
        except DecodeError as exc:
            raise PairStateError(f"pair aggregate state does not parse: {exc}") from exc
        _check_counts(state)
        try:
            sketches = [QuantileSketch.from_proto(s) for s in (state.abs_delta, state.champion_ms, state.challenger_ms)]
        except SketchStateError as exc:
            raise PairStateError(f"pair aggregate state holds a bad sketch: {exc}") from exc
        if sketches[0].count != state.scored:
            raise PairStateError(f"pair aggregate state: {sketches[0].count} deltas for {state.scored} scored records")
        return cls(
            state.data_type,
            state.champion_version,
            state.challenger_version,
            challenger_role=state.challenger_role,
            instance=state.instance,
            since=state.since,
            n=state.n,
            agreements=state.agreements,
            champion_errors=state.champion_errors,
            challenger_errors=state.challenger_errors,
            scored=state.scored,
            sum_abs_delta=state.sum_abs_delta,
            abs_delta=sketches[0],
            champion_ms=sketches[1],
            challenger_ms=sketches[2],
        )


def _check_counts(state: PairAggregateState) -> None:
    problems = []
    if state.format != _FORMAT:
        problems.append(f"format {state.format}, expected {_FORMAT}")
    counts = (state.agreements, state.champion_errors, state.challenger_errors, state.scored)
    if state.n < 0 or not all(0 <= c <= state.n for c in counts):
        problems.append(f"counts {counts} do not fit n = {state.n}")
    if not (math.isfinite(state.sum_abs_delta) and state.sum_abs_delta >= 0.0):
        problems.append(f"sum of |delta| {state.sum_abs_delta}")
    if state.since < 0:
        problems.append(f"since {state.since}")
    if problems:
        raise PairStateError(f"not a pair aggregate state: {'; '.join(problems)}")
