"""A bounded, mergeable quantile sketch of non-negative values, kept as bytes (never pickled).

Log-bucketed like DDSketch (Masson, Rim, Lee, VLDB 2019): for relative
accuracy ``a`` and ``gamma = (1 + a) / (1 - a)``, a value ``x`` counts in
bucket ``i = ceil(log_gamma(x))``, whose estimate ``2 gamma^i / (gamma + 1)``
is within ``a`` of every value in it, relative. So :meth:`QuantileSketch.quantile`
answers within relative error ``a`` of the true order statistic (the value of
rank ``floor(q (n - 1))``, numpy's ``percentile(..., method="lower")``), as
long as the lowest buckets were never folded.

Bounds: values below :data:`MIN_VALUE` (exact zeros included) count in a zero
bucket and read back as 0 (absolute error under ``MIN_VALUE``); the span of
bucket indexes is capped at ``max_buckets``, and when it would grow beyond,
the lowest buckets are folded into one, so only low quantiles lose accuracy
(the sketch serves p95 and p99). With the defaults (1 %, 2048 buckets) the
span covers 17 orders of magnitude, and the bytes stay under ~20 kB.
Estimates are clamped to the exact minimum and maximum, which are kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from google.protobuf.message import DecodeError

from serving.errors import ServingError
from serving.pb.comparison_pb2 import QuantileSketchState

#: Values below this count as zero.
MIN_VALUE = 1e-9
#: The relative accuracy and bucket cap of a sketch built with no arguments.
DEFAULT_ACCURACY = 0.01
DEFAULT_MAX_BUCKETS = 2048
# A state asking for more buckets than this is not one this code wrote.
_BUCKET_LIMIT = 1 << 16
_FORMAT = 1


class SketchStateError(ServingError):
    """Bytes that are not a valid quantile sketch state."""

    reason = "bad sketch state"


class QuantileSketch:
    """Quantiles of non-negative values within relative accuracy ``relative_accuracy``, in bounded space.

    Contract: :meth:`add` takes finite values >= 0 (else ``ValueError``);
    :meth:`merge` of two sketches with the same settings equals one sketch fed
    both inputs; ``from_bytes(to_bytes())`` gives an equal sketch, and bytes
    that are not a sketch raise :class:`SketchStateError`.
    """

    def __init__(self, relative_accuracy: float = DEFAULT_ACCURACY, max_buckets: int = DEFAULT_MAX_BUCKETS) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(f"relative accuracy must lie in (0, 1), got {relative_accuracy}")
        if not 1 <= max_buckets <= _BUCKET_LIMIT:
            raise ValueError(f"max_buckets must lie in [1, {_BUCKET_LIMIT}], got {max_buckets}")
        self.relative_accuracy = relative_accuracy
        self.max_buckets = max_buckets
        self._gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
        self._log_gamma = math.log(self._gamma)
        self._buckets: dict[int, int] = {}
        self._lo = 0  # lowest and highest bucket index held; meaningless while _buckets is empty
        self._hi = 0
        self.zero_count = 0
        self.count = 0
        self.min = 0.0
        self.max = 0.0
        self.sum = 0.0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QuantileSketch) and self.to_proto() == other.to_proto()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"QuantileSketch(count={self.count}, min={self.min}, max={self.max}, buckets={len(self._buckets)})"

    @property
    def mean(self) -> float:
        """The exact mean of the values added, 0 when none."""
        return self.sum / self.count if self.count else 0.0

    def add(self, value: float, count: int = 1) -> None:
        """Count ``value`` (finite, >= 0) ``count`` times."""
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"a quantile sketch takes finite values >= 0, got {value}")
        if count <= 0:
            return
        self.min = value if self.count == 0 else min(self.min, value)
        self.max = value if self.count == 0 else max(self.max, value)
        self.count += count
        self.sum += value * count
        if value < MIN_VALUE:
            self.zero_count += count
        else:
            self._put(math.ceil(math.log(value) / self._log_gamma), count)

    def extend(self, values: Iterable[float]) -> None:
        """Count each of ``values`` once."""
        for value in values:
            self.add(value)

    def quantile(self, q: float) -> float:
        """The estimate of the ``q`` quantile (0 <= q <= 1) of the values added; 0 when none were."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"a quantile lies in [0, 1], got {q}")
        if self.count == 0:
            return 0.0
        rank = q * (self.count - 1)
        seen = self.zero_count
        estimate = 0.0
        if seen <= rank:
            for index in sorted(self._buckets):
                seen += self._buckets[index]
                if seen > rank:
                    estimate = 2.0 * self._gamma**index / (self._gamma + 1.0)
                    break
        return min(max(estimate, self.min), self.max)

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """A new sketch of the values of both; their settings must be equal (else ``ValueError``)."""
        if (self.relative_accuracy, self.max_buckets) != (other.relative_accuracy, other.max_buckets):
            raise ValueError(
                f"cannot merge sketches of accuracy {self.relative_accuracy} / {self.max_buckets} buckets "
                f"with {other.relative_accuracy} / {other.max_buckets}"
            )
        merged = QuantileSketch(self.relative_accuracy, self.max_buckets)
        for part in (self, other):
            if part.count == 0:
                continue
            merged.min = part.min if merged.count == 0 else min(merged.min, part.min)
            merged.max = part.max if merged.count == 0 else max(merged.max, part.max)
            merged.count += part.count
            merged.sum += part.sum
            merged.zero_count += part.zero_count
            for index, n in sorted(part._buckets.items()):
                merged._put(index, n)
        return merged

    def _put(self, index: int, count: int) -> None:
        if not self._buckets:
            self._lo = self._hi = index
        elif index > self._hi:
            self._hi = index
            if self._hi - self._lo + 1 > self.max_buckets:
                self._fold_below(self._hi - self.max_buckets + 1)
        elif index < self._lo:
            floor = self._hi - self.max_buckets + 1
            index = max(index, floor)  # too low for the span: it goes to the lowest bucket kept
            self._lo = min(self._lo, index)
        self._buckets[index] = self._buckets.get(index, 0) + count

    def _fold_below(self, floor: int) -> None:
        folded = sum(self._buckets.pop(i) for i in [i for i in self._buckets if i < floor])
        if folded:
            self._buckets[floor] = self._buckets.get(floor, 0) + folded
        self._lo = min(self._buckets)

    def to_proto(self) -> QuantileSketchState:
        """The ``QuantileSketchState`` of this sketch."""
        buckets = self._buckets
        counts = [buckets.get(i, 0) for i in range(self._lo, self._hi + 1)] if buckets else []
        return QuantileSketchState(
            format=_FORMAT,
            relative_accuracy=self.relative_accuracy,
            max_buckets=self.max_buckets,
            count=self.count,
            zero_count=self.zero_count,
            offset=self._lo if self._buckets else 0,
            counts=counts,
            min=self.min,
            max=self.max,
            sum=self.sum,
        )

    def to_bytes(self) -> bytes:
        """The serialized ``QuantileSketchState``."""
        return self.to_proto().SerializeToString()

    @classmethod
    def from_proto(cls, state: QuantileSketchState) -> QuantileSketch:
        """The sketch a ``QuantileSketchState`` holds.

        Raises:
            SketchStateError: the state is of another format or does not add up.
        """
        counts = list(state.counts)  # one copy out of the message: indexing it element by element is slow
        _check_state(state, counts)
        sketch = cls(state.relative_accuracy, state.max_buckets)
        sketch.count, sketch.zero_count = state.count, state.zero_count
        sketch.min, sketch.max, sketch.sum = state.min, state.max, state.sum
        sketch._buckets = {state.offset + j: n for j, n in enumerate(counts) if n}
        if sketch._buckets:
            sketch._lo, sketch._hi = min(sketch._buckets), max(sketch._buckets)
        return sketch

    @classmethod
    def from_bytes(cls, data: bytes) -> QuantileSketch:
        """The sketch serialized in ``data`` (from :meth:`to_bytes`).

        Raises:
            SketchStateError: ``data`` is not a serialized sketch.
        """
        try:
            state = QuantileSketchState.FromString(bytes(data))
        except DecodeError as exc:
            raise SketchStateError(f"quantile sketch state does not parse: {exc}") from exc
        return cls.from_proto(state)


def _check_state(state: QuantileSketchState, counts: list[int]) -> None:
    problems = []
    if state.format != _FORMAT:
        problems.append(f"format {state.format}, expected {_FORMAT}")
    if not 0.0 < state.relative_accuracy < 1.0:
        problems.append(f"relative accuracy {state.relative_accuracy}")
    if not 1 <= state.max_buckets <= _BUCKET_LIMIT or len(counts) > state.max_buckets:
        problems.append(f"{len(counts)} buckets for a cap of {state.max_buckets}")
    if state.zero_count < 0 or (counts and min(counts) < 0):
        problems.append("negative counts")
    elif state.count != state.zero_count + sum(counts):
        problems.append(f"count {state.count} is not the sum of the bucket counts")
    if not all(math.isfinite(x) for x in (state.min, state.max, state.sum)):
        problems.append("non-finite min, max or sum")
    elif state.count and not 0.0 <= state.min <= state.max:
        problems.append(f"min {state.min} and max {state.max} out of order")
    if problems:
        raise SketchStateError(f"not a quantile sketch state: {'; '.join(problems)}")
