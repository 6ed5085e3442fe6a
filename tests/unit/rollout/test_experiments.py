"""Counting comparisons per pair: stats every N, one promotion recommendation, the auto-promote control.

When the rule first holds is stated by hand (min_n) or found with scipy's Wilson interval
(``binomtest(k, n).proportion_ci(method="wilson")``), never with the code under test.
"""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from serving.pb.comparison_pb2 import Comparison, Side
from serving.pb.model_control_pb2 import ModelControl
from serving.pb.model_event_pb2 import ModelEvent
from serving.rollout.control import parse_control
from serving.rollout.experiments import count, final_stats, key_of
from serving.rollout.keeper import on_control
from serving.rollout.lineup import Lineup, VersionEntry
from serving.rollout.promotion import PromotionRule

T0 = 1_700_000_000_000
NOW = 1_800_000_000_000


def comparison(i: int, agree: bool = True, champion_error: str = "", challenger_error: str = "") -> Comparison:
    """Record ``i`` scored by champion 1 and shadow 2: the same class when they agree, else 5 against 6."""
    champion = Side(name="rf", version="1", score=5.0, label="5", error=champion_error, duration_ns=1_000_000)
    challenger = Side(name="rf", version="2", score=5.0 if agree else 6.0, label="5" if agree else "6")
    challenger.error, challenger.duration_ns = challenger_error, 2_000_000
    if champion_error or challenger_error:  # a failed side never agrees (serving.rollout.compare's contract)
        agree = False
    return Comparison(
        record_id=str(i),
        data_type="wine",
        champion=champion,
        challenger=challenger,
        challenger_role="shadow",
        agree=agree,
        delta=0.0 if agree else 1.0,
        record_ts=T0 + i,
    )


def feed(comparisons, rule: PromotionRule, every: int = 0, **kw):
    """Count ``comparisons`` in order, as the keyed operator does; the outcome of each call, in order."""
    state, recommended, outs = None, False, []
    for c in comparisons:
        out = count(state, recommended, c, rule, every=every, now=NOW, **kw)
        state, recommended = out.state, out.recommended
        outs.append(out)
    return outs


def fired_at(outs) -> list[int]:
    """The 1-based call numbers that gave a recommendation event."""
    return [i for i, out in enumerate(outs, start=1) if out.event is not None]


def wilson_low(k: int, n: int, confidence: float = 0.95) -> float:
    return binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson").low


def test_the_key_is_the_pair_of_versions():
    assert key_of(comparison(0)) == "1\x1f2"


def test_agreement_on_every_record_is_recommended_exactly_on_the_min_nth():
    rule = PromotionRule(min_n=200, threshold=0.95)
    assert wilson_low(199, 199) >= 0.95  # so only min_n holds it back until the 200th
    outs = feed([comparison(i) for i in range(260)], rule, instance="key:wine")
    assert fired_at(outs) == [200]
    assert [out.recommended for out in outs] == [False] * 199 + [True] * 61
    event = outs[199].event
    assert event.kind == ModelEvent.PROMOTE_RECOMMENDED
    assert (event.data_type, event.version, event.previous_version) == ("wine", "2", "1")
    assert (event.role, event.ts, event.instance, event.subject) == ("shadow", NOW, "key:wine", "model")
    assert "200 of 200" in event.reason
    assert all(out.control is None for out in outs)  # no auto_promote: only recommended


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_the_recommendation_comes_on_the_first_n_whose_wilson_bound_meets_the_threshold(confidence):
    threshold, min_n = 0.8, 20
    agrees = [i % 10 != 3 for i in range(400)]  # 9 of every 10 agree ...
    agrees[6:9] = [False] * 3  # ... after a bad start, so the bound climbs to 0.8 slowly
    k, lows = 0, []
    for n, agree in enumerate(agrees, start=1):
        k += agree
        lows.append(wilson_low(k, n, confidence))
    expected = next(n for n, low in enumerate(lows, start=1) if n >= min_n and low >= threshold)
    assert expected > min_n and any(low < threshold for low in lows[expected:])  # it dips below again: once only
    outs = feed([comparison(i, agree) for i, agree in enumerate(agrees)], PromotionRule(min_n, threshold, confidence))
    assert fired_at(outs) == [expected]
    assert f"{sum(agrees[:expected])} of {expected}" in outs[expected - 1].event.reason


def test_a_challenger_failing_more_often_than_the_champion_is_not_recommended():
    rule = PromotionRule(min_n=200, threshold=0.8)
    records = [comparison(0, challenger_error="scoring error: boom")] + [comparison(i) for i in range(1, 300)]
    records.append(comparison(300, champion_error="scoring error: bang"))
    assert wilson_low(299, 301) >= 0.8
    outs = feed(records, rule)
    assert fired_at(outs) == [301]  # errors even at last: 1 against 1


def test_stats_come_every_n_comparisons_and_with_the_recommendation():
    rule = PromotionRule(min_n=200, threshold=0.95)
    outs = feed([comparison(i) for i in range(260)], rule, every=7, instance="key:wine")
    with_stats = [i for i, out in enumerate(outs, start=1) if out.stats is not None]
    assert with_stats == sorted({*range(7, 261, 7), 200})
    stats = outs[48].stats  # the 49th comparison
    assert (stats.name, stats.version, stats.data_type) == ("shadow-vs-1", "2", "wine")
    assert (stats.instance, stats.emitted_at, stats.since) == ("key:wine", NOW, T0)
    assert (stats.pair.n, stats.pair.agreements, stats.pair.champion_version) == (49, 49, "1")
    assert stats.pair.wilson_lower == pytest.approx(wilson_low(49, 49))


def test_without_every_only_the_recommendation_brings_stats():
    outs = feed([comparison(i) for i in range(210)], PromotionRule(min_n=200, threshold=0.95))
    assert [i for i, out in enumerate(outs, start=1) if out.stats is not None] == [200]


def test_auto_promote_gives_a_promote_control_naming_the_challenger_that_the_lineup_applies():
    rule = PromotionRule(min_n=200, threshold=0.95)
    outs = feed([comparison(i) for i in range(230)], rule, auto_promote=True)
    assert [i for i, out in enumerate(outs, start=1) if out.control is not None] == [200]
    control = outs[199].control
    assert (control.action, control.data_type, control.target_version) == (ModelControl.PROMOTE, "wine", "2")
    assert control.issued_at == NOW and control.reason == outs[199].event.reason
    payload = control.SerializeToString()
    assert parse_control(payload) == control  # well-formed
    lineup = Lineup("wine").accepted(VersionEntry("1", created_at=1), "champion").lineup
    lineup = lineup.accepted(VersionEntry("2", created_at=2), "shadow").lineup
    change = on_control(lineup, payload, NOW, 1024)
    assert change.serve == "2" and change.dead_letter is None
    assert [(e.kind, e.version) for e in change.events] == [(ModelEvent.PROMOTED, "2"), (ModelEvent.RETIRED, "1")]


def test_final_stats_equal_the_counts():
    rule = PromotionRule(min_n=1000, threshold=0.95, confidence=0.9)
    records = [comparison(i, agree=i % 4 != 0) for i in range(1, 101)]  # 25 disagree, 75 agree
    records += [comparison(101, champion_error="x"), comparison(102, challenger_error="y")]
    records += [comparison(103, challenger_error="z")]
    outs = feed(records, rule, instance="bucket:3")
    assert fired_at(outs) == []
    stats = final_stats(outs[-1].state, NOW, rule, instance="bucket:3")
    pair = stats.pair
    assert (pair.n, pair.agreements, pair.champion_errors, pair.challenger_errors) == (103, 75, 1, 2)
    assert pair.wilson_lower == pytest.approx(wilson_low(75, 103, 0.9), abs=1e-12)
    assert (pair.since, pair.data_type, pair.challenger_role) == (T0 + 1, "wine", "shadow")
    assert (stats.name, stats.version, stats.instance, stats.emitted_at) == ("shadow-vs-1", "2", "bucket:3", NOW)
