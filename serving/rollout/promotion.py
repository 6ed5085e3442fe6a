"""The promotion rule: when a challenger agrees with the champion often enough, on enough records, to replace it.

The rule (:class:`PromotionRule`) recommends promoting the challenger of a
pair when, on its :class:`~serving.pb.comparison_pb2.PairStats`:

* at least ``min_n`` records were compared;
* the Wilson score lower bound of the agreement rate ``agreements / n`` at
  ``confidence`` is at least ``threshold``: we are that confident the true
  agreement rate is no lower (a plain ratio would promote on 3 lucky records);
* the challenger failed no more often than the champion.

It only recommends: applying a promotion is the control plane's business.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from serving.errors import ConfigError
from serving.pb.comparison_pb2 import PairStats


def wilson_lower(successes: int, n: int, confidence: float = 0.95) -> float:
    """The lower bound of the Wilson score interval of ``successes / n`` at two-sided ``confidence``; 0 when n == 0.

    The interval without continuity correction, as
    ``scipy.stats.binomtest(k, n).proportion_ci(confidence, method="wilson")``.

    Raises:
        ValueError: ``successes`` outside ``[0, n]`` or ``confidence`` outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    z2n = z * z / n
    centre = p + z2n / 2.0
    spread = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return max(0.0, (centre - spread) / (1.0 + z2n))


@dataclass(frozen=True)
class Recommendation:
    """Promote ``challenger_version`` over ``champion_version`` for ``data_type``: why, with the figures."""

    data_type: str
    champion_version: str
    challenger_version: str
    challenger_role: str
    n: int
    agreements: int
    wilson_lower: float
    threshold: float
    confidence: float
    champion_errors: int
    challenger_errors: int
    reason: str


@dataclass(frozen=True)
class PromotionRule:
    """Recommend a challenger once ``n >= min_n``, Wilson lower bound >= ``threshold`` and errors no worse.

    Raises:
        ConfigError: (when built) ``min_n`` < 1, or ``threshold`` or ``confidence`` outside (0, 1).
    """

    min_n: int = 1000
    threshold: float = 0.95
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.min_n < 1:
            raise ConfigError(f"promotion needs min_n >= 1, got {self.min_n}")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"promotion threshold must lie in (0, 1), got {self.threshold}")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"promotion confidence must lie in (0, 1), got {self.confidence}")

    def blockers(self, stats: PairStats) -> list[str]:
        """Why ``stats`` do not (yet) warrant a promotion, one sentence each; empty when they do."""
        found = []
        if stats.n < self.min_n:
            found.append(f"{stats.n} records compared, fewer than {self.min_n}")
        lower = self._lower(stats)
        if lower < self.threshold:
            found.append(
                f"agreement {stats.agreements}/{stats.n}: Wilson lower bound {lower:.4f} "
                f"at {self.confidence:.0%} is below {self.threshold}"
            )
        if stats.challenger_errors > stats.champion_errors:
            found.append(f"the challenger failed {stats.challenger_errors} times, the champion {stats.champion_errors}")
        return found

    def recommend(self, stats: PairStats) -> Recommendation | None:
        """A recommendation to promote the challenger of ``stats``, or None when the rule does not hold."""
        if self.blockers(stats):
            return None
        lower = self._lower(stats)
        reason = (
            f"{stats.challenger_role or 'challenger'} {stats.challenger_version} agreed with champion "
            f"{stats.champion_version} on {stats.agreements} of {stats.n} records: Wilson lower bound "
            f"{lower:.4f} at {self.confidence:.0%} >= {self.threshold}, with {stats.challenger_errors} errors "
            f"against the champion's {stats.champion_errors}"
        )
        return Recommendation(
            data_type=stats.data_type,
            champion_version=stats.champion_version,
            challenger_version=stats.challenger_version,
            challenger_role=stats.challenger_role,
            n=stats.n,
            agreements=stats.agreements,
            wilson_lower=lower,
            threshold=self.threshold,
            confidence=self.confidence,
            champion_errors=stats.champion_errors,
            challenger_errors=stats.challenger_errors,
            reason=reason,
        )

    def _lower(self, stats: PairStats) -> float:
        # Computed afresh at the rule's confidence; a malformed count (agreements > n) never promotes.
        if stats.n < 0 or not 0 <= stats.agreements <= stats.n:
            return 0.0
        return wilson_lower(stats.agreements, stats.n, self.confidence)
