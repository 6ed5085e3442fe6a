"""Deciders as pure functions over member responses: consensus, priority, confidence, and order independence."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.deciders import ERROR, LATE, OK, Response, decider_names, resolve
from serving.deciders.base import DeciderError


def _r(member: str, priority: int, score: float, status: str = OK, probabilities=None, label: str = "") -> Response:
    return Response(member, "1", priority, status, score, label, probabilities)


def test_the_three_deciders_are_registered_plug_ins():
    assert {"first_valid_by_priority", "plurality", "max_confidence"} <= set(decider_names())


def test_votes_one_one_zero_give_one():
    votes = [_r("a", 1, 0.0), _r("b", 2, 1.0), _r("c", 3, 1.0)]
    decision = resolve("plurality", {"quorum": 2})(votes)
    assert decision.score == 1.0
    assert decision.member == "b"  # the highest-priority member among those that voted 1


def test_a_tie_goes_to_the_priority_members_answer():
    votes = [_r("low", 4, 2.0), _r("top", 1, 0.0), _r("mid", 3, 2.0), _r("second", 2, 0.0)]
    assert resolve("plurality")(votes).member == "top"
    votes = [_r("top", 1, 2.0, status=LATE), _r("mid", 3, 2.0), _r("second", 2, 0.0)]  # 1 : 1 once top is late
    assert resolve("plurality")(votes).member == "second"


def test_below_quorum_the_fallback_decides():
    votes = [_r("c", 3, 2.0), _r("a", 1, 0.0, status=ERROR), _r("b", 2, 1.0), _r("d", 4, 2.0)]
    assert resolve("plurality", {"quorum": 2})(votes).member == "c"  # 2.0 has two votes: quorum met
    decision = resolve("plurality", {"quorum": 3})(votes)  # two votes at most: the highest-priority valid member
    assert (decision.member, decision.score) == ("b", 1.0)


def test_labels_vote_as_numbers_so_a_label_and_a_score_agree():
    votes = [_r("a", 1, 1.0, probabilities=(0.1, 0.9), label="1"), _r("b", 2, 1.0), _r("c", 3, 0.0)]
    assert resolve("plurality", {"quorum": 2})(votes).answer == 1.0


def test_first_valid_by_priority_skips_late_error_and_non_finite_answers():
    decide = resolve("first_valid_by_priority")
    responses = [_r("smart", 1, 2.0, status=LATE), _r("other", 2, math.nan), _r("fast", 3, 1.0)]
    assert decide(responses).member == "fast"
    assert decide([_r("smart", 1, 2.0), _r("fast", 3, 1.0)]).member == "smart"
    assert decide([_r("smart", 1, 2.0, status=ERROR)]) is None


def test_max_confidence_takes_the_surest_member_and_falls_back_below_min_conf():
    responses = [_r("a", 1, 0.0, probabilities=(0.6, 0.4)), _r("b", 2, 1.0, probabilities=(0.1, 0.9)), _r("r", 3, 5.0)]
    assert resolve("max_confidence", {"min_conf": 0.8})(responses).member == "b"
    assert resolve("max_confidence", {"min_conf": 0.95})(responses).member == "a"
    equal = [_r("b", 2, 1.0, probabilities=(0.2, 0.8)), _r("a", 1, 0.0, probabilities=(0.8, 0.2))]
    assert resolve("max_confidence")(equal).member == "a"


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("majority", {}, "unknown decider 'majority'"),
        ("plurality", {"quorum": 0}, "quorum must be a whole number of at least 1"),
        ("plurality", {"quorum": True}, "quorum must be a whole number"),
        ("plurality", {"k": 2}, "does not take parameters ['k']"),
        ("max_confidence", {"min_conf": 1.5}, "min_conf must be between 0 and 1"),
        ("first_valid_by_priority", {"quorum": 2}, "does not take parameters"),
    ],
)
def test_a_bad_decider_or_parameter_is_one_line_when_resolved(name, params, message):
    with pytest.raises(DeciderError) as raised:
        resolve(name, params)
    assert message in str(raised.value) and "\n" not in str(raised.value)


_responses = st.lists(
    st.tuples(
        st.sampled_from([OK, OK, OK, LATE, ERROR]),
        st.sampled_from([0.0, 1.0, 2.0, math.nan]),
        st.one_of(st.none(), st.floats(0.0, 1.0)),
    ),
    min_size=1,
    max_size=7,
).map(
    lambda rows: [
        _r(f"m{i}", i + 1, score, status, None if p is None else (p, 1.0 - p))
        for i, (status, score, p) in enumerate(rows)
    ]
)


@pytest.mark.parametrize(
    "name, params",
    [("first_valid_by_priority", {}), ("plurality", {"quorum": 1}), ("plurality", {"quorum": 2}),
     ("max_confidence", {"min_conf": 0.7})],
)  # fmt: skip
@given(responses=_responses, data=st.data())
def test_the_decision_does_not_depend_on_the_order_responses_arrive_in(name, params, responses, data):
    decide = resolve(name, params)
    shuffled = data.draw(st.permutations(responses))
    assert decide(shuffled) == decide(responses) == decide(list(reversed(responses)))
