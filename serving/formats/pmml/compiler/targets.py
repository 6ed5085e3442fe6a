"""Targets: a model's Target post-processing, as JPMML's ``TargetUtil`` applies it.

Regression: a missing prediction becomes the single TargetValue's
``defaultValue`` (if any); then the value is clamped to ``min``/``max``, times
``rescaleFactor`` plus ``rescaleConstant``, and rounded by ``castInteger``
(``round`` half up, ``ceiling``, ``floor``). Classification: a missing
prediction becomes the TargetValues' ``priorProbability`` distribution
(normalised unless it sums to 1), its first most probable value the label.

:func:`apply_targets` hooks this onto a compiled model without changing its
class (the dispatcher recognises tree models by class).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from serving.formats.pmml.compiler.base import Context, Model, Result
from serving.formats.pmml.compiler.elements import (
    NotCompilable,
    allow_only,
    child_elements,
    find_child,
    number_attribute,
)
from serving.formats.pmml.compiler.evaluation import Env
from serving.formats.pmml.compiler.labels import NO_RANK, default_rank


class Targets:
    """One Target element of the document's target, compiled."""

    def __init__(self, target: ET.Element, ctx: Context) -> None:
        allow_only(target, {"TargetValue"})
        self.ctx = ctx
        self.low = number_attribute(target, "min", -np.inf)
        self.high = number_attribute(target, "max", np.inf)
        self.factor = number_attribute(target, "rescaleFactor", 1.0)
        self.constant = number_attribute(target, "rescaleConstant", 0.0)
        self.cast = target.get("castInteger")
        if self.cast not in (None, "round", "ceiling", "floor"):
            raise NotCompilable(f"Target castInteger {self.cast!r}")
        values = child_elements(target)
        self.default: float | None = None
        self.priors: list[tuple[int, float]] = []
        if ctx.function == "regression":
            if len(values) > 1 or (values and values[0].get("defaultValue") is None):
                raise NotCompilable("a regression Target needs one TargetValue with a defaultValue, or none")
            if values:
                self.default = number_attribute(values[0], "defaultValue")
        elif values:
            assert ctx.labels is not None
            self.priors = [(ctx.labels.index(v.get("value")), number_attribute(v, "priorProbability")) for v in values]

    def apply(self, result: Result) -> Result:
        """``result`` post-processed."""
        if self.ctx.function == "regression":
            value = np.asarray(result.value, dtype=np.float64)
            if self.default is not None:
                value = np.where(np.isnan(value), self.default, value)
            if self.low != -np.inf or self.high != np.inf:
                value = np.minimum(np.maximum(value, self.low), self.high)
            value = value * self.factor + self.constant
            if self.cast == "round":
                value = np.floor(value) + ((value - np.floor(value)) >= 0.5)  # Java's Math.round
            elif self.cast == "ceiling":
                value = np.ceil(value)
            elif self.cast == "floor":
                value = np.floor(value)
            return Result(value=value, label=result.label, probs=result.probs)
        if not self.priors or result.label is None:
            return result
        missing = result.label < 0
        if not missing.any():
            return result
        total = 0.0
        for _, p in self.priors:  # left to right, as JPMML sums them
            total += p
        priors = [(c, p if total == 1.0 else p / total) for c, p in self.priors]
        probs = np.array(result.probs, dtype=np.float64, copy=True)
        probs[missing] = np.nan
        for c, p in priors:
            probs[missing, c] = p
        winner = priors[int(np.argmax([p for _, p in priors]))][0]
        rank = np.full(probs.shape, NO_RANK, dtype=np.int64) if result.rank is None else result.rank.copy()
        if result.rank is None:
            rank[~missing] = default_rank(probs[~missing])
        rank[missing] = NO_RANK
        for order, (c, _) in enumerate(priors):
            rank[missing, c] = order
        return Result(value=result.value, label=np.where(missing, winner, result.label), probs=probs, rank=rank)


def parse_targets(elem: ET.Element, ctx: Context) -> Targets | None:
    """The model element's Targets for the document's target, or None without a Targets element.

    Raises:
        NotCompilable: several Targets, or one for another field.
    """
    container = find_child(elem, "Targets")
    if container is None:
        return None
    allow_only(container, {"Target"})
    targets = child_elements(container)
    if len(targets) != 1 or targets[0].get("field") not in (None, ctx.target):
        raise NotCompilable("Targets must hold one Target, for the model's target")
    return Targets(targets[0], ctx)


def apply_targets(elem: ET.Element, ctx: Context, model: Model) -> Model:
    """``model`` with the Targets of its element applied to every evaluation (the same object)."""
    targets = parse_targets(elem, ctx)
    if targets is None:
        return model
    inner = model.evaluate

    def evaluate(env: Env) -> Result:
        return targets.apply(inner(env))

    model.evaluate = evaluate  # type: ignore[method-assign]
    return model
