"""wilson_lower against scipy's Wilson interval, and the promotion rule at its boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from serving.errors import ConfigError
from serving.pb.comparison_pb2 import PairStats
from serving.rollout.promotion import PromotionRule, Recommendation, wilson_lower


def scipy_lower(k: int, n: int, confidence: float = 0.95) -> float:
    return binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson").low


EDGES = [(0, 1), (1, 1), (0, 2), (1, 2), (2, 2), (0, 1000), (1, 1000), (999, 1000), (1000, 1000), (0, 10**7)]
EDGES += [(10**7, 10**7), (10**7 - 1, 10**7), (1, 10**7), (963, 1000), (964, 1000), (950, 1000)]


@pytest.mark.parametrize(("k", "n"), EDGES)
@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99, 0.999])
def test_wilson_lower_matches_scipy_on_edge_cases(k, n, confidence):
    assert wilson_lower(k, n, confidence) == pytest.approx(scipy_lower(k, n, confidence), rel=1e-9, abs=1e-12)


def test_wilson_lower_matches_scipy_on_random_counts():
    rng = np.random.default_rng(7)
    ns = np.concatenate([rng.integers(1, 50, 200), rng.integers(50, 10**6, 300)])
    for n in ns:
        n = int(n)
        k = int(rng.integers(0, n + 1))
        assert wilson_lower(k, n) == pytest.approx(scipy_lower(k, n), rel=1e-9, abs=1e-12), (k, n)


def test_wilson_lower_is_zero_without_records_and_rejects_bad_counts():
    assert wilson_lower(0, 0) == 0.0
    for k, n in [(-1, 10), (11, 10), (0, -1)]:
        with pytest.raises(ValueError):
            wilson_lower(k, n)
    for confidence in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError):
            wilson_lower(5, 10, confidence)


def stats(n: int, agreements: int, champion_errors: int = 0, challenger_errors: int = 0) -> PairStats:
    return PairStats(
        data_type="wine",
        champion_version="1",
        challenger_version="2",
        challenger_role="shadow",
        n=n,
        agreements=agreements,
        champion_errors=champion_errors,
        challenger_errors=challenger_errors,
    )


def smallest_promoting_k(n: int, threshold: float = 0.95) -> int:
    # By scipy, not by the code under test.
    return next(k for k in range(n + 1) if scipy_lower(k, n) >= threshold)


def test_the_rule_fires_exactly_at_the_wilson_boundary():
    k = smallest_promoting_k(1000)
    assert k == 964  # 964/1000: Wilson lower bound 0.95056; 963/1000: 0.94942
    rule = PromotionRule()
    assert rule.recommend(stats(1000, k - 1)) is None
    recommendation = rule.recommend(stats(1000, k))
    assert isinstance(recommendation, Recommendation)
    assert (recommendation.n, recommendation.agreements) == (1000, 964)
    assert recommendation.wilson_lower == pytest.approx(scipy_lower(964, 1000), rel=1e-9)
    assert (recommendation.data_type, recommendation.champion_version, recommendation.challenger_version) == (
        "wine",
        "1",
        "2",
    )
    assert "964 of 1000" in recommendation.reason
    assert "0.9506" in recommendation.reason


def test_fewer_records_than_min_n_never_fire():
    rule = PromotionRule()
    assert rule.recommend(stats(999, 999)) is None
    assert any("fewer than 1000" in b for b in rule.blockers(stats(999, 999)))
    assert rule.recommend(stats(1000, 1000)) is not None


def test_more_challenger_errors_than_the_champion_never_fire():
    rule = PromotionRule()
    assert rule.recommend(stats(10_000, 10_000, champion_errors=3, challenger_errors=4)) is None
    assert rule.recommend(stats(10_000, 9_990, champion_errors=3, challenger_errors=3)) is not None
    assert rule.recommend(stats(10_000, 9_990, champion_errors=0, challenger_errors=1)) is None
    assert rule.blockers(stats(10_000, 10_000, 0, 1)) == ["the challenger failed 1 times, the champion 0"]


def test_the_rule_uses_its_own_confidence_and_threshold():
    # 964/1000 clears 0.95 at 95 % but not at 99 % confidence.
    assert scipy_lower(964, 1000, 0.99) < 0.95
    assert PromotionRule(confidence=0.99).recommend(stats(1000, 964)) is None
    assert PromotionRule(threshold=0.9, min_n=10).recommend(stats(100, 96)) is not None
    assert scipy_lower(96, 100) >= 0.9


def test_a_malformed_count_never_fires():
    assert PromotionRule(min_n=1).recommend(stats(1000, 1001)) is None


@pytest.mark.parametrize("kw", [{"min_n": 0}, {"threshold": 0.0}, {"threshold": 1.0}, {"confidence": 1.0}])
def test_a_bad_rule_is_a_config_error(kw):
    with pytest.raises(ConfigError):
        PromotionRule(**kw)
