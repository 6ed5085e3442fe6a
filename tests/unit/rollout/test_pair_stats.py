"""The quantile sketch against numpy, and PairAggregate: counting, merging, bytes and snapshots."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from serving.errors import ServingError
from serving.pb.comparison_pb2 import Comparison, PairAggregateState, QuantileSketchState, Side
from serving.rollout.pair_stats import PairAggregate, PairStateError
from serving.rollout.quantiles import QuantileSketch, SketchStateError

A = 0.01  # the sketch's stated relative accuracy
QS = [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]


def datasets():
    rng = np.random.default_rng(42)
    yield "lognormal", rng.lognormal(0.0, 2.0, 20_000)
    yield "uniform", rng.uniform(0.0, 3.0, 5_000)
    yield "exponential ms", rng.exponential(12.0, 10_000)
    yield "mostly zeros", np.where(rng.random(3_000) < 0.6, 0.0, rng.uniform(0.1, 1.0, 3_000))
    yield "few", np.array([0.25, 4.0, 1.5])


def sketch_of(values) -> QuantileSketch:
    sketch = QuantileSketch()
    sketch.extend(float(v) for v in values)
    return sketch


def assert_accurate(sketch: QuantileSketch, values: np.ndarray) -> None:
    for q in QS:
        got = sketch.quantile(q)
        # The sketch's guarantee: within A of the order statistic of rank floor(q (n - 1)).
        exact = np.percentile(values, q * 100, method="lower")
        assert abs(got - exact) <= A * exact * (1 + 1e-9), (q, got, exact)
        # So it also brackets numpy's default (interpolated) percentile.
        linear = np.percentile(values, q * 100)
        high = np.percentile(values, q * 100, method="higher")
        assert exact * (1 - A) - 1e-12 <= got and linear <= high * (1 + A) + 1e-12


@pytest.mark.parametrize(("name", "values"), list(datasets()), ids=[n for n, _ in datasets()])
def test_sketch_quantiles_lie_within_the_relative_accuracy_of_numpy(name, values):
    sketch = sketch_of(values)
    assert_accurate(sketch, values)
    assert sketch.count == len(values)
    assert sketch.mean == pytest.approx(np.mean(values), rel=1e-9)
    assert (sketch.min, sketch.max) == (values.min(), values.max())


@pytest.mark.parametrize(("name", "values"), list(datasets()), ids=[n for n, _ in datasets()])
def test_sketch_merge_and_bytes_round_trip_keep_the_accuracy(name, values):
    cut = len(values) // 3
    left, right = sketch_of(values[:cut]), sketch_of(values[cut:])
    merged = left.merge(right)
    assert merged == sketch_of(values[cut:]).merge(sketch_of(values[:cut]))
    restored = QuantileSketch.from_bytes(merged.to_bytes())
    assert restored == merged
    assert restored.to_bytes() == merged.to_bytes()
    assert_accurate(restored, values)
    assert restored.count == len(values)
    # Merging changes nothing the sketch of everything would not hold (the sum may differ in the last bits).
    whole = sketch_of(values)
    assert restored.to_proto().counts == whole.to_proto().counts
    assert restored.zero_count == whole.zero_count


def test_exact_zeros_count_in_the_zero_bucket():
    values = np.array([0.0] * 70 + [2.0] * 30)
    sketch = sketch_of(values)
    assert sketch.zero_count == 70
    assert sketch.quantile(0.5) == 0.0
    assert sketch.quantile(0.95) == pytest.approx(2.0, rel=A)


def test_the_bucket_span_is_bounded_and_high_quantiles_stay_accurate():
    rng = np.random.default_rng(3)
    values = np.concatenate([10.0 ** rng.uniform(-3, 12, 1000), rng.uniform(1e13, 2e13, 200)])
    sketch = QuantileSketch(max_buckets=100)
    sketch.extend(values)
    state = QuantileSketchState.FromString(sketch.to_bytes())
    assert len(state.counts) <= 100
    assert sum(state.counts) + state.zero_count == len(values)
    for q in (0.9, 0.95, 0.99, 1.0):  # their order statistics lie in [1e13, 2e13]: within the kept span
        exact = np.percentile(values, q * 100, method="lower")
        assert abs(sketch.quantile(q) - exact) <= A * exact * (1 + 1e-9)
    default = sketch_of(values)  # 2048 buckets span 17.8 decades: these 16.3 fit, nothing folded
    assert_accurate(default, values)
    assert len(default.to_bytes()) < 20_000


def test_an_empty_sketch_answers_zero_and_round_trips():
    sketch = QuantileSketch()
    assert sketch.quantile(0.99) == 0.0
    assert QuantileSketch.from_bytes(sketch.to_bytes()) == sketch


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_the_sketch_takes_finite_non_negative_values_only(bad):
    with pytest.raises(ValueError):
        QuantileSketch().add(bad)


def test_sketches_of_other_settings_do_not_merge():
    with pytest.raises(ValueError):
        QuantileSketch(0.01).merge(QuantileSketch(0.02))


def bad_sketch_states():
    good = sketch_of([1.0, 2.0, 3.0]).to_proto()
    yield b"\xff\xff\xff\xff"
    yield b""  # no format: not a state this code wrote
    yield b"\x0a\x05hello"
    for change in (
        {"format": 2},
        {"count": 4},
        {"relative_accuracy": 1.5},
        {"max_buckets": 0},
        {"min": 5.0},
        {"sum": math.nan},
    ):
        state = QuantileSketchState()
        state.CopyFrom(good)
        for k, v in change.items():
            setattr(state, k, v)
        yield state.SerializeToString()
    state = QuantileSketchState()
    state.CopyFrom(good)
    state.counts[0] = -state.counts[0]
    yield state.SerializeToString()


@pytest.mark.parametrize("data", list(bad_sketch_states()))
def test_bytes_that_are_no_sketch_raise_a_typed_error(data):
    with pytest.raises(SketchStateError) as caught:
        QuantileSketch.from_bytes(data)
    assert isinstance(caught.value, ServingError)
    assert caught.value.reason == "bad sketch state"


# PairAggregate


def comparison(
    champion: float,
    challenger: float,
    *,
    ts: int = 1000,
    champion_ns: int = 2_000_000,
    challenger_ns: int = 3_000_000,
    champion_error: str = "",
    challenger_error: str = "",
    role: str = "shadow",
) -> Comparison:
    # Built by hand, not by compare(): agree and delta follow the regressor rule with tolerance 0.5.
    failed = bool(champion_error or challenger_error)
    delta = 0.0 if failed else challenger - champion
    return Comparison(
        record_id=f"r-{ts}",
        data_type="wine",
        champion=Side(name="rf", version="1", score=champion, error=champion_error, duration_ns=champion_ns),
        challenger=Side(name="rf", version="2", score=challenger, error=challenger_error, duration_ns=challenger_ns),
        challenger_role=role,
        agree=not failed and abs(delta) <= 0.5,
        delta=delta,
        record_ts=ts,
    )


def random_comparisons(seed: int, n: int):
    """Comparisons and the numpy arrays they were drawn from (the oracle's inputs)."""
    rng = np.random.default_rng(seed)
    champion = rng.uniform(3, 8, n)
    challenger = champion + rng.normal(0, 0.4, n)
    champion_ns = rng.integers(100_000, 50_000_000, n)
    challenger_ns = rng.integers(100_000, 90_000_000, n)
    champion_fails = rng.random(n) < 0.02
    challenger_fails = rng.random(n) < 0.05
    comparisons = [
        comparison(
            float(champion[i]),
            float(challenger[i]),
            ts=int(1_700_000_000_000 + rng.integers(0, 10**6)),
            champion_ns=int(champion_ns[i]),
            challenger_ns=int(challenger_ns[i]),
            champion_error="scoring failed: x" if champion_fails[i] else "",
            challenger_error="remote timeout: y" if challenger_fails[i] else "",
        )
        for i in range(n)
    ]
    return comparisons, champion, challenger, champion_ns, challenger_ns, champion_fails, challenger_fails


def aggregate_of(comparisons) -> PairAggregate:
    aggregate = PairAggregate.for_comparison(comparisons[0], instance="key:wine")
    for c in comparisons:
        aggregate.add(c)
    return aggregate


def test_an_aggregate_counts_and_snapshots_what_numpy_says():
    comparisons, champ, chall, champ_ns, chall_ns, champ_fail, chall_fail = random_comparisons(1, 4000)
    stats = aggregate_of(comparisons).snapshot(emitted_at=42)
    both = ~champ_fail & ~chall_fail
    abs_delta = np.abs(chall - champ)[both]
    agreements = int(np.sum(abs_delta <= 0.5))
    assert (stats.n, stats.agreements) == (4000, agreements)
    assert (stats.champion_errors, stats.challenger_errors) == (int(champ_fail.sum()), int(chall_fail.sum()))
    assert stats.mean_abs_delta == pytest.approx(np.mean(abs_delta), rel=1e-9)
    p95 = np.percentile(abs_delta, 95, method="lower")
    assert abs(stats.p95_abs_delta - p95) <= A * p95
    champ_p99 = np.percentile(champ_ns[~champ_fail] / 1e6, 99, method="lower")
    chall_p99 = np.percentile(chall_ns[~chall_fail] / 1e6, 99, method="lower")
    assert abs(stats.champion_p99_ms - champ_p99) <= A * champ_p99
    assert abs(stats.challenger_p99_ms - chall_p99) <= A * chall_p99
    wilson = binomtest(agreements, 4000).proportion_ci(confidence_level=0.95, method="wilson").low
    assert stats.wilson_lower == pytest.approx(wilson, rel=1e-9)
    assert stats.since == min(c.record_ts for c in comparisons)
    assert (stats.emitted_at, stats.instance, stats.challenger_role) == (42, "key:wine", "shadow")
    assert (stats.data_type, stats.champion_version, stats.challenger_version) == ("wine", "1", "2")


def test_a_small_aggregate_by_hand():
    aggregate = PairAggregate("wine", "1", "2")
    aggregate.add(comparison(5.0, 5.25, ts=300))  # agrees, |delta| 0.25
    aggregate.add(comparison(5.0, 6.0, ts=100))  # disagrees, |delta| 1
    aggregate.add(comparison(5.0, 5.0, ts=200, challenger_error="remote timeout: z", role="canary"))
    stats = aggregate.snapshot(emitted_at=7)
    assert (stats.n, stats.agreements, stats.champion_errors, stats.challenger_errors) == (3, 1, 0, 1)
    assert stats.mean_abs_delta == 0.625
    assert stats.p95_abs_delta == 0.25  # rank floor(0.95 * (2 - 1)) = 0: the smaller, clamped to the exact min
    assert stats.champion_p99_ms == pytest.approx(2.0, rel=A)
    assert stats.challenger_p99_ms == pytest.approx(3.0, rel=A)  # the failed side's time is not counted
    assert stats.since == 100
    assert stats.challenger_role == "canary"  # the latest role


def test_an_empty_aggregate_snapshots_zeros():
    stats = PairAggregate("wine", "1", "2").snapshot(emitted_at=1)
    assert (stats.n, stats.mean_abs_delta, stats.p95_abs_delta, stats.wilson_lower, stats.since) == (0, 0, 0, 0, 0)


def test_merge_equals_one_aggregate_of_everything():
    comparisons, *_ = random_comparisons(2, 1500)
    left, right = aggregate_of(comparisons[:600]), aggregate_of(comparisons[600:])
    right.instance = "key:other"
    merged, whole = left.merge(right), aggregate_of(comparisons)
    merged_stats, whole_stats = merged.snapshot(9), whole.snapshot(9)
    for name in ("n", "agreements", "champion_errors", "challenger_errors", "since", "p95_abs_delta"):
        assert getattr(merged_stats, name) == getattr(whole_stats, name), name
    assert merged_stats.champion_p99_ms == whole_stats.champion_p99_ms
    assert merged_stats.mean_abs_delta == pytest.approx(whole_stats.mean_abs_delta, rel=1e-12)
    assert merged.instance == ""  # counted by two instances


def test_bytes_round_trip_gives_an_equal_aggregate_that_keeps_counting():
    comparisons, *_ = random_comparisons(3, 800)
    first = aggregate_of(comparisons[:500])
    restored = PairAggregate.from_bytes(first.to_bytes())
    assert restored == first
    for c in comparisons[500:]:
        restored.add(c)
    assert restored.snapshot(5) == aggregate_of(comparisons).snapshot(5)


def test_comparisons_of_another_pair_are_refused():
    aggregate = PairAggregate("wine", "1", "2")
    other = comparison(5.0, 5.0)
    other.challenger.version = "3"
    with pytest.raises(ValueError):
        aggregate.add(other)
    with pytest.raises(ValueError):
        aggregate.merge(PairAggregate("wine", "1", "3"))


def bad_pair_states():
    good = PairAggregateState.FromString(aggregate_of([comparison(5.0, 5.1), comparison(5.0, 7.0)]).to_bytes())
    yield b"\xff\xff\xff\xff"
    yield b""
    yield b"garbage that is not a state"
    for change in ({"format": 0}, {"agreements": 3}, {"scored": 1}, {"sum_abs_delta": -1.0}, {"n": -1}):
        state = PairAggregateState()
        state.CopyFrom(good)
        for k, v in change.items():
            setattr(state, k, v)
        yield state.SerializeToString()
    state = PairAggregateState()
    state.CopyFrom(good)
    state.abs_delta.count = 99
    yield state.SerializeToString()


@pytest.mark.parametrize("data", list(bad_pair_states()))
def test_bytes_that_are_no_pair_state_raise_a_typed_error(data):
    with pytest.raises(PairStateError) as caught:
        PairAggregate.from_bytes(data)
    assert isinstance(caught.value, ServingError)
    assert caught.value.reason == "bad pair state"
