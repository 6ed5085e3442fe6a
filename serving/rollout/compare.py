"""One comparison per record scored by both the champion and a challenger, as a ``Comparison`` protobuf.

The contract of :func:`compare`:

* ``delta`` is ``challenger.score - champion.score``;
* ``agree``, when both sides scored: for classifiers (both labels non-empty)
  the labels are equal; otherwise ``|delta| <= tolerance`` (default
  :data:`DEFAULT_TOLERANCE`, half a unit of the score: wine quality is a 0-10
  grade, so a regressor's 5.4 agrees with a 5.8 but not with a 6.1);
* a side that failed (its ``error`` set) or gave a non-finite score never
  agrees: ``agree`` is False, ``delta`` is 0.0 (never NaN), and the failed side
  carries its error (``"bad score: ..."`` for a non-finite one), score 0 and no label.
"""

from __future__ import annotations

import math

import numpy as np

from serving.core.model import Score
from serving.errors import ConfigError, ServingError
from serving.pb.comparison_pb2 import Comparison, Side

#: Regressors agree when their scores differ by at most this much: half a unit.
DEFAULT_TOLERANCE = 0.5


def label_of(score: Score) -> str:
    """A classifier's winning label (first in ``labels`` order on ties); "" for a regressor.

    With probabilities, the label of the highest; without (a model server that
    sends only the class), the numeric label equal to the score, or for
    non-numeric labels the one at the score's index ("" when none fits).
    """
    if not score.labels:
        return ""
    if score.probabilities is not None and len(score.probabilities) == len(score.labels):
        probabilities = np.nan_to_num(np.asarray(score.probabilities, dtype=np.float64), nan=0.0)
        return score.labels[int(np.argmax(probabilities))]
    try:
        numbers = [float(label) for label in score.labels]
    except ValueError:  # labels are not numeric: the score is the class index
        index = int(score.score) if math.isfinite(score.score) and float(score.score).is_integer() else -1
        return score.labels[index] if 0 <= index < len(score.labels) else ""
    return next((label for label, number in zip(score.labels, numbers) if number == score.score), "")


def error_text(error: BaseException) -> str:
    """How a failure reads in ``Side.error``: ``"<reason>: <message>"`` (the class name for an unexpected error)."""
    reason = error.reason if isinstance(error, ServingError) else type(error).__name__
    message = str(error)
    return f"{reason}: {message}" if message else reason


def side(name: str, version: str, score: Score | None = None, error: BaseException | str = "") -> Side:
    """One model's answer for a record: its ``score``, or the ``error`` it failed with.

    Raises:
        ValueError: neither a score nor an error is given.
    """
    if error:
        text = error if isinstance(error, str) else error_text(error)
        duration = score.duration_ns if score is not None else 0
        return Side(name=name, version=version, error=text, duration_ns=duration)
    if score is None:
        raise ValueError(f"side {name}:{version} needs a score or an error")
    return Side(name=name, version=version, score=score.score, label=label_of(score), duration_ns=score.duration_ns)


def compare(
    record_id: str,
    data_type: str,
    champion_side: Side,
    challenger_side: Side,
    role: str,
    record_ts: int,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Comparison:
    """The comparison of the champion's and a challenger's answers for one record (the contract: module doc).

    ``role`` is the challenger's (:data:`SHADOW` or :data:`CANARY`);
    ``record_ts`` the record's event time, epoch milliseconds. The sides given
    are not changed.

    Raises:
        ConfigError: ``tolerance`` is negative or not finite.
    """
    if not (math.isfinite(tolerance) and tolerance >= 0.0):
        raise ConfigError(f"comparison tolerance must be a finite number >= 0, got {tolerance}")
    champion, challenger = _settled(champion_side), _settled(challenger_side)
    comparison = Comparison(
        record_id=record_id,
        data_type=data_type,
        champion=champion,
        challenger=challenger,
        challenger_role=role,
        record_ts=record_ts,
    )
    if champion.error or challenger.error:
        return comparison  # agree False, delta 0.0: the proto3 defaults
    comparison.delta = challenger.score - champion.score
    if champion.label and challenger.label:
        comparison.agree = champion.label == challenger.label
    else:
        comparison.agree = abs(comparison.delta) <= tolerance
    if not math.isfinite(comparison.delta):  # two finite scores far apart (1e308 and -1e308)
        comparison.delta, comparison.agree = 0.0, False
    return comparison


def _settled(given: Side) -> Side:
    """A copy of ``given`` in which a failed side has score 0 and no label, and a non-finite score is a failure."""
    settled = Side()
    settled.CopyFrom(given)
    if not settled.error and not math.isfinite(settled.score):
        settled.error = f"bad score: the model gave {settled.score}"
    if settled.error:
        settled.score, settled.label = 0.0, ""
    return settled
