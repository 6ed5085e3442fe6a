"""Counting comparisons per pair of versions, as a keyed operator does it: stats out, and the promotion rule.

One call per :class:`~serving.pb.comparison_pb2.Comparison` (:func:`count`)
takes the pair's aggregate as bytes and gives it back updated, with what to
emit: the pair's ``PairStats`` (as a ``ModelStats`` whose ``pair`` is set)
every ``every`` comparisons, and, the first time the promotion rule holds,
a ``PROMOTE_RECOMMENDED`` model event (and, with ``auto_promote``, the
``PROMOTE`` control message to publish). The recommendation fires exactly
once per pair: on the comparison that first meets the rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.pb.comparison_pb2 import Comparison
from serving.pb.model_control_pb2 import ModelControl
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.model_stats_pb2 import ModelStats
from serving.rollout.control import control_message
from serving.rollout.pair_stats import PairAggregate, pair_key
from serving.rollout.promotion import PromotionRule


@dataclass
class Counted:
    """The outcome of :func:`count`: the aggregate's new bytes and what to emit (None: nothing)."""

    state: bytes
    recommended: bool
    stats: ModelStats | None = None
    event: ModelEvent | None = None
    control: ModelControl | None = None


def key_of(comparison: Comparison) -> str:
    """The state key of a comparison's pair: champion and challenger version, joined by a unit separator."""
    _, champion, challenger = pair_key(comparison)
    return f"{champion}\x1f{challenger}"


def count(
    state: bytes | None,
    recommended: bool,
    comparison: Comparison,
    rule: PromotionRule,
    *,
    every: int,
    now: int,
    auto_promote: bool = False,
    instance: str = "",
) -> Counted:
    """Add ``comparison`` to its pair's aggregate (``state``: its bytes, None for a new pair); see the module doc."""
    aggregate = PairAggregate.from_bytes(state) if state else PairAggregate.for_comparison(comparison, instance)
    aggregate.add(comparison)
    out = Counted(aggregate.to_bytes(), recommended)
    snapshot = aggregate.snapshot(now, rule.confidence)
    recommendation = None if recommended else rule.recommend(snapshot)
    if (every and aggregate.n % every == 0) or recommendation is not None:
        out.stats = stats_message(snapshot, instance)
    if recommendation is not None:
        out.recommended = True
        out.event = ModelEvent(
            kind=ModelEvent.PROMOTE_RECOMMENDED,
            data_type=aggregate.data_type,
            version=aggregate.challenger_version,
            previous_version=aggregate.champion_version,
            reason=recommendation.reason,
            role=aggregate.challenger_role,
            ts=now,
            instance=instance,
            subject="model",
        )
        if auto_promote:
            out.control = control_message(
                aggregate.data_type,
                "promote",
                aggregate.challenger_version,
                reason=recommendation.reason,
                issued_at=now,
                issued_by=f"promotion:{aggregate.data_type}",
            )
    return out


def final_stats(state: bytes, now: int, rule: PromotionRule, instance: str = "") -> ModelStats:
    """The stats of a pair's aggregate as they stand (at the end of input)."""
    return stats_message(PairAggregate.from_bytes(state).snapshot(now, rule.confidence), instance)


def stats_message(pair, instance: str) -> ModelStats:
    """A ``ModelStats`` carrying ``pair`` (``PairStats``): the challenger's version, named ``<role>-vs-<champion>``.

    The name keeps each pair's snapshots apart on the compacted stats topic (keyed by name and version).
    """
    stats = ModelStats(
        name=f"{pair.challenger_role or 'challenger'}-vs-{pair.champion_version}",
        version=pair.challenger_version,
        data_type=pair.data_type,
        since=pair.since,
        instance=instance,
        emitted_at=pair.emitted_at,
    )
    stats.pair.CopyFrom(pair)
    return stats
