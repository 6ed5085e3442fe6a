"""NearestNeighborModel (kNN): distances to the TrainingInstances, scored as JPMML-Evaluator scores them.

Distance measures euclidean, squaredEuclidean, cityBlock, chebychev and
minkowski over the KNNInputs, with the compare functions absDiff, delta and
equal and per-input ``fieldWeight``; a missing input is skipped and
the sum scaled by (inputs / present inputs), as JPMML's adjustment. The
``numberOfNeighbors`` nearest instances are the first after a stable sort by
distance (ties keep the table's order). Regression: ``average``,
``weightedAverage`` (weights 1 / (distance + threshold)) or ``median``
(commons-math's legacy percentile); classification: ``majorityVote`` or
``weightedMajorityVote``, ties broken by the class's count in the training
data, then by the smallest label. JPMML gives a kNN classifier no
probabilities, so ``probs`` is NaN. The training table must be an InlineTable
with no missing cells; a string input compares by delta or equal only.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np

from serving.formats.pmml.compiler.base import Context, Model, Result
from serving.formats.pmml.compiler.elements import (
    NotCompilable,
    allow_only,
    child_elements,
    find_child,
    number_attribute,
    parse_number,
    tag_name,
)
from serving.formats.pmml.compiler.evaluation import Env, Getter
from serving.formats.pmml.compiler.expressions import Scope, field_constant, vocabulary_of
from serving.formats.pmml.compiler.neural import check_math_context

#: Measure -> (inner power, outer power); chebychev takes the maximum instead of the sum.
_MEASURES = {"euclidean": (2.0, 2.0), "squaredEuclidean": (2.0, 1.0), "cityBlock": (1.0, 1.0),
             "chebychev": (1.0, 1.0), "minkowski": (None, None)}  # fmt: skip
_COMPARE = {"absDiff", "delta", "equal"}

#: Distance cells ([rows, instances]) computed at once.
_CELLS = 1 << 21


class Neighbors(Model):
    """A NearestNeighborModel with one target (regression or classification) and a distance measure."""

    def __init__(self, elem: ET.Element, ctx: Context, scope: Scope) -> None:
        allow_only(elem, {"MiningSchema", "Output", "LocalTransformations", "TrainingInstances", "ComparisonMeasure",
                          "KNNInputs", "ModelStats", "ModelExplanation", "ModelVerification"})  # fmt: skip
        check_math_context(elem)
        self.ctx = ctx
        self.gives_probabilities = False  # JPMML reports a kNN classifier's label only
        self.k = int(number_attribute(elem, "numberOfNeighbors"))
        self.threshold = number_attribute(elem, "threshold", 0.001)
        self.method = (
            elem.get("continuousScoringMethod", "average")
            if ctx.function == "regression"
            else elem.get("categoricalScoringMethod", "majorityVote")
        )
        if self.method not in ("average", "weightedAverage", "median", "majorityVote", "weightedMajorityVote"):
            raise NotCompilable(f"kNN scoring method {self.method!r}")
        self._measure(find_child(elem, "ComparisonMeasure"))
        inputs = find_child(elem, "KNNInputs")
        if inputs is None:
            raise NotCompilable("NearestNeighborModel without KNNInputs")
        allow_only(inputs, {"KNNInput"})
        self.fields: list[str] = []
        self.getters: list[Getter] = []
        self.compare: list[tuple[str, float | None]] = []  # (compareFunction, fieldWeight)
        for knn in child_elements(inputs):
            function = knn.get("compareFunction", self.compare_function)
            if function == "gaussSim":  # a KNNInput has no similarityScale: JPMML finds it invalid
                raise NotCompilable("KNNInput compareFunction gaussSim")
            if function not in _COMPARE:
                raise NotCompilable(f"compareFunction {function!r}")
            weight = number_attribute(knn, "fieldWeight") if knn.get("fieldWeight") is not None else None
            self.fields.append(knn.get("field") or "")
            getter = scope.resolve(knn.get("field"))
            if function == "absDiff" and vocabulary_of(getter) is not None:
                raise NotCompilable("absDiff over a string field")
            self.getters.append(getter)
            self.compare.append((function, weight))
        if not self.fields:
            raise NotCompilable("KNNInputs without inputs")
        self._training(find_child(elem, "TrainingInstances"))
        if not 0 < self.k <= len(self.targets):
            raise NotCompilable("numberOfNeighbors exceeds the training instances")

    def _measure(self, measure: ET.Element | None) -> None:
        if measure is None or measure.get("kind") != "distance":
            raise NotCompilable("kNN needs a distance ComparisonMeasure")
        self.compare_function = measure.get("compareFunction", "absDiff")
        if self.compare_function not in ("absDiff", "delta", "equal"):
            raise NotCompilable(f"ComparisonMeasure compareFunction {self.compare_function!r}")
        kids = child_elements(measure)
        if len(kids) != 1 or tag_name(kids[0]) not in _MEASURES:
            raise NotCompilable("kNN distance measure is not supported")
        self.measure = tag_name(kids[0])
        inner, outer = _MEASURES[self.measure]
        if self.measure == "minkowski":
            p = number_attribute(kids[0], "p-parameter")
            if not p > 0.0:
                raise NotCompilable("minkowski p-parameter must be positive")
            inner = outer = p
        self.inner, self.outer = inner, outer

    def _training(self, training: ET.Element | None) -> None:
        if training is None:
            raise NotCompilable("NearestNeighborModel without TrainingInstances")
        allow_only(training, {"InstanceFields", "InlineTable"})
        fields_elem, table = find_child(training, "InstanceFields"), find_child(training, "InlineTable")
        if fields_elem is None or table is None:
            raise NotCompilable("TrainingInstances need InstanceFields and an InlineTable")
        allow_only(fields_elem, {"InstanceField"})
        columns = {f.get("field"): (f.get("column") or f.get("field") or "").rsplit(":", 1)[-1]
                   for f in child_elements(fields_elem)}  # fmt: skip
        for name in [*self.fields, self.ctx.target]:
            if name not in columns:
                raise NotCompilable(f"the training instances lack {name!r}")
        allow_only(table, {"row"})
        rows = []
        for row in child_elements(table):
            cells: dict[str, str] = {}
            for cell in child_elements(row):
                local = tag_name(cell)
                if local in cells:
                    raise NotCompilable(f"a training row repeats column {local!r}")
                cells[local] = (cell.text or "").strip()
            rows.append(cells)
        try:
            texts = [[row[columns[name]] for name in [*self.fields, self.ctx.target]] for row in rows]
        except KeyError as exc:
            raise NotCompilable(f"a training row lacks column {exc}") from exc
        # Each value as the field's column holds it: a float rounded to float32, a string as its code.
        self.instances = np.asarray(
            [[field_constant(g, t, "training value") for g, t in zip(self.getters, r[:-1])] for r in texts]
        )
        self.instances = self.instances.reshape(len(texts), len(self.fields)).T.copy()  # [fields, instances]
        if self.ctx.function == "regression":
            self.targets = np.asarray([parse_number(r[-1], "training target") for r in texts])
            return
        assert self.ctx.labels is not None
        self.targets = np.asarray([self.ctx.labels.index(r[-1]) for r in texts], dtype=np.intp)
        n_labels = len(self.ctx.labels)
        self.class_counts = np.bincount(self.targets, minlength=n_labels).astype(np.float64)
        # Collections.min over the tied labels: their natural order (text for strings, else the number).
        natural = sorted(range(n_labels), key=lambda i: self.ctx.labels.keys[i][1])  # type: ignore[union-attr]
        self.natural_rank = np.empty(n_labels, dtype=np.float64)
        self.natural_rank[natural] = np.arange(n_labels)

    def _distances(self, x: list[np.ndarray]) -> np.ndarray:
        """[rows, instances] distances, field terms added in KNNInputs order as JPMML adds them."""
        n = x[0].shape[0]
        present = np.zeros(n)
        total: np.ndarray | None = None
        chebychev = self.measure == "chebychev"
        for column, reference, (function, weight) in zip(x, self.instances, self.compare):
            ok = ~np.isnan(column)
            present += ok
            a = column[:, None]
            if function == "absDiff":
                term = a - reference[None, :]
                term = term * term if self.inner == 2.0 else np.abs(term)  # |d|^2 is d*d exactly
            else:
                equal = a == reference[None, :]
                term = (equal if function == "equal" else ~equal).astype(np.float64)
            if self.inner not in (1.0, 2.0) or (self.inner == 2.0 and function != "absDiff"):
                term = np.power(term, self.inner)
            if weight is not None:
                term = term * weight
            if not ok.all():
                # A missing input adds nothing, and is no maximum.
                term = np.where(ok[:, None], term, 0.0 if not chebychev else -np.finfo(np.float64).max)
            if total is None:
                total = term if not chebychev else np.maximum(-np.finfo(np.float64).max, term)
            else:
                total = np.maximum(total, term) if chebychev else total + term
        assert total is not None
        if (present < len(x)).any():
            total = total * (len(x) / np.where(present > 0, present, np.nan))[:, None]  # JPMML's adjustment
        if chebychev or self.outer == 1.0:
            return total
        return np.sqrt(total) if self.outer == 2.0 else np.power(total, 1.0 / self.outer)

    def evaluate(self, env: Env) -> Result:
        """The neighbors' average (or weighted average, median), or their (weighted) majority label."""
        x = [np.asarray(g(env), dtype=np.float64) for g in self.getters]
        n = env.rows
        step = max(1, _CELLS // max(1, self.instances.shape[1]))
        parts = [self._score([c[i : i + step] for c in x]) for i in range(0, n, step)] or [self._score(x)]
        if self.ctx.function == "regression":
            return Result(value=np.concatenate([p[0] for p in parts]))
        label = np.concatenate([p[0] for p in parts])
        probs = np.full((n, len(self.ctx.labels)), np.nan)  # type: ignore[arg-type]
        return Result(label=label, probs=probs)

    def _score(self, x: list[np.ndarray]) -> tuple[np.ndarray]:
        with np.errstate(all="ignore"):
            distances = self._distances(x)
            order = _nearest(distances, self.k)
            nearest = np.take_along_axis(distances, order, axis=1)
            targets = self.targets[order]
            weights = 1.0 / (nearest + self.threshold)
            invalid = np.isnan(nearest).any(axis=1)
            if self.ctx.function == "regression":
                value = self._continuous(targets.astype(np.float64), weights)
                return (np.where(invalid, np.nan, value),)
            return (np.where(invalid, -1, self._categorical(targets, weights)),)

    def _continuous(self, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
        if self.method == "median":
            data = np.sort(values, axis=1)
            pos = 50.0 * (self.k + 1) / 100.0  # commons-math Percentile, legacy estimation
            low = math.floor(pos)
            if pos < 1:
                return data[:, 0]
            if pos >= self.k:
                return data[:, -1]
            lower, upper = data[:, low - 1], data[:, low]
            return lower + (pos - low) * (upper - lower)
        total = np.zeros(values.shape[0])
        if self.method == "average":
            for j in range(self.k):
                total = total + values[:, j]
            return total / self.k
        weight_total = np.zeros(values.shape[0])
        for j in range(self.k):
            w = weights[:, j]
            total = total + np.where(w != 1.0, w * values[:, j], values[:, j])
            weight_total = weight_total + w
        return total / np.where(weight_total == 0.0, np.nan, weight_total)

    def _categorical(self, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
        n = labels.shape[0]
        rows = np.arange(n)
        votes = np.zeros((n, len(self.ctx.labels)))  # type: ignore[arg-type]
        voted = np.zeros(votes.shape, dtype=bool)
        for j in range(self.k):  # neighbor by neighbor: each class's sum in the order JPMML adds it
            votes[rows, labels[:, j]] += 1.0 if self.method == "majorityVote" else weights[:, j]
            voted[rows, labels[:, j]] = True
        votes = np.where(voted, votes, -np.inf)
        winners = votes == votes.max(axis=1, keepdims=True)
        # Ties: the class most frequent in the training data, then the smallest label.
        counts = np.where(winners, self.class_counts[None, :], -np.inf)
        winners &= counts == counts.max(axis=1, keepdims=True)
        return np.argmin(np.where(winners, self.natural_rank[None, :], np.inf), axis=1)


def _nearest(distances: np.ndarray, k: int) -> np.ndarray:
    """[rows, k] indices of the k smallest distances per row, as a stable sort's first k (ties: lower index first).

    NaN sorts last, as under Double.compare. A partition finds the k-th
    distance; the instances below it and the first ones equal to it are taken,
    then ordered stably, which costs O(instances) per row rather than a sort.
    """
    n, m = distances.shape
    if k >= m:
        return np.argsort(distances, axis=1, kind="stable")[:, :k]
    kth = np.partition(distances, k - 1, axis=1)[:, k - 1 : k]
    less = distances < kth
    equal = distances == kth
    need = k - less.sum(axis=1, keepdims=True)
    chosen = less | equal
    tied = (equal.sum(axis=1, keepdims=True) > need)[:, 0]  # more instances at the k-th distance than places
    if tied.any():
        chosen[tied] = less[tied] | (equal[tied] & (np.cumsum(equal[tied], axis=1) <= need[tied]))
    short = np.isnan(kth[:, 0])  # fewer than k numbers: NaNs are among the nearest
    if short.any():
        ranks = np.argsort(np.argsort(distances[short], axis=1, kind="stable"), axis=1)
        chosen[short] = ranks < k
    picked = np.nonzero(chosen)[1].reshape(n, k)  # exactly k per row, in index order
    within = np.argsort(np.take_along_axis(distances, picked, axis=1), axis=1, kind="stable")
    return np.take_along_axis(picked, within, axis=1)
