"""How a MiningModel combines its members' results, as JPMML-Evaluator combines them.

Pure array functions over the members' results, [members, rows, ...], and
``used`` [members, rows], the members whose predicate is TRUE and whose
prediction counts. Members are taken in document order, so sums round alike.
Probabilities are read by label; a label a member does not hold counts as 0.
The result's label ``rank`` (see ``Result.rank``) is the order in which the
labels were first seen, member by member, which breaks ties as JPMML's result
map does.
"""

from __future__ import annotations

import warnings

import numpy as np

from serving.formats.pmml.compiler.base import Result
from serving.formats.pmml.compiler.labels import NO_RANK, dense_rank, winner


def first_seen(ranks: np.ndarray, used: np.ndarray) -> np.ndarray:
    """[rows, L] ranks of the labels in the order the ``used`` members hold them, member after member."""
    n_labels = ranks.shape[2]
    offsets = (np.arange(len(ranks), dtype=np.int64) * n_labels)[:, None, None]
    held = used[:, :, None] & (ranks < NO_RANK)
    return dense_rank(np.where(held, offsets + ranks, NO_RANK).min(axis=0, initial=NO_RANK))


def weighted_sum(values: np.ndarray, used: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Sum over the used members of ``values`` [members, rows, ...], each times its weight if ``weights``.

    Added member after member (``add.accumulate`` is sequential), as JPMML adds them.
    """
    if weights is not None:
        values = values * weights.reshape((-1,) + (1,) * (values.ndim - 1))
    mask = used.reshape(used.shape + (1,) * (values.ndim - 2))
    return np.add.accumulate(np.where(mask, values, 0.0), axis=0)[-1]


def regression(method: str, values: np.ndarray, used: np.ndarray, weights: np.ndarray, fired: np.ndarray) -> np.ndarray:
    """The combined value of (weighted) sum, average, median.

    NaN where no member is used, except that a sum is 0 where members fired
    but all were skipped (JPMML's sum of nothing; its other methods fail there).
    """
    count = used.sum(axis=0)
    if method in ("sum", "weightedSum"):
        count = fired.sum(axis=0)
    weighted = weights if method.startswith("weighted") else None
    if method in ("sum", "weightedSum"):
        value = weighted_sum(values, used, weighted)
    elif method == "average":
        value = weighted_sum(values, used, None) / count
    elif method == "weightedAverage":
        value = weighted_sum(values, used, weights) / weighted_sum(np.ones_like(values), used, weights)
    elif method == "median":
        with warnings.catch_warnings():  # a row without a used member is NaN, as wanted
            warnings.simplefilter("ignore", RuntimeWarning)
            value = np.nanmedian(np.where(used, values, np.nan), axis=0)
    else:
        value = _weighted_median(values, used, weights)
    return np.where(count > 0, value, np.nan)


def _weighted_median(values: np.ndarray, used: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row, the smallest used value whose cumulative weight (values ascending) reaches half the total."""
    order = np.argsort(np.where(used, values, np.inf), axis=0, kind="stable")
    sorted_values = np.take_along_axis(values, order, axis=0)
    sorted_weights = np.take_along_axis(np.where(used, weights[:, None], 0.0), order, axis=0)
    cumulative = np.cumsum(sorted_weights, axis=0)
    reached = cumulative >= cumulative[-1] * 0.5
    return np.take_along_axis(sorted_values, np.argmax(reached, axis=0)[None, :], axis=0)[0]


def average(method: str, probs: np.ndarray, ranks: np.ndarray, used: np.ndarray, weights: np.ndarray) -> Result:
    """(weighted) average of the members' probabilities by label; no prediction where no member is used."""
    if method == "average":
        divisor = used.sum(axis=0).astype(np.float64)
        total = weighted_sum(probs, used, None)
    else:
        divisor = weighted_sum(np.ones(used.shape), used, weights)
        total = weighted_sum(probs, used, weights)
    with np.errstate(all="ignore"):
        mean = total / divisor[:, None]
    return _classified(mean, first_seen(ranks, used), used.any(axis=0))


def votes(
    labels: np.ndarray, used: np.ndarray, weights: np.ndarray | None, n_labels: int, null_votes: np.ndarray
) -> Result:
    """(weighted) majority vote; a label's probability is its share of the votes, ties to the first voted.

    ``null_votes`` [rows]: the votes of members without a prediction (under
    ``continue``); where they outnumber every label's, there is no prediction.
    """
    n = labels.shape[1]
    tally = np.zeros((n, n_labels))
    keys = np.full((n, n_labels), NO_RANK, dtype=np.int64)
    rows = np.arange(n)
    for i in range(len(labels)):
        ok = used[i] & (labels[i] >= 0)
        tally[rows[ok], labels[i][ok]] += 1.0 if weights is None else weights[i]
        keys[rows[ok], labels[i][ok]] = np.minimum(keys[rows[ok], labels[i][ok]], i)
    total = tally.sum(axis=1)
    with np.errstate(all="ignore"):
        share = tally / total[:, None]
    present = (keys < NO_RANK).any(axis=1) & ~(null_votes > tally.max(axis=1, initial=0.0))
    return _classified(share, dense_rank(keys), present)


def _classified(probs: np.ndarray, rank: np.ndarray, present: np.ndarray) -> Result:
    """A classification Result: the winner of ``probs``, and nothing at all where not ``present``."""
    probs = np.where(present[:, None], probs, 0.0)
    rank = np.where(present[:, None], rank, NO_RANK)
    return Result(label=winner(probs, rank), probs=probs, rank=rank)


def null_rows(result: Result, missing: np.ndarray) -> Result:
    """``result`` with no prediction in the ``missing`` rows."""
    if result.value is not None:
        result.value = np.where(missing, np.nan, result.value)
    if result.label is not None:
        result.label = np.where(missing, -1, result.label)
    if result.probs is not None:
        result.probs = np.where(missing[:, None], 0.0, result.probs)
    if result.rank is not None:
        result.rank = np.where(missing[:, None], NO_RANK, result.rank)
    return result


def failed_rows(result: Result, failed: np.ndarray) -> Result:
    """``result`` with no prediction in the ``failed`` rows, which stay marked as failed for a parent."""
    if not failed.any():
        return result
    result = null_rows(result, failed)
    result.failed = failed if result.failed is None else result.failed | failed
    return result
