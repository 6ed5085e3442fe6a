"""A challenger configuration's comparisons: every record once for a shadow, the canary's share for a canary."""

from __future__ import annotations

from collections import Counter

from serving.bench.challengers import comparison_problems
from serving.bench.configs import CONFIGS

SENT = [f"t{i}" for i in range(1_000)]


def test_a_shadow_compares_every_record_exactly_once():
    shadow = CONFIGS["keyed-tf-shadow"]
    problems, note = comparison_problems(shadow, SENT, Counter(SENT))
    assert problems == [] and note == "1000 comparisons over 1000 of 1000 ids (100.0%)"
    problems, _ = comparison_problems(shadow, SENT, Counter(SENT[:990]))
    assert problems == ["comparisons: 10 of 1000 records never compared"]
    problems, _ = comparison_problems(shadow, SENT, Counter([*SENT, "t3", "elsewhere"]))
    assert problems == ["comparisons: 1 ids compared more than once, 1 ids never sent"]


def test_a_canary_compares_only_its_share_of_the_records():
    canary = CONFIGS["keyed-tf-canary"]  # weight 0.2
    problems, note = comparison_problems(canary, SENT, Counter(SENT[:205]))
    assert problems == [] and note.endswith("(20.5%)")
    problems, _ = comparison_problems(canary, SENT, Counter(SENT[:300]))
    assert problems == ["comparisons: the canary took 30.0% of the records, not 20%"]
