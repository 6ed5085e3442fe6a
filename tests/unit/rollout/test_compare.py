"""compare(): agreement by label or by tolerance, delta, failed sides; side() from real Scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from serving.core.model import BatchScores, Score
from serving.errors import ConfigError, RemoteTimeout, ServingError
from serving.pb.comparison_pb2 import Side
from serving.rollout.compare import compare, label_of, side
from serving.rollout.control import CANARY, SHADOW


def reg(score: float, version: str = "2", error: str = "") -> Side:
    return Side(name="wine-rf", version=version, score=score, error=error, duration_ns=1_000)


def cls(label: str, score: float, version: str = "2") -> Side:
    return Side(name="wine-rf", version=version, score=score, label=label, duration_ns=1_000)


def run(champion: Side, challenger: Side, tolerance: float = 0.5):
    return compare("r-1", "wine", champion, challenger, SHADOW, 1_700_000_000_000, tolerance)


def test_the_comparison_carries_the_record_and_both_sides():
    c = compare("r-7", "wine", reg(5.0, "1"), reg(5.25, "2"), CANARY, 1234)
    assert (c.record_id, c.data_type, c.challenger_role, c.record_ts) == ("r-7", "wine", "canary", 1234)
    assert (c.champion.version, c.champion.score) == ("1", 5.0)
    assert (c.challenger.version, c.challenger.score) == ("2", 5.25)
    assert c.delta == 0.25  # challenger minus champion, exact in binary


@pytest.mark.parametrize(
    ("champion", "challenger", "agree", "delta"),
    [
        (5.4, 5.8, True, 0.4),
        (5.8, 5.4, True, -0.4),
        (5.4, 6.1, False, 0.7),
        (5.0, 5.5, True, 0.5),  # exactly half a unit apart still agrees
        (5.0, 4.5, True, -0.5),
        (5.0, 5.5000001, False, 0.5000001),
        (3.0, 3.0, True, 0.0),
    ],
)
def test_regressors_agree_within_half_a_unit(champion, challenger, agree, delta):
    c = run(reg(champion, "1"), reg(challenger))
    assert c.agree is agree
    assert c.delta == pytest.approx(delta, abs=1e-12)


def test_the_tolerance_is_a_parameter():
    assert not run(reg(5.0, "1"), reg(5.3), tolerance=0.25).agree
    assert run(reg(5.0, "1"), reg(5.3), tolerance=0.3 + 1e-9).agree
    assert not run(reg(5.0, "1"), reg(5.0 + 1e-9), tolerance=0.0).agree
    assert run(reg(5.0, "1"), reg(5.0), tolerance=0.0).agree


@pytest.mark.parametrize("tolerance", [-0.1, math.nan, math.inf])
def test_a_bad_tolerance_is_a_config_error(tolerance):
    with pytest.raises(ConfigError):
        run(reg(5.0, "1"), reg(5.0), tolerance=tolerance)


def test_classifiers_agree_on_equal_labels_whatever_the_tolerance():
    # Different labels never agree, even when the scores lie within the tolerance...
    c = run(cls("red", 0.0, "1"), cls("white", 1.0), tolerance=2.0)
    assert (c.agree, c.delta) == (False, 1.0)
    # ...and equal labels agree even when the scores (class indexes of other label lists) lie far apart.
    c = run(cls("red", 0.0, "1"), cls("red", 3.0))
    assert (c.agree, c.delta) == (True, 3.0)
    c = run(cls("6", 6.0, "1"), cls("5", 5.0))
    assert (c.agree, c.delta) == (False, -1.0)


def test_a_label_on_one_side_only_falls_back_to_the_scores():
    assert run(cls("6", 6.0, "1"), reg(6.2)).agree
    assert not run(cls("6", 6.0, "1"), reg(6.7)).agree


@pytest.mark.parametrize("failed", ["champion", "challenger", "both"])
def test_a_failed_side_never_agrees_and_carries_its_error(failed):
    champion = reg(5.0, "1", error="model failed probe: boom" if failed in ("champion", "both") else "")
    challenger = reg(5.0, error="remote timeout: 50 ms" if failed in ("challenger", "both") else "")
    c = run(champion, challenger)
    assert c.agree is False
    assert c.delta == 0.0
    assert c.champion.error == ("model failed probe: boom" if failed != "challenger" else "")
    assert c.challenger.error == ("remote timeout: 50 ms" if failed != "champion" else "")


def test_a_failed_side_has_score_zero_and_no_label_and_the_inputs_stay_as_given():
    given = Side(name="m", version="2", score=7.0, label="7", error="scoring failed: x")
    c = run(cls("7", 7.0, "1"), given)
    assert (c.challenger.score, c.challenger.label, c.challenger.error) == (0.0, "", "scoring failed: x")
    assert (given.score, given.label) == (7.0, "7")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_score_is_a_failure_with_no_nan_delta(bad):
    c = run(reg(5.0, "1"), reg(bad))
    assert c.agree is False
    assert c.delta == 0.0
    assert c.challenger.error.startswith("bad score")
    assert c.challenger.score == 0.0
    assert not c.champion.error


def test_two_finite_scores_too_far_apart_for_a_float_never_give_an_infinite_delta():
    c = run(reg(-1e308, "1"), reg(1e308))
    assert (c.agree, c.delta) == (False, 0.0)


def test_side_of_a_classifier_score_names_the_winning_label():
    labels = ("3", "4", "5", "6", "7", "8")
    probs = np.array([[0.0075, 0.0417, 0.6685, 0.2675, 0.0148, 0.0], [0.1, 0.4, 0.4, 0.1, 0.0, 0.0]])
    batch = BatchScores(scores=np.array([5.0, 4.0]), probabilities=probs, labels=labels, duration_ns=3_000)
    first = side("wine-rf", "1", batch.row(0))
    assert (first.name, first.version, first.score, first.label, first.duration_ns) == ("wine-rf", "1", 5.0, "5", 1500)
    assert side("wine-rf", "1", batch.row(1)).label == "4"  # a tie goes to the first class


def test_label_of_without_probabilities_reads_the_score():
    assert label_of(Score(6.0, None, ("5", "6", "7"), 0)) == "6"
    assert label_of(Score(1.0, None, ("red", "white"), 0)) == "white"
    assert label_of(Score(9.0, None, ("5", "6", "7"), 0)) == ""
    assert label_of(Score(5.7, None, (), 0)) == ""  # a regressor


def test_side_of_an_error_carries_reason_and_message():
    failed = side("remote", "3", error=RemoteTimeout("no answer in 50 ms"))
    assert failed.error == "remote timeout: no answer in 50 ms"
    assert side("m", "1", error=ZeroDivisionError("division by zero")).error == "ZeroDivisionError: division by zero"
    assert side("m", "1", error=ServingError()).error == "error"
    assert side("m", "1", error="scoring failed: x").error == "scoring failed: x"
    with pytest.raises(ValueError):
        side("m", "1")


def test_a_comparison_of_sides_from_scores_end_to_end():
    champion = side("rf", "1", Score(5.0, (0.2, 0.8), ("4", "5"), 10))
    challenger = side("rf", "2", Score(4.0, (0.6, 0.4), ("4", "5"), 20))
    c = run(champion, challenger)
    assert (c.agree, c.delta, c.champion.label, c.challenger.label) == (False, -1.0, "5", "4")
    assert Side.FromString(c.challenger.SerializeToString()).duration_ns == 20
