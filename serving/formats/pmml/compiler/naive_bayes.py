"""NaiveBayesModel: class scores in log space, as JPMML-Evaluator computes them.

Each class starts at ln(its BayesOutput count); every BayesInput then adds
ln(p) per class, where p is the GaussianDistribution density of a continuous
input (TargetValueStats) or count / the class's count sum over the input's
PairCounts for an input (numeric or string) whose value is listed (a zero count gives the
model's ``threshold``), and a density below ``threshold`` is raised to it. A
missing input, or a value no PairCounts lists, adds nothing. The scores are then
softmax-normalised. Classes are keyed by their text in the order JPMML first
meets them (the BayesOutput's, then the inputs'), and the winner is the first
maximum in that order.
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
    tag_name,
)
from serving.formats.pmml.compiler.evaluation import Env, Getter
from serving.formats.pmml.compiler.expressions import Scope, field_constant, vocabulary_of
from serving.formats.pmml.compiler.neural import check_math_context, fixed_rank, normalize_columns

#: commons-math3 3.6.1 NormalDistribution's constant, ln(2 pi) / 2.
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

#: commons-math3 Precision.EPSILON: a count this close to zero is zero.
_EPSILON = 2.0**-53


class _Classes:
    """The class keys in JPMML's map order, by text, each with its label number."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.texts: list[str] = []
        self.labels: list[int] = []

    def key(self, text: str | None) -> int:
        """The key number of class ``text``, adding it in first-met order."""
        if text is None:
            raise NotCompilable("a NaiveBayes class value is missing")
        if text in self.texts:
            return self.texts.index(text)
        assert self.ctx.labels is not None
        label = self.ctx.labels.index(text)
        if label in self.labels:  # two texts of one label: JPMML would keep them apart
            raise NotCompilable(f"class {text!r} is written two ways")
        self.texts.append(text)
        self.labels.append(label)
        return len(self.texts) - 1


class NaiveBayes(Model):
    """A NaiveBayesModel (classification only): priors, per-input likelihoods, softmax."""

    def __init__(self, elem: ET.Element, ctx: Context, scope: Scope) -> None:
        allow_only(elem, {"MiningSchema", "Output", "LocalTransformations", "BayesInputs", "BayesOutput",
                          "ModelStats", "ModelExplanation", "ModelVerification"})  # fmt: skip
        check_math_context(elem)
        if ctx.function != "classification":
            raise NotCompilable("a NaiveBayesModel must be a classifier")
        self.ctx = ctx
        self.threshold = number_attribute(elem, "threshold")
        if not self.threshold >= 0.0:
            raise NotCompilable("NaiveBayesModel threshold is negative")
        inputs, output = find_child(elem, "BayesInputs"), find_child(elem, "BayesOutput")
        if inputs is None or output is None:
            raise NotCompilable("NaiveBayesModel without BayesInputs or BayesOutput")
        if output.get("fieldName", ctx.target) != ctx.target:
            raise NotCompilable("BayesOutput names another field than the target")
        self.classes = _Classes(ctx)
        allow_only(output, {"TargetValueCounts"})
        counts = find_child(output, "TargetValueCounts")
        if counts is None:
            raise NotCompilable("BayesOutput without TargetValueCounts")
        self.priors = [(self.classes.key(k), _log(c)) for k, c in _target_value_counts(counts)]
        allow_only(inputs, {"BayesInput"})
        self.inputs = [self._input(i, scope) for i in child_elements(inputs)]

    def _input(self, elem: ET.Element, scope: Scope) -> tuple[Getter, str, list]:
        allow_only(elem, {"TargetValueStats", "PairCounts"})
        getter = scope.resolve(elem.get("fieldName"))
        stats = find_child(elem, "TargetValueStats")
        if stats is not None:
            if vocabulary_of(getter) is not None:
                raise NotCompilable("a GaussianDistribution over a string field")
            allow_only(stats, {"TargetValueStat"})
            gaussians = []
            for stat in child_elements(stats):
                allow_only(stat, {"GaussianDistribution"})
                dist = find_child(stat, "GaussianDistribution")
                if dist is None:
                    raise NotCompilable("TargetValueStat without a GaussianDistribution")
                variance = number_attribute(dist, "variance")
                if not variance > 0.0:
                    raise NotCompilable("GaussianDistribution variance must be positive")
                gaussians.append((self.classes.key(stat.get("value")), number_attribute(dist, "mean"),
                                  math.sqrt(variance)))  # fmt: skip
            keys, means, sds = (np.asarray(v) for v in zip(*gaussians)) if gaussians else ([], [], [])
            _check_unique(keys)
            sds = np.asarray(sds, dtype=np.float64)
            # commons-math's density() is exp(logDensity): ln(sd) + ln(2 pi) / 2 is its constant
            return getter, "gaussian", (np.asarray(keys, dtype=np.intp), means, sds, np.log(sds) + _HALF_LOG_2PI)
        pairs = []
        sums: dict[int, float] = {}
        for pair in child_elements(elem):
            allow_only(pair, {"TargetValueCounts"})
            counts = find_child(pair, "TargetValueCounts")
            if counts is None:
                raise NotCompilable("PairCounts without TargetValueCounts")
            entries = [(self.classes.key(k), c) for k, c in _target_value_counts(counts)]
            for k, c in entries:
                sums[k] = sums[k] + c if k in sums else c
            pairs.append((field_constant(getter, pair.get("value"), "PairCounts value"), entries))
        if not pairs:
            raise NotCompilable("BayesInput without TargetValueStats or PairCounts")
        table = []
        for value, entries in pairs:
            keys = np.asarray([k for k, _ in entries], dtype=np.intp)
            _check_unique(keys)
            logs = [_log(self.threshold if abs(c) < _EPSILON else c / sums[k]) for k, c in entries]
            table.append((value, keys, np.asarray(logs, dtype=np.float64)))
        return getter, "pairs", table

    def evaluate(self, env: Env) -> Result:
        """The label and every class's probability."""
        n = env.rows
        scores = np.zeros((n, len(self.classes.texts)))  # [rows, classes in JPMML's map order]
        with np.errstate(all="ignore"):
            for k, log_count in self.priors:
                scores[:, k] += log_count
            for getter, kind, table in self.inputs:
                x = np.asarray(getter(env), dtype=np.float64)
                present = ~np.isnan(x)[:, None]
                if kind == "gaussian":
                    keys, means, sds, constants = table
                    x1 = (x[:, None] - means) / sds
                    p = np.exp(-0.5 * x1 * x1 - constants)
                    p = np.where(p < self.threshold, self.threshold, p)  # the floor, as JPMML's
                    scores[:, keys] = scores[:, keys] + np.where(present, np.log(p), 0.0)
                    continue
                matched = np.zeros((n, 1), dtype=bool)
                for value, keys, logs in table:  # the first PairCounts whose value equals the input
                    hit = present & ~matched & (x[:, None] == value)
                    matched |= hit
                    scores[:, keys] = scores[:, keys] + np.where(hit, logs, 0.0)
            columns = normalize_columns(list(scores.T), "softmax")
        assert self.ctx.labels is not None
        probs = np.zeros((n, len(self.ctx.labels)))
        stacked = np.column_stack(columns)
        probs[:, self.classes.labels] = stacked
        label = np.asarray(self.classes.labels)[np.argmax(stacked, axis=1)]
        return Result(label=label, probs=probs, rank=fixed_rank(n, len(self.ctx.labels), self.classes.labels))


def _check_unique(keys: np.ndarray) -> None:
    if len(set(np.asarray(keys).tolist())) != len(keys):
        raise NotCompilable("a BayesInput lists a class twice")


def _target_value_counts(elem: ET.Element) -> list[tuple[str | None, float]]:
    allow_only(elem, {"TargetValueCount"})
    counts = [(c.get("value"), number_attribute(c, "count")) for c in child_elements(elem) if tag_name(c)]
    if any(not c >= 0.0 for _, c in counts):
        raise NotCompilable("a TargetValueCount count is negative")
    return counts


def _log(p: float) -> float:
    """ln(p) as Java's Math.log: ln(0) is -Infinity."""
    return math.log(p) if p > 0.0 else -math.inf
